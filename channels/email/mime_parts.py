"""One MIME part read without raising: its content type, disposition, charset, parameters,
and its bytes after the transfer encoding.

Where the standard library raises on a malformed header, each reader gives a neutral value
instead ("application/octet-stream", "", None).
"""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message


def part_type(part: Message) -> str:
    """The content type, lower-case ("application/octet-stream" when it cannot be read)."""
    try:
        return part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def part_disposition(part: Message) -> str:
    """The disposition, lower-case: "inline", "attachment" or "" (none or unreadable)."""
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""


def _encoding(part: Message) -> str:
    """The transfer encoding, normalised ("BASE64 (comment)" is base64).

    The part's header is rewritten to that value when it differs, so that the standard
    decoder (which compares the header's text) decodes what the mailer meant.
    """
    try:
        header = part.get("content-transfer-encoding")
        if header is None:
            return ""
        encoding = str(getattr(header, "cte", header)).strip().lower()
        if str(header).lower() != encoding:
            part.replace_header("content-transfer-encoding", encoding)
        return encoding
    except Exception:
        return ""


def part_payload(part: Message, *, strict: bool) -> bytes | None:
    """The part's bytes after its transfer encoding, or None when they cannot be decoded.

    ``strict`` (attachments): base64 with characters outside the alphabet or an impossible
    length is a decoding error. Text parts are decoded leniently: a few broken characters
    should not cost a resident's words.
    """
    encoding = _encoding(part)
    if encoding in ("", "7bit", "8bit", "binary", "quoted-printable"):
        # decode=True works on the bytes as received (quoted-printable never fails);
        # without it, 8-bit bytes would be replaced before we see them.
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else None
    payload = part.get_payload()
    if not isinstance(payload, str):
        return None
    raw = payload.encode("utf-8", "surrogateescape")
    if encoding == "base64":
        compact = re.sub(rb"\s+", b"", raw)
        try:
            return base64.b64decode(compact + b"=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError):
            if strict:
                return None
        try:
            return base64.b64decode(compact + b"==", validate=False)
        except (binascii.Error, ValueError):
            return raw
    decoded = part.get_payload(decode=True)  # uuencode; an unknown encoding gives raw
    if isinstance(decoded, bytes) and (decoded != raw or not strict):
        return decoded
    return None if strict else raw


def part_charset(part: Message) -> str | None:
    """The declared charset, lower-case, or None."""
    try:
        return part.get_content_charset()
    except Exception:
        return None


def part_param(part: Message, name: str) -> str:
    """A Content-Type parameter, lower-case ("" when absent or unreadable)."""
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    return value.lower() if isinstance(value, str) else ""
