"""Twilio Programmable Voice: the answering machine's call flow, step by step, in TwiML.

A call goes through these webhooks, each one signed by Twilio and checked like the SMS webhook
(``read_signed_form``: ``PUBLIC_URL`` + path and query, never the Host header):

1. ``POST /webhooks/twilio/voice`` ("A call comes in"): the call is remembered (``VoiceCall``,
   the caller's number encrypted) and its campaign chosen by the number called; when several
   campaigns could be meant, a keypad menu (``<Gather>``) asks which one.
2. ``POST /webhooks/twilio/voice/choose``: the menu's answer.
3. The greeting (``<Play>`` the campaign's audio file, or ``<Say>`` its text) then ``<Record>``.
   Twilio does not request the ``<Record action>`` when nothing was recorded: it goes on with
   the verbs after ``<Record>``, which say so and hang up.
4. ``POST /webhooks/twilio/voice/recorded`` (``<Record action>``): asks on the keypad whether the
   message may be broadcast on the radio.
5. ``POST /webhooks/twilio/voice/consent``: 1 is yes, anything else or nothing is no.
6. ``POST /webhooks/twilio/recording`` (``recordingStatusCallback``, once Twilio has the file,
   or ``absent`` when there was nothing to keep): stored like any inbound message and answered
   at once; a worker fetches the audio later.

TwiML is built with the twilio library's ``VoiceResponse`` (escaping, attribute names), every
sentence comes from the message catalogue (``voice.*`` keys) in the campaign's language, and
database work runs in the default executor so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from twilio.twiml import TwiML
from twilio.twiml.voice_response import VoiceResponse

from channels.twilio import ids, sms
from channels.twilio.webhooks import EMPTY_TWIML, read_signed_form
from gateway.calls import (
    MAX_FOLLOW_DIGITS,
    CampaignChoice,
    call_campaign,
    call_language,
    call_reference,
    caller_of,
    choose_campaign,
    follow_up,
    record_consent,
    reserve_reference,
    start_call,
)
from gateway.i18n import DEFAULT_LANGUAGE, translate
from gateway.messages import IncomingMessage
from gateway.privacy import log_id
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.webkeys import INGEST, RUNTIME, SETTINGS

log = logging.getLogger(__name__)

CHANNEL = "voice"
PROVIDER = "twilio"  # the plugin's name (channels/twilio/plugin.py)

VOICE_PATH = "/webhooks/twilio/voice"
CHOOSE_PATH = "/webhooks/twilio/voice/choose"
RECORDED_PATH = "/webhooks/twilio/voice/recorded"
CONSENT_PATH = "/webhooks/twilio/voice/consent"
RECORDING_PATH = "/webhooks/twilio/recording"
PRIVACY_PATH = "/webhooks/twilio/voice/privacy"
REFERENCE_PATH = "/webhooks/twilio/voice/reference"
FOLLOW_PATH = "/webhooks/twilio/voice/follow"

# One keypad digit per campaign (gateway.calls.MAX_MENU); 9 is the caller's own data (opt
# out, erasure) on every call.
PRIVACY_KEY = "9"
# Star, during the greeting or the menu: follow a contribution already sent (its reference's
# number keyed in, then #), its state and the city's answer said.
FOLLOW_KEY = "*"
FOLLOW_TIMEOUT = 10
PRIVACY_STOP, PRIVACY_FORGET, PRIVACY_BACK = "1", "2", "0"
PRIVACY_TIMEOUT = 6
# After the greeting, how long a key press is waited for before the beep: short, since most
# callers just want to speak.
GREETING_KEY_TIMEOUT = 1
MENU_ATTEMPTS = 2  # the menu is said at most twice, then the caller is told goodbye
MENU_TIMEOUT = 6  # seconds Twilio waits for a key once the menu has been said
CONSENT_TIMEOUT = 6
RECORD_SILENCE_TIMEOUT = 5  # seconds of silence that end a message
CONSENT_YES = "1"
# The reference at the end of the call: said once, then again each time the caller presses 1,
# at most this many times in all.
REFERENCE_AGAIN = "1"
REFERENCE_SAYINGS = 3
REFERENCE_TIMEOUT = 5
# The pause between two characters of the reference, and around the dash: slow enough to write
# each one down.
CHARACTER_PAUSE = "600ms"
DASH_PAUSE = "1s"

# <Say> language and voice per catalogue language. The voice is named rather than left to the
# account's default: with no voice Twilio uses "man", whose French depends on console settings;
# Amazon Polly's Léa is one of Twilio's documented fr-FR voices.
SAY_VOICES: Mapping[str, tuple[str, str]] = {
    "fr": ("fr-FR", "Polly.Lea"),
    "en": ("en-GB", "Polly.Amy"),
}

T = TypeVar("T")


# -- TwiML (pure) -------------------------------------------------------------------------------


def _say(parent: TwiML, key: str, language: str, **params: object) -> None:
    _say_text(parent, translate(key, language, **params), language)


def _say_text(parent: TwiML, text: str, language: str) -> None:
    locale, voice = SAY_VOICES.get(language, SAY_VOICES[DEFAULT_LANGUAGE])
    parent.say(text, language=locale, voice=voice)


def twiml_greeting_and_record(campaign: CampaignChoice, settings: Settings) -> str:
    """The greeting, then the recording. The greeting is said inside a keypad wait, so that a
    caller can press 9 for their own data (opt out, erasure) instead of leaving a message;
    with no key pressed Twilio goes on to the recording."""
    response = VoiceResponse()
    language = campaign.language
    gather = response.gather(
        action=f"{PRIVACY_PATH}?step=greeting",
        method="POST",
        num_digits=1,
        timeout=GREETING_KEY_TIMEOUT,
        input="dtmf",
        action_on_empty_result=False,
    )
    if campaign.greeting_audio:
        gather.play(campaign.greeting_audio)
    elif campaign.greeting:
        _say_text(gather, campaign.greeting, language)
    elif campaign.question:
        _say(gather, "voice.greeting", language, title=campaign.title, question=campaign.question)
    else:
        _say(gather, "voice.greeting_no_question", language, title=campaign.title)
    _say(gather, "voice.followup_hint", language)
    _say(gather, "voice.privacy_hint", language)
    _record(response, campaign, settings)
    return str(response)


def twiml_record(campaign: CampaignChoice, settings: Settings) -> str:
    """The beep and the recording, without the greeting (the caller pressed a key during it)."""
    response = VoiceResponse()
    _say(response, "voice.after_beep", campaign.language)
    _record(response, campaign, settings)
    return str(response)


def _record(response: VoiceResponse, campaign: CampaignChoice, settings: Settings) -> None:
    language = campaign.language
    response.record(
        action=RECORDED_PATH,
        method="POST",
        max_length=settings.voice_max_recording_seconds,
        play_beep=True,
        finish_on_key="#",
        timeout=RECORD_SILENCE_TIMEOUT,
        trim="trim-silence",
        # Absolute: Twilio calls it after the call, independently of the current document,
        # and the signature is checked against PUBLIC_URL anyway.
        recording_status_callback=sms.public_url_for(settings.public_url, RECORDING_PATH),
        recording_status_callback_method="POST",
        # "absent" too: a caller who said nothing is recorded as such, not silently lost.
        recording_status_callback_event="completed absent",
    )
    # Reached only when nothing was recorded: Twilio skips the action URL for an empty
    # recording and carries on with the next verb.
    _say(response, "voice.nothing_recorded", language)
    response.hangup()


def twiml_menu(choices: Sequence[CampaignChoice], attempt: int) -> str:
    """The keypad menu; with no key pressed, the redirect brings the caller back to be asked
    once more (``attempt`` travels in the query string, which Twilio signs with the rest)."""
    response = VoiceResponse()
    action = f"{CHOOSE_PATH}?attempt={attempt}"
    gather = response.gather(
        action=action, method="POST", num_digits=1, timeout=MENU_TIMEOUT, input="dtmf"
    )
    language = DEFAULT_LANGUAGE  # no campaign yet, hence no campaign language
    _say(gather, "voice.menu_intro" if attempt == 1 else "voice.menu_retry", language)
    for number, choice in enumerate(choices, start=1):
        _say(gather, "voice.menu_line", language, title=choice.title, number=number)
    _say(gather, "voice.followup_hint", language)
    _say(gather, "voice.privacy_hint", language)
    response.redirect(action, method="POST")
    return str(response)


def twiml_privacy_menu(language: str, attempt: int) -> str:
    """The caller's own data: stop the SMS, or erase everything; 0 goes back to the message."""
    response = VoiceResponse()
    action = f"{PRIVACY_PATH}?step=choice&attempt={attempt}"
    gather = response.gather(
        action=action, method="POST", num_digits=1, timeout=PRIVACY_TIMEOUT, input="dtmf"
    )
    _say(gather, "voice.privacy_menu", language)
    response.redirect(action, method="POST")
    return str(response)


def twiml_privacy_confirm(language: str) -> str:
    """Erasure cannot be undone: the same key once more confirms it; anything else does not."""
    response = VoiceResponse()
    action = f"{PRIVACY_PATH}?step=confirm"
    gather = response.gather(
        action=action, method="POST", num_digits=1, timeout=PRIVACY_TIMEOUT, input="dtmf"
    )
    _say(gather, "voice.privacy_confirm", language)
    response.redirect(action, method="POST")
    return str(response)


def twiml_goodbye(key: str, language: str = DEFAULT_LANGUAGE) -> str:
    response = VoiceResponse()
    _say(response, key, language)
    response.hangup()
    return str(response)


def twiml_consent_question(language: str) -> str:
    response = VoiceResponse()
    gather = response.gather(
        action=CONSENT_PATH, method="POST", num_digits=1, timeout=CONSENT_TIMEOUT, input="dtmf"
    )
    _say(gather, "voice.consent", language)
    # No key pressed: the consent step runs without Digits, which means no.
    response.redirect(CONSENT_PATH, method="POST")
    return str(response)


def _say_reference(parent: TwiML, reference: str, language: str) -> None:
    """The reference read slowly, one character at a time (« P, A, R, C, 0, 0, 4, 2 »): a
    caller writes it down as it is said, and keys it in later to follow the message."""
    locale, voice = SAY_VOICES.get(language, SAY_VOICES[DEFAULT_LANGUAGE])
    say = parent.say(translate("voice.reference", language), language=locale, voice=voice)
    say.break_(time=CHARACTER_PAUSE)
    for character in reference:
        if character == "-":
            say.break_(time=DASH_PAUSE)
            continue
        say.say_as(character, interpret_as="characters")
        say.break_(time=CHARACTER_PAUSE)


def twiml_reference(reference: str, language: str, saying: int, thanks: str | None = None) -> str:
    """The end of a call: ``thanks`` (a catalogue key) if given, the reference, and a key to
    hear it again (``saying`` travels in the query string, which Twilio signs); then goodbye."""
    response = VoiceResponse()
    if thanks is not None:
        _say(response, thanks, language)
    if saying < REFERENCE_SAYINGS:
        gather = response.gather(
            action=f"{REFERENCE_PATH}?saying={saying + 1}",
            method="POST",
            num_digits=1,
            timeout=REFERENCE_TIMEOUT,
            input="dtmf",
        )
        _say_reference(gather, reference, language)
        _say(gather, "voice.reference_again", language)
    else:
        _say_reference(response, reference, language)
    _say(response, "voice.goodbye", language)
    response.hangup()
    return str(response)


def twiml_follow_ask(language: str, attempt: int) -> str:
    """Key in the number of a reference, then #; with nothing keyed in, asked once more."""
    response = VoiceResponse()
    action = f"{FOLLOW_PATH}?attempt={attempt}"
    gather = response.gather(
        action=action,
        method="POST",
        finish_on_key="#",
        num_digits=MAX_FOLLOW_DIGITS + 1,  # one more than a reference has: # ends it anyway
        timeout=FOLLOW_TIMEOUT,
        input="dtmf",
    )
    _say(gather, "voice.followup_ask", language)
    response.redirect(action, method="POST")
    return str(response)


def twiml_follow_answer(said: Sequence[str], language: str) -> str:
    """What the caller's contribution has become; star for another one; goodbye."""
    response = VoiceResponse()
    for text in said:
        _say_text(response, text, language)
    gather = response.gather(
        action=f"{FOLLOW_PATH}?step=again",
        method="POST",
        num_digits=1,
        timeout=REFERENCE_TIMEOUT,
        input="dtmf",
    )
    _say(gather, "voice.followup_more", language)
    _say(response, "voice.goodbye", language)
    response.hangup()
    return str(response)


def consent_from(digits: str | None) -> bool:
    return (digits or "").strip() == CONSENT_YES


def privacy_message(
    form: Mapping[str, str], call_sid: str, kind: str, received_at: datetime
) -> IncomingMessage:
    """A caller's keypad request (``stop`` or ``forget``) as an inbound message of the caller:
    stored before the caller is told it is noted, then carried out by a worker in order with
    the caller's other messages (gateway.recordings), as STOP and OUBLIER by SMS are."""
    return IncomingMessage(
        channel=CHANNEL,
        provider_message_id=f"{call_sid}:{kind}",
        sender=form.get("From") or "",
        recipient=form.get("To") or None,
        text="",
        received_at=received_at,
        raw=dict(form),
        kind=kind,
        provider=PROVIDER,
    )


def recording_ids(form: Mapping[str, str]) -> tuple[str, str]:
    """The callback's RecordingSid and CallSid; InvalidPayload when either is missing or not of
    its shape (the RecordingSid becomes a file name and part of a REST URL: channels.twilio.ids).
    """
    try:
        return ids.recording_sid(form.get("RecordingSid")), ids.call_sid(form.get("CallSid"))
    except ids.InvalidSid as exc:
        raise sms.InvalidPayload(str(exc)) from exc


def recording_message(
    form: Mapping[str, str], caller: str, called: str | None, received_at: datetime
) -> IncomingMessage:
    """A recording status callback as an inbound message; the audio itself is fetched later."""
    recording_sid, call_sid = recording_ids(form)
    attachment: dict[str, Any] = {
        # Kept as given: the worker refuses any host other than TWILIO_API_BASE's.
        "url": form.get("RecordingUrl") or "",
        # Twilio serves a RecordingUrl without extension as WAV.
        "content_type": "audio/wav",
        "status": form.get("RecordingStatus") or "",
        "duration": form.get("RecordingDuration"),
        "call_sid": call_sid,
        "recording_sid": recording_sid,
        # 16101 (too short) or 16102 (silent) explain an "absent" recording; 0 is no error.
        "error_code": None if form.get("ErrorCode") in (None, "", "0") else form["ErrorCode"],
    }
    return IncomingMessage(
        channel=CHANNEL,
        provider_message_id=recording_sid,
        sender=caller,
        recipient=called,
        text="",
        received_at=received_at,
        attachments=[attachment],
        raw=dict(form),
        provider=PROVIDER,
    )


# -- aiohttp views ----------------------------------------------------------------------------


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")


def _call_sid(form: Mapping[str, str]) -> str:
    try:
        return ids.call_sid(form.get("CallSid"))
    except ids.InvalidSid as exc:
        log.warning("twilio voice webhook refused: %s", exc)
        raise web.HTTPBadRequest(text=str(exc)) from exc


async def incoming_call(request: web.Request) -> web.Response:
    form = await read_signed_form(request)
    call_sid = _call_sid(form)
    runtime, settings = request.app[RUNTIME], request.app[SETTINGS]
    caller, called = form.get("From") or "", form.get("To") or ""
    try:
        choices = await _in_thread(lambda: start_call(runtime, call_sid, caller, called))
    except SQLAlchemyError as exc:
        # Without the database no campaign can be chosen: a 5xx sends Twilio to the number's
        # fallback URL (or its own error message) rather than to a call we cannot keep.
        log.error("twilio voice webhook: database unavailable (%s)", type(exc).__name__)
        raise web.HTTPServiceUnavailable(text="storage unavailable") from exc
    log.info(
        "call from %s to %s: %d campaign(s) possible",
        log_id(runtime.vault.lookup_hash(CHANNEL, caller)),
        called,
        len(choices),
    )
    if not choices:
        return _twiml(twiml_goodbye("voice.no_campaign"))
    if len(choices) == 1:
        return _twiml(twiml_greeting_and_record(choices[0], settings))
    return _twiml(twiml_menu(choices, attempt=1))


async def menu_choice(request: web.Request) -> web.Response:
    form = await read_signed_form(request)
    call_sid = _call_sid(form)
    runtime, settings = request.app[RUNTIME], request.app[SETTINGS]
    try:
        attempt = max(1, int(request.query.get("attempt", "1")))
    except ValueError:
        attempt = MENU_ATTEMPTS
    digits = form.get("Digits") or ""
    if digits == PRIVACY_KEY:
        return _twiml(twiml_privacy_menu(DEFAULT_LANGUAGE, attempt=1))
    if digits == FOLLOW_KEY:
        return _twiml(twiml_follow_ask(DEFAULT_LANGUAGE, attempt=1))
    caller, called = form.get("From") or "", form.get("To") or ""
    try:
        chosen, choices = await _in_thread(
            lambda: choose_campaign(runtime, call_sid, caller, called, digits)
        )
    except SQLAlchemyError as exc:
        log.error("twilio voice menu: database unavailable (%s)", type(exc).__name__)
        raise web.HTTPServiceUnavailable(text="storage unavailable") from exc
    if chosen is not None:
        return _twiml(twiml_greeting_and_record(chosen, settings))
    if not choices:  # the campaigns closed while the caller was listening
        return _twiml(twiml_goodbye("voice.no_campaign"))
    if attempt >= MENU_ATTEMPTS:
        return _twiml(twiml_goodbye("voice.menu_goodbye"))
    return _twiml(twiml_menu(choices, attempt=attempt + 1))


async def privacy(request: web.Request) -> web.Response:
    """The caller's own data, by keypad (9 during the greeting or the menu): 1 stops the SMS,
    2 then 2 again erases everything (a landline caller has no other way to ask), 0 goes back
    to leaving a message. Without a valid caller number nothing can be asked for."""
    form = await read_signed_form(request)
    call_sid = _call_sid(form)
    runtime, settings = request.app[RUNTIME], request.app[SETTINGS]
    step = request.query.get("step", "")
    digits = (form.get("Digits") or "").strip()
    try:
        attempt = max(1, int(request.query.get("attempt", "1")))
    except ValueError:
        attempt = MENU_ATTEMPTS
    try:
        campaign = await _in_thread(lambda: call_campaign(runtime, call_sid))
    except SQLAlchemyError as exc:
        log.error("twilio voice privacy: database unavailable (%s)", type(exc).__name__)
        raise web.HTTPServiceUnavailable(text="storage unavailable") from exc
    language = campaign.language if campaign else DEFAULT_LANGUAGE

    async def back_to_the_message() -> web.Response:
        if campaign is not None:
            return _twiml(twiml_record(campaign, settings))
        # No campaign chosen yet (9 was pressed in the campaign menu): the menu again.
        caller, called = form.get("From") or "", form.get("To") or ""
        choices = await _in_thread(lambda: start_call(runtime, call_sid, caller, called))
        if not choices:
            return _twiml(twiml_goodbye("voice.no_campaign"))
        if len(choices) == 1:
            return _twiml(twiml_greeting_and_record(choices[0], settings))
        return _twiml(twiml_menu(choices, attempt=1))

    if step == "greeting":
        if digits == PRIVACY_KEY:
            return _twiml(twiml_privacy_menu(language, attempt=1))
        if digits == FOLLOW_KEY:
            return _twiml(twiml_follow_ask(language, attempt=1))
        return await back_to_the_message()
    if step == "choice":
        if digits == PRIVACY_STOP:
            await _store_privacy_request(request, form, call_sid, "stop")
            return _twiml(twiml_goodbye("voice.privacy_stopped", language))
        if digits == PRIVACY_FORGET:
            return _twiml(twiml_privacy_confirm(language))
        if digits == PRIVACY_BACK:
            return await back_to_the_message()
        if attempt >= MENU_ATTEMPTS:
            return _twiml(twiml_goodbye("voice.privacy_goodbye", language))
        return _twiml(twiml_privacy_menu(language, attempt=attempt + 1))
    if step == "confirm":
        if digits == PRIVACY_FORGET:
            await _store_privacy_request(request, form, call_sid, "forget")
            return _twiml(twiml_goodbye("voice.privacy_forgotten", language))
        return _twiml(twiml_goodbye("voice.privacy_cancelled", language))
    raise web.HTTPBadRequest(text="unknown step")


async def _store_privacy_request(
    request: web.Request, form: Mapping[str, str], call_sid: str, kind: str
) -> None:
    if not form.get("From"):
        # Twilio always sends From; a call with a withheld number has "anonymous" or similar,
        # which names nobody: nothing to stop or erase, and the caller is told it is noted
        # like everyone (what matters is that no one else's data is touched).
        log.warning("voice privacy request without a caller number: nothing stored")
        return
    message = privacy_message(form, call_sid, kind, datetime.now(UTC))
    try:
        await request.app[INGEST].accept(message)
    except SQLAlchemyError as exc:
        # Not stored: the caller must not be told it is done. Twilio's fallback URL (or its
        # error message) takes over, and the caller can call again.
        log.error("twilio voice privacy: database unavailable (%s)", type(exc).__name__)
        raise web.HTTPServiceUnavailable(text="storage unavailable") from exc
    log.info(
        "call %s: the caller asked to %s",
        call_sid[:10],
        "stop the SMS" if kind == "stop" else "be forgotten",
    )


async def recorded(request: web.Request) -> web.Response:
    form = await read_signed_form(request)
    call_sid = _call_sid(form)
    runtime = request.app[RUNTIME]
    try:
        # The message's reference, taken now: the caller hears it before hanging up.
        await _in_thread(lambda: reserve_reference(runtime, call_sid))
        language = await _in_thread(lambda: call_language(runtime, call_sid))
    except SQLAlchemyError as exc:
        # The message is recorded either way: ask in French rather than drop the caller.
        log.error("twilio voice recorded: database unavailable (%s)", type(exc).__name__)
        language = DEFAULT_LANGUAGE
    return _twiml(twiml_consent_question(language))


async def consent(request: web.Request) -> web.Response:
    form = await read_signed_form(request)
    call_sid = _call_sid(form)
    runtime = request.app[RUNTIME]
    given = consent_from(form.get("Digits"))
    try:
        language = await _in_thread(lambda: record_consent(runtime, call_sid, given))
        reference = await _in_thread(lambda: reserve_reference(runtime, call_sid))
    except SQLAlchemyError as exc:
        # Unrecorded consent reads as "no" later, the safe side; the caller is still thanked.
        log.error("twilio voice consent: database unavailable (%s)", type(exc).__name__)
        language, reference = DEFAULT_LANGUAGE, None
    if reference is None:  # an unknown call, or no database: thanks and goodbye
        return _twiml(twiml_goodbye("voice.thanks_yes" if given else "voice.thanks_no", language))
    thanks = "voice.saved_yes" if given else "voice.saved_no"
    return _twiml(twiml_reference(reference, language, 1, thanks=thanks))


async def reference_again(request: web.Request) -> web.Response:
    """The caller pressed a key after their reference: 1 says it again; anything else, or
    nothing, ends the call."""
    form = await read_signed_form(request)
    call_sid = _call_sid(form)
    runtime = request.app[RUNTIME]
    try:
        saying = int(request.query.get("saying", str(REFERENCE_SAYINGS)))
    except ValueError:
        saying = REFERENCE_SAYINGS
    if (form.get("Digits") or "").strip() != REFERENCE_AGAIN:
        return _twiml(twiml_goodbye("voice.goodbye", await _language_or_default(runtime, call_sid)))
    try:
        reference = await _in_thread(lambda: call_reference(runtime, call_sid))
        language = await _in_thread(lambda: call_language(runtime, call_sid))
    except SQLAlchemyError as exc:
        log.error("twilio voice reference: database unavailable (%s)", type(exc).__name__)
        reference, language = None, DEFAULT_LANGUAGE
    if reference is None:
        return _twiml(twiml_goodbye("voice.goodbye", language))
    return _twiml(twiml_reference(reference, language, max(1, min(saying, REFERENCE_SAYINGS))))


async def follow(request: web.Request) -> web.Response:
    """The reference's number keyed in (star, then the digits, then #): the state of the
    caller's own contribution and the city's answer; star again for another one."""
    form = await read_signed_form(request)
    call_sid = _call_sid(form)
    runtime = request.app[RUNTIME]
    digits = (form.get("Digits") or "").strip()
    language = await _language_or_default(runtime, call_sid)
    if request.query.get("step") == "again":
        if digits == FOLLOW_KEY:
            return _twiml(twiml_follow_ask(language, attempt=1))
        return _twiml(twiml_goodbye("voice.goodbye", language))
    try:
        attempt = max(1, int(request.query.get("attempt", "1")))
    except ValueError:
        attempt = MENU_ATTEMPTS
    if not digits:
        if attempt >= MENU_ATTEMPTS:
            return _twiml(twiml_goodbye("voice.goodbye", language))
        return _twiml(twiml_follow_ask(language, attempt=attempt + 1))
    try:
        said = await _in_thread(lambda: follow_up(runtime, call_sid, digits))
    except SQLAlchemyError as exc:
        log.error("twilio voice follow-up: database unavailable (%s)", type(exc).__name__)
        raise web.HTTPServiceUnavailable(text="storage unavailable") from exc
    log.info("call %s: a contribution followed by keypad", call_sid[:10])
    return _twiml(twiml_follow_answer(said, language))


async def _language_or_default(runtime: Runtime, call_sid: str) -> str:
    try:
        return await _in_thread(lambda: call_language(runtime, call_sid))
    except SQLAlchemyError:
        return DEFAULT_LANGUAGE


async def recording_status(request: web.Request) -> web.Response:
    form = await read_signed_form(request)
    runtime = request.app[RUNTIME]
    try:
        _, call_sid = recording_ids(form)
    except sms.InvalidPayload as exc:
        log.warning("twilio recording callback refused: %s", exc)
        raise web.HTTPBadRequest(text=str(exc)) from exc
    try:
        caller, called = await _in_thread(lambda: caller_of(runtime, call_sid))
        message = recording_message(form, caller, called, datetime.now(UTC))
        # A second delivery of the same RecordingSid is absorbed by ingest's unique key.
        await request.app[INGEST].accept(message)
    except SQLAlchemyError as exc:
        # Not stored: ask Twilio to try again rather than pretend.
        log.error("twilio recording callback: database unavailable (%s)", type(exc).__name__)
        raise web.HTTPServiceUnavailable(text="storage unavailable") from exc
    return _twiml(EMPTY_TWIML)
