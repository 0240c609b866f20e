"""Message-IDs as the gateway stores and threads them: without angle brackets or whitespace,
and one longer than 120 characters as "sha256:" + the hash of the id (the column holds 128).

Message-ID, In-Reply-To and References are read the same way, so that threading matches what
was stored. References keep the thread's root and the most recent ids, 100 at most.
"""

from __future__ import annotations

import hashlib
import re

MAX_MESSAGE_ID = 120  # the column holds 128: a longer id is stored as "sha256:" + 64 hex
MAX_REFERENCES = 100

_BRACKETED = re.compile(r"<([^<>]*)>")
_ID_JUNK = re.compile(r"[\s\x00-\x1f\x7f<>]+")


def _ident(token: str) -> str:
    """A Message-ID as stored: no brackets or whitespace, hashed when over 120 characters."""
    ident = _ID_JUNK.sub("", token)
    if len(ident) > MAX_MESSAGE_ID:
        return "sha256:" + hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()
    return ident


def _ids(value: str) -> list[str]:
    bracketed = _BRACKETED.findall(value)
    tokens = bracketed if bracketed else value.split()
    return [ident for ident in (_ident(token) for token in tokens) if ident]


def first_id(values: list[str]) -> str:
    """The first id of the first header, or "" (``Message-ID: <>`` counts as absent)."""
    if not values:
        return ""
    bracketed = _BRACKETED.search(values[0])
    if bracketed is not None:
        return _ident(bracketed.group(1))
    return _ident(values[0])


def reference_ids(values: list[str]) -> tuple[str, ...]:
    """Every id of every header, each once, in order (at most ``MAX_REFERENCES``)."""
    seen: dict[str, None] = {}
    for value in values:
        for ident in _ids(value):
            seen.setdefault(ident, None)
    ids = list(seen)
    if len(ids) > MAX_REFERENCES:  # the thread's root and the most recent ones
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return tuple(ids)
