"""aiohttp views for Twilio's webhooks. They authenticate, normalise and hand over to ingest;
they never talk to the conversation engine or wait for a worker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from channels.twilio import settings as twilio_settings
from channels.twilio import sms
from gateway.outages import storage_unavailable
from gateway.privacy import redact
from gateway.webkeys import INGEST, SETTINGS

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
FORM = "application/x-www-form-urlencoded"


async def read_signed_form(request: web.Request) -> dict[str, str]:
    """The webhook's parameters, once the size, the shape and Twilio's signature are checked."""
    settings = request.app[SETTINGS]
    if request.content_length is not None and request.content_length > settings.max_webhook_bytes:
        log.warning("twilio webhook refused: body of %d bytes", request.content_length)
        raise web.HTTPRequestEntityTooLarge(
            max_size=settings.max_webhook_bytes, actual_size=request.content_length
        )
    if request.content_type != FORM:
        log.warning("twilio webhook refused: content type %r", request.content_type)
        raise web.HTTPBadRequest(text="expected a form-encoded body")
    try:
        posted = await request.post()
    except web.HTTPRequestEntityTooLarge:
        log.warning("twilio webhook refused: body over %d bytes", settings.max_webhook_bytes)
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("twilio webhook refused: malformed form (%s)", exc)
        raise web.HTTPBadRequest(text="malformed form") from exc
    form = {key: value for key, value in posted.items() if isinstance(value, str)}
    if len(form) != len(posted):
        raise web.HTTPBadRequest(text="unexpected file in form")
    url = sms.public_url_for(settings.public_url, request.path_qs)
    signature = request.headers.get("X-Twilio-Signature", "")
    auth_token = twilio_settings.of(settings).twilio_auth_token
    if not auth_token:
        log.error("twilio webhook refused: TWILIO_AUTH_TOKEN is not set, cannot check signatures")
        raise web.HTTPForbidden(text="signature cannot be checked")
    if not sms.signature_is_valid(auth_token, url, form, signature):
        log.warning(
            "twilio webhook refused: %s signature for %s from %s",
            "missing" if not signature else "invalid",
            request.path,
            request.remote,
        )
        raise web.HTTPForbidden(text="invalid signature")
    return form


async def sms_webhook(request: web.Request) -> web.Response:
    form = await read_signed_form(request)
    try:
        message = sms.parse(form, datetime.now(UTC))
    except sms.InvalidPayload as exc:
        log.warning("twilio sms webhook refused: %s", redact(str(exc)))
        raise web.HTTPBadRequest(text=str(exc)) from exc
    try:
        await request.app[INGEST].accept(message)
    except SQLAlchemyError as exc:
        # Not stored: ask Twilio to try again rather than pretend.
        raise storage_unavailable("twilio sms webhook", exc) from exc
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")
