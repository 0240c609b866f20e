"""aiohttp views for Vonage's Messages API webhooks: ``POST /webhooks/vonage/inbound`` (an SMS
a resident sent) and ``POST /webhooks/vonage/status`` (what became of a reply). They check the
size, then the signature (channels.vonage.signature), then the JSON; an inbound SMS is handed
to ingest, stored before Vonage is answered; they never talk to the conversation engine.

Answers: 200 once handled; 401 for a request not provably Vonage's (no token, a forged or
stale one, a body that is not the one signed), before the body is parsed; 413 over
``MAX_WEBHOOK_BYTES``; 400 for a body that is not JSON or not an inbound SMS; 503 when the
database is down, so that Vonage tries again later. Logs never carry a phone number.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from channels.vonage import settings as vonage_settings
from channels.vonage import signature, sms
from gateway import outbox, persons, residents
from gateway.clock import now_utc
from gateway.outages import storage_unavailable
from gateway.privacy import log_id, redact
from gateway.runtime import Runtime
from gateway.webkeys import INGEST, RUNTIME, SETTINGS

log = logging.getLogger(__name__)

INBOUND_PATH = "/webhooks/vonage/inbound"
STATUS_PATH = "/webhooks/vonage/status"


async def read_signed_body(request: web.Request) -> bytes:
    """The request's body, once its size and Vonage's signature are checked."""
    settings = request.app[SETTINGS]
    limit = settings.max_webhook_bytes
    if request.content_length is not None and request.content_length > limit:
        log.warning("vonage webhook refused: body of %d bytes", request.content_length)
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        log.warning("vonage webhook refused: body over %d bytes", limit)
        raise
    secret = vonage_settings.of(settings).vonage_signature_secret
    if not secret:
        log.error(
            "vonage webhook refused: VONAGE_SIGNATURE_SECRET is not set, cannot check signatures"
        )
        raise web.HTTPUnauthorized(text="signature cannot be checked")
    try:
        signature.verify(request.headers.get("Authorization"), body, secret)
    except signature.Refused as exc:
        log.warning("vonage webhook refused: %s, for %s from %s", exc, request.path, request.remote)
        raise web.HTTPUnauthorized(text="invalid signature") from exc
    return body


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("vonage webhook refused: body is not JSON")
        raise web.HTTPBadRequest(text="expected a JSON body") from exc


async def inbound(request: web.Request) -> web.Response:
    payload = _json(await read_signed_body(request))
    try:
        message = sms.parse(payload, datetime.now(UTC))
    except sms.InvalidPayload as exc:
        log.warning("vonage inbound webhook refused: %s", redact(str(exc)))
        raise web.HTTPBadRequest(text=str(exc)) from exc
    try:
        await request.app[INGEST].accept(message)
    except SQLAlchemyError as exc:
        # Not stored: ask Vonage to try again rather than pretend.
        raise storage_unavailable("vonage inbound webhook", exc) from exc
    return web.Response(status=200)


async def status(request: web.Request) -> web.Response:
    """A reply's fate, logged without numbers. A message Vonage accepted but could not
    deliver (rejected, undeliverable) is marked failed with the reason on its outbound row
    (gateway.outbox.delivery_failed), where moderators see it; a rejection because the resident
    opted out at Vonage (error 1240) opts them out here too, on every channel of their number,
    as a refusal at send time would (gateway.residents.opt_out)."""
    payload = _json(await read_signed_body(request))
    try:
        update = sms.parse_status(payload)
    except sms.InvalidPayload as exc:
        log.warning("vonage status webhook refused: %s", redact(str(exc)))
        raise web.HTTPBadRequest(text=str(exc)) from exc
    if update.failed:
        title = redact(update.error_title, update.to, sms.from_e164(update.to or ""))
        log.warning(
            "vonage: message %s %s (error %s: %s)",
            update.message_uuid,
            update.status,
            update.error_code if update.error_code is not None else "-",
            title or "no detail",
        )
    else:
        log.info("vonage: message %s %s", update.message_uuid, update.status)
    if update.failed:
        why = f"Vonage {update.status}" + (
            f", error {update.error_code}" if update.error_code is not None else ""
        )
        try:
            await asyncio.to_thread(
                outbox.delivery_failed, request.app[RUNTIME], "vonage", update.message_uuid, why
            )
        except SQLAlchemyError as exc:
            raise storage_unavailable("vonage status webhook", exc) from exc
    if update.opted_out and update.to:
        try:
            await asyncio.to_thread(_opt_out, request.app[RUNTIME], update.to, update.message_uuid)
        except SQLAlchemyError as exc:
            raise storage_unavailable("vonage status webhook", exc) from exc
    return web.Response(status=200)


def _opt_out(runtime: Runtime, number: str, message_uuid: str) -> None:
    with runtime.sessions.begin() as session:
        address_hash = persons.resolve(session, runtime.vault, sms.CHANNEL, number)
        changed = residents.opt_out(session, address_hash, now_utc())
    log.info(
        "%s: Vonage refused message %s, the recipient opted out; %d contributor row(s) opted out",
        log_id(address_hash),
        message_uuid,
        changed,
    )
