"""Changing the key that encrypts residents' addresses while the gateway runs.

``gateway keys rotate`` (gateway.cli.keys):

1. adds a new key to the keyring (gateway.keyring) and makes it current, unless a rotation is
   already under way (values remain under an older key): then it goes on with the current key,
   so running it again after a crash or a kill finishes the job instead of minting another key;
2. waits until every running process has seen the new key (they look at the key file at least
   every ``keyring.RELOAD_EVERY`` seconds), so that new values are written under it;
3. re-encrypts every value under an older key, column by column, in batches, each value
   replaced only if it is still the one read (compare and swap: a row erased or rewritten
   meanwhile is left as it is now), with the loop of ``gateway secrets rewrap``
   (gateway.rewrap.rewrite_column);
4. passes again until a pass finds nothing to rewrite (a value written under the old key by a
   process that had not yet seen the new one is caught by the next pass).

The old keys stay in the ring until ``gateway keys retire ID``, which refuses while any value
still names that key (with the count). ``gateway keys status`` counts the values under each key.

5. re-hashes people (``rehash``): the look-up hashes (``*_hash``) are keyed by the current
   key too (gateway.privacy), so every person whose address is readable somewhere (a
   contributor row, a message not yet purged, a call) and whose hash is an older key's is
   moved to the current key's hash, each person in one transaction (``move_person``): their
   contributor rows (each a compare and swap of its hash and ciphertext, the address encrypted
   again since its binding names the hash), then ``UPDATE ... WHERE hash = old`` on their
   messages, calls and quarantined messages, which moves the rows that keep only a hash
   (address purged) with the rest of the person. It passes again until nobody is left.

Why people and not rows: many queries compare one row's hash with another's (a sender's
backlog, their contributor rows on each channel, their flood window, announcements). Moving a
person's rows together keeps them equal at every commit. While a rotation runs, a person's
rows carry the old or the new hash, never both, because every look-up by address goes through
gateway.persons.resolve: it computes the address's hash under every key of the ring (current
first) and takes the one the database already holds (``IN (...)``). The race: a webhook
resolves the old hash, the rotation moves the person, the webhook stores its message under the
old hash. Then (a) the message's processing finds the person's contributor row under the new
hash (residents.contributor_for with ``also``, the sender's hashes under the other keys,
computed from the message's address): never a second contributor; (b) the per-person lock is
named after the hash, so gateway.processing re-reads the message's hash once it holds the lock
and follows the person to their new hash; (c) the next pass moves the stray message. A
contributor row created anyway in that instant under the old hash for a channel the person
already has under the new one is left and counted (``conflicts``), never merged blindly.

What cannot be re-hashed: a row that keeps only a hash, of a person with no address left
anywhere (an admin's opt-out of someone who never wrote, a quarantined message whose sender
wrote nothing else, a person whose every address retention purged). Those keep the root's
hash (key id 1); the root secret stays in the key file for them (and for the console's keys,
which do not rotate), so they stay matchable: an opt-out before the rotation still holds.
``gateway keys status`` counts them ("no address kept").

The open-data pseudonyms never change: they are computed from the person's hash under the
root (key id 1), recomputed from their address when one is kept
(gateway.publication.records.pseudonym_bases), so a city's published datasets stay consistent.
The console's sessions, CSRF tokens, web keys and recording tokens do not rotate (docs/privacy.md,
"Keys and rotation", says why).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import InstrumentedAttribute

from gateway import keyring, privacy
from gateway.models import Contributor, InboundMessage, QuarantinedMessage, VoiceCall
from gateway.privacy import AddressVault, Binding
from gateway.rewrap import BATCH, COLUMNS, rewrite_column

log = logging.getLogger(__name__)

# Passes over the tables before rotate gives up saying values keep appearing under an old key
# (a process that never reads the key file: one started with another SECRET_KEY_FILE).
MAX_PASSES = 10


class RotationError(RuntimeError):
    """A rotation or retirement refused, with the reason (never a key)."""


@dataclass
class Rotation:
    key_id: int
    new_key: bool
    rewritten: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)
    passes: int = 0
    # Look-up hashes moved to the new key, per column; people moved; rows left under an older
    # key because the person already has a row for that channel under the new one (the race).
    rehashed: dict[str, int] = field(default_factory=dict)
    people: int = 0
    conflicts: int = 0

    @property
    def total(self) -> int:
        return sum(self.rewritten.values())


def status(engine: Engine) -> dict[str, dict[int, int]]:
    """For each encrypted column, how many values name each key id (formats 1 and 2: 1)."""
    counts: dict[str, dict[int, int]] = {}
    for encrypted in COLUMNS:
        column = encrypted.column
        head = func.substr(column, 1, len(privacy.MARKER3))
        key_bytes = func.substr(column, len(privacy.MARKER3) + 1, 2)
        per_key: dict[int, int] = {}
        with engine.connect() as connection:
            for raw_id, count in connection.execute(
                select(key_bytes, func.count())
                .where(column.is_not(None), head == privacy.MARKER3)
                .group_by(key_bytes)
            ):
                key_id = int.from_bytes(bytes(raw_id), "big")
                per_key[key_id] = per_key.get(key_id, 0) + count
            older = connection.execute(
                select(func.count()).where(column.is_not(None), head != privacy.MARKER3)
            ).scalar_one()
        if older:
            per_key[1] = per_key.get(1, 0) + older
        counts[encrypted.name] = per_key
    return counts


# What a stored look-up hash is, besides "under key id N" (gateway keys status).
NO_ADDRESS = "no address kept"  # erased, purged by retention, or never stored: hash only
UNREADABLE = "address unreadable"
NO_KEY = "matches no key"  # not the hash of the address beside it under any key of the ring


@dataclass(frozen=True)
class HashedColumn:
    """A look-up hash column and the ciphertext of the address it was computed from."""

    name: str
    hash: InstrumentedAttribute[Any]
    encrypted: InstrumentedAttribute[Any] | None
    channel: Any  # the row's channel column, or a fixed channel name
    binding: Any  # the row's binding, from the row


HASHED_COLUMNS = (
    HashedColumn(
        "contributors.address_hash",
        Contributor.address_hash,
        Contributor.address_encrypted,
        Contributor.channel,
        lambda row: privacy.contributor_address(row.channel, row.hash),
    ),
    HashedColumn(
        "inbound_messages.sender_hash",
        InboundMessage.sender_hash,
        InboundMessage.sender_encrypted,
        InboundMessage.channel,
        lambda row: privacy.inbound_sender(row.channel, row.ref),
    ),
    HashedColumn(
        "voice_calls.caller_hash",
        VoiceCall.caller_hash,
        VoiceCall.caller_encrypted,
        None,  # always the voice channel
        lambda row: privacy.voice_caller(row.ref),
    ),
    # A quarantined message keeps no address of its own beside its hash (its payload is the
    # provider's request, which the audit does not parse).
    HashedColumn(
        "quarantined_messages.sender_hash", QuarantinedMessage.sender_hash, None, None, None
    ),
)
_REFS: dict[str, Any] = {
    "inbound_messages.sender_hash": InboundMessage.provider_message_id,
    "voice_calls.caller_hash": VoiceCall.call_sid,
}


def hash_audit(engine: Engine, vault: AddressVault) -> dict[str, dict[int | str, int]]:
    """For each look-up hash column, how many hashes were computed under each key id of the
    ring (recomputed from the address stored beside the hash, decrypted), and how many cannot
    be told: no address kept (hash only), the address unreadable, or matching no key.

    After a rotation, only rows with no address kept stay under an older key (the root's):
    they cannot be re-hashed (see the module's doc).
    """
    counts: dict[str, dict[int | str, int]] = {}
    for hashed in HASHED_COLUMNS:
        per_key: dict[int | str, int] = {}
        table = hashed.hash.class_
        columns: list[Any] = [hashed.hash.label("hash")]
        if hashed.encrypted is not None:
            columns.append(hashed.encrypted.label("encrypted"))
        if hashed.channel is not None:
            columns.append(hashed.channel.label("channel"))
        if hashed.name in _REFS:
            columns.append(_REFS[hashed.name].label("ref"))
        query = select(*columns).select_from(table).where(hashed.hash.is_not(None))
        with engine.connect() as connection:
            for row in connection.execution_options(yield_per=BATCH).execute(query):
                kind = _hash_kind(vault, hashed, row)
                per_key[kind] = per_key.get(kind, 0) + 1
        counts[hashed.name] = per_key
    return counts


def _hash_kind(vault: AddressVault, hashed: HashedColumn, row: Any) -> int | str:
    encrypted = getattr(row, "encrypted", None)
    if hashed.binding is None or encrypted is None:
        return NO_ADDRESS
    try:
        address = vault.decrypt(encrypted, hashed.binding(row))
    except privacy.Unreadable:
        return UNREADABLE
    channel = getattr(row, "channel", "voice")
    for key_id, candidate in vault.lookup_hashes(channel, address).items():
        if candidate == row.hash:
            return key_id
    return NO_KEY


def remaining(engine: Engine, key_id: int) -> int:
    return sum(per_key.get(key_id, 0) for per_key in status(engine).values())


def older_than(key_id: int) -> Any:
    prefix = privacy.key_prefix(key_id)

    def stale(column: InstrumentedAttribute[Any]) -> Any:
        return column.is_not(None) & (func.substr(column, 1, len(prefix)) != prefix)

    return stale


def read_any(vault: AddressVault, token: bytes, binding: Binding) -> bytes:
    return vault.decrypt_bytes(token, binding)


# Seconds between the re-hash's converging and its last look (see rotate).
LAST_LOOK = 10.0


def rotate(
    engine: Engine,
    vault: AddressVault,
    path: Path,
    *,
    batch: int = BATCH,
    settle: float | None = None,
) -> Rotation:
    """Make a new key current (unless a rotation is under way) and re-encrypt every value
    under an older one. ``settle``: seconds to wait for running processes to see the new key
    (a little more than ``keyring.RELOAD_EVERY`` by default)."""
    if not path.exists():
        raise RotationError(
            f"no key file at {path}: the key comes from GATEWAY_SECRET_KEY or from an old "
            f"DATA_DIR/secret_key, and rotation adds the new key to the key file: put the key "
            f"there first (`gateway secrets move-key`, or GATEWAY_SECRET_KEY_FILE)"
        )
    with keyring.locked(path):
        ring = keyring.read(path)
        if ring.root != vault.root_secret:
            raise RotationError(
                f"{path} does not hold the key this gateway uses (GATEWAY_SECRET_KEY is set "
                f"to another): rotation needs the key in the file"
            )
        under_way = any(
            count
            for key_id in ring.keys
            if key_id != ring.current
            for count in [remaining(engine, key_id)]
        )
        new_key = not under_way
        if new_key:
            ring = ring.with_new_key()
            keyring.write(path, ring)
            log.info("key id %d is now current", ring.current)
    vault.reload()
    if vault.current_key_id != ring.current:  # pragma: no cover - the file changed under us
        raise RotationError("the key file changed during the rotation: run it again")
    if new_key:
        time.sleep(keyring.RELOAD_EVERY * 2.5 if settle is None else settle)
    report = Rotation(ring.current, new_key)
    stale = older_than(ring.current)
    for _ in range(MAX_PASSES):
        report.passes += 1
        rewritten = 0
        for encrypted in COLUMNS:
            done, unreadable = rewrite_column(engine, vault, encrypted, stale, read_any, batch)
            report.rewritten[encrypted.name] = report.rewritten.get(encrypted.name, 0) + done
            report.unreadable[encrypted.name] = unreadable
            rewritten += done
        if not rewritten:
            break
    else:
        raise RotationError(
            f"values still appear under an older key after {MAX_PASSES} passes: is a gateway "
            f"process reading another key file? ({report.total} rewritten so far)"
        )
    for _ in range(MAX_PASSES):
        if rehash(engine, vault, report, batch):
            continue
        # Converged. A webhook that looked its sender up just before the last pass (under the
        # old hash, which the person still had) may commit its row a moment after it: wait
        # longer than a webhook's write may (gateway.ingest.WRITE_WAIT_SECONDS), then look
        # once more, and go on until a look after the wait finds nobody left.
        time.sleep(LAST_LOOK if settle is None else settle)
        if not rehash(engine, vault, report, batch):
            return report
    raise RotationError(
        f"values still appear under an older key after {MAX_PASSES} passes: is a gateway "
        f"process reading another key file? ({report.total} rewritten so far)"
    )


# Where a person's address can be read beside a look-up hash: (hash, ciphertext, channel or
# None for voice, the row key of the binding, the binding).
_SOURCES: tuple[tuple[Any, Any, Any, Any, Any], ...] = (
    (
        Contributor.address_hash,
        Contributor.address_encrypted,
        Contributor.channel,
        Contributor.id,
        None,
    ),
    (
        InboundMessage.sender_hash,
        InboundMessage.sender_encrypted,
        InboundMessage.channel,
        InboundMessage.provider_message_id,
        privacy.inbound_sender,
    ),
    (
        VoiceCall.caller_hash,
        VoiceCall.caller_encrypted,
        None,
        VoiceCall.call_sid,
        lambda _channel, call_sid: privacy.voice_caller(call_sid),
    ),
)
# The columns a person's hash is in besides contributors (moved by one UPDATE each).
_FOLLOWERS = (InboundMessage.sender_hash, VoiceCall.caller_hash, QuarantinedMessage.sender_hash)


def rehash(engine: Engine, vault: AddressVault, report: Rotation, batch: int = BATCH) -> int:
    """One pass: every person whose address is readable somewhere and whose hash there is not
    the current key's is moved to the current key's hash (``move_person``). Returns how many
    people were moved."""
    moved = 0
    for hash_column, encrypted, channel_column, ref, binding in _SOURCES:
        table = hash_column.class_
        last: Any = None
        order = table.id
        while True:
            columns = [order, hash_column, encrypted, ref]
            if channel_column is not None:
                columns.append(channel_column)
            query = select(*columns).where(hash_column.is_not(None), encrypted.is_not(None))
            if last is not None:
                query = query.where(order > last)
            with engine.connect() as connection:
                rows = connection.execute(query.order_by(order).limit(batch)).all()
            if not rows:
                break
            last = rows[-1][0]
            done: set[str] = set()
            for row in rows:
                old, token, row_key = row[1], row[2], row[3]
                channel = row[4] if channel_column is not None else "voice"
                if old in done:
                    continue
                where = (
                    privacy.contributor_address(channel, old)
                    if binding is None
                    else binding(channel, row_key)
                )
                address = vault.decrypt_or_none(token, where)
                if address is None:
                    continue
                new = vault.lookup_hash(channel, address)
                if new != old:
                    moved += move_person(engine, vault, old, new, report)
                    done.add(old)
    report.people += moved
    return moved


def move_person(engine: Engine, vault: AddressVault, old: str, new: str, report: Rotation) -> int:
    """Move every row of the person behind ``old`` to ``new``, in one transaction: their
    contributor rows (each address encrypted again, since its binding names the hash; each row
    a compare and swap on its hash and ciphertext), then their messages, calls and quarantined
    messages (``WHERE hash = old``: a row written meanwhile under ``new`` is left alone).
    Returns 1 when something moved."""
    changed = 0
    with engine.begin() as connection:
        rows = connection.execute(
            select(Contributor.id, Contributor.channel, Contributor.address_encrypted).where(
                Contributor.address_hash == old
            )
        ).all()
        for row_id, channel, token in rows:
            taken = connection.scalar(
                select(Contributor.id).where(
                    Contributor.channel == channel, Contributor.address_hash == new
                )
            )
            if taken is not None:
                # The person already has a row for this channel under the new hash (a row
                # created in the instant between two look-ups): left as it is, counted.
                report.conflicts += 1
                continue
            fresh = token
            if token is not None:
                value = vault.decrypt_or_none(token, privacy.contributor_address(channel, old))
                if value is not None:
                    fresh = vault.encrypt(value, privacy.contributor_address(channel, new))
            same = (
                Contributor.address_encrypted.is_(None)
                if token is None
                else Contributor.address_encrypted == token
            )
            done = connection.execute(
                update(Contributor)
                .where(Contributor.id == row_id, Contributor.address_hash == old, same)
                .values(address_hash=new, address_encrypted=fresh)
            ).rowcount
            _count(report, "contributors.address_hash", done)
            changed += done
        for column in _FOLLOWERS:
            done = connection.execute(
                update(column.class_).where(column == old).values({column.key: new})
            ).rowcount
            _count(report, f"{column.class_.__tablename__}.{column.key}", done)
            changed += done
    return 1 if changed else 0


def _count(report: Rotation, name: str, count: int | None) -> None:
    report.rehashed[name] = report.rehashed.get(name, 0) + int(count or 0)


def retire(engine: Engine, path: Path, key_id: int) -> None:
    """Remove a key from the ring, refused while it is current or any value names it."""
    with keyring.locked(path):
        ring = keyring.read(path)
        if key_id in ring.retired:
            raise RotationError(f"key id {key_id} is already retired")
        if key_id not in ring.keys:
            raise RotationError(f"no key id {key_id} in {path}")
        if key_id == ring.current:
            raise RotationError(f"key id {key_id} is the current key: rotate first")
        left = remaining(engine, key_id)
        if left:
            raise RotationError(
                f"{left} value(s) are still encrypted under key id {key_id}: run "
                f"`gateway keys rotate` until none is left"
            )
        keyring.write(path, ring.without(key_id))
    log.info("key id %d retired", key_id)
