"""The cap on the text taken from any message (``MAX_TEXT_CHARS``), the whole text kept beside.

Every channel's message becomes a stored row in one place (gateway.ingest), and the cap is
applied there, so no channel can forget it. A text longer than the cap is cut at a word
boundary and ends with a marker in the gateway's language (``console.text_cut``); the whole
text, exactly as the channel delivered it, is written to ``media/text/`` under ``DATA_DIR``
(owner-only, like every file the gateway writes) and listed in the message's attachments as
kind ``text``. It travels to the contribution like a photo does (gateway.media), and the
console lists it with the other attachments and shows it as plain text.

Why a cap at all: what a resident writes is read by the conversation engine, the moderation
console (suggested redactions on every page view), the live board and the text grouping, and
each costs in proportion to the text; an email may carry 25 MB. Why 10,000 characters by
default: some 1,500 words, four pages. An SMS is at most 1,600 characters (a usual
concatenation limit), a chat message 4,096; only a pasted document or an attack goes
beyond, and a moderator reads the rest in the attachment.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.files import private_dir, write_private
from gateway.i18n import languages, translate
from gateway.messages import IncomingMessage

FOLDER = "media/text"
KIND = "text"
CONTENT_TYPE = "text/plain; charset=utf-8"
MARKER_KEY = "console.text_cut"
# A cut goes back to the last blank at most this far (a fifth of the cap): a text with no
# blank near the end (a long link, digits) is cut exactly at the cap.
_LOOK_BACK = 0.2
_SPACE = re.compile(r"\s")
# What no file or database column can hold: the exact text stays in the encrypted raw payload.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def cut(text: str, limit: int) -> str | None:
    """The text cut to at most ``limit`` characters at a word boundary, without the marker;
    None when it is not longer than ``limit`` (or ``limit`` is 0: no cap)."""
    if limit <= 0 or len(text) <= limit:
        return None
    # The last blank at or before the limit, looking back no further than _LOOK_BACK of it.
    window = text[: limit + 1]
    floor = int(limit * (1 - _LOOK_BACK))
    blank = max((m.start() for m in _SPACE.finditer(window, floor)), default=None)
    return (window[:blank] if blank is not None else text[:limit]).rstrip()


def marker(language: str) -> str:
    return translate(MARKER_KEY, language)


def without_marker(text: str) -> str:
    """``text`` without the cut's marker at its end, in whichever language it was written: the
    public version a moderator publishes by default, or reads on air, must not carry a note
    meant for moderators."""
    for language in languages():
        note = marker(language)
        if text.rstrip().endswith(note):
            return text.rstrip()[: -len(note)].rstrip()
    return text


def capped(message: IncomingMessage, data_path: Path, limit: int, language: str) -> IncomingMessage:
    """``message`` with its text cut to ``limit`` and the whole text attached (module doc);
    the message itself when its text fits."""
    kept = cut(message.text, limit)
    if kept is None:
        return message
    whole = _UNSTORABLE.sub("\ufffd", message.text).encode("utf-8")
    relative = f"{FOLDER}/{_name(message)}.txt"
    target = data_path / relative
    private_dir(target.parent)
    partial = target.with_name(target.name + ".part")
    write_private(partial, whole)
    partial.replace(target)  # a duplicate delivery rewrites the same file with the same text
    item: dict[str, Any] = {
        "kind": KIND,
        "path": relative,
        "content_type": CONTENT_TYPE,
        "size": len(whole),
        "name": None,
    }
    return replace(
        message,
        text=f"{kept}\n\n{marker(language)}",
        attachments=[*message.attachments, item],
    )


def _name(message: IncomingMessage) -> str:
    """One file per message, the same for a duplicate delivery; never the text's own hash,
    which two residents sending the same tract would share (erasing one's would erase the
    other's)."""
    key = f"{message.channel}\x00{message.provider_message_id}"
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]
