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

What does not rotate, and why (``docs/privacy.md``, "Keys and rotation"): the look-up hashes
(``*_hash``) and the open-data pseudonyms, and the console's sessions, CSRF tokens, web keys
and recording tokens, all derived from key id 1, the installation's root secret. Re-hashing
would change every published pseudonym (they are keyed HMACs of the look-up hash) and would
have to move each person's rows in every table at once while their messages are being filed;
it is left for a later change.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
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

    Today every hash is under key id 1 (the rotation does not re-hash: docs/privacy.md, "Keys
    and rotation"); this is the measure a re-hashing rotation will be checked against."""
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
            return report
    raise RotationError(
        f"values still appear under an older key after {MAX_PASSES} passes: is a gateway "
        f"process reading another key file? ({report.total} rewritten so far)"
    )


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
