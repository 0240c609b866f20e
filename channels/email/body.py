"""A message's MIME tree walked: the body's texts in reading order, decoded, converted and cut
to the resident's words, messages forwarded whole after them, and every other part handed to
channels.email.attachments.

The plain part of ``multipart/alternative`` is preferred (it is what the resident's mailer
wrote; HTML is a rendering of it), unless it is empty; HTML-only mail is converted
(channels.email.html_text). Text parts of ``multipart/mixed`` are read in order (Apple Mail
splits the text around a photo). Text is decoded (channels.email.charsets) and tidied
(channels.email.plain_text); ``Body.original`` is that whole body, ``Body.text`` the resident's
words (channels.email.quotes). A message forwarded whole (``message/rfc822``) adds its text
(after a blank line) and its attachments. Delivery reports and signed mail are read for their
first part only.

Hostile input is bounded: MIME nesting (16), parts read (300) and nested forwards (3) are
capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote

from channels.email.attachments import Attachments
from channels.email.charsets import decode
from channels.email.headers import decode_subject, header_values
from channels.email.html_text import html_to_text
from channels.email.mime_parts import (
    part_charset,
    part_disposition,
    part_param,
    part_payload,
    part_type,
)
from channels.email.plain_text import tidy
from channels.email.quotes import cut

MAX_PARTS = 300  # MIME parts read
_MAX_DEPTH = 16  # MIME nesting read
_MAX_FORWARD_DEPTH = 3  # message/rfc822 inside message/rfc822...
_CID = re.compile(r"cid:([^\"'\s)>]+)", re.IGNORECASE)


@dataclass
class Body:
    text: str  # the resident's words: quotes, signatures and footers cut
    original: str  # the whole body as text


class BodyReader:
    """Walks a message's MIME tree: body texts in order, attachments kept or refused."""

    def __init__(self, cap: int) -> None:
        self.files = Attachments(cap)
        self._texts: dict[int, str] = {}
        self._parts = 0
        self._forward_depth = 0

    def message(self, message: Message, subject: str, *, depth: int) -> Body:
        cids = self._cids(message)
        pieces: list[str] = []
        forwarded: list[Body] = []
        self._walk(message, cids, pieces, forwarded, depth=depth, body=True)
        original = "\n\n".join(piece for piece in pieces if piece.strip())
        text = cut(original, subject)
        for inner in forwarded:
            text = "\n\n".join(t for t in (text, inner.text) if t)
            original = "\n\n".join(t for t in (original, inner.original) if t)
        return Body(text, original)

    def _text_of(self, part: Message) -> str:
        """A text part as tidy text (HTML converted), decoded once."""
        key = id(part)
        if key not in self._texts:
            data = part_payload(part, strict=False) or b""
            text = decode(data, part_charset(part))
            if part_type(part) == "text/html":
                text = tidy(html_to_text(text))
            else:
                flowed = part_param(part, "format") == "flowed"
                text = tidy(text, flowed=flowed, delsp=part_param(part, "delsp") == "yes")
            self._texts[key] = text
        return self._texts[key]

    def _cids(self, message: Message) -> set[str]:
        """Content-IDs the message's HTML shows (cid: URLs)."""
        cids: set[str] = set()
        for count, part in enumerate(message.walk()):
            if count > MAX_PARTS:
                break
            if part_type(part) == "text/html" and not part.is_multipart():
                data = part_payload(part, strict=False) or b""
                html = decode(data, part_charset(part))
                cids.update(unquote(found).strip("<>").lower() for found in _CID.findall(html))
        return cids

    def _walk(
        self,
        part: Message,
        cids: set[str],
        pieces: list[str],
        forwarded: list[Body],
        *,
        depth: int,
        body: bool,
    ) -> None:
        self._parts += 1
        if depth > _MAX_DEPTH or self._parts > MAX_PARTS:
            return
        content_type = part_type(part)
        if content_type in ("message/rfc822", "message/global"):
            self._forwarded(part, forwarded, depth=depth)
            return
        if part.is_multipart():
            children = [c for c in part.get_payload() if isinstance(c, Message)]
            if content_type in ("multipart/report", "multipart/signed"):
                children = children[:1]  # the readable part; the rest is for machines
            chosen = self._choose(children) if content_type == "multipart/alternative" else None
            for child in children:
                in_body = body and (chosen is None or child is chosen)
                self._walk(child, cids, pieces, forwarded, depth=depth + 1, body=in_body)
            return
        disposition = part_disposition(part)
        # A multipart without a usable boundary comes as one text: read it as such.
        readable = content_type in ("text/plain", "text/html") or content_type.startswith(
            "multipart/"
        )
        if readable and disposition != "attachment":
            if body:
                pieces.append(self._text_of(part))
            return
        self.files.take(part, content_type, cids)

    def _choose(self, children: list[Message]) -> Message | None:
        """The alternative to read: plain text with words in it, else the richest (last)."""
        for child in children:
            if (
                part_type(child) == "text/plain"
                and not child.is_multipart()
                and part_disposition(child) != "attachment"
                and self._text_of(child).strip()
            ):
                return child
        for child in reversed(children):
            if child.is_multipart() or part_type(child) == "text/html":
                return child
        return children[0] if children else None

    def _forwarded(self, part: Message, forwarded: list[Body], *, depth: int) -> None:
        """A message attached whole: its text after the mail's, its attachments with its own."""
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if not isinstance(inner, Message) or self._forward_depth >= _MAX_FORWARD_DEPTH:
            return
        self._forward_depth += 1
        try:
            # Each read apart: a failure costs that field, never the message.
            try:
                headers = header_values(inner)
            except Exception:
                headers = {}
            try:
                subject = decode_subject(headers.get("subject", []))
            except Exception:
                subject = ""
            forwarded.append(self.message(inner, subject, depth=depth + 1))
        finally:
            self._forward_depth -= 1
