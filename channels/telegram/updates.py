"""Telegram's Update objects, read into what the gateway stores (or answers at once).

An update (https://core.telegram.org/bots/api#update) is parsed with python-telegram-bot's own
classes. What comes out is one of:

- a message to store (``Parsed.message``): a private chat's text, caption, voice note, audio
  file, photo or document (media are referenced by ``file_id`` and fetched later by the worker),
  an edit of an earlier message (kind ``edit``), or a tapped answer button (kind ``button``,
  the text is the button's data);
- and/or a Bot API call to make at once (``Parsed.answer``), which the webhook returns as its
  response body (Telegram performs it) and the long-polling loop sends itself: a tapped button
  is always acknowledged (``answerCallbackQuery``), and what the gateway cannot take (a
  sticker, a location, a contact, a file over the size cap) gets a polite reply, with nothing
  stored;
- or nothing (``Parsed.ignored`` says why): messages from bots, channel posts, membership
  changes, update types the gateway did not ask for.

Messages in groups are not read: the first one in a group gets an invitation to write in
private (``Parsed.group_chat``; the caller decides whether that group was already told).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from telegram import Message, Update

from gateway.i18n import languages, translate
from gateway.messages import IncomingMessage

CHANNEL = "telegram"
PROVIDER = "telegram"  # the plugin's name (channels/telegram/plugin.py)
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
# The Bot API's own limit for a bot's downloads (getFile) is 20 MB.
MAX_FILE_BYTES = 20 * 1024 * 1024
# What our answer buttons carry (channels.telegram.commands): anything else is not ours.
BUTTON_DATA = re.compile(r"^(?:k:[a-z0-9][a-z0-9_-]{0,61}|[mq]:\d{1,2}|l:[a-zA-Z_-]{2,12})$")
# A file_id is URL-safe base64 (https://core.telegram.org/bots/api#file). Only ids of that
# shape are stored for the worker to fetch (channels.telegram.bot checks again).
FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")


class InvalidUpdate(ValueError):
    """Not an Update: the webhook answers 400."""


@dataclass(frozen=True)
class Parsed:
    update_id: int
    message: IncomingMessage | None = None
    answer: dict[str, Any] | None = None
    ignored: str | None = None
    group_chat: int | None = None  # a group's chat id: invite its members to write in private
    language: str = "fr"
    notes: list[str] = field(default_factory=list)  # for the log line, never personal data


def language_of(code: str | None) -> str:
    """The catalogue language closest to a Telegram user's interface language."""
    short = (code or "").split("-")[0].lower()
    return short if short in languages() else "fr"


def parse(data: dict[str, Any], *, max_file_bytes: int = MAX_FILE_BYTES) -> Parsed:
    update_id = data.get("update_id") if isinstance(data, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        raise InvalidUpdate("update_id (a non-negative integer) is required")
    try:
        update = Update.de_json(data, None)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise InvalidUpdate(f"not a Telegram update: {type(exc).__name__}") from exc
    if update.callback_query is not None:
        return _button(update, data)
    message = update.message or update.edited_message
    if message is None:
        kinds = [k for k in data if k != "update_id"] or ["nothing"]
        return Parsed(update_id, ignored=f"update of type {kinds[0]}")
    return _message(
        update, message, data, edited=update.edited_message is not None, cap=max_file_bytes
    )


def _reply(chat_id: int, key: str, language: str) -> dict[str, Any]:
    return {
        "method": "sendMessage",
        "chat_id": chat_id,
        "text": translate(f"telegram.{key}", language),
    }


def _message(
    update: Update, message: Message, data: dict[str, Any], *, edited: bool, cap: int
) -> Parsed:
    update_id = update.update_id
    user = message.from_user
    language = language_of(user.language_code if user else None)
    chat = message.chat
    if user is not None and user.is_bot:
        return Parsed(update_id, ignored="message from a bot")
    if chat.type in ("group", "supergroup"):
        if edited:
            return Parsed(update_id, ignored="edit in a group")
        return Parsed(
            update_id, ignored="message in a group", group_chat=chat.id, language=language
        )
    if chat.type != "private" or user is None:
        return Parsed(update_id, ignored=f"message in a {chat.type} chat")

    text = message.text or message.caption or ""
    attachments: list[dict[str, Any]] = []
    answer: dict[str, Any] | None = None
    notes: list[str] = []
    media, unsupported = _media(message)
    for item in media:
        size = item.get("size")
        if not FILE_ID.fullmatch(str(item.get("file_id") or "")):
            answer = _reply(chat.id, "unsupported", language)
            notes.append(f"{item['kind']} with a malformed file_id not kept")
        elif isinstance(size, int) and size > cap:
            answer = _reply(chat.id, "too_big", language)
            notes.append(f"{item['kind']} of {size} bytes over the cap")
        else:
            attachments.append(item)
    if unsupported:
        notes.append(f"unsupported {unsupported}")
        answer = _reply(chat.id, "unsupported", language)
    if not text and not attachments:
        # Nothing the gateway can keep: the polite reply is all there is to do.
        return Parsed(
            update_id,
            answer=answer or _reply(chat.id, "unsupported", language),
            ignored="nothing to keep",
            language=language,
            notes=notes,
        )
    incoming = IncomingMessage(
        channel=CHANNEL,
        provider_message_id=str(update_id),
        sender=str(chat.id),
        recipient=None,
        text=text,
        received_at=_when(message, edited),
        attachments=attachments,
        raw=data,
        provider_ref=str(message.message_id),
        kind="edit" if edited else "message",
        provider=PROVIDER,
    )
    return Parsed(update_id, message=incoming, answer=answer, language=language, notes=notes)


def _when(message: Message, edited: bool) -> datetime:
    stamp = message.edit_date if edited and message.edit_date else message.date
    if stamp is None:
        return datetime.now(UTC)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _media(message: Message) -> tuple[list[dict[str, Any]], str | None]:
    """The media the gateway keeps (by file_id, fetched later), and the name of any content it
    cannot take."""
    kept: list[dict[str, Any]] = []
    if message.voice is not None:
        v = message.voice
        kept.append(
            _item(
                "voice",
                v.file_id,
                v.file_unique_id,
                v.file_size,
                v.mime_type or "audio/ogg",
                duration=_raw_duration(message, "voice"),
            )
        )
    if message.audio is not None:
        a = message.audio
        kept.append(
            _item(
                "audio",
                a.file_id,
                a.file_unique_id,
                a.file_size,
                a.mime_type or "audio/mpeg",
                name=a.file_name,
                duration=_raw_duration(message, "audio"),
            )
        )
    if message.photo:
        # Sizes come smallest first; the largest is what a moderator wants to see.
        p = message.photo[-1]
        kept.append(_item("photo", p.file_id, p.file_unique_id, p.file_size, "image/jpeg"))
    if message.document is not None:
        d = message.document
        mime = d.mime_type or "application/octet-stream"
        kind = (
            "audio"
            if mime.startswith("audio/")
            else "image"
            if mime.startswith("image/")
            else "file"
        )
        kept.append(_item(kind, d.file_id, d.file_unique_id, d.file_size, mime, name=d.file_name))
    for name in (
        "sticker",
        "location",
        "venue",
        "contact",
        "poll",
        "dice",
        "game",
        "video",
        "video_note",
        "animation",
        "story",
        "invoice",
    ):
        if getattr(message, name, None):
            return kept, name
    return kept, None


def _raw_duration(message: Message, name: str) -> Any:
    # Read from the payload: PTB 22 warns that the attribute will become a timedelta.
    media = (message.api_kwargs or {}).get(name) or {}
    raw = getattr(message, name).to_dict() if not media else media
    return raw.get("duration")


def _item(
    kind: str,
    file_id: str,
    unique_id: str,
    size: int | None,
    content_type: str,
    *,
    name: str | None = None,
    duration: Any = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": kind,
        "file_id": file_id,
        "file_unique_id": unique_id,
        "size": size,
        "content_type": content_type,
    }
    if name:
        item["name"] = name[:200]
    if duration is not None:
        item["duration"] = (
            duration.total_seconds() if hasattr(duration, "total_seconds") else duration
        )
    return item


def _button(update: Update, data: dict[str, Any]) -> Parsed:
    query = update.callback_query
    assert query is not None
    language = language_of(query.from_user.language_code if query.from_user else None)
    ack: dict[str, Any] = {"method": "answerCallbackQuery", "callback_query_id": query.id}
    message = query.message
    chat = message.chat if message is not None else None
    if chat is None or chat.type != "private" or query.from_user is None or query.from_user.is_bot:
        return Parsed(update.update_id, answer=ack, ignored="button outside a private chat")
    button = query.data or ""
    if not BUTTON_DATA.match(button):
        ack["text"] = translate("telegram.unknown_button", language)
        return Parsed(
            update.update_id, answer=ack, ignored="unknown button data", language=language
        )
    incoming = IncomingMessage(
        channel=CHANNEL,
        provider_message_id=str(update.update_id),
        sender=str(chat.id),
        recipient=None,
        text=button,
        received_at=datetime.now(UTC),
        raw=data,
        kind="button",
        provider=PROVIDER,
    )
    return Parsed(update.update_id, message=incoming, answer=ack, language=language)
