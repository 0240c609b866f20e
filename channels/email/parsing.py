"""One raw email (RFC 5322 / MIME) read into what the gateway keeps, a ``ParsedEmail``.

``parse`` takes the raw bytes as they came from IMAP or SMTP and never raises: a broken
message gives a ``ParsedEmail`` with whatever could be read (at worst an empty text and a
``sha256:`` id), and a field that cannot be read costs that field only. Only the standard
library is used. The work is shared out among the package's modules:

  channels.email.headers      header values decoded, one line, parsed within bounds
  channels.email.addresses    From and the recipients, display names and bare addresses
  channels.email.message_ids  Message-ID, In-Reply-To and References as stored
  channels.email.automatic    why no answer must go back (auto-reply, bounce, list...)
  channels.email.body         the MIME tree: the body's text and the attachments
  channels.email.mime_parts   one MIME part's type, parameters and decoded bytes
  channels.email.charsets     bytes in any charset label read as text
  channels.email.plain_text   newlines, control characters, format=flowed
  channels.email.html_text    HTML mail as plain text
  channels.email.quotes       quoted replies, signatures and footers cut
  channels.email.attachments  attachments kept or refused, safe file names

``extra`` may hold "reply_to" (when it differs from the sender) and "mailer" (X-Mailer or
User-Agent). Nothing is lost: the gateway keeps ``MAX_TEXT_CHARS`` of a message's text and the
whole of it beside (gateway/textcap.py).

The MIME structure is parsed under ``compat32`` (the modern policy re-parses a Content-Type
for every part: 4 s for a megabyte of tiny parts), the parts read under the modern one, with
header values cut before parsing (channels.email.headers).
"""

from __future__ import annotations

import email
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.policy import compat32
from typing import TypeVar

from channels.email.addresses import named_addresses, recipient_addresses
from channels.email.attachments import Attachment
from channels.email.automatic import automatic_reason
from channels.email.body import MAX_PARTS, Body, BodyReader
from channels.email.headers import POLICY, decode_subject, header_values, one_line, parse_date
from channels.email.message_ids import first_id, reference_ids

_T = TypeVar("_T")


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str  # the Message-ID without <>, or "sha256:<hex of raw>" when absent/empty
    sender: str  # the From address, bare and lower-cased ("" when there is none)
    sender_name: str  # the From display name ("" when none)
    recipients: tuple[str, ...]  # To, Cc, Delivered-To, X-Original-To: bare, lower-cased
    subject: str  # decoded (RFC 2047), one line, whitespace collapsed
    text: str  # the resident's words: plain part preferred, HTML converted, quotes/signature cut
    original_text: str  # the whole body as text, before cutting quotes and signature
    attachments: tuple[Attachment, ...] = ()
    refused: tuple[str, ...] = ()  # attachments not kept: "name (type)" or "name (too large)"
    automatic: str | None = None  # why no answer must go back (auto-reply, bounce, list...)
    in_reply_to: str = ""  # Message-ID it answers, without <>
    references: tuple[str, ...] = ()  # Message-IDs without <>
    date: datetime | None = None  # the Date header, tz-aware
    extra: dict[str, str] = field(default_factory=dict)


# The structure is parsed under compat32, whose headers are plain strings: under the modern
# policy the parser re-parses the parent's Content-Type (a full RFC 2045 parse, some 100 us) for
# every part it meets, and each part's own, so a megabyte of tiny parts took 4 s. The parts
# the gateway reads are switched to the modern policy afterwards (``_modern``); both store
# header values the same way, so the switch only changes how a header is read.
_STRUCTURE_POLICY = compat32.clone(linesep="\n")


def parse(raw: bytes, *, max_attachment_bytes: int = 10 * 1024 * 1024) -> ParsedEmail:
    """The raw message as the gateway keeps it; never raises."""
    data = _as_bytes(raw)
    raw_id = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        message = email.message_from_bytes(data, policy=_STRUCTURE_POLICY)
        _modern(message)
        headers = header_values(message)
    except Exception:  # a parser bug on garbage (deep nesting...): nothing readable
        return ParsedEmail(
            message_id=raw_id,
            sender="",
            sender_name="",
            recipients=(),
            subject="",
            text="",
            original_text="",
        )

    message_id = _guard(lambda: first_id(headers.get("message-id", [])), "") or raw_id
    no_address: list[tuple[str, str]] = []
    senders = _guard(lambda: named_addresses(headers.get("from", [])[:1]), no_address)
    sender_name, sender = senders[0] if senders else ("", "")
    nobody: tuple[str, ...] = ()
    recipients = _guard(
        lambda: recipient_addresses(headers, ("to", "cc", "delivered-to", "x-original-to")), nobody
    )
    subject = _guard(lambda: decode_subject(headers.get("subject", [])), "")
    reader = BodyReader(max_attachment_bytes)
    body = _guard(lambda: reader.message(message, subject, depth=0), Body("", ""))
    return ParsedEmail(
        message_id=message_id,
        sender=sender,
        sender_name=sender_name,
        recipients=recipients,
        subject=subject,
        text=body.text,
        original_text=body.original,
        attachments=tuple(reader.files.kept),
        refused=tuple(reader.files.refused),
        automatic=_guard(lambda: automatic_reason(headers, message, sender, subject), None),
        in_reply_to=_guard(lambda: first_id(headers.get("in-reply-to", [])), ""),
        references=_guard(lambda: reference_ids(headers.get("references", [])), ()),
        date=_guard(lambda: parse_date(headers.get("date", [])), None),
        extra=_guard(lambda: _extra(headers, sender), {}),
    )


def _modern(message: Message) -> None:
    """The parts that can be read (the first ``MAX_PARTS``, twice over for the alternatives
    ``BodyReader`` chooses among) under the modern policy, as if parsed with it."""
    for part in itertools.islice(message.walk(), 2 * MAX_PARTS + 1):
        part.policy = POLICY


def _guard(read: Callable[[], _T], default: _T) -> _T:
    """One field's reading: a failure costs that field, never the message."""
    try:
        return read()
    except Exception:
        return default


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _extra(headers: dict[str, list[str]], sender: str) -> dict[str, str]:
    extra: dict[str, str] = {}
    replies = [address for _, address in named_addresses(headers.get("reply-to", [])[:1])]
    if replies and replies[0] and replies[0] != sender:
        extra["reply_to"] = replies[0]
    mailer = headers.get("x-mailer") or headers.get("user-agent") or []
    if mailer:
        extra["mailer"] = one_line(mailer[0])[:100]
    return extra
