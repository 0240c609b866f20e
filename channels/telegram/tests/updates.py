"""Builders of realistic Telegram Bot API ``Update`` payloads, for tests.

Each builder returns a new plain ``dict`` shaped as Telegram sends it, to a webhook
(the JSON body of the POST) or in the ``result`` list of ``getUpdates``: exact Bot API
field names (https://core.telegram.org/bots/api#update), ``date`` as a Unix
timestamp, ``from`` a resident (``is_bot`` false, ``language_code`` "fr").

Chats are private by default: a positive ``chat_id`` is a private chat whose user id
is the chat id (as Telegram does). A negative ``chat_id`` gives a basic group, and one
at or below -1000000000000 (``-100...``) a supergroup; ``group_text`` and
``channel_post`` build those explicitly.

``update_id`` and ``message_id`` come from module-level counters, so updates built in
one test run are unique and increasing; ``next_update_id()`` hands one out. Files
carry the ``file_id`` given (register the bytes with ``FakeTelegram.add_file`` to make
them downloadable) and a ``file_unique_id`` derived from it, the same value the fake's
``getFile`` answers.

Typical use::

    from channels.telegram.tests import updates as tu

    update = tu.voice(4242, fake.add_file(ogg_bytes), duration=4)
    fake.push_update(update)                  # for a getUpdates consumer
    # or POST it as JSON to the gateway's webhook endpoint
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
from typing import Any

BOT_ID = 123456789
BOT_USERNAME = "agora_test_bot"
BOT_FIRST_NAME = "Agora"
RESIDENT_FIRST_NAME = "Camille"
GROUP_TITLE = "Conseil de quartier Croix-Rousse"
CHANNEL_TITLE = "Ville — consultations"
SUPERGROUP_BELOW = -1_000_000_000_000  # supergroup and channel ids are -100xxxxxxxxxx

_update_ids = itertools.count(712_400_001)
_message_ids = itertools.count(1001)
_serials = itertools.count(1)


def next_update_id() -> int:
    """A fresh ``update_id``, greater than every one handed out before."""
    return next(_update_ids)


def next_message_id() -> int:
    """A fresh ``message_id``."""
    return next(_message_ids)


def now() -> int:
    return int(time.time())


def file_unique_id(file_id: str) -> str:
    """The ``file_unique_id`` of ``file_id``: stable, short, as the fake's getFile answers."""
    digest = hashlib.sha256(file_id.encode()).digest()[:9]
    return "AgAD" + base64.urlsafe_b64encode(digest).decode()


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of Telegram's entity offsets and lengths."""
    return len(text.encode("utf-16-le")) // 2


# -- users and chats ---------------------------------------------------------


def bot_user() -> dict[str, Any]:
    """The gateway's bot as a message's ``from`` (getMe adds its can_* flags)."""
    return {"id": BOT_ID, "is_bot": True, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME}


def user(user_id: int, *, language_code: str | None = "fr") -> dict[str, Any]:
    """A resident: a ``User`` with ``is_bot`` false."""
    out: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": RESIDENT_FIRST_NAME}
    if language_code is not None:
        out["language_code"] = language_code
    return out


def chat(chat_id: int) -> dict[str, Any]:
    """A ``Chat``: private for a positive id, group or supergroup (``-100...``) otherwise."""
    if chat_id > 0:
        return {"id": chat_id, "first_name": RESIDENT_FIRST_NAME, "type": "private"}
    kind = "supergroup" if chat_id <= SUPERGROUP_BELOW else "group"
    return {"id": chat_id, "title": GROUP_TITLE, "type": kind}


def _sender_id(chat_id: int, user_id: int | None) -> int:
    if user_id is not None:
        return user_id
    if chat_id > 0:
        return chat_id
    return 7_000_000_000 + abs(chat_id) % 1_000_000


def _message(
    chat_id: int,
    *,
    user_id: int | None = None,
    language_code: str | None = "fr",
    message_id: int | None = None,
    date: int | None = None,
    **content: Any,
) -> dict[str, Any]:
    return {
        "message_id": message_id if message_id is not None else next_message_id(),
        "from": user(_sender_id(chat_id, user_id), language_code=language_code),
        "chat": chat(chat_id),
        "date": date if date is not None else now(),
        **content,
    }


def _update(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"update_id": next_update_id(), kind: payload}


def _text_content(text: str) -> dict[str, Any]:
    """``text`` plus a ``bot_command`` entity when it starts with "/" (``/start@bot args``)."""
    content: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        content["entities"] = [{"offset": 0, "length": utf16_len(command), "type": "bot_command"}]
    return content


def _caption(caption: str | None) -> dict[str, Any]:
    return {"caption": caption} if caption is not None else {}


# -- messages from a resident ------------------------------------------------


def text(
    chat_id: int, text: str, *, user_id: int | None = None, language_code: str = "fr"
) -> dict[str, Any]:
    """A text message; "/start" and other commands carry their ``bot_command`` entity."""
    message = _message(chat_id, user_id=user_id, language_code=language_code, **_text_content(text))
    return _update("message", message)


def edited_text(
    chat_id: int, message_id: int, text: str, *, user_id: int | None = None
) -> dict[str, Any]:
    """An ``edited_message``: the resident edited message ``message_id`` to ``text``."""
    edited = now()
    message = _message(
        chat_id,
        user_id=user_id,
        message_id=message_id,
        date=edited - 120,
        edit_date=edited,
        **_text_content(text),
    )
    return _update("edited_message", message)


def voice(
    chat_id: int,
    file_id: str,
    *,
    duration: int = 3,
    file_size: int | None = None,
    mime_type: str = "audio/ogg",
    caption: str | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """A voice note (OGG/Opus); ``file_size`` defaults to ~2.6 kB per second of speech."""
    size = file_size if file_size is not None else 2_600 * duration + 400
    media = {
        "file_id": file_id,
        "file_unique_id": file_unique_id(file_id),
        "duration": duration,
        "mime_type": mime_type,
        "file_size": size,
    }
    return _update("message", _message(chat_id, user_id=user_id, voice=media, **_caption(caption)))


def audio(
    chat_id: int,
    file_id: str,
    *,
    mime_type: str = "audio/mpeg",
    file_name: str = "message.mp3",
    file_size: int | None = None,
    duration: int = 30,
    caption: str | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """An audio file sent as music; ``file_size`` defaults to 128 kbit/s times ``duration``."""
    size = file_size if file_size is not None else 16_000 * duration
    media = {
        "file_id": file_id,
        "file_unique_id": file_unique_id(file_id),
        "duration": duration,
        "file_name": file_name,
        "mime_type": mime_type,
        "file_size": size,
    }
    return _update("message", _message(chat_id, user_id=user_id, audio=media, **_caption(caption)))


def photo(
    chat_id: int,
    file_ids: list[tuple[str, int, int, int]],
    caption: str | None = None,
    *,
    user_id: int | None = None,
) -> dict[str, Any]:
    """A photo: one ``PhotoSize`` per ``(file_id, width, height, file_size)``, smallest first."""
    sizes = [
        {
            "file_id": file_id,
            "file_unique_id": file_unique_id(file_id),
            "file_size": file_size,
            "width": width,
            "height": height,
        }
        for file_id, width, height, file_size in file_ids
    ]
    return _update("message", _message(chat_id, user_id=user_id, photo=sizes, **_caption(caption)))


def document(
    chat_id: int,
    file_id: str,
    *,
    mime_type: str = "application/pdf",
    file_name: str = "contribution.pdf",
    file_size: int = 48_213,
    caption: str | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """A file sent as a document (also how Telegram delivers audio sent "as file")."""
    media = {
        "file_name": file_name,
        "mime_type": mime_type,
        "file_id": file_id,
        "file_unique_id": file_unique_id(file_id),
        "file_size": file_size,
    }
    message = _message(chat_id, user_id=user_id, document=media, **_caption(caption))
    return _update("message", message)


def sticker(chat_id: int, *, emoji: str = "👍", user_id: int | None = None) -> dict[str, Any]:
    """A regular (static WebP) sticker."""
    file_id = f"CAACAgIAAxkBAAIC{next(_serials):06d}StickerFileId"
    thumb_id = f"AAMCAgADGQEAAgI{next(_serials):06d}StickerThumb"
    media = {
        "width": 512,
        "height": 512,
        "emoji": emoji,
        "set_name": "AgoraCitoyens",
        "is_animated": False,
        "is_video": False,
        "type": "regular",
        "thumbnail": {
            "file_id": thumb_id,
            "file_unique_id": file_unique_id(thumb_id),
            "file_size": 5_210,
            "width": 128,
            "height": 128,
        },
        "file_id": file_id,
        "file_unique_id": file_unique_id(file_id),
        "file_size": 23_866,
    }
    return _update("message", _message(chat_id, user_id=user_id, sticker=media))


def location(
    chat_id: int, latitude: float, longitude: float, *, user_id: int | None = None
) -> dict[str, Any]:
    """A shared (static) location."""
    place = {"latitude": latitude, "longitude": longitude}
    return _update("message", _message(chat_id, user_id=user_id, location=place))


def contact(
    chat_id: int,
    phone_number: str,
    first_name: str,
    *,
    user_id: int | None = None,
    last_name: str | None = None,
) -> dict[str, Any]:
    """A shared contact; pass ``user_id`` (the sender's id) for "share my phone number"."""
    card: dict[str, Any] = {"phone_number": phone_number, "first_name": first_name}
    if last_name is not None:
        card["last_name"] = last_name
    if user_id is not None:
        card["user_id"] = user_id
    return _update("message", _message(chat_id, contact=card))


# -- callbacks, groups, channels, bots, membership ---------------------------


def callback(
    chat_id: int,
    data: str,
    *,
    message_id: int | None = None,
    user_id: int | None = None,
    message_text: str = "Votre avis compte : choisissez une réponse.",
    language_code: str = "fr",
) -> dict[str, Any]:
    """A ``callback_query``: the resident pressed an inline button carrying ``data``.

    ``message`` is the bot's message bearing the keyboard (``message_id`` if given).
    """
    sent = {
        "message_id": message_id if message_id is not None else next_message_id(),
        "from": bot_user(),
        "chat": chat(chat_id),
        "date": now() - 60,
        "text": message_text,
        "reply_markup": {"inline_keyboard": [[{"text": "Oui", "callback_data": data}]]},
    }
    query = {
        "id": str(4_382_000_000_000_000_000 + next(_serials)),
        "from": user(_sender_id(chat_id, user_id), language_code=language_code),
        "message": sent,
        "chat_instance": str(-(abs(chat_id) * 7_919 + 1_234_567_890_123) % 10**19),
        "data": data,
    }
    return _update("callback_query", query)


def group_text(
    chat_id: int, text: str, *, type: str = "group", user_id: int | None = None
) -> dict[str, Any]:
    """A text message in a group or supergroup (``chat_id`` negative)."""
    if chat_id >= 0:
        raise ValueError("group chat ids are negative")
    if type not in ("group", "supergroup"):
        raise ValueError(f"type must be 'group' or 'supergroup', not {type!r}")
    message = _message(chat_id, user_id=user_id, **_text_content(text))
    message["chat"] = {"id": chat_id, "title": GROUP_TITLE, "type": type}
    return _update("message", message)


def channel_post(chat_id: int, text: str) -> dict[str, Any]:
    """A post in a channel the bot administers: no ``from``, ``sender_chat`` is the channel."""
    channel = {"id": chat_id, "title": CHANNEL_TITLE, "type": "channel"}
    post = {
        "message_id": next_message_id(),
        "sender_chat": dict(channel),
        "chat": channel,
        "date": now(),
        **_text_content(text),
    }
    return _update("channel_post", post)


def from_bot(chat_id: int, text: str) -> dict[str, Any]:
    """A text message sent by another bot (``from.is_bot`` true)."""
    message = _message(chat_id, **_text_content(text))
    message["from"] = {
        "id": 6_100_000_001,
        "is_bot": True,
        "first_name": "Relais",
        "username": "relais_quartier_bot",
    }
    return _update("message", message)


def my_chat_member(
    chat_id: int, status: str = "kicked", *, user_id: int | None = None
) -> dict[str, Any]:
    """The bot's membership changed: "kicked" (a resident blocked the bot), "member"
    (unblocked / restarted) or "left"."""
    me = bot_user()
    banned = {"status": "kicked", "user": me, "until_date": 0}
    member = {"status": "member", "user": me}
    left = {"status": "left", "user": me}
    transitions = {"kicked": (member, banned), "member": (banned, member), "left": (member, left)}
    if status not in transitions:
        raise ValueError(f"status must be one of {sorted(transitions)}, not {status!r}")
    old, new = transitions[status]
    change = {
        "chat": chat(chat_id),
        "from": user(_sender_id(chat_id, user_id)),
        "date": now(),
        "old_chat_member": old,
        "new_chat_member": new,
    }
    return _update("my_chat_member", change)


def update_type(update: dict[str, Any]) -> str:
    """The kind of an update: its one key besides ``update_id`` ("message", ...)."""
    kinds = [key for key in update if key != "update_id"]
    if len(kinds) != 1:
        raise ValueError(f"an update has exactly one payload, got {kinds}")
    return kinds[0]
