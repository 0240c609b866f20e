"""Reading one email (RFC 5322 / MIME) into what the gateway keeps.

``parse`` takes the raw bytes as they came from IMAP or SMTP and never raises: a broken
message gives a ``ParsedEmail`` with whatever could be read (at worst an empty text and a
``sha256:`` id). Only the standard library is used (``email`` with ``policy.default``,
``email.headerregistry``, ``email.utils``, ``html.parser``).

The text
  The plain part of ``multipart/alternative`` is preferred (it is what the resident's mailer
  wrote; HTML is a rendering of it), unless it is empty. HTML-only mail becomes plain text:
  head, script and style dropped, paragraphs and ``<br>`` as line breaks, entities decoded,
  links reduced to their text, blockquotes as ">" lines (so that quotes are cut alike).
  Text parts of ``multipart/mixed`` are read in order (Apple Mail splits the text around a
  photo). ``format=flowed`` (Thunderbird, Apple Mail) is unwrapped. Charsets: the declared
  one when Python knows it and the bytes fit it; ISO-8859-1 is read as Windows-1252 (as
  browsers do: mailers label one as the other, and ’ “ ” € œ live in the difference);
  unknown or wrong labels fall back to UTF-8 if the bytes are valid UTF-8, UTF-8 with
  replacement characters if they mostly are, else Windows-1252/Latin-1. Newlines become
  "\n", trailing spaces go. ``original_text`` is that whole body.

Cutting quotes, signatures and footers (``text``)
  * Lines starting with ">" are dropped.
  * An attribution ("Le lun. 3 mars 2025 à 10:00, Marie <m@x.fr> a écrit :", "On ... wrote:",
    wrapped over up to three lines as Gmail does) must contain a digit (a date) or end with
    an address. Followed by a ">" quote, the attribution and the quote are dropped and what
    follows the quote is kept (a resident who answers below the quote keeps their words).
    Followed by unquoted text, everything from it onward is cut if it names an address,
    else it is a resident's sentence ("Le 3 mars, le maire a écrit :") and stays.
  * "-----Original Message-----", "-------- Message d'origine --------", a line of
    underscores before "De :", and an Outlook block ("De :" then "Envoyé :" or "Sent:"
    within four lines; "De : <address>" then "Date :") cut everything from there onward.
    A pasted letter ("De : Marie Dupont / Date : 3 mars") is not a reply header.
  * A forwarded message ("---------- Forwarded message ---------", "-------- Message
    transféré --------", "Début du message réexpédié :", "Begin forwarded message:") is what
    the resident wants to share: its header block (De/From/Date/Objet/Subject/À/To/Cc...
    lines) is dropped, its body kept, after the resident's own words and a blank line.
    Apple Mail quotes forwarded bodies: they are unquoted. Outlook and Samsung write
    forwards exactly like replies: when the subject says forward ("TR :", "Fwd:", "Fw:",
    "WG:"...), their blocks and separators introduce a kept forward instead of a cut.
  * The signature, from a line that is exactly "-- " or "--", is cut up to the next forward
    marker (Gmail puts the signature above the forwarded message).
  * Mobile footers ("Envoyé de mon iPhone", "Envoyé depuis mon smartphone Samsung Galaxy",
    "Sent from my iPhone", "Téléchargez Outlook pour Android"...) are dropped when they end
    the resident's text or a forwarded message, never in the middle of the text.
  * Leading and trailing blank lines go, more than two blank lines in a row become two. If
    all this leaves nothing while the mail had text, ``text`` is ``original_text``: a
    resident's words are never lost.

Attachments
  Kept: audio (``audio/*``, ``application/ogg``, and ``application/octet-stream`` named
  .mp3/.m4a/.ogg/.oga/.opus/.wav/.amr/.3gp, stored under the matching audio type), images
  (JPEG, PNG, GIF, WebP, HEIC; not SVG, which can carry scripts) and PDF (also as
  octet-stream named .pdf, .jpg...). Images and PDFs are checked by their first bytes: a
  program named photo.jpg is refused, a PNG labelled JPEG is kept as PNG. Refused, and
  listed so that the resident can be told: "name (type)" for any other type, "name (too
  large)" over ``max_attachment_bytes``, "name (unreadable)" when the transfer encoding
  does not decode or the bytes are not what the type says ("(type)" alone when unnamed).
  A small image (under 20 KB) that the HTML shows by its Content-ID is layout (a logo, a
  signature picture): neither kept nor refused. Signatures (PGP, S/MIME) and delivery
  reports' machine parts are ignored too. A message forwarded whole (``message/rfc822``)
  adds its text (after a blank line) and its attachments. File names lose any directory
  part, control and bidirectional-override characters (which can disguise "gpj.exe" as
  ".jpg"), and are cut to 100 characters keeping the extension.

Headers
  ``automatic`` says why no answer must go back (answering makes mail loops): the first of
  Auto-Submitted (not "no"), X-Autoreply / X-Autorespond / X-Auto-Response-Suppress (All,
  OOF), Precedence (bulk, junk, list, auto_reply), List-Id / List-Unsubscribe,
  multipart/report, a no-reply sender (mailer-daemon, postmaster, no-reply, noreply-xyz,
  do-not-reply, bounces+...), Return-Path "<>", an auto-reply subject ("Réponse
  automatique", "Automatic reply", "Out of Office", "Auto:", "Absence" alone, "Absence :",
  "Absence du bureau"; "Absence de bancs au parc" is a contribution). Message-IDs lose their
  angle brackets and whitespace; one longer than 120 characters becomes "sha256:" + the
  hash of the id (the column holds 128), and so do In-Reply-To and References, so that
  threading matches what was stored. Subject, display names and file names are one line:
  decoded encoded-words cannot inject a header. Raw 8-bit headers (UTF-8 or Latin-1 without
  encoded-words) are decoded. ``extra`` may hold "reply_to" (when it differs from the
  sender) and "mailer" (X-Mailer or User-Agent).

Hostile input is bounded: Python's header parser and ``html.parser`` take quadratic time on
some crafted values (a 64 KB From header of quotes takes seconds, 300 KB of "<a " in HTML
takes minutes), so header values are cut before parsing (2,000 characters through the
policy, 8,000 for the subject; longer address lists go through ``email.utils.getaddresses``),
and HTML goes through a linear pre-pass that escapes every "<" not starting a well-formed tag
before ``html.parser`` sees it. MIME nesting (16), parts read (300) and nested forwards (3)
are capped. The MIME structure is parsed under ``compat32`` (the modern policy re-parses a
Content-Type for every part: 4 s for a megabyte of tiny parts), the parts read under the
modern one. ``html.parser`` and the quote cutter cost a few microseconds a tag or a line: HTML
is converted tag by tag up to 200,000 characters and the rest has its tags stripped (the words
are kept, not the layout); quotes, signatures and forwards are looked for in the first 200,000
characters of the text, and beyond only quoted lines are dropped. Nested blockquotes count for 20
quote levels at most, hidden elements (script, style...) for 100 nesting levels. Nothing is
lost: the gateway keeps ``MAX_TEXT_CHARS`` of a message's text and the whole of it beside
(gateway/textcap.py).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import functools
import hashlib
import html as htmllib
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import Message
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import TypeVar
from urllib.parse import unquote

from gateway.textnorm import fold

MAX_MESSAGE_ID = 120  # the column holds 128: a longer id is stored as "sha256:" + 64 hex
MAX_SUBJECT = 300
MAX_FILENAME = 100
MAX_NAME = 200  # a display name longer than this is not a name
LAYOUT_IMAGE_BYTES = 20 * 1024  # an HTML-referenced image under this is a logo, not a photo
MAX_REFERENCES = 100
# Python's header parser is quadratic on some crafted values: cut before parsing.
_MAX_HEADER_CHARS = 2000
_MAX_SUBJECT_CHARS = 8000
_MAX_ADDRESS_LIST = 64 * 1024  # about a thousand recipients
_MAX_DEPTH = 16  # MIME nesting read
_MAX_PARTS = 300  # MIME parts read
_MAX_FORWARD_DEPTH = 3  # message/rfc822 inside message/rfc822...
_ATTRIBUTION_LINES = 3  # Gmail wraps a long attribution over two or three lines

_T = TypeVar("_T")


@dataclass(frozen=True)
class Attachment:
    kind: str  # "audio" | "image" | "pdf"
    filename: str  # safe for display (no path), may be "" when the mail gave none
    content_type: str  # e.g. "audio/ogg", "image/jpeg", "application/pdf"
    data: bytes


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


class _BoundedRegistry(HeaderRegistry):
    """The standard header registry, on values cut to a length it parses quickly."""

    def __call__(self, name: str, value: str) -> BaseHeader:
        return super().__call__(name, value[:_MAX_HEADER_CHARS])


_POLICY = default_policy.clone(header_factory=_BoundedRegistry())
_REGISTRY = HeaderRegistry()  # for values this module has already cut to a safe length
# The structure is parsed under compat32, whose headers are plain strings: under the modern
# policy the parser re-parses the parent's Content-Type (a full RFC 2045 parse, some 100 us) for
# every part it meets, and each part's own, so a megabyte of tiny parts took 4 s. The parts
# this module reads are switched to the modern policy afterwards (``_modern``); both store
# header values the same way, so the switch only changes how a header is read.
_STRUCTURE_POLICY = compat32.clone(linesep="\n")


def parse(raw: bytes, *, max_attachment_bytes: int = 10 * 1024 * 1024) -> ParsedEmail:
    data = _as_bytes(raw)
    raw_id = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        message = email.message_from_bytes(data, policy=_STRUCTURE_POLICY)
        _modern(message)
        headers = _headers(message)
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

    message_id = _guard(lambda: _first_id(headers.get("message-id", [])), "") or raw_id
    no_address: list[tuple[str, str]] = []
    senders = _guard(lambda: _addresses(headers.get("from", [])[:1]), no_address)
    sender_name, sender = senders[0] if senders else ("", "")
    nobody: tuple[str, ...] = ()
    recipients = _guard(
        lambda: _recipients(headers, ("to", "cc", "delivered-to", "x-original-to")), nobody
    )
    subject = _guard(lambda: _subject(headers.get("subject", [])), "")
    reader = _Reader(max_attachment_bytes)
    body = _guard(lambda: reader.message(message, subject, depth=0), _Body("", ""))
    return ParsedEmail(
        message_id=message_id,
        sender=sender,
        sender_name=sender_name,
        recipients=recipients,
        subject=subject,
        text=body.text,
        original_text=body.original,
        attachments=tuple(reader.attachments),
        refused=tuple(reader.refused),
        automatic=_guard(lambda: _automatic(headers, message, sender, subject), None),
        in_reply_to=_guard(lambda: _first_id(headers.get("in-reply-to", [])), ""),
        references=_guard(lambda: _references(headers.get("references", [])), ()),
        date=_guard(lambda: _date(headers.get("date", [])), None),
        extra=_guard(lambda: _extra(headers, sender), {}),
    )


def _modern(message: Message) -> None:
    """The parts that can be read (the first ``_MAX_PARTS``, twice over for the alternatives
    ``_choose`` looks at) under the modern policy, as if parsed with it."""
    for part in itertools.islice(message.walk(), 2 * _MAX_PARTS + 1):
        part.policy = _POLICY


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


# --- Headers -------------------------------------------------------------------------------

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _headers(message: Message) -> dict[str, list[str]]:
    """The top-level headers as written (unfolded, 8-bit bytes decoded), by lower-case name."""
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        text = _FOLD.sub("", str(value)).replace("\r", " ").replace("\n", " ")
        headers.setdefault(str(name).strip().lower(), []).append(_fix_surrogates(text))
    return headers


def _fix_surrogates(text: str) -> str:
    """Bytes the parser could not decode (raw UTF-8 or Latin-1 in a header) made readable.

    ``message_from_bytes`` keeps them as surrogate escapes, which nothing downstream can
    encode.
    """
    if not _SURROGATE.search(text):
        return text
    try:
        return _guess(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


# Bidirectional overrides can disguise a name ("photo\u202egpj.exe" shows as "photoexe.jpg").
_BIDI = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)], " ")


def _one_line(text: str) -> str:
    """No control character, no line break, single spaces: safe in a header or a log line."""
    text = _fix_surrogates(text).translate(_BIDI)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return " ".join(text.split())


def _decode_words(text: str) -> str:
    """RFC 2047 encoded-words decoded (any charset Python knows; others guessed)."""
    if "=?" not in text:
        return text
    try:
        return _fix_surrogates(str(_REGISTRY("subject", text[:_MAX_SUBJECT_CHARS])))
    except Exception:
        return text


def _subject(values: list[str]) -> str:
    if not values:
        return ""
    return _one_line(_decode_words(values[0][:_MAX_SUBJECT_CHARS]))[:MAX_SUBJECT]


def _addresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name, bare lower-case address) for each address; "" for an unusable address.

    The registry's parser (RFC 5322 groups, comments, encoded words) reads values of a
    reasonable length; ``getaddresses`` (linear) reads longer ones and what the registry
    chokes on.
    """
    found: list[tuple[str, str]] = []
    for value in values:
        pairs: list[tuple[str, str]] = []
        if len(value) <= _MAX_HEADER_CHARS:
            try:
                header = _REGISTRY("to", value)
                pairs = [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]
            except Exception:
                pairs = []
        if not any(_bare(address) for _, address in pairs):
            if len(value) > _MAX_ADDRESS_LIST:  # cut at an address boundary
                value = value[: value.rfind(",", 0, _MAX_ADDRESS_LIST) + 1 or _MAX_ADDRESS_LIST]
            pairs = [(_decode_words(name), address) for name, address in getaddresses([value])]
        elif "(" in value and not all(name for name, _ in pairs):
            # "m@example.org (Marie)": the old way of naming, a comment the registry drops.
            named = {address.lower(): name for name, address in getaddresses([value]) if name}
            pairs = [(name or named.get(address.lower(), ""), address) for name, address in pairs]
        for name, address in pairs:
            found.append((_one_line(name[: MAX_NAME * 4])[:MAX_NAME], _bare(address)))
    return found


_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+(?:@[^\s@<>()\[\],;:\"\\]+)", re.UNICODE)


def _bare(address: str) -> str:
    """The address lower-cased when it has a local part and a domain, else ""."""
    address = address.strip().strip("<>").strip().lower()
    if len(address) > 254 or not _ADDRESS.fullmatch(address):
        return ""
    local, _, domain = address.rpartition("@")
    if not local or not domain or domain.startswith(".") or domain.endswith("."):
        return ""
    if any(unicodedata.category(ch)[0] == "C" for ch in address):
        return ""
    return address


def _recipients(headers: dict[str, list[str]], names: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for name in names:
        for _, address in _addresses(headers.get(name, [])):
            if address:
                seen.setdefault(address, None)
    return tuple(seen)


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


def _first_id(values: list[str]) -> str:
    """The first id of the first header, or "" (``Message-ID: <>`` counts as absent)."""
    if not values:
        return ""
    bracketed = _BRACKETED.search(values[0])
    if bracketed is not None:
        return _ident(bracketed.group(1))
    return _ident(values[0])


def _references(values: list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        for ident in _ids(value):
            seen.setdefault(ident, None)
    ids = list(seen)
    if len(ids) > MAX_REFERENCES:  # the thread's root and the most recent ones
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return tuple(ids)


def _date(values: list[str]) -> datetime | None:
    if not values:
        return None
    try:
        when = parsedate_to_datetime(values[0].strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # "-0000" means "time zone unknown": the time is UTC (RFC 5322, 3.3).
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _extra(headers: dict[str, list[str]], sender: str) -> dict[str, str]:
    extra: dict[str, str] = {}
    replies = [address for _, address in _addresses(headers.get("reply-to", [])[:1])]
    if replies and replies[0] and replies[0] != sender:
        extra["reply_to"] = replies[0]
    mailer = headers.get("x-mailer") or headers.get("user-agent") or []
    if mailer:
        extra["mailer"] = _one_line(mailer[0])[:100]
    return extra


# --- Automatic mail (never answered) -------------------------------------------------------

_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_NO_REPLY = re.compile(
    r"^(?:mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)(?:[-+._=].*)?$",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^(?:reponse automatique|automatic reply|auto[- ]?reply|out of (?:the )?office|auto:"
    r"|absente? du bureau"
    # "Absence" alone or "Absence : ..." / "Absence du bureau", but not "Absence de bancs".
    r"|absence(?:\s*$|\s*[:!(\[-]|\s+(?:du bureau|prolongee|jusqu)))",
)


def _token(value: str) -> str:
    return re.split(r"[;(\s]", value.strip(), maxsplit=1)[0].strip().lower()


def _automatic(
    headers: dict[str, list[str]], message: Message, sender: str, subject: str
) -> str | None:
    """Why no answer must go back, or None. The order is the brief's: the first rule wins."""
    submitted = [_token(v) for v in headers.get("auto-submitted", [])]
    if any(value and value != "no" for value in submitted):
        return "auto-submitted"
    for name in ("x-autoreply", "x-autorespond"):
        if any(_token(v) not in ("", "no", "false", "0") for v in headers.get(name, [])):
            return "auto-reply"
    for value in headers.get("x-auto-response-suppress", []):
        words = {w.lower() for w in re.split(r"[\s,;]+", value) if w}
        if words & {"all", "oof", "autoreply"}:
            return "auto-reply"
    for value in headers.get("precedence", []):
        if _token(value) in _PRECEDENCE:
            return f"precedence: {_token(value)}"
    if "list-id" in headers or "list-unsubscribe" in headers:
        return "mailing list"
    if message.get_content_type() == "multipart/report":
        return "bounce"
    local = sender.rpartition("@")[0] if sender else ""
    from_words = re.split(r"[\s<>@\"(),]+", " ".join(headers.get("from", [])[:1]))
    if _NO_REPLY.match(local) or (not sender and any(_NO_REPLY.match(w) for w in from_words)):
        return "no-reply sender"
    if any(re.sub(r"\s", "", v) == "<>" for v in headers.get("return-path", [])):
        return "null return path"
    if _AUTO_SUBJECT.match(fold(subject)):
        return "auto-reply subject"
    return None


# --- Charsets -------------------------------------------------------------------------------

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


def _guess(data: bytes) -> str:
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


def _decode(data: bytes, charset: str | None) -> str:
    label = (charset or "").strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    if not label or label in _ASCII_LABELS:
        return _guess(data)  # ASCII is UTF-8; 8-bit bytes under an ASCII label are mislabelled
    if label in _WESTERN_LABELS:
        return _western(data)
    if label.replace("-", "_") in _UNSAFE_CODECS:
        return _guess(data)
    try:
        return data.decode(label)
    except (LookupError, ValueError):  # unknown ("utf-88"), not a text codec, or wrong
        return _guess(data)


# --- Bodies ---------------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\ud800-\udfff]")


def _tidy(text: str, *, flowed: bool = False, delsp: bool = False) -> str:
    """\\n newlines, no control characters, no trailing spaces, no blank lines at the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    text = _CONTROL.sub("", text.replace("\u2029", "\n"))
    if flowed:
        text = _unflow(text, delsp=delsp)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676 ``format=flowed`` (Thunderbird, Apple Mail): soft line breaks joined."""
    out: list[str] = []
    paragraph: list[str] = []
    depth = 0

    def flush() -> None:
        if paragraph:
            prefix = ">" * depth + (" " if depth else "")
            out.append(prefix + "".join(paragraph))
            paragraph.clear()

    for line in text.split("\n"):
        level = len(line) - len(line.lstrip(">"))
        content = line[level:]
        if content.startswith(" "):  # space-stuffing
            content = content[1:]
        if paragraph and level != depth:
            flush()
        depth = level
        soft = content.endswith(" ") and content.rstrip() != "--"
        paragraph.append(content[:-1] if soft and delsp else content)
        if not soft:
            flush()
    flush()
    return "\n".join(out)


# A well-formed tag, comment-like declaration or processing instruction, with possessive
# quantifiers: matching stops at the next "<" at worst, so tokenising is linear.
_TAG = re.compile(
    r"<(?:/?[A-Za-z][^\s/<>]*+(?:[^\"'<>]++|\"[^\"<]*+\"|'[^'<]*+')*+|![^<>]*+|\?[^<>]*+)>"
)
_HIDDEN = frozenset(
    {"head", "script", "style", "title", "template", "noscript", "svg", "object", "iframe"}
)
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "pre", "address"}
    | {"figure"}
)
_BLOCKS = frozenset(
    {"div", "li", "tr", "dt", "dd", "section", "article", "header", "footer", "nav", "aside"}
    | {"main", "form", "fieldset", "legend", "caption", "figcaption", "center", "hr", "option"}
)
_HTML_SPACE = re.compile(r"[ \t\n\r\f\v]+")
_MAX_HTML_CHARS = 200_000  # converted tag by tag; beyond, the tags are stripped (see above)
_MAX_HIDDEN_DEPTH = 100  # nested hidden elements tracked
_MAX_QUOTE_DEPTH = 20  # nested blockquotes shown as ">" (a quote level each)
_LINE_SPACE = re.compile(r"[ \t\f\v\xa0]+")


def _safe_html(html: str) -> str:
    """Comments removed, every "<" that does not start a well-formed tag escaped.

    ``html.parser`` (Python 3.11) rescans unterminated constructs ("<a <a <a...",
    "<!--<!--...") from each "<": quadratic time on hostile mail. What reaches it here is
    only complete tags and text. An unclosed comment hides the rest, as in a browser.
    """
    out: list[str] = []
    position = 0
    while True:
        start = html.find("<", position)
        if start < 0:
            out.append(html[position:])
            break
        out.append(html[position:start])
        if html.startswith("<!--", start):
            end = html.find("-->", start + 4)
            if end < 0:
                break
            position = end + 3
            continue
        tag = _TAG.match(html, start)
        if tag is None:
            out.append("&lt;")
            position = start + 1
        else:
            out.append(tag.group())
            position = tag.end()
    return "".join(out)


class _HTMLText(HTMLParser):
    """HTML as the plain text a reader sees.

    Hidden elements (head, script, style...) are dropped; paragraphs and headings give a
    blank line, other blocks and ``<br>`` a line break; links keep their text (not the
    address), images disappear. Blockquotes become ">" lines, so that a quoted reply in an
    HTML-only mail is cut like a plain one.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str, bool]] = []  # (quote depth, text, preformatted)
        self._line: list[str] = []
        self._hidden: list[str] = []
        self._quote = 0
        self._pre = 0

    def _break(self) -> None:
        """``<br>``: the line ends, even an empty one (two ``<br>`` make a blank line)."""
        self.lines.append((self._quote, "".join(self._line), self._pre > 0))
        self._line = []

    def _block(self) -> None:
        """A block's edge: the line ends if it has text (nested divs make one break)."""
        if "".join(self._line).strip():
            self._break()
        self._line = []

    def _paragraph(self) -> None:
        """A paragraph's edge: one blank line."""
        self._block()
        if self.lines and self.lines[-1][1].strip():
            self.lines.append((self._quote, "", False))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # "<head>" left open: the body is still text
            self._hidden = [t for t in self._hidden if t != "head"]
        if tag in _HIDDEN:
            # Tracked to a depth: each end tag looks through the stack, and "<svg>" a hundred
            # thousand times would make that quadratic. Deeper ones end with their ancestors.
            if len(self._hidden) < _MAX_HIDDEN_DEPTH:
                self._hidden.append(tag)
            return
        if self._hidden:
            return
        if tag == "br":
            self._break()
        elif tag == "blockquote":
            self._paragraph()
            self._quote += 1
        elif tag in _PARAGRAPHS:
            self._paragraph()
        elif tag in _BLOCKS:
            self._block()
        if tag == "li":
            self._line.append("- ")
        elif tag in ("td", "th"):
            self._line.append(" ")
        elif tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            if tag in self._hidden:
                index = len(self._hidden) - 1 - self._hidden[::-1].index(tag)
                del self._hidden[index:]
            return
        if self._hidden:
            return
        if tag == "blockquote":
            self._paragraph()
            self._quote = max(0, self._quote - 1)
        elif tag == "pre":
            self._paragraph()
            self._pre = max(0, self._pre - 1)
        elif tag in _PARAGRAPHS:
            self._paragraph()
        elif tag in _BLOCKS and tag != "hr":
            self._block()

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if not self._pre:
            self._line.append(_HTML_SPACE.sub(" ", data))
            return
        first, *rest = data.replace("\r\n", "\n").split("\n")
        self._line.append(first)
        for piece in rest:
            self._break()
            self._line.append(piece)

    def text(self) -> str:
        self._break()
        out: list[str] = []
        for depth, content, pre in self.lines:
            depth = min(depth, _MAX_QUOTE_DEPTH)  # "<blockquote>" nested 10,000 times
            content = content.replace("\xa0", " ")
            content = content.rstrip() if pre else " ".join(content.split())
            line = (">" * depth + " " + content).rstrip() if depth else content
            if not content and out and out[-1] == line:
                continue  # nested blocks: one blank line, not five
            out.append(line)
        return "\n".join(out)


_INVISIBLE = dict.fromkeys([0x200B, 0x00AD, 0x2060, 0xFEFF])  # zero-width space, soft hyphen


def _html_to_text(html: str) -> str:
    head, tail = _split_html(html)
    parser = _HTMLText()
    with contextlib.suppress(Exception):  # html.parser is tolerant; this is a last resort
        parser.feed(_safe_html(head))
        parser.close()
    text = parser.text()
    if tail:
        text = f"{text}\n{_strip_tags(tail)}"
    return text.translate(_INVISIBLE)


def _split_html(html: str) -> tuple[str, str]:
    """At most ``_MAX_HTML_CHARS`` to convert tag by tag, ending before a tag, and the rest."""
    if len(html) <= _MAX_HTML_CHARS:
        return html, ""
    cut = html.rfind("<", 0, _MAX_HTML_CHARS)
    if cut < 0:  # no tag to split
        cut = _MAX_HTML_CHARS
    return html[:cut], html[cut:]


def _strip_tags(html: str) -> str:
    """The words of HTML without its layout, in linear time: tags become spaces, entities are
    decoded, runs of blanks become one space, lines are kept."""
    text = htmllib.unescape(_TAG.sub(" ", _safe_html(html)))
    lines = (_LINE_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


# --- Cutting quotes, signatures and footers -------------------------------------------------

# Python's \s matches the no-break spaces French typography puts before ":". Quantifiers are
# possessive where two could match the same spaces: no backtracking on hostile lines.
_WROTE = r"(?:a\s++[ée]crit|wrote|schrieb|escribi[óo]|ha\s++scritto|escreveu|schreef)"
_ATTRIBUTION = re.compile(
    rf"^(?:le|on|am|el|il|em|op)\s.{{4,300}}?\s{_WROTE}\s*+:?\s*+$", re.IGNORECASE
)
# "Marie Dupont <marie@example.org> a écrit :" (Thunderbird's attribution without a date).
_ATTRIBUTION_ADDRESS = re.compile(
    rf"^.{{0,200}}?<[^<>\s@]{{1,200}}@[^<>\s@]{{1,200}}>\s++{_WROTE}\s*+:?\s*+$", re.IGNORECASE
)
_ATTRIBUTION_START = re.compile(r"^(?:le|on|am|el|il|em|op)\s", re.IGNORECASE)
_REPLY_SEPARATOR = re.compile(
    r"^-{2,}+\s*+(?:original message|message d['’]origine|ursprüngliche nachricht"
    r"|mensaje original|messaggio originale|mensagem original|oorspronkelijk bericht)\s*+-*+$",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^_{10,}+$")
_FORWARD = re.compile(
    r"^(?:-{2,}+\s*+(?:forwarded message|message transf[ée]r[ée]|mensaje reenviado"
    r"|weitergeleitete nachricht|messaggio inoltrato)\s*+-*+"
    r"|d[ée]but du message (?:r[ée]exp[ée]di[ée]|transf[ée]r[ée])\s*+:?"
    r"|begin forwarded message\s*+:?)$",
    re.IGNORECASE,
)
_HEADER_NAMES = (
    r"de|from|envoy[ée]|sent|date|[àa]|to|pour|cc|cci|bcc|objet|subject|sujet"
    r"|r[ée]pondre\s[àa]|reply-to|importance|priorit[ée]|pi[èe]ces?\sjointes?|attachments?"
)
_COLON = r"\s*+(?:\*\s*+)?:"  # "De :", "De:", "*De :*" (Outlook's bold as plain text)
_HEADER_LINE = re.compile(rf"^\*?(?:{_HEADER_NAMES}){_COLON}", re.IGNORECASE)
_OUTLOOK_FROM = re.compile(rf"^\*?(?:de|from){_COLON}", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(rf"^\*?(?:envoy[ée]|sent|date){_COLON}", re.IGNORECASE)
_OUTLOOK_SENT_ONLY = re.compile(rf"^\*?(?:envoy[ée]|sent){_COLON}", re.IGNORECASE)
_OUTLOOK_ONE_LINE = re.compile(
    rf"^\*?(?:de|from){_COLON}.{{1,300}}?\s\*?(?:envoy[ée]|sent){_COLON}", re.IGNORECASE
)
# Mobile and webmail footers: a device or a product follows, not any words ("Envoyé par
# courrier le 3 mars." is a resident's sentence).
_DEVICES = (
    r"mon|ma|mes|un|une|l['’]application|l['’]appli|la\smessagerie|yahoo|outlook|courrier"
    r"|mail|gmail|orange|sfr|free|proton|samsung|huawei|xiaomi|iphone|ipad|android|galaxy"
)
_FOOTER = re.compile(
    rf"^(?:envoy[ée]e?\s(?:de|depuis|à\spartir\sde|a\spartir\sde|avec|via)\s(?:{_DEVICES})\b.{{0,80}}"
    r"|sent\s(?:from|with|via|using)\s(?:my|yahoo|outlook|mail|gmail|proton|aol|samsung"
    r"|blackberry|the\s)\b.{0,80}"
    r"|(?:get|download)\soutlook\sfor\s.{2,40}"
    r"|(?:t[ée]l[ée]charge[zr]|obtenez|obtenir)\soutlook\spour\s.{2,40})$",
    re.IGNORECASE,
)
# "TR : ...", "Fwd: ...", "Re: Fw: ...": the mail forwards something.
_FORWARD_SUBJECT = re.compile(
    r"^(?:[a-z]{1,5}\s*+(?:\[\d+\])?\s*+:\s*+)*?(?:fwd?|tr|trans|transf|wg|rv|enc)\s*+:"
)
_BLANKS = re.compile(r"\n{4,}")
_LONG_LINE = 400  # longer lines are not attributions nor header lines worth matching


_QUOTE_PREFIX = re.compile(r"[ \t]*+(?:>[ \t]*+)*+")
_MAX_UNQUOTE = 20  # quote levels a forwarded message can sit in
_MAX_CUT_CHARS = 200_000  # quotes and signatures are looked for this far (see the module doc)
_QUOTED = re.compile(r"[ \t]*+>")


def _quote_depth(line: str) -> int:
    """How many ">" start the line ("> > text" and ">> text" are both 2)."""
    prefix = _QUOTE_PREFIX.match(line)
    return prefix.group().count(">") if prefix else 0


@functools.lru_cache(maxsize=_MAX_UNQUOTE + 1)
def _unquoting(levels: int) -> re.Pattern[str]:
    return re.compile(rf"(?:[ \t]*+> ?){{0,{levels}}}")


def _unquote(line: str, levels: int) -> str:
    """The line without its first ``levels`` quote markers (and the space after each)."""
    if not levels:
        return line
    prefix = _unquoting(min(levels, _MAX_UNQUOTE)).match(line)
    return line[prefix.end() :] if prefix else line


class _Cutter:
    """One body's lines, walked once: quotes dropped, forwards kept, signatures cut.

    The text is split into segments: the resident's own text, then one per forwarded
    message (kept without its header block). Mobile footers are dropped at the end of
    each segment.
    """

    def __init__(self, text: str, *, forward_subject: bool) -> None:
        self.lines = text.split("\n")
        self.forward_subject = forward_subject
        self.segments: list[list[str]] = [[]]
        self.unquote = 0  # quote levels the current forwarded message sits in

    def _line(self, index: int) -> str:
        return _unquote(self.lines[index], self.unquote).strip()

    def _attribution(self, index: int) -> int:
        """How many lines an attribution starting at ``index`` takes (0: none)."""
        joined = self._line(index)
        if len(joined) > _LONG_LINE:
            return 0
        for count in range(1, _ATTRIBUTION_LINES + 1):
            if count > 1:
                following = index + count - 1
                if following >= len(self.lines) or not _ATTRIBUTION_START.match(joined):
                    return 0
                extra = self._line(following)
                if len(extra) > _LONG_LINE:
                    return 0
                joined += " " + extra
            dated = _ATTRIBUTION.match(joined) and any(ch.isdigit() for ch in joined)
            if dated or _ATTRIBUTION_ADDRESS.match(joined):
                return count
        return 0

    def _reply_cut(self, index: int) -> bool:
        """A separator or an Outlook header block: the previous messages start here."""
        line = self._line(index)
        if len(line) > _LONG_LINE:
            return False
        if _REPLY_SEPARATOR.match(line) or _OUTLOOK_ONE_LINE.match(line):
            return True
        if not (_OUTLOOK_FROM.match(line) or _UNDERSCORES.match(line)):
            return False
        following = [self._line(i) for i in range(index + 1, min(index + 5, len(self.lines)))]
        if _OUTLOOK_FROM.match(line):
            # "Envoyé :" is Outlook's own; "Date :" could start a letter a resident pasted
            # ("De : Marie Dupont / Date : 3 mars"), so it needs an address after "De :".
            if any(_OUTLOOK_SENT_ONLY.match(other) for other in following):
                return True
            return "@" in line and any(_OUTLOOK_SENT.match(other) for other in following)
        return bool(_OUTLOOK_FROM.match(next((o for o in following if o), "")))

    def _quoted_next(self, index: int) -> bool:
        """Whether the next non-blank line from ``index`` is quoted."""
        for position in range(index, len(self.lines)):
            line = self._line(position)
            if line:
                return line.startswith(">")
        return False

    def cut(self) -> str:
        state = "text"  # "text", "headers" (of a forwarded message) or "skip" (a signature)
        header_seen = False
        index = 0
        examined = 0
        while index < len(self.lines):
            line = _unquote(self.lines[index], self.unquote)
            examined += len(line) + 1
            if examined > _MAX_CUT_CHARS:
                # Each line costs a few microseconds here: beyond this point only quoted lines
                # are dropped (one test a line), everything else is kept as it is.
                self._keep_unquoted(index)
                break
            stripped = line.strip()
            if not stripped and state != "headers":
                # A blank line is neither a marker nor an attribution (one test, not ten).
                if state == "text":
                    self.segments[-1].append(line)
                index += 1
                continue
            depth = _quote_depth(line)
            if len(stripped) <= _LONG_LINE and _FORWARD.match(_unquote(stripped, depth).strip()):
                self.segments.append([])
                state, header_seen = "headers", False
                self.unquote = min(self.unquote + depth, _MAX_UNQUOTE)
                index += 1
                continue
            if state == "headers":
                if not stripped:
                    state = "text" if header_seen else state
                    index += 1
                    continue
                if depth and not header_seen and self.unquote < _MAX_UNQUOTE:
                    # The forwarded message is quoted (Apple Mail): unquote it.
                    self.unquote = min(self.unquote + depth, _MAX_UNQUOTE)
                    continue
                previous = self._line(index - 1) if index else ""
                if len(stripped) <= _LONG_LINE and (
                    _HEADER_LINE.match(stripped)
                    or _UNDERSCORES.match(stripped)
                    or _REPLY_SEPARATOR.match(stripped)
                    or (header_seen and (previous.endswith(",") or line[:1] in (" ", "\t")))
                ):
                    header_seen = True
                    index += 1
                    continue
                state = "text"
            if depth == 0 and self._reply_cut(index):
                if not self.forward_subject:
                    break
                # Outlook and Samsung forward as they reply: the block is a forward's header.
                self.segments.append([])
                state, header_seen = "headers", False
                if not _OUTLOOK_FROM.match(stripped):
                    index += 1  # the separator line itself
                continue
            if state == "skip" or depth:
                index += 1
                continue
            taken = self._attribution(index)
            if taken:
                if self._quoted_next(index + taken):
                    index += taken  # the quote's lines go one by one, what follows stays
                    continue
                attribution = " ".join(self._line(i) for i in range(index, index + taken))
                if "@" in attribution:
                    break  # the previous message follows unquoted: nothing after is ours
                # Without a quote nor an address, it is a resident's sentence ("Le 3 mars,
                # le maire a écrit :"): kept.
            if line.rstrip() == "--":
                state = "skip"
                index += 1
                continue
            self.segments[-1].append(line)
            index += 1
        return self._join()

    def _keep_unquoted(self, index: int) -> None:
        for raw in itertools.islice(self.lines, index, None):
            line = _unquote(raw, self.unquote)
            if not _QUOTED.match(line):
                self.segments[-1].append(line)

    def _join(self) -> str:
        kept: list[str] = []
        for segment in self.segments:
            while segment and (
                not segment[-1].strip()
                or _FOOTER.match(segment[-1].strip()[:_LONG_LINE])
                or _UNDERSCORES.match(segment[-1].strip()[:_LONG_LINE])
            ):
                segment.pop()
            text = "\n".join(segment).strip("\n")
            if text.strip():
                kept.append(text)
        return _BLANKS.sub("\n\n\n", "\n\n".join(kept))


def _cut(original: str, subject: str) -> str:
    forward = bool(_FORWARD_SUBJECT.match(fold(subject)))
    text = _Cutter(original, forward_subject=forward).cut()
    if not text.strip() and original.strip():
        return _BLANKS.sub("\n\n\n", original)  # never lose a resident's words
    return text


# --- MIME parts ----------------------------------------------------------------------------

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic"})
_TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/heif": "image/heic",
    "application/ogg": "audio/ogg",
    "application/x-pdf": "application/pdf",
}
_OCTET_STREAMS = frozenset({"application/octet-stream", "binary/octet-stream"})
_AUDIO_EXTENSIONS = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".amr": "audio/amr",
    ".3gp": "audio/3gpp",
}
_SNIFFED_EXTENSIONS = {
    ".pdf": "application/pdf",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".heic": "image/heic",
}
# Parts that describe the mail rather than carry anything: neither kept nor refused.
_IGNORED_TYPES = frozenset(
    {
        "application/pgp-signature",
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-keys",
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "text/rfc822-headers",
    }
)
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_CID = re.compile(r"cid:([^\"'\s)>]+)", re.IGNORECASE)


def _sniff_image(data: bytes, declared: str) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if declared == "image/heic" and data[4:8] == b"ftyp" and data[8:12] in _HEIC_BRANDS:
        return "image/heic"
    return None


def _kind(content_type: str, filename: str) -> tuple[str, str] | None:
    """(kind, content type to store) for what the gateway keeps, else None."""
    content_type = _TYPE_ALIASES.get(content_type, content_type)
    if content_type.startswith("audio/"):
        return "audio", content_type
    if content_type in _IMAGE_TYPES:
        return "image", content_type
    if content_type == "application/pdf":
        return "pdf", content_type
    if content_type in _OCTET_STREAMS:
        extension = "." + filename.rpartition(".")[2].lower() if "." in filename else ""
        if extension in _AUDIO_EXTENSIONS:
            return "audio", _AUDIO_EXTENSIONS[extension]
        guessed = _SNIFFED_EXTENSIONS.get(extension)
        if guessed:
            return ("pdf" if guessed == "application/pdf" else "image"), guessed
    return None


_LONE_BACKSLASH = re.compile(r'\\(?![\\"])')


def _raw_param(part: Message, header: str, param: str) -> str | None:
    """A parameter read from the header as written: 8-bit names (raw UTF-8 or Latin-1)
    decoded, where ``get_filename`` would give replacement characters."""
    for name, value in part.raw_items():
        if str(name).strip().lower() == header:
            text = _fix_surrogates(_FOLD.sub("", str(value)))[:_MAX_HEADER_CHARS]
            # Windows mailers quote paths without escaping them ("C:\Users\..."): keep the
            # backslashes, so that the directory part can be removed.
            text = _LONE_BACKSLASH.sub(r"\\\\", text)
            params = getattr(_REGISTRY(header, text), "params", {})
            found = params.get(param)
            return str(found) if found is not None else None
    return None


def _filename(part: Message) -> str:
    """The file name for display: decoded, no directory, no control character, 100 chars."""
    name: str | None = None
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        try:
            name = _raw_param(part, header, param)
        except Exception:
            name = None
        if name:
            break
    if not name:
        name = _guard(lambda: part.get_filename(), None)
    if not name:
        return ""
    name = _decode_words(_fix_surrogates(str(name)))
    # Control and format characters (a right-to-left override can show "photo\u202egpj.exe"
    # as "photoexe.jpg") go; line breaks and tabs become single spaces.
    name = "".join(
        ch for ch in name if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    )
    name = " ".join(name.split())
    name = name.replace("\\", "/").rpartition("/")[2].strip()
    if name in (".", ".."):
        return ""
    if len(name) <= MAX_FILENAME:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(extension) <= 10:
        return stem[: MAX_FILENAME - len(extension) - 1] + "." + extension
    return name[:MAX_FILENAME]


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def _disposition(part: Message) -> str:
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


def _payload(part: Message, *, strict: bool) -> bytes | None:
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


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    return value.lower() if isinstance(value, str) else ""


@dataclass
class _Body:
    text: str
    original: str


class _Reader:
    """Walks a message's MIME tree: body texts in order, attachments kept or refused."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.attachments: list[Attachment] = []
        self.refused: list[str] = []
        self._texts: dict[int, str] = {}
        self._parts = 0
        self._forward_depth = 0

    def message(self, message: Message, subject: str, *, depth: int) -> _Body:
        cids = self._cids(message)
        pieces: list[str] = []
        forwarded: list[_Body] = []
        self._walk(message, cids, pieces, forwarded, depth=depth, body=True)
        original = "\n\n".join(piece for piece in pieces if piece.strip())
        text = _cut(original, subject)
        for inner in forwarded:
            text = "\n\n".join(t for t in (text, inner.text) if t)
            original = "\n\n".join(t for t in (original, inner.original) if t)
        return _Body(text, original)

    def _text_of(self, part: Message) -> str:
        """A text part as tidy text (HTML converted), decoded once."""
        key = id(part)
        if key not in self._texts:
            data = _payload(part, strict=False) or b""
            text = _decode(data, _charset(part))
            if _content_type(part) == "text/html":
                text = _tidy(_html_to_text(text))
            else:
                flowed = _param(part, "format") == "flowed"
                text = _tidy(text, flowed=flowed, delsp=_param(part, "delsp") == "yes")
            self._texts[key] = text
        return self._texts[key]

    def _cids(self, message: Message) -> set[str]:
        """Content-IDs the message's HTML shows (cid: URLs)."""
        cids: set[str] = set()
        for count, part in enumerate(message.walk()):
            if count > _MAX_PARTS:
                break
            if _content_type(part) == "text/html" and not part.is_multipart():
                data = _payload(part, strict=False) or b""
                html = _decode(data, _charset(part))
                cids.update(unquote(found).strip("<>").lower() for found in _CID.findall(html))
        return cids

    def _walk(
        self,
        part: Message,
        cids: set[str],
        pieces: list[str],
        forwarded: list[_Body],
        *,
        depth: int,
        body: bool,
    ) -> None:
        self._parts += 1
        if depth > _MAX_DEPTH or self._parts > _MAX_PARTS:
            return
        content_type = _content_type(part)
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
        disposition = _disposition(part)
        # A multipart without a usable boundary comes as one text: read it as such.
        readable = content_type in ("text/plain", "text/html") or content_type.startswith(
            "multipart/"
        )
        if readable and disposition != "attachment":
            if body:
                pieces.append(self._text_of(part))
            return
        self._attachment(part, content_type, cids)

    def _choose(self, children: list[Message]) -> Message | None:
        """The alternative to read: plain text with words in it, else the richest (last)."""
        for child in children:
            if (
                _content_type(child) == "text/plain"
                and not child.is_multipart()
                and _disposition(child) != "attachment"
                and self._text_of(child).strip()
            ):
                return child
        for child in reversed(children):
            if child.is_multipart() or _content_type(child) == "text/html":
                return child
        return children[0] if children else None

    def _forwarded(self, part: Message, forwarded: list[_Body], *, depth: int) -> None:
        """A message attached whole: its text after the mail's, its attachments with its own."""
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if not isinstance(inner, Message) or self._forward_depth >= _MAX_FORWARD_DEPTH:
            return
        self._forward_depth += 1
        try:
            no_headers: dict[str, list[str]] = {}
            headers = _guard(lambda: _headers(inner), no_headers)
            subject = _guard(lambda: _subject(headers.get("subject", [])), "")
            forwarded.append(self.message(inner, subject, depth=depth + 1))
        finally:
            self._forward_depth -= 1

    def _refuse(self, filename: str, why: str) -> None:
        self.refused.append(f"{filename} ({why})" if filename else f"({why})")

    def _attachment(self, part: Message, content_type: str, cids: set[str]) -> None:
        if content_type in _IGNORED_TYPES:
            return
        filename = _filename(part)
        content_id = str(part.get("content-id", "") or "").strip().strip("<>").lower()
        if content_type.startswith("image/") and content_id and content_id in cids:
            data = _payload(part, strict=True)
            if data is not None and len(data) < LAYOUT_IMAGE_BYTES:
                return  # a logo or a signature picture in the HTML layout
        kind = _kind(content_type, filename)
        if kind is None:
            self._refuse(filename, content_type)
            return
        data = _payload(part, strict=True)
        if not data:
            self._refuse(filename, "unreadable")
            return
        if len(data) > self.cap:
            self._refuse(filename, "too large")
            return
        name, stored_type = kind
        if name == "image":
            sniffed = _sniff_image(data, stored_type)
            if sniffed is None:
                self._refuse(filename, "unreadable")
                return
            stored_type = sniffed
        elif name == "pdf" and b"%PDF-" not in data[:1024]:
            self._refuse(filename, "unreadable")
            return
        if any(a.data == data and a.filename == filename for a in self.attachments):
            return  # the same file in two alternatives of one mail
        self.attachments.append(Attachment(name, filename, stored_type, data))
