"""The Telegram webhook, inside the gateway's own aiohttp server: ``POST /webhooks/telegram``.

Telegram sends each update as JSON with the secret given to setWebhook in the
``X-Telegram-Bot-Api-Secret-Token`` header. Without the right secret: 403, nothing read. A body
that is not an update: 400. Otherwise the update is stored (unique on update_id, so a retry is
absorbed) and enqueued, and Telegram gets its 200 at once; when something must be said at once
(acknowledging a tapped button, a polite "I cannot read stickers"), it is the response body,
which Telegram performs as a Bot API call (https://core.telegram.org/bots/api#making-requests-
when-getting-updates). ``gateway telegram poll`` feeds the same ``accept`` from getUpdates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from channels.telegram import updates
from channels.telegram.settings import of
from gateway.i18n import translate
from gateway.outages import storage_unavailable
from gateway.runtime import Runtime
from gateway.webkeys import INGEST, RUNTIME, SETTINGS

log = logging.getLogger(__name__)

PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
GROUP_NOTICE_SECONDS = 24 * 3600  # a group is invited to write in private at most once a day


def first_group_notice(runtime: Runtime, chat_id: int) -> bool:
    """Whether this group chat has not been told (today) to write in private. Redis down: yes,
    better twice than never."""
    digest = hashlib.sha256(f"{runtime.settings.secret_key}:{chat_id}".encode()).hexdigest()[:24]
    try:
        return bool(
            runtime.redis.set(
                f"gateway:telegram:group-notice:{digest}", 1, nx=True, ex=GROUP_NOTICE_SECONDS
            )
        )
    except Exception as exc:
        log.warning("telegram: group notice check failed (%s)", type(exc).__name__)
        return True


def group_answer(chat_id: int, language: str) -> dict[str, Any]:
    return {
        "method": "sendMessage",
        "chat_id": chat_id,
        "text": translate("telegram.private_only", language),
    }


def describe(parsed: updates.Parsed) -> str:
    parts = [parsed.ignored or (parsed.message.kind if parsed.message else "answer only")]
    parts.extend(parsed.notes)
    return ", ".join(parts)


async def telegram_webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    secret = of(settings).telegram_webhook_secret
    if not secret:
        log.error("telegram webhook refused: TELEGRAM_WEBHOOK_SECRET is not set")
        raise web.HTTPForbidden(text="webhook secret not configured")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        log.warning(
            "telegram webhook refused: %s secret from %s",
            "missing" if not given else "wrong",
            request.remote,
        )
        raise web.HTTPForbidden(text="invalid secret token")
    if request.content_length is not None and request.content_length > settings.max_webhook_bytes:
        log.warning("telegram webhook refused: body of %d bytes", request.content_length)
        raise web.HTTPRequestEntityTooLarge(
            max_size=settings.max_webhook_bytes, actual_size=request.content_length
        )
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        log.warning("telegram webhook refused: body over %d bytes", settings.max_webhook_bytes)
        raise
    try:
        data = json.loads(body)
        parsed = updates.parse(data, max_file_bytes=of(settings).telegram_max_file_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = str(exc) if isinstance(exc, updates.InvalidUpdate) else "malformed JSON"
        log.warning("telegram webhook refused: %s", reason)
        raise web.HTTPBadRequest(text=reason) from exc
    answer = parsed.answer
    if parsed.message is not None:
        try:
            stored = await request.app[INGEST].accept(parsed.message)
        except SQLAlchemyError as exc:
            raise storage_unavailable("telegram webhook", exc) from exc
        if stored.duplicate:
            log.info("telegram update %d: duplicate delivery absorbed", parsed.update_id)
    elif parsed.group_chat is not None:
        runtime = request.app[RUNTIME]
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(None, first_group_notice, runtime, parsed.group_chat):
            answer = group_answer(parsed.group_chat, parsed.language)
    log.info("telegram update %d: %s", parsed.update_id, describe(parsed))
    if answer is not None:
        return web.json_response(answer)
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, telegram_webhook)
