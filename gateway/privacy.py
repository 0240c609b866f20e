"""Residents' addresses (phone numbers, chat ids, email addresses) at rest.

An address is stored twice, never in clear: encrypted (AES-GCM, so the gateway can reply) and
as a keyed hash (HMAC-SHA256, so a returning sender is found without decrypting every row).
Both keys derive from ``SECRET_KEY`` with HKDF and distinct labels, so one never serves as
the other. Pseudonymous contributor ids are random, not derived from the address: they say
nothing about it even to someone holding the secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from functools import cached_property

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret_key: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"agora-gateway", info=label).derive(
        secret_key.encode("utf-8")
    )


class AddressVault:
    """AES-256-GCM with a random 96-bit nonce per value (stored as nonce + ciphertext + tag).

    Chosen over Fernet for speed on the webhook's hot path (one C call per value) with the
    same guarantees: confidentiality and integrity, a fresh nonce for every value.
    """

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("SECRET_KEY is empty")
        self._secret_key = secret_key

    @cached_property
    def _aead(self) -> AESGCM:
        return AESGCM(_derive(self._secret_key, b"address-encryption"))

    @cached_property
    def _hash_key(self) -> bytes:
        return _derive(self._secret_key, b"address-lookup-hash")

    def encrypt_bytes(self, value: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, value, None)

    def decrypt_bytes(self, token: bytes) -> bytes:
        return self._aead.decrypt(bytes(token[:12]), bytes(token[12:]), None)

    def encrypt(self, value: str) -> bytes:
        return self.encrypt_bytes(value.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        return self.decrypt_bytes(token).decode("utf-8")

    def lookup_hash(self, channel: str, address: str) -> str:
        # SMS and voice share one namespace: a resident who calls and texts from one number
        # is one person, who can follow a voice message's reference by SMS.
        namespace = "phone" if channel in ("sms", "voice") else channel
        normalised = normalise_address(channel, address)
        digest = hmac.new(self._hash_key, f"{namespace}\x00{normalised}".encode(), hashlib.sha256)
        return digest.hexdigest()


def normalise_address(channel: str, address: str) -> str:
    """The form under which two spellings of one address are the same sender."""
    address = address.strip()
    if channel == "email":
        return address.lower()
    if channel in ("sms", "voice"):
        # Twilio sends E.164; keep anything else as given (short codes, alphanumeric ids).
        return re.sub(r"[\s.\-()]", "", address)
    return address


def new_contributor_id() -> str:
    return "c-" + secrets.token_hex(6)


def log_id(lookup_hash: str | None) -> str:
    """A short, stable tag for logs: lets an operator follow one sender without the address."""
    return (lookup_hash or "-")[:10]


# Not inside a longer token: a worker's name ("gateway-1234-9f8e7d6c") is not a phone number.
_PHONE_RE = re.compile(r"(?<![\w-])\+?\d[\d .\-]{7,}\d(?![\w-])")
_EMAIL_RE = re.compile(r"[\w.+\-]+@[\w\-]+\.[\w.\-]+")
# A Telegram bot token ("123456789:AAE..."), which every Bot API URL carries: an HTTP
# library's error or debug line must not leak it.
_BOT_TOKEN_RE = re.compile(r"\d{5,15}:[A-Za-z0-9_-]{30,}")


def redact(text: str) -> str:
    """Belt and braces for log lines: mask anything shaped like a bot token, a phone number or
    an email."""
    text = _BOT_TOKEN_RE.sub("<bot-token>", text)
    return _EMAIL_RE.sub("<email>", _PHONE_RE.sub("<phone>", text))
