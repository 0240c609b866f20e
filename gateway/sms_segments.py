"""How many SMS segments a text costs, as the networks count them.

One character outside the GSM 03.38 alphabet (ê, ç, ’, an emoji…) switches the
whole message to UCS-2, which cuts a segment from 160 characters to 70. The
catalogue is checked against this so that receipts stay cheap and arrive whole.
"""

from __future__ import annotations

# GSM 03.38 default alphabet. Only the upper-case Ç is in it; ç is not.
_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each of these is sent as ESC + character, two septets.
_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"

_GSM7_SINGLE, _GSM7_MULTI = 160, 153
_UCS2_SINGLE, _UCS2_MULTI = 70, 67


def encoding(text: str) -> str:
    """ "GSM-7" when every character is in the GSM alphabet, else "UCS-2"."""
    if all(ch in _BASIC or ch in _EXTENSION for ch in text):
        return GSM7
    return UCS2


def _units(text: str, gsm7: bool) -> list[int]:
    """The size of each character in the encoding's units (septets or UTF-16 units)."""
    if gsm7:
        return [2 if ch in _EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def segments(text: str) -> int:
    """Number of segments the text is sent as; an empty text still costs one.

    A two-unit character (an escaped GSM character, a UTF-16 surrogate pair)
    is never split across two segments, as phones could not reassemble it, so
    the count can exceed a plain division.
    """
    gsm7 = encoding(text) == GSM7
    units = _units(text, gsm7)
    single, multi = (_GSM7_SINGLE, _GSM7_MULTI) if gsm7 else (_UCS2_SINGLE, _UCS2_MULTI)
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for size in units:
        if used + size > multi:
            count, used = count + 1, 0
        used += size
    return count
