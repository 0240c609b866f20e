"""Which of a mail's attachments the gateway keeps (audio, images, PDFs, checked by their
bytes), which it refuses (listed, so that the resident can be told), and their file names.

Kept: audio (``audio/*``, ``application/ogg``, and ``application/octet-stream`` named
.mp3/.m4a/.ogg/.oga/.opus/.wav/.amr/.3gp, stored under the matching audio type), images (JPEG,
PNG, GIF, WebP, HEIC; not SVG, which can carry scripts) and PDF (also as octet-stream named
.pdf, .jpg...). Images and PDFs are checked by their first bytes: a program named photo.jpg is
refused, a PNG labelled JPEG is kept as PNG. Refused: "name (type)" for any other type, "name
(too large)" over the cap, "name (unreadable)" when the transfer encoding does not decode or
the bytes are not what the type says ("(type)" alone when unnamed). A small image (under
20 KB) that the HTML shows by its Content-ID is layout (a logo, a signature picture): neither
kept nor refused. Signatures (PGP, S/MIME) and delivery reports' machine parts are ignored too.
File names lose any directory part, control and bidirectional-override characters (which can
disguise "gpj.exe" as ".jpg"), and are cut to 100 characters keeping the extension.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from email.message import Message

from channels.email.headers import (
    FOLD,
    MAX_HEADER_CHARS,
    REGISTRY,
    decode_words,
    fix_surrogates,
)
from channels.email.mime_parts import part_payload
from gateway.filetypes import ALIASES, IMAGE_TYPES, is_pdf, sniff_image

MAX_FILENAME = 100
LAYOUT_IMAGE_BYTES = 20 * 1024  # an HTML-referenced image under this is a logo, not a photo


@dataclass(frozen=True)
class Attachment:
    kind: str  # "audio" | "image" | "pdf"
    filename: str  # safe for display (no path), may be "" when the mail gave none
    content_type: str  # e.g. "audio/ogg", "image/jpeg", "application/pdf"
    data: bytes


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


def _kind(content_type: str, filename: str) -> tuple[str, str] | None:
    """(kind, content type to store) for what the gateway keeps, else None."""
    content_type = ALIASES.get(content_type, content_type)
    if content_type.startswith("audio/"):
        return "audio", content_type
    if content_type in IMAGE_TYPES:
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
            text = fix_surrogates(FOLD.sub("", str(value)))[:MAX_HEADER_CHARS]
            # Windows mailers quote paths without escaping them ("C:\Users\..."): keep the
            # backslashes, so that the directory part can be removed.
            text = _LONE_BACKSLASH.sub(r"\\\\", text)
            params = getattr(REGISTRY(header, text), "params", {})
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
        try:
            name = part.get_filename()
        except Exception:
            name = None
    if not name:
        return ""
    name = decode_words(fix_surrogates(str(name)))
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


class Attachments:
    """One mail's attachments, sorted as its parts are met: kept, refused (listed) or ignored."""

    def __init__(self, cap: int) -> None:
        self.cap = cap  # bytes: a larger attachment is refused
        self.kept: list[Attachment] = []
        self.refused: list[str] = []

    def _refuse(self, filename: str, why: str) -> None:
        self.refused.append(f"{filename} ({why})" if filename else f"({why})")

    def take(self, part: Message, content_type: str, cids: set[str]) -> None:
        """A part that is not body text; ``cids``: the Content-IDs the mail's HTML shows."""
        if content_type in _IGNORED_TYPES:
            return
        filename = _filename(part)
        content_id = str(part.get("content-id", "") or "").strip().strip("<>").lower()
        if content_type.startswith("image/") and content_id and content_id in cids:
            data = part_payload(part, strict=True)
            if data is not None and len(data) < LAYOUT_IMAGE_BYTES:
                return  # a logo or a signature picture in the HTML layout
        kind = _kind(content_type, filename)
        if kind is None:
            self._refuse(filename, content_type)
            return
        data = part_payload(part, strict=True)
        if not data:
            self._refuse(filename, "unreadable")
            return
        if len(data) > self.cap:
            self._refuse(filename, "too large")
            return
        name, stored_type = kind
        if name == "image":
            sniffed = sniff_image(data, stored_type)
            if sniffed is None:
                self._refuse(filename, "unreadable")
                return
            stored_type = sniffed
        elif name == "pdf" and not is_pdf(data):
            self._refuse(filename, "unreadable")
            return
        if any(a.data == data and a.filename == filename for a in self.kept):
            return  # the same file in two alternatives of one mail
        self.kept.append(Attachment(name, filename, stored_type, data))
