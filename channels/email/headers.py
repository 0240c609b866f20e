"""A message's header values read safely: unfolded, raw 8-bit bytes and RFC 2047
encoded-words decoded, made one line, and parsed within bounds; the subject and the date.

Subject, display names and file names are one line: decoded encoded-words cannot inject a
header. Raw 8-bit headers (UTF-8 or Latin-1 without encoded-words) are decoded
(channels.email.charsets).

Hostile input is bounded: Python's header parser takes quadratic time on some crafted values
(a 64 KB From header of quotes takes seconds), so header values are cut before parsing: 2,000
characters through ``POLICY`` and ``REGISTRY`` (``MAX_HEADER_CHARS``), 8,000 for the subject.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import Message
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime

from channels.email.charsets import guess

MAX_SUBJECT = 300
# Python's header parser is quadratic on some crafted values: cut before parsing.
MAX_HEADER_CHARS = 2000
_MAX_SUBJECT_CHARS = 8000


class _BoundedRegistry(HeaderRegistry):
    """The standard header registry, on values cut to a length it parses quickly."""

    def __call__(self, name: str, value: str) -> BaseHeader:
        return super().__call__(name, value[:MAX_HEADER_CHARS])


POLICY = default_policy.clone(header_factory=_BoundedRegistry())
REGISTRY = HeaderRegistry()  # for values already cut to a safe length

FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE = re.compile("[\ud800-\udfff]")


def header_values(message: Message) -> dict[str, list[str]]:
    """The top-level headers as written (unfolded, 8-bit bytes decoded), by lower-case name."""
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        text = FOLD.sub("", str(value)).replace("\r", " ").replace("\n", " ")
        headers.setdefault(str(name).strip().lower(), []).append(fix_surrogates(text))
    return headers


def fix_surrogates(text: str) -> str:
    """Bytes the parser could not decode (raw UTF-8 or Latin-1 in a header) made readable.

    ``message_from_bytes`` keeps them as surrogate escapes, which nothing downstream can
    encode.
    """
    if not _SURROGATE.search(text):
        return text
    try:
        return guess(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


# Bidirectional overrides can disguise a name ("photo\u202egpj.exe" shows as "photoexe.jpg").
_BIDI = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)], " ")


def one_line(text: str) -> str:
    """No control character, no line break, single spaces: safe in a header or a log line."""
    text = fix_surrogates(text).translate(_BIDI)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return " ".join(text.split())


def decode_words(text: str) -> str:
    """RFC 2047 encoded-words decoded (any charset Python knows; others guessed)."""
    if "=?" not in text:
        return text
    try:
        return fix_surrogates(str(REGISTRY("subject", text[:_MAX_SUBJECT_CHARS])))
    except Exception:
        return text


def decode_subject(values: list[str]) -> str:
    """The first Subject decoded, one line, at most ``MAX_SUBJECT`` characters."""
    if not values:
        return ""
    return one_line(decode_words(values[0][:_MAX_SUBJECT_CHARS]))[:MAX_SUBJECT]


def parse_date(values: list[str]) -> datetime | None:
    """The first Date, time-zone aware, or None when it does not read as a date."""
    if not values:
        return None
    try:
        when = parsedate_to_datetime(values[0].strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # "-0000" means "time zone unknown": the time is UTC (RFC 5322, 3.3).
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
