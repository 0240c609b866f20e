"""Calling back through Twilio (gateway.callbacks): the outbound call, what it says, how it
ended.

The call is created with Twilio's Calls API (``POST /2010-04-01/Accounts/{sid}/Calls.json``,
https://www.twilio.com/docs/voice/api/call-resource): ``To`` the caller, ``From`` the number
they called (else ``TWILIO_FROM_NUMBER``), ``Url`` the gateway's TwiML for the call back and
``StatusCallback`` with the ``completed`` event, which reports how the call ended
(``CallStatus``: completed, busy, no-answer, failed, canceled). Both are signed webhooks,
checked like every other.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from channels.twilio import sms
from channels.twilio.settings import of
from channels.twilio.webhooks import EMPTY_TWIML, read_signed_form
from gateway import callbacks
from gateway.messages import SendError
from gateway.outages import storage_unavailable
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

log = logging.getLogger(__name__)

CALLBACK_PATH = "/webhooks/twilio/voice/callback"
CALLBACK_STATUS_PATH = "/webhooks/twilio/voice/callback-status"
RING_SECONDS = 30  # how long the phone rings before "no-answer"


def place_call(runtime: Runtime, to: str, from_: str | None, callback_id: int) -> str:
    """The plugin's ``place_call`` hook: create the call, return its CallSid."""
    settings = runtime.settings
    twilio = of(settings)
    sender = from_ or twilio.twilio_from_number
    if not sender:
        raise SendError("no number to call from (TWILIO_FROM_NUMBER)", retryable=False)
    client = Client(
        twilio.twilio_account_sid, twilio.twilio_auth_token, http_client=TwilioHttpClient(15)
    )
    client.region = None
    client.edge = None
    client.api.base_url = twilio.twilio_api_base.rstrip("/")
    query = f"?id={callback_id}"
    try:
        call = client.calls.create(
            to=to,
            from_=sender,
            url=sms.public_url_for(settings.public_url, CALLBACK_PATH + query),
            method="POST",
            status_callback=sms.public_url_for(settings.public_url, CALLBACK_STATUS_PATH + query),
            status_callback_method="POST",
            status_callback_event=["completed"],
            timeout=RING_SECONDS,
        )
    except TwilioRestException as exc:
        raise sms.classify(exc) from exc
    except requests.exceptions.ReadTimeout as exc:
        # Twilio may have placed it: calling twice is worse than once late (the status tells).
        raise SendError(f"Twilio did not answer in time: {exc}", retryable=False) from exc
    except requests.exceptions.RequestException as exc:
        raise SendError(f"Twilio unreachable: {exc}", retryable=True) from exc
    return str(call.sid)


def _callback_id(request: web.Request) -> int:
    try:
        return int(request.query["id"])
    except (KeyError, ValueError) as exc:
        raise web.HTTPBadRequest(text="no call back id") from exc


async def answered(request: web.Request) -> web.Response:
    """Twilio fetches what to say once the resident picks up: who calls, their reference read
    slowly, the outcome (the city's recorded answer played when there is one); then
    goodbye."""
    from channels.twilio import voice

    await read_signed_form(request)
    callback_id = _callback_id(request)
    runtime = request.app[RUNTIME]
    try:
        found: Any = await voice.in_thread(lambda: callbacks.script(runtime, callback_id))
    except SQLAlchemyError as exc:
        raise storage_unavailable("twilio call back", exc) from exc
    response = VoiceResponse()
    if found is None:  # not a call back being placed: a replay, or a forged id
        response.hangup()
        return voice.twiml_response(str(response))
    language, reference, text, recording = found
    voice.say(response, "voice.callback_intro", language)
    if reference:
        voice.say_reference(response, reference, language)
    voice.say_text(response, text, language)
    if recording is not None:  # the city's answer in its own voice, instead of its text
        response.play(recording.url)
    voice.say(response, "voice.goodbye", language)
    response.hangup()
    return voice.twiml_response(str(response))


async def status(request: web.Request) -> web.Response:
    """How the call back ended: answered (done), or busy, unanswered, failed (tried again)."""
    from channels.twilio import voice

    form = await read_signed_form(request)
    callback_id = _callback_id(request)
    outcome = (form.get("CallStatus") or "").strip()
    runtime = request.app[RUNTIME]
    try:
        after = await voice.in_thread(lambda: callbacks.result(runtime, callback_id, outcome))
    except SQLAlchemyError as exc:
        raise storage_unavailable("twilio call back status", exc) from exc
    log.info("call back %d: %s, now %s", callback_id, outcome or "no status", after)
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")
