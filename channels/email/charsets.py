"""Bytes in a declared, unknown or wrong charset read as text, the way mailers mean them.

Used for text parts and for the raw 8-bit bytes of headers. The declared charset is used when
Python knows it and the bytes fit it; ISO-8859-1 is read as Windows-1252 (as browsers do:
mailers label one as the other, and ’ “ ” € œ live in the difference); unknown or wrong labels
fall back to UTF-8 if the bytes are valid UTF-8, UTF-8 with replacement characters if they
mostly are, else Windows-1252/Latin-1.
"""

from __future__ import annotations

_ASCII_LABELS = frozenset({"us-ascii", "ascii", "ansi_x3.4-1968", "us", "iso646-us", "646"})
# Mailers label Windows-1252 text ISO-8859-1 (WHATWG decodes one as the other, so do we).
_WESTERN_LABELS = frozenset(
    {"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "cp819", "ibm819"}
    | {"windows-1252", "cp1252", "x-cp1252"}
)
_CHARSET_ALIASES = {
    "gb2312": "gb18030",  # mailers label GBK text GB2312; GB18030 reads both
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "unicode-1-1-utf-7": "utf-7",
    "x-mac-roman": "mac_roman",
    "windows-874": "cp874",
}
_UNSAFE_CODECS = frozenset({"unicode_escape", "raw_unicode_escape", "idna", "punycode"})
_CP1252: dict[int, str] = {}
for _byte in range(0x80, 0xA0):
    try:
        _CP1252[_byte] = bytes([_byte]).decode("cp1252")
    except UnicodeDecodeError:  # 5 bytes Windows-1252 leaves undefined: Latin-1's controls
        pass


def _western(data: bytes) -> str:
    """Windows-1252, with Latin-1 for the five bytes it leaves undefined: never fails."""
    return data.decode("latin-1").translate(_CP1252)


def guess(data: bytes) -> str:
    """Bytes of unknown or wrong charset: UTF-8 if valid, else whichever reads better.

    UTF-8 with a few broken bytes keeps UTF-8 (with replacement characters); text with
    more broken sequences than well-formed ones is Latin-1 (Windows-1252) mislabelled.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lenient = data.decode("utf-8", "replace")
    broken = lenient.count("\ufffd")
    multibyte = sum(1 for ch in lenient if ord(ch) > 0x7F) - broken
    return lenient if multibyte > broken else _western(data)


def decode(data: bytes, charset: str | None) -> str:
    label = (charset or "").strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    if not label or label in _ASCII_LABELS:
        return guess(data)  # ASCII is UTF-8; 8-bit bytes under an ASCII label are mislabelled
    if label in _WESTERN_LABELS:
        return _western(data)
    if label.replace("-", "_") in _UNSAFE_CODECS:
        return guess(data)
    try:
        return data.decode(label)
    except (LookupError, ValueError):  # unknown ("utf-88"), not a text codec, or wrong
        return guess(data)
