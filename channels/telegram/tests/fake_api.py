"""A fake of the Telegram Bot API server (api.telegram.org), for tests.

It speaks the wire format of https://core.telegram.org/bots/api, so a real client
(python-telegram-bot 22.x, or plain HTTP) can be exercised unchanged against it.

Wire format
-----------
Every method is served at ``{base_url}/bot{token}/{method}`` (method names are
case-insensitive, as on Telegram). Parameters arrive as a GET query string,
``application/x-www-form-urlencoded``, ``application/json`` or ``multipart/form-data``
(the query string is also read on POST). In forms, object values (``reply_markup``,
``allowed_updates``, ``entities`` ...) are JSON strings; the fake decodes them, and
numbers and booleans of other parameters, so ``calls`` holds Python values.
Answers are ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {"retry_after": S}}``
(``parameters`` only on 429). A wrong token gets 401 "Unauthorized", an unknown
method 404 "Not Found". Files are downloaded from ``{base_url}/file/bot{token}/{file_path}``.

Pointing python-telegram-bot at it
----------------------------------
PTB builds its URLs as ``base_url + token + "/" + method`` and
``base_file_url + token + "/" + file_path``, hence::

    from telegram import Bot

    bot = Bot(fake.token, base_url=f"{fake.base_url}/bot",
              base_file_url=f"{fake.base_url}/file/bot")
    async with bot:                 # initialize(): calls getMe
        await bot.send_message(4242, "Merci !")

(``fake.ptb_bot()`` builds exactly that.) PTB 22 sends every call as a POST with a
form-encoded body (multipart when uploading a file), encodes every non-string value
with ``json.dumps`` (``chat_id=4242``, ``drop_pending_updates=true``,
``reply_markup={"inline_keyboard": ...}``), drops parameters left at ``None``, and
maps error statuses to exceptions: 400 ``BadRequest``, 401 and 404 ``InvalidToken``,
403 ``Forbidden``, 409 ``Conflict``, any status with ``parameters.retry_after``
``RetryAfter``, others ``NetworkError``.

Behaviour worth knowing
-----------------------
* Message ids increase across chats; ``date`` is the current Unix time; a chat is
  private (``first_name`` "Camille") unless the fake has seen it in a pushed update
  or its id is negative (group, or supergroup for ``-100...`` ids).
* ``parse_mode="HTML"`` is parsed as Telegram does (supported tags only, the
  returned ``text`` stripped of markup, entities computed); ``"MarkdownV2"`` is
  checked for unescaped reserved characters (the classic "Character '.' is
  reserved" error) and returned unescaped, without entities; legacy ``"Markdown"``
  is echoed.
* ``getUpdates`` long-polls for at most ``min(timeout, max_poll_wait)`` seconds
  (``max_poll_wait`` is 2 s), confirms (forgets) updates below ``offset`` and
  answers 409 while a webhook is set. ``allowed_updates`` (from ``getUpdates`` or
  ``setWebhook``) applies to updates pushed afterwards, as on Telegram: by default
  ``chat_member``, ``message_reaction`` and ``message_reaction_count`` updates are
  not delivered, and ``push_update`` returns None for them.
* ``setWebhook`` enforces Telegram's rules (HTTPS, ports 80/88/443/8443, secret
  token characters). The fake does not deliver updates to the webhook: tests POST
  builder payloads (channels.telegram.tests.updates) to the gateway themselves.

Use
---
From test code::

    with FakeTelegram() as fake:
        ...      # fake.base_url, fake.sent, fake.fail_next(...), fake.push_update(...)

Or run it on its own (prints ``{"base_url": ..., "token": ...}`` on one line)::

    python -m channels.telegram.tests.fake_api --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import re
import secrets
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from channels.telegram.tests.updates import (
    BOT_FIRST_NAME,
    BOT_ID,
    BOT_USERNAME,
    RESIDENT_FIRST_NAME,
    SUPERGROUP_BELOW,
    file_unique_id,
    next_update_id,
    update_type,
    utf16_len,
)
from tests.fakes.ratelimit import Meter, admit
from tests.fakes.serving import ThreadedServer

DEFAULT_TOKEN = f"{BOT_ID}:AAEfakeTokenForTestsOnly_abcdefghij"
MAX_TEXT_CHARS = 4096
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses files over 20 MB
MAX_POLL_WAIT = 2.0
MAX_CALLBACK_DATA_BYTES = 64
WEBHOOK_PORTS = (80, 88, 443, 8443)
DEFAULT_MAX_CONNECTIONS = 40
# Update types Telegram does not deliver unless asked for in allowed_updates.
NOT_DELIVERED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
DEFAULT_DESCRIPTIONS: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)

# Parameters whose form value is JSON (objects, arrays) rather than a scalar.
JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "entities",
        "caption_entities",
        "explanation_entities",
        "link_preview_options",
        "reply_parameters",
        "media",
        "commands",
        "scope",
        "results",
        "options",
        "menu_button",
        "permissions",
        "reaction",
        "prices",
        "button",
    }
)
# Parameters that are strings even when they look like numbers or booleans.
STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "ip_address",
        "callback_query_id",
        "inline_query_id",
        "inline_message_id",
        "file_id",
        "action",
        "business_connection_id",
        "message_effect_id",
        "title",
        "description",
        "short_description",
        "name",
        "question",
        "emoji",
        "language_code",
        "phone_number",
        "first_name",
        "last_name",
        "vcard",
        "address",
        "custom_title",
        "next_offset",
        "voice",
        "audio",
        "document",
        "photo",
        "video",
        "animation",
        "video_note",
        "sticker",
        "thumbnail",
        "certificate",
    }
)
_INTEGER = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.status == 429 and self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status)


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def ok(result: Any, description: str | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description is not None:
        body["description"] = description
    return web.json_response(body)


# -- parameters --------------------------------------------------------------


def _scalar(value: str) -> Any:
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    if _INTEGER.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def decode_param(name: str, value: Any) -> Any:
    """A parameter as Python: JSON objects decoded, numbers and booleans typed."""
    if not isinstance(value, str) or name in STRING_PARAMS:
        return value
    if name in JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            what = "reply keyboard markup" if name == "reply_markup" else name
            raise bad_request(f"can't parse {what} JSON object") from None
    if name in ("chat_id", "from_chat_id"):
        return int(value) if _INTEGER.fullmatch(value) else value
    return _scalar(value)


async def read_params(request: web.Request) -> tuple[dict[str, Any], ApiError | None]:
    """The call's parameters, decoded, and the error decoding them raised if any."""
    raw: dict[str, Any] = dict(request.query)
    if request.method == "POST":
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                return raw, bad_request("can't parse JSON object")
            if isinstance(body, dict):
                raw.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key in form:
                value = form.getone(key)
                if isinstance(value, web.FileField):
                    raw[key] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "data": value.file.read(),
                    }
                else:
                    raw[key] = value
    params: dict[str, Any] = {}
    error: ApiError | None = None
    for key, value in raw.items():
        try:
            params[key] = decode_param(key, value)
        except ApiError as exc:
            params[key] = value
            error = error or exc
    return params, error


# -- formatted text ------------------------------------------------------------

_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


class _TelegramHtml(HTMLParser):
    """Telegram's HTML parse mode: supported tags only, properly nested."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.parts: list[str] = []
        self.length = 0  # UTF-16 units so far
        self.stack: list[tuple[str, dict[str, Any]]] = []
        self.entities: list[dict[str, Any]] = []

    def byte_offset(self) -> int:
        line, column = self.getpos()
        return len(self.source[: self.line_starts[line - 1] + column].encode())

    def fail(self, detail: str) -> ApiError:
        return bad_request(f"can't parse entities: {detail}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kind = _HTML_ENTITY_TYPES.get(tag)
        attributes = dict(attrs)
        if kind is None:
            raise self.fail(f'Unsupported start tag "{tag}" at byte offset {self.byte_offset()}')
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            raise self.fail(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset()}'
            )
        entity: dict[str, Any] = {"type": kind, "offset": self.length}
        if tag == "a":
            entity["url"] = attributes.get("href") or ""
        if tag == "tg-emoji":
            entity["custom_emoji_id"] = attributes.get("emoji-id") or ""
        if tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        if tag == "code" and self.stack and self.stack[-1][0] == "pre":
            language = (attributes.get("class") or "").removeprefix("language-")
            if language:
                self.stack[-1][1]["language"] = language
            entity = {}  # <pre><code class="language-x"> is one pre entity
        self.stack.append((tag, entity))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            expected = f'"</{self.stack[-1][0]}>"' if self.stack else "no end tag"
            raise self.fail(
                f"Unmatched end tag at byte offset {self.byte_offset()}, "
                f'expected {expected}, found "</{tag}>"'
            )
        _, entity = self.stack.pop()
        if entity and self.length > entity["offset"]:
            entity["length"] = self.length - entity["offset"]
            self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.length += utf16_len(data)

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        self.feed(self.source)
        self.close()
        if self.stack:
            raise self.fail(f'Can\'t find end tag corresponding to start tag "{self.stack[0][0]}"')
        entities = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), entities


_MARKDOWN_V2_MARKERS = "*_~|`[]()"
_MARKDOWN_V2_RESERVED = ">#+-={}.!"


def _markdown_v2(source: str) -> str:
    """Check MarkdownV2's escaping rules; return the text without markup or escapes."""
    out: list[str] = []
    i, n = 0, len(source)

    def reserved(ch: str, at: int) -> ApiError:
        return bad_request(
            f"can't parse entities: Character '{ch}' is reserved and must be escaped "
            f"with the preceding '\\' (at byte offset {len(source[:at].encode())})"
        )

    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n:
            out.append(source[i + 1])
            i += 2
        elif source.startswith("```", i):
            end = source.find("```", i + 3)
            if end < 0:
                raise bad_request("can't parse entities: Can't find end of Pre entity")
            body = source[i + 3 : end]
            first, newline, rest = body.partition("\n")
            out.append(rest if newline and first and " " not in first else body)
            i = end + 3
        elif ch == "`":
            end = source.find("`", i + 1)
            if end < 0:
                raise bad_request("can't parse entities: Can't find end of Code entity")
            out.append(source[i + 1 : end].replace("\\`", "`").replace("\\\\", "\\"))
            i = end + 1
        elif ch == "]" and source.startswith("(", i + 1):
            end = source.find(")", i + 2)
            if end < 0:
                raise reserved("(", i + 1)
            i = end + 1
        elif ch in "()":
            raise reserved(ch, i)
        elif ch in _MARKDOWN_V2_MARKERS:
            i += 1
        elif ch == ">" and (i == 0 or source[i - 1] == "\n"):
            i += 1
        elif ch == "!" and source.startswith("[", i + 1):
            i += 1
        elif ch in _MARKDOWN_V2_RESERVED:
            raise reserved(ch, i)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def render_text(source: str, parse_mode: Any) -> tuple[str, list[dict[str, Any]]]:
    """The text and entities Telegram would store for ``source`` sent with ``parse_mode``."""
    mode = parse_mode.lower() if isinstance(parse_mode, str) else ""
    if mode == "html":
        return _TelegramHtml(source).parse()
    if mode == "markdownv2":
        return _markdown_v2(source), []
    if mode in ("", "markdown"):
        return source, []
    raise bad_request(f"unsupported parse_mode {parse_mode!r}")


def check_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Validate ``reply_markup``; return it when Telegram keeps it on the Message (inline)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if not any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
            raise bad_request("can't parse reply keyboard markup JSON object")
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request("can't parse inline keyboard button: Text must be a String")
            if not any(action in button for action in INLINE_BUTTON_ACTIONS):
                raise bad_request("text buttons are unallowed in the inline keyboard")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
    if not any(rows):
        return None
    return {"inline_keyboard": rows}


# -- state ---------------------------------------------------------------------


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None


@dataclass
class _File:
    file_id: str
    file_unique_id: str
    file_path: str
    file_size: int
    data: bytes


@dataclass
class _State:
    token: str
    bot: dict[str, Any]
    lock: threading.Condition = field(default_factory=threading.Condition)
    calls: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    sent_messages: list[dict[str, Any]] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # time.time() of each sent message
    callback_answers: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, list[_Failure]] = field(default_factory=dict)
    files: dict[str, _File] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    allowed_updates: list[str] | None = None
    webhook: dict[str, Any] | None = None
    commands: list[dict[str, Any]] = field(default_factory=list)
    next_message_id: int = 1
    max_poll_wait: float = MAX_POLL_WAIT
    loop: asyncio.AbstractEventLoop | None = None
    closing: bool = False
    # When each accepted sendMessage arrived (time.monotonic), in the order of ``sent``.
    sent_times: list[float] = field(default_factory=list)
    # Messages a second per chat and in all (``limit``): above, 429 with retry_after.
    per_chat: Meter | None = None
    overall: Meter | None = None
    throttled: int = 0  # sendMessage calls the meters refused
    # Long polls waiting for an update; touched only in the server's loop.
    pollers: set[asyncio.Future[None]] = field(default_factory=set)

    def wake_pollers(self) -> None:
        for waiter in self.pollers:
            if not waiter.done():
                waiter.set_result(None)

    def chat(self, chat_id: Any) -> dict[str, Any]:
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise bad_request("chat not found")
        known = self.chats.get(chat_id)
        if known is not None:
            return dict(known)
        if chat_id > 0:
            return {"id": chat_id, "first_name": RESIDENT_FIRST_NAME, "type": "private"}
        kind = "supergroup" if chat_id <= SUPERGROUP_BELOW else "group"
        return {"id": chat_id, "title": "Agora", "type": kind}

    def bot_as_sender(self) -> dict[str, Any]:
        return {k: self.bot[k] for k in ("id", "is_bot", "first_name", "username")}

    def learn_chats(self, update: dict[str, Any]) -> None:
        for value in update.values():
            if not isinstance(value, dict):
                continue
            for holder in (value, value.get("message")):
                found = holder.get("chat") if isinstance(holder, dict) else None
                if isinstance(found, dict) and isinstance(found.get("id"), int):
                    self.chats[found["id"]] = dict(found)

    def delivered(self, kind: str) -> bool:
        if not self.allowed_updates:
            return kind not in NOT_DELIVERED_BY_DEFAULT
        return kind in self.allowed_updates


STATE = web.AppKey("telegram_state", _State)
Handler = Callable[[_State, dict[str, Any]], Awaitable[web.Response]]


# -- methods -------------------------------------------------------------------


async def get_me(state: _State, params: dict[str, Any]) -> web.Response:
    return ok(dict(state.bot))


def _require_chat(params: dict[str, Any]) -> Any:
    chat_id = params.get("chat_id")
    if chat_id is None or chat_id == "":
        raise bad_request("chat_id is empty")
    return chat_id


async def send_message(state: _State, params: dict[str, Any]) -> web.Response:
    chat_id = _require_chat(params)
    source = params.get("text")
    if not isinstance(source, str) or not source.strip():
        raise bad_request("message text is empty")
    text, entities = render_text(source, params.get("parse_mode"))
    if "entities" in params and isinstance(params["entities"], list):
        entities = params["entities"]
    if not text.strip():
        raise bad_request("message text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise bad_request("message is too long")
    markup = check_reply_markup(params.get("reply_markup"))
    metered = [(state.per_chat, str(chat_id)), (state.overall, "all")]
    wait = admit(state.lock, [(meter, key, 1) for meter, key in metered if meter is not None])
    if wait is not None:
        with state.lock:
            state.throttled += 1
        raise ApiError(429, f"Too Many Requests: retry after {wait}", wait)
    with state.lock:
        chat = state.chat(chat_id)
        message: dict[str, Any] = {
            "message_id": state.next_message_id,
            "from": state.bot_as_sender(),
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        if markup is not None:
            message["reply_markup"] = markup
        state.next_message_id += 1
        state.messages[(chat["id"], message["message_id"])] = message
        state.sent.append(dict(params))
        state.sent_times.append(time.monotonic())
        state.sent_messages.append(json.loads(json.dumps(message)))
        state.sent_at.append(time.time())
        state.lock.notify_all()
    return ok(message)


async def answer_callback_query(state: _State, params: dict[str, Any]) -> web.Response:
    query_id = params.get("callback_query_id")
    if not isinstance(query_id, str) or not query_id:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    with state.lock:
        state.callback_answers.append(dict(params))
    return ok(True)


async def edit_message_reply_markup(state: _State, params: dict[str, Any]) -> web.Response:
    markup = check_reply_markup(params.get("reply_markup"))
    if params.get("inline_message_id"):
        return ok(True)
    chat_id = _require_chat(params)
    message_id = params.get("message_id")
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise bad_request("message identifier is not specified")
    with state.lock:
        chat = state.chat(chat_id)
        message = state.messages.get((chat["id"], message_id))
        if message is None:
            # Sent before the fake started (or built by channels.telegram.tests.updates.callback).
            message = {
                "message_id": message_id,
                "from": state.bot_as_sender(),
                "chat": chat,
                "date": int(time.time()) - 60,
            }
        elif message.get("reply_markup") == markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message"
            )
        message = dict(message, edit_date=int(time.time()))
        message.pop("reply_markup", None)
        if markup is not None:
            message["reply_markup"] = markup
        state.messages[(chat["id"], message_id)] = message
    return ok(message)


async def send_chat_action(state: _State, params: dict[str, Any]) -> web.Response:
    chat_id = _require_chat(params)
    if params.get("action") not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    with state.lock:
        state.chat(chat_id)
    return ok(True)


async def set_my_commands(state: _State, params: dict[str, Any]) -> web.Response:
    commands = params.get("commands")
    if not isinstance(commands, list) or not commands or len(commands) > 100:
        raise bad_request("commands must be a non-empty array of at most 100 BotCommand")
    for command in commands:
        name = command.get("command") if isinstance(command, dict) else None
        description = command.get("description") if isinstance(command, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    with state.lock:
        state.commands = list(commands)
    return ok(True)


async def get_file(state: _State, params: dict[str, Any]) -> web.Response:
    file_id = params.get("file_id")
    with state.lock:
        stored = state.files.get(file_id) if isinstance(file_id, str) else None
    if stored is None:
        raise bad_request("invalid file_id")
    if stored.file_size > MAX_DOWNLOAD_BYTES:
        raise bad_request("file is too big")
    return ok(
        {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }
    )


def _check_webhook_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    try:
        port = parts.port or 443
    except ValueError:
        port = -1
    if port not in WEBHOOK_PORTS:
        raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")


async def set_webhook(state: _State, params: dict[str, Any]) -> web.Response:
    url = params.get("url")
    if not isinstance(url, str):
        url = ""
    if url:
        _check_webhook_url(url)
    secret = params.get("secret_token")
    if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
        raise bad_request("secret token contains unallowed characters")
    allowed = params.get("allowed_updates")
    with state.lock:
        if params.get("drop_pending_updates") is True:
            state.updates.clear()
        if isinstance(allowed, list):
            state.allowed_updates = list(allowed)
        if not url:
            was_set = state.webhook is not None
            state.webhook = None
            return ok(True, "Webhook was deleted" if was_set else "Webhook is already deleted")
        was_set = state.webhook is not None and state.webhook.get("url") == url
        state.webhook = dict(params)
    return ok(True, "Webhook is already set" if was_set else "Webhook was set")


async def delete_webhook(state: _State, params: dict[str, Any]) -> web.Response:
    with state.lock:
        if params.get("drop_pending_updates") is True:
            state.updates.clear()
        was_set = state.webhook is not None
        state.webhook = None
    return ok(True, "Webhook was deleted" if was_set else "Webhook is already deleted")


async def get_webhook_info(state: _State, params: dict[str, Any]) -> web.Response:
    with state.lock:
        webhook = state.webhook
        info: dict[str, Any] = {
            "url": webhook["url"] if webhook else "",
            "has_custom_certificate": bool(
                webhook and isinstance(webhook.get("certificate"), dict)
            ),
            "pending_update_count": len(state.updates),
        }
        if webhook:
            info["max_connections"] = webhook.get("max_connections") or DEFAULT_MAX_CONNECTIONS
            if webhook.get("ip_address"):
                info["ip_address"] = webhook["ip_address"]
            if state.allowed_updates:
                info["allowed_updates"] = list(state.allowed_updates)
    return ok(info)


def _take_updates(state: _State, offset: Any, limit: int) -> list[dict[str, Any]]:
    """Confirm updates below ``offset`` (a negative one keeps the last -offset) and peek."""
    if isinstance(offset, int) and not isinstance(offset, bool):
        if offset < 0:
            del state.updates[: max(0, len(state.updates) + offset)]
        elif offset > 0:
            state.updates[:] = [u for u in state.updates if u["update_id"] >= offset]
    return [json.loads(json.dumps(u)) for u in state.updates[:limit]]


async def get_updates(state: _State, params: dict[str, Any]) -> web.Response:
    limit = params.get("limit")
    limit = min(max(limit, 1), 100) if isinstance(limit, int) else 100
    timeout = params.get("timeout")
    timeout = max(float(timeout), 0.0) if isinstance(timeout, int | float) else 0.0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(timeout, state.max_poll_wait)
    allowed = params.get("allowed_updates")
    offset = params.get("offset")
    while True:
        with state.lock:
            if state.webhook is not None:
                raise ApiError(409, WEBHOOK_ACTIVE)
            if isinstance(allowed, list):
                state.allowed_updates = list(allowed)
            found = _take_updates(state, offset, limit)
        remaining = deadline - loop.time()
        if found or remaining <= 0 or state.closing:
            return ok(found)
        waiter: asyncio.Future[None] = loop.create_future()
        state.pollers.add(waiter)
        try:
            await asyncio.wait([waiter], timeout=remaining)
        finally:
            state.pollers.discard(waiter)


METHODS: dict[str, tuple[str, Handler]] = {
    name.lower(): (name, handler)
    for name, handler in (
        ("getMe", get_me),
        ("sendMessage", send_message),
        ("answerCallbackQuery", answer_callback_query),
        ("editMessageReplyMarkup", edit_message_reply_markup),
        ("sendChatAction", send_chat_action),
        ("getFile", get_file),
        ("setMyCommands", set_my_commands),
        ("setWebhook", set_webhook),
        ("deleteWebhook", delete_webhook),
        ("getWebhookInfo", get_webhook_info),
        ("getUpdates", get_updates),
    )
}


# -- HTTP ----------------------------------------------------------------------


async def bot_method(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.match_info["token"] != state.token:
        return ApiError(401, "Unauthorized").response()
    requested = request.match_info["method"]
    known = METHODS.get(requested.lower())
    name = known[0] if known else requested
    params, error = await read_params(request)
    with state.lock:
        state.calls.append({"method": name, "params": params})
        queued = state.failures.get(name.lower()) if known else None
        failure = queued.pop(0) if queued else None
        state.lock.notify_all()
    if known is None:
        return ApiError(404, "Not Found").response()
    if failure is not None:
        return ApiError(failure.status, failure.description, failure.retry_after).response()
    if error is not None:
        return error.response()
    try:
        return await known[1](state, params)
    except ApiError as exc:
        return exc.response()


async def download(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.match_info["token"] != state.token:
        return ApiError(401, "Unauthorized").response()
    path = request.match_info["file_path"]
    with state.lock:
        stored = next((f for f in state.files.values() if f.file_path == path), None)
        if stored is not None:
            state.downloads.append(path)
            state.lock.notify_all()
    if stored is None:
        return ApiError(404, "Not Found").response()
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return web.Response(body=stored.data, content_type=content_type)


async def not_found(request: web.Request) -> web.Response:
    return ApiError(404, "Not Found").response()


def create_app(state: _State) -> web.Application:
    app = web.Application(client_max_size=60 * 1024 * 1024)
    app[STATE] = state
    app.router.add_route("*", "/bot{token}/{method}", bot_method)
    app.router.add_get("/file/bot{token}/{file_path:.+}", download)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


_FOLDERS = (
    (b"OggS", "voice", ".oga"),
    (b"ID3", "music", ".mp3"),
    (b"\xff\xfb", "music", ".mp3"),
    (b"\xff\xd8\xff", "photos", ".jpg"),
    (b"\x89PNG", "photos", ".png"),
    (b"RIFF", "documents", ".wav"),
    (b"%PDF", "documents", ".pdf"),
)


def _default_path(data: bytes, serial: int) -> str:
    """Where Telegram would store ``data``: voice/file_3.oga, photos/file_4.jpg, ..."""
    for magic, folder, extension in _FOLDERS:
        if data.startswith(magic):
            return f"{folder}/file_{serial}{extension}"
    return f"documents/file_{serial}"


class FakeTelegram:
    """The Telegram Bot API on 127.0.0.1, served from a background thread with its own loop."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        bot_username: str = BOT_USERNAME,
        *,
        port: int = 0,
        bot_first_name: str = BOT_FIRST_NAME,
    ) -> None:
        bot_id, colon, _ = token.partition(":")
        if not colon or not bot_id.isdigit():
            raise ValueError("a bot token is '<bot id>:<secret>'")
        self.token = token
        self.bot_id = int(bot_id)
        self.bot_username = bot_username
        self._port = port
        bot = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
            "has_topics_enabled": False,
            "allows_users_to_create_topics": False,
        }
        self._state = _State(token, bot)
        self._server = ThreadedServer("fake-telegram")
        self._file_serial = 0
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> FakeTelegram:
        self.base_url = self._server.start(create_app(self._state), self._port, shutdown_timeout=1)
        self._state.loop = self._server.loop
        return self

    def stop(self) -> None:
        def release_long_polls(loop: asyncio.AbstractEventLoop) -> None:
            self._state.closing = True  # long polls answer at once
            loop.call_soon_threadsafe(self._state.wake_pollers)

        self._server.stop(before=release_long_polls)
        self._state.loop = None
        self._state.closing = False

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what was seen -----------------------------------------------------
    @property
    def bot_user(self) -> dict[str, Any]:
        """The ``User`` getMe answers."""
        return dict(self._state.bot)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every call with the right token: ``{"method", "params"}``, in arrival order.

        ``method`` is the canonical name ("sendMessage") for known methods, as requested
        otherwise; ``params`` are decoded (see the module docstring). Calls answered
        with an injected failure or a 4xx are included.
        """
        with self._state.lock:
            return [{"method": c["method"], "params": dict(c["params"])} for c in self._state.calls]

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The parameters of each accepted sendMessage call, in order."""
        with self._state.lock:
            return [dict(s) for s in self._state.sent]

    @property
    def sent_messages(self) -> list[dict[str, Any]]:
        """The ``Message`` objects answered to the accepted sendMessage calls, in order."""
        with self._state.lock:
            return json.loads(json.dumps(self._state.sent_messages))

    @property
    def sent_at(self) -> list[float]:
        """When each accepted sendMessage was received (``time.time()``), in the order of
        ``sent_messages``: the moment a send was handed to Telegram (bench/burst.py)."""
        with self._state.lock:
            return list(self._state.sent_at)

    @property
    def callback_answers(self) -> list[dict[str, Any]]:
        """The parameters of each answerCallbackQuery call (callback_query_id, text, ...)."""
        with self._state.lock:
            return [dict(a) for a in self._state.callback_answers]

    @property
    def webhook(self) -> dict[str, Any] | None:
        """The parameters of the setWebhook call in force, or None."""
        with self._state.lock:
            return dict(self._state.webhook) if self._state.webhook is not None else None

    @property
    def downloads(self) -> list[str]:
        """The ``file_path`` of every file downloaded, in order."""
        with self._state.lock:
            return list(self._state.downloads)

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        with self._state.lock:
            return json.loads(json.dumps(self._state.updates))

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        """The ``params`` of each call of ``method`` (case-insensitive)."""
        return [c["params"] for c in self.calls if c["method"].lower() == method.lower()]

    def wait_for_sent(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` messages were sent; AssertionError otherwise."""
        deadline = time.monotonic() + timeout
        with self._state.lock:
            while len(self._state.sent) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{len(self._state.sent)} message(s) sent, {count} expected: "
                        f"{self._state.sent!r}"
                    )
                self._state.lock.wait(remaining)
            return [dict(s) for s in self._state.sent]

    @property
    def sent_times(self) -> list[float]:
        """When each of ``sent`` was accepted (``time.monotonic()``), in the same order."""
        with self._state.lock:
            return list(self._state.sent_times)

    @property
    def throttled(self) -> int:
        """How many sendMessage calls the meters (``limit``) refused with 429."""
        with self._state.lock:
            return self._state.throttled

    def limit(
        self, per_chat: float | None = 1.0, overall: float | None = 30.0, tolerance: float = 0.5
    ) -> None:
        """Meter sendMessage as the Bot API FAQ describes: ``per_chat`` messages a second in
        one chat, ``overall`` a second in all (None: no such limit). A message that comes too
        early (less ``tolerance`` seconds) is refused: 429, ``{"ok": false, "error_code":
        429, "description": "Too Many Requests: retry after N", "parameters":
        {"retry_after": N}}``."""
        with self._state.lock:
            self._state.per_chat = Meter(per_chat, tolerance) if per_chat else None
            self._state.overall = Meter(overall, tolerance) if overall else None

    def reset(self) -> None:
        """Forget calls, sent messages, answers, downloads, pending failures and updates,
        and remove the webhook and allowed_updates. Registered files stay; message ids
        keep increasing."""
        with self._state.lock:
            self._state.calls.clear()
            self._state.sent.clear()
            self._state.sent_times.clear()
            self._state.throttled = 0
            self._state.sent_messages.clear()
            self._state.sent_at.clear()
            self._state.messages.clear()
            self._state.callback_answers.clear()
            self._state.failures.clear()
            self._state.downloads.clear()
            self._state.updates.clear()
            self._state.chats.clear()
            self._state.webhook = None
            self._state.allowed_updates = None

    # -- behaviour ---------------------------------------------------------
    @property
    def max_poll_wait(self) -> float:
        """The longest a getUpdates long poll waits, whatever its ``timeout`` (2 s)."""
        return self._state.max_poll_wait

    @max_poll_wait.setter
    def max_poll_wait(self, seconds: float) -> None:
        self._state.max_poll_wait = seconds

    def fail_next(
        self,
        method: str,
        status: int = 429,
        description: str | None = None,
        retry_after: int | None = 3,
        *,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with a Bot API error.

        ``description`` defaults from ``status``: 429 "Too Many Requests: retry after
        <retry_after>", 403 "Forbidden: bot was blocked by the user", 400 "Bad Request",
        ... ``retry_after`` goes into ``parameters`` for a 429 only. Calls with a
        wrong token get their 401 and do not use up a failure.
        """
        if description is None:
            if status == 429:
                description = "Too Many Requests" + (
                    f": retry after {retry_after}" if retry_after is not None else ""
                )
            else:
                description = DEFAULT_DESCRIPTIONS.get(status, "Internal Server Error")
        failure = _Failure(status, description, retry_after if status == 429 else None)
        key = METHODS[method.lower()][0].lower() if method.lower() in METHODS else method.lower()
        with self._state.lock:
            self._state.failures.setdefault(key, []).extend(failure for _ in range(times))

    def add_file(
        self,
        data: bytes,
        *,
        file_id: str | None = None,
        file_path: str | None = None,
        file_size: int | None = None,
    ) -> str:
        """Register a downloadable file; return its ``file_id``.

        ``file_path`` defaults from the bytes (voice/file_N.oga for OGG, music/ for MP3,
        photos/ for JPEG/PNG, documents/ otherwise). ``file_size`` defaults to
        ``len(data)``; over 20 MB, getFile answers "file is too big".
        """
        with self._state.lock:
            self._file_serial += 1
            serial = self._file_serial
            if file_id is None:
                file_id = f"AwACAgQAAxkBAAI{serial:04d}" + secrets.token_urlsafe(24)
            stored = _File(
                file_id=file_id,
                file_unique_id=file_unique_id(file_id),
                file_path=file_path or _default_path(data, serial),
                file_size=len(data) if file_size is None else file_size,
                data=bytes(data),
            )
            self._state.files[file_id] = stored
        return file_id

    def push_update(self, update: dict[str, Any]) -> dict[str, Any] | None:
        """Queue ``update`` for getUpdates (waking a long poll); return it as queued.

        Returns None, queueing nothing, when Telegram would not deliver an update of
        that type under the allowed_updates in force. Chats seen in updates are
        remembered, so sendMessage answers them with the same Chat.
        """
        queued = json.loads(json.dumps(update))
        if "update_id" not in queued:
            queued = {"update_id": next_update_id(), **queued}
        with self._state.lock:
            if not self._state.delivered(update_type(queued)):
                return None
            self._state.learn_chats(queued)
            self._state.updates.append(queued)
            self._state.lock.notify_all()
        loop = self._server.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._state.wake_pollers)
        return json.loads(json.dumps(queued))

    def ptb_bot(self, **kwargs: Any) -> Any:
        """A ``telegram.Bot`` pointed at this fake (not initialized)."""
        from telegram import Bot

        return Bot(
            self.token,
            base_url=f"{self.base_url}/bot",
            base_file_url=f"{self.base_url}/file/bot",
            **kwargs,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Telegram Bot API.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--bot-username", default=BOT_USERNAME)
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with FakeTelegram(args.token, args.bot_username, port=args.port) as fake:
        print(json.dumps({"base_url": fake.base_url, "token": fake.token}), flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
