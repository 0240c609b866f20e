"""Residents' addresses (phone numbers, chat ids, email addresses) at rest.

An address is stored twice, never in clear: encrypted (AES-GCM, so the gateway can reply) and
as a keyed hash (HMAC-SHA256, so a returning sender is found without decrypting every row).
Both keys derive from ``SECRET_KEY`` with HKDF and distinct labels, so one never serves as
the other. Pseudonymous contributor ids are random, not derived from the address: they say
nothing about it even to someone holding the secret key.

Every ciphertext is bound to where it lives (a ``Binding``: its table and column, and a key of
its row known when it is written) through AES-GCM's associated data. Someone who can write to
the database but has no key cannot move a ciphertext to another row or column: copied, it no
longer decrypts (``Unreadable``), so a notice cannot be redirected to another resident's
address and a payload cannot be passed off as another message's. Values written before this
binding existed (no version marker) are still read, without it; ``gateway secrets rewrap``
binds them (automatic on SQLite at start-up, see gateway.secrets).

Every new ciphertext also names the key it was written with (format 3, a key id of the
keyring, gateway.keyring), so that the key can change while the gateway runs: ``gateway keys
rotate`` (gateway.rotation) re-encrypts the values under an older key, and the vault reads
the key file again when it changes. The look-up hash is keyed by the current key as well (the
rotation re-hashes people, gateway.persons finds a person under any key's hash); the
open-data pseudonyms keep deriving from key id 1's hash, the installation's root secret, so
that they never change (docs/privacy.md, "Keys and rotation", says why).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway import keyring, plugins
from gateway.keyring import Keyring

log = logging.getLogger(__name__)

# Format 3: marker + key id (2 bytes, big-endian) + 96-bit nonce + ciphertext and tag, with the
# binding as associated data; the key id names the keyring's key (gateway.keyring). A forged
# key id selects another key (or none), under which the tag does not verify: Unreadable.
# Format 2: marker + nonce + ciphertext and tag, with the binding as associated data; written
# before key ids, always under key id 1.
# Format 1 (legacy, no marker): nonce + ciphertext and tag, no associated data, key id 1. A
# legacy value starts with a random nonce, which begins with a marker once in 2**32: such a
# value fails format 2's or 3's check and is then read as format 1, so nothing is ever lost to
# the guess.
MARKER = b"agv2"
MARKER3 = b"agv3"
_KEY_ID = 2
_NONCE = 12


def key_prefix(key_id: int) -> bytes:
    """The first bytes of every format 3 ciphertext written under ``key_id``."""
    return MARKER3 + key_id.to_bytes(_KEY_ID, "big")


def key_id_of(token: bytes) -> int:
    """The key id a stored value names (1 for formats 1 and 2); says nothing of whether it
    decrypts."""
    token = bytes(token)
    if token.startswith(MARKER3) and len(token) >= len(MARKER3) + _KEY_ID:
        return int.from_bytes(token[len(MARKER3) : len(MARKER3) + _KEY_ID], "big")
    return 1


def _derive(secret_key: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"agora-gateway", info=label).derive(
        secret_key.encode("utf-8")
    )


class Unreadable(ValueError):
    """A ciphertext that does not decrypt where it is: moved from another row or column,
    altered, or written under another key. Never carries the value or the key."""


@dataclass(frozen=True)
class Binding:
    """Where a ciphertext lives: ``table.column`` and the key of its row."""

    column: str
    row: tuple[str, ...]

    def associated_data(self) -> bytes:
        # JSON: an unambiguous encoding of the parts (no separator can be forged inside one).
        return json.dumps(["agora-gateway", self.column, *self.row]).encode("utf-8")


# The bindings, one per encrypted column. Each row key is known when the value is written and
# never changes afterwards (a unique key of the row, or the look-up hash it is found by).
def contributor_address(channel: str, address_hash: str | None) -> Binding:
    return Binding("contributors.address_encrypted", (channel, address_hash or ""))


def inbound_sender(channel: str, provider_message_id: str) -> Binding:
    return Binding("inbound_messages.sender_encrypted", (channel, provider_message_id))


def inbound_raw(channel: str, provider_message_id: str) -> Binding:
    return Binding("inbound_messages.raw_encrypted", (channel, provider_message_id))


def outbound_recipient(decision_key: str) -> Binding:
    return Binding("outbound_messages.recipient_encrypted", (decision_key,))


def callback_recipient(decision_key: str) -> Binding:
    return Binding("callbacks.recipient_encrypted", (decision_key,))


def voice_caller(call_sid: str) -> Binding:
    return Binding("voice_calls.caller_encrypted", (call_sid,))


def quarantine_payload(channel: str, provider_key: str) -> Binding:
    return Binding("quarantined_messages.payload_encrypted", (channel, provider_key))


class StoredMessage(Protocol):
    """What the vault reads of a stored message (gateway.models.InboundMessage)."""

    @property
    def channel(self) -> str: ...
    @property
    def provider_message_id(self) -> str: ...
    @property
    def sender_hash(self) -> str | None: ...
    @property
    def sender_encrypted(self) -> bytes | None: ...


def _open(aead: AESGCM | None, token: bytes, start: int, binding: Binding) -> bytes | None:
    """The plaintext of a marked value whose nonce begins at ``start``; None when there is no
    such key or the value does not decrypt for ``binding`` under it."""
    if aead is None:
        return None
    try:
        return aead.decrypt(
            token[start : start + _NONCE], token[start + _NONCE :], binding.associated_data()
        )
    except InvalidTag:
        return None


class AddressVault:
    """AES-256-GCM with a random 96-bit nonce per value and the value's binding as associated
    data.

    Chosen over Fernet for speed on the webhook's hot path (one C call per value) with the
    same guarantees: confidentiality and integrity, a fresh nonce for every value; and Fernet
    has no associated data.
    """

    def __init__(self, secret_key: str, keyring_path: Path | None = None) -> None:
        """``secret_key``: the installation's root secret (key id 1); ``keyring_path``: the
        key file, read for the other keys when it holds this root (a SECRET_KEY given in the
        environment that differs from the file's is an installation of one key)."""
        if not secret_key:
            raise ValueError("SECRET_KEY is empty")
        self._secret_key = secret_key
        self._legacy_seen = False
        self._keyring_path = keyring_path
        self._ring = Keyring.single(secret_key)
        self._ring_mtime: int | None = None
        self._next_look = 0.0
        self._aeads: dict[int, AESGCM] = {}
        self._hash_keys: dict[str, bytes] = {}
        self._reload_lock = threading.Lock()
        self.reload()

    # -- the keyring --------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the key file again (a rotation in another process added or retired a key)."""
        with self._reload_lock:
            self._next_look = time.monotonic() + keyring.RELOAD_EVERY
            stamp = keyring.mtime(self._keyring_path)
            if stamp is None or self._keyring_path is None or stamp == self._ring_mtime:
                return
            try:
                ring = keyring.read(self._keyring_path)
            except keyring.KeyringError as exc:
                log.error("the key file could not be read again, keys kept as they were: %s", exc)
                return
            self._ring_mtime = stamp
            if ring.root != self._secret_key:
                return  # SECRET_KEY from the environment: one key, the file is not ours
            if ring.current != self._ring.current or ring.retired != self._ring.retired:
                log.debug("keyring read: current key id %d", ring.current)
            self._ring = ring
            self._aeads = {k: v for k, v in self._aeads.items() if k in ring.keys}

    def _look_at_keyring(self) -> None:
        if self._keyring_path is not None and time.monotonic() >= self._next_look:
            self.reload()

    @property
    def root_secret(self) -> str:
        """Key id 1: what the look-up hashes, pseudonyms and the console's keys derive from."""
        return self._secret_key

    @property
    def current_key_id(self) -> int:
        self._look_at_keyring()
        return self._ring.current

    @property
    def key_ids(self) -> list[int]:
        """Every key id the vault can decrypt with."""
        return sorted(self._ring.keys)

    def _aead_for(self, key_id: int) -> AESGCM | None:
        aead = self._aeads.get(key_id)
        if aead is None:
            secret = self._ring.keys.get(key_id)
            if secret is None and self._keyring_path is not None:
                self._next_look = 0.0  # a key another process just made: read the file now
                self.reload()
                secret = self._ring.keys.get(key_id)
            if secret is None:
                return None
            aead = AESGCM(_derive(secret, b"address-encryption"))
            self._aeads[key_id] = aead
        return aead

    @cached_property
    def _root_hash_key(self) -> bytes:
        return _derive(self._secret_key, b"address-lookup-hash")

    def encrypt_bytes(self, value: bytes, binding: Binding) -> bytes:
        key_id = self.current_key_id
        aead = self._aead_for(key_id)
        assert aead is not None  # the current key is always in the ring
        nonce = os.urandom(_NONCE)
        return key_prefix(key_id) + nonce + aead.encrypt(nonce, value, binding.associated_data())

    def decrypt_bytes(self, token: bytes, binding: Binding) -> bytes:
        """The value, if ``token`` was written for ``binding`` (or before bindings existed)
        under a key of the ring; ``Unreadable`` otherwise."""
        token = bytes(token)
        opened: bytes | None = None
        if token.startswith(MARKER3):
            opened = _open(self._aead_for(key_id_of(token)), token, len(MARKER3) + _KEY_ID, binding)
        elif token.startswith(MARKER):
            opened = _open(self._aead_for(1), token, len(MARKER), binding)
        if opened is not None:
            return opened
        # Not opened: perhaps a legacy value whose random nonce starts with a marker.
        value = self.decrypt_legacy(token, binding)
        if not self._legacy_seen:
            self._legacy_seen = True
            log.warning(
                "values encrypted before their row binding remain (%s): run "
                "`gateway secrets rewrap` (automatic on SQLite)",
                binding.column,
            )
        return value

    def decrypt_legacy(self, token: bytes, binding: Binding) -> bytes:
        """A value in the format before bindings (no associated data, key id 1); ``binding``
        only names the column in the error."""
        token = bytes(token)
        aead = self._aead_for(1)
        try:
            if aead is None:
                raise InvalidTag
            return aead.decrypt(token[:_NONCE], token[_NONCE:], None)
        except InvalidTag:
            raise Unreadable(f"{binding.column}: does not decrypt for this row") from None

    def encrypt(self, value: str, binding: Binding) -> bytes:
        return self.encrypt_bytes(value.encode("utf-8"), binding)

    def decrypt(self, token: bytes, binding: Binding) -> str:
        return self.decrypt_bytes(token, binding).decode("utf-8")

    def decrypt_or_none(self, token: bytes | None, binding: Binding) -> str | None:
        """The value, or None when there is none or it does not decrypt here (logged, without
        the value): callers treat an unreadable address like an erased one."""
        if token is None:
            return None
        try:
            return self.decrypt(token, binding)
        except Unreadable as exc:
            log.warning("unreadable ciphertext ignored: %s", exc)
            return None

    def rebind(self, token: bytes | None, source: Binding, target: Binding) -> bytes | None:
        """A value encrypted for ``source``, encrypted again for ``target`` (a contributor's
        address taken from their first message, a reply's copy of the address); None when
        there is nothing readable to copy."""
        value = self.decrypt_or_none(token, source)
        return None if value is None else self.encrypt(value, target)

    def sender_for_contributor(self, message: StoredMessage) -> bytes | None:
        """A stored message's sender address, encrypted for the contributor row of the same
        channel and look-up hash (a new contributor takes it from their first message)."""
        return self.rebind(
            message.sender_encrypted,
            inbound_sender(message.channel, message.provider_message_id),
            contributor_address(message.channel, message.sender_hash),
        )

    def decrypt_any_context(self, token: bytes) -> bytes | None:
        """The clear text of one of the gateway's ciphertexts, wherever it belongs, WITHOUT the
        integrity check: for audits only (a test that searches every table for a resident's
        address, as anyone holding the key could). The gateway's own reads never use it: it
        would undo the binding. GCM encrypts with AES-CTR from the nonce's counter block 2
        (NIST SP 800-38D), which is all this does; None when ``token`` is too short."""
        token = bytes(token)
        secret: str | None = self._secret_key
        if token.startswith(MARKER3):
            secret = self._ring.keys.get(key_id_of(token))
            body = token[len(MARKER3) + _KEY_ID :]
        else:
            body = token[len(MARKER) :] if token.startswith(MARKER) else token
        if len(body) < _NONCE + 16 or secret is None:
            return None
        nonce, ciphertext = body[:_NONCE], body[_NONCE:-16]
        aes_key = _derive(secret, b"address-encryption")
        counter = Cipher(algorithms.AES(aes_key), modes.CTR(nonce + b"\x00\x00\x00\x02"))
        decryptor = counter.decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()

    @cached_property
    def _pseudonym_key(self) -> bytes:
        return _derive(self._secret_key, b"open-data-pseudonym")

    def pseudonym(self, scope: str, address_hash: str) -> str:
        """A contributor's id in published data: the same person (``address_hash``, every
        channel of one address) gets the same id within ``scope`` (a campaign), a different
        one in another scope, and without the secret key nobody can go back from it to the
        look-up hash, let alone the address. 16 hex digits: 64 bits, no collision in practice
        among a city's residents."""
        digest = hmac.new(
            self._pseudonym_key, f"{scope}\x00{address_hash}".encode(), hashlib.sha256
        )
        return digest.hexdigest()[:16]

    def lookup_hash(self, channel: str, address: str) -> str:
        # SMS and voice share one namespace (gateway.plugins.address_space): a resident who
        # calls and texts from one number is one person, who can follow a voice message's
        # reference by SMS.
        return _keyed_hash(self._hash_key_of(self._current_secret()), channel, address)

    def root_lookup_hash(self, channel: str, address: str) -> str:
        """The look-up hash under key id 1, the root (the only one before re-hashing rotations):
        what the open-data pseudonyms are computed from, so that they never change."""
        return _keyed_hash(self._root_hash_key, channel, address)

    def _current_secret(self) -> str:
        self._look_at_keyring()
        return self._ring.keys[self._ring.current]

    def lookup_hashes(self, channel: str, address: str) -> dict[int, str]:
        """The look-up hash of ``address`` under every key of the ring (the root's, key id 1,
        even retired: the gateway's hashes are all under it today), current key first. What a
        re-hashing rotation's look-ups will match with ``IN (...)``; today what
        ``gateway keys status`` uses to say under which key each stored hash is
        (gateway.rotation.hash_audit)."""
        self._look_at_keyring()
        ring = self._ring
        secrets_by_id = {**ring.keys, 1: ring.root}
        order = sorted(secrets_by_id, key=lambda k: (k != ring.current, -k))
        return {
            key_id: _keyed_hash(self._hash_key_of(secrets_by_id[key_id]), channel, address)
            for key_id in order
        }

    def _hash_key_of(self, secret: str) -> bytes:
        if secret == self._secret_key:
            return self._root_hash_key
        key = self._hash_keys.get(secret)
        if key is None:
            key = self._hash_keys[secret] = _derive(secret, b"address-lookup-hash")
        return key


def _keyed_hash(key: bytes, channel: str, address: str) -> str:
    namespace = plugins.address_space(channel)
    normalised = normalise_address(channel, address)
    return hmac.new(key, f"{namespace}\x00{normalised}".encode(), hashlib.sha256).hexdigest()


def normalise_address(channel: str, address: str) -> str:
    """The form under which two spellings of one address are the same sender."""
    address = address.strip()
    if channel == "email":
        return address.lower()
    if plugins.address_space(channel) == "phone":
        # Providers send E.164; keep anything else as given (short codes, alphanumeric ids).
        return re.sub(r"[\s.\-()]", "", address)
    return address


def new_contributor_id() -> str:
    return "c-" + secrets.token_hex(6)


def log_id(lookup_hash: str | None) -> str:
    """A short, stable tag for logs: lets an operator follow one sender without the address."""
    return (lookup_hash or "-")[:10]


# Phone numbers as people write them: international (+33 6 12 34 56 78, 0033 6...) or French
# national (06 12 34 56 78, 06.12.34.56.78, 0612345678). Not inside a longer token (a worker's
# name "gateway-1234-9f8e7d6c"), and deliberately not any long run of digits: ids (a message's,
# a chat update's), IP addresses ("127.0.0.1:38915"), ports and timestamps stay readable,
# which an operator following a problem needs. The code itself never logs a chat id or an
# address (it logs ``log_id``); this is the net under it. Every pattern here runs in linear
# time: each repetition consumes a digit or a fixed separator, and a match can only start
# where a token starts.
_PHONE_RE = re.compile(
    r"(?<![\w+.\-])"
    r"(?:\+[1-9](?:[ .\-]?\d){7,14}|00[1-9](?:[ .\-]?\d){6,13}|0[1-9](?:[ .\-]?\d\d){4})"
    r"(?![\w])"
)
_EMAIL_RE = re.compile(r"(?<![\w.+\-])[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
# A chat bot's API token ("123456789:AAE..."), which every URL of its bot API carries: an
# HTTP library's error or debug line must not leak it.
_BOT_TOKEN_RE = re.compile(r"\d{5,15}:[A-Za-z0-9_-]{30,}")


# Shorter known values are not masked: replacing "oui" everywhere would mangle a traceback.
_MIN_KNOWN = 5
_PRIVATE = "_gateway_private_values"


def redact(text: str, *known: str | None) -> str:
    """Belt and braces for log lines, stored errors and tracebacks: mask anything shaped like
    a bot token, an email address or a phone number, and every ``known`` value (an address
    whatever its shape, since a chat id looks like any number; the words of the
    message a failure was about, whole and line by line)."""
    for value in sorted({v for v in _pieces(known)}, key=len, reverse=True):
        text = text.replace(value, "<private>")
    text = _BOT_TOKEN_RE.sub("<bot-token>", text)
    return _PHONE_RE.sub("<phone>", _EMAIL_RE.sub("<email>", text))


def _pieces(known: tuple[str | None, ...]) -> list[str]:
    pieces = []
    for value in known:
        if not value:
            continue
        pieces.append(value)
        pieces += [line.strip() for line in value.splitlines()]
        # A repr() of the value escapes its quotes and newlines: mask that spelling too.
        pieces.append(repr(value)[1:-1])
    return [p for p in pieces if len(p) >= _MIN_KNOWN]


def mark_private(exc: BaseException, *values: str | None) -> BaseException:
    """Attach what must not be shown of a failure to the exception itself: the message it
    was processing, the address it was for. Whatever records the failure later (the log, a
    stored error, RQ's copy of the traceback in Redis) masks them (``private_values``)."""
    known = tuple(getattr(exc, _PRIVATE, ()))
    try:
        setattr(exc, _PRIVATE, known + tuple(v for v in values if v))
    except AttributeError:  # an exception type that takes no attributes: nothing to attach to
        pass
    return exc


def private_values(exc: BaseException | None) -> tuple[str, ...]:
    """The values marked private on an exception and on those it was raised from."""
    found: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found += getattr(exc, _PRIVATE, ())
        exc = exc.__cause__ or exc.__context__
    return tuple(found)
