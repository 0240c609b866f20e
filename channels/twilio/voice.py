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
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from twilio.twiml import TwiML
from twilio.twiml.voice_response import VoiceResponse

from channels.twilio import ids, sms
from channels.twilio.webhooks import EMPTY_TWIML, read_signed_form
from gateway.callbacks import calling_hours
from gateway.calls import (
    MAX_FOLLOW_DIGITS,
    CampaignChoice,
    call_campaign,
    call_language,
    call_reference,
    caller_of,
    choose_campaign,
    follow_up,
    record_announcements,
    record_callback_consent,
    record_consent,
    reserve_reference,
    start_call,
    switch_language,
)
from gateway.i18n import DEFAULT_LANGUAGE, next_language, translate
from gateway.messages import IncomingMessage
from gateway.outages import storage_unavailable
from gateway.phone import can_receive_sms
from gateway.privacy import log_id
from gateway.recorded_answers import Recording
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

# One keypad digit per campaign (gateway.calls.MAX_MENU, 1 to 8); during the greeting or the
# menu, 9 is the other language (the next catalogue's, with two the other one) and 0 the
# caller's own data (opt out, erasure). 0 is free there: inside the privacy menu it means
# "back to the message", a different question.
LANGUAGE_KEY = "9"
PRIVACY_KEY = "0"
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
# After the reference, a caller who cannot receive SMS may press 2 to be called back with the
# outcome (gateway.callbacks); nobody is called without having pressed it.
CALLBACK_KEY = "2"
# After the reference, a caller whose number can receive an SMS may press 3 to be told by SMS
# when a campaign opens in their neighbourhood or a synthesis is published
# (gateway.announcements); a landline is not offered it (announcements are texts).
ANNOUNCEMENTS_KEY = "3"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
REFERENCE_SAYINGS = 3
REFERENCE_TIMEOUT = 5
# The pause between two characters of the reference, and around the dash: slow enough to write
# each one down.
CHARACTER_PAUSE = "600ms"
DASH_PAUSE = "1s"

T = TypeVar("T")


# -- TwiML (pure) -------------------------------------------------------------------------------


def say_voice(language: str) -> tuple[str, str]:
    """<Say>'s language and voice for a catalogue language: its ``voice.say_language`` and
    ``voice.say_voice`` (a new catalogue file brings its voice). The voice is named rather than
    left to the account's default: with no voice Twilio uses "man", whose French depends on
    console settings; Amazon Polly's Léa is one of Twilio's documented fr-FR voices."""
    return translate("voice.say_language", language), translate("voice.say_voice", language)


def say(parent: TwiML, key: str, language: str, **params: object) -> None:
    say_text(parent, translate(key, language, **params), language)


def say_text(parent: TwiML, text: str, language: str) -> None:
    locale, voice = say_voice(language)
    parent.say(text, language=locale, voice=voice)


def offer_language(parent: TwiML, language: str) -> None:
    """« For English, press 9 »: the next language offered in its own words and voice."""
    offered = next_language(language)
    if offered != language:
        say(parent, "voice.language_offer", offered)


def twiml_greeting_and_record(
    campaign: CampaignChoice, settings: Settings, language: str | None = None
) -> str:
    """The greeting, then the recording. The greeting is said inside a keypad wait, so that a
    caller can press 9 for the other language or 0 for their own data (opt out, erasure)
    instead of leaving a message; with no key pressed Twilio goes on to the recording.

    ``language`` is the call's (the caller's choice, else the campaign's): the campaign's own
    greeting (text or audio) is in the campaign's language, so a caller in another language
    hears the catalogue's greeting in theirs, with the campaign's title and question."""
    response = VoiceResponse()
    language = language or campaign.language
    own = language == campaign.language
    gather = response.gather(
        action=f"{PRIVACY_PATH}?step=greeting",
        method="POST",
        num_digits=1,
        timeout=GREETING_KEY_TIMEOUT,
        input="dtmf",
        action_on_empty_result=False,
    )
    if campaign.greeting_audio and own:
        gather.play(campaign.greeting_audio)
    elif campaign.greeting and own:
        say_text(gather, campaign.greeting, language)
    elif campaign.question:
        say(gather, "voice.greeting", language, title=campaign.title, question=campaign.question)
    else:
        say(gather, "voice.greeting_no_question", language, title=campaign.title)
    say(gather, "voice.followup_hint", language)
    say(gather, "voice.privacy_hint", language)
    offer_language(gather, language)
    _record(response, settings, language)
    return str(response)


def twiml_record(settings: Settings, language: str) -> str:
    """The beep and the recording, without the greeting (the caller pressed a key during it)."""
    response = VoiceResponse()
    say(response, "voice.after_beep", language)
    _record(response, settings, language)
    return str(response)


def _record(response: VoiceResponse, settings: Settings, language: str) -> None:
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
    say(response, "voice.nothing_recorded", language)
    response.hangup()


def twiml_menu(
    choices: Sequence[CampaignChoice], attempt: int, language: str = DEFAULT_LANGUAGE
) -> str:
    """The keypad menu; with no key pressed, the redirect brings the caller back to be asked
    once more (``attempt`` travels in the query string, which Twilio signs with the rest).
    In the caller's language (no campaign yet: French unless they chose another)."""
    response = VoiceResponse()
    action = f"{CHOOSE_PATH}?attempt={attempt}"
    gather = response.gather(
        action=action, method="POST", num_digits=1, timeout=MENU_TIMEOUT, input="dtmf"
    )
    say(gather, "voice.menu_intro" if attempt == 1 else "voice.menu_retry", language)
    for number, choice in enumerate(choices, start=1):
        say(gather, "voice.menu_line", language, title=choice.title, number=number)
    say(gather, "voice.followup_hint", language)
    say(gather, "voice.privacy_hint", language)
    offer_language(gather, language)
    response.redirect(action, method="POST")
    return str(response)


def twiml_privacy_menu(language: str, attempt: int) -> str:
    """The caller's own data: stop the SMS, or erase everything; 0 goes back to the message."""
    response = VoiceResponse()
    action = f"{PRIVACY_PATH}?step=choice&attempt={attempt}"
    gather = response.gather(
        action=action, method="POST", num_digits=1, timeout=PRIVACY_TIMEOUT, input="dtmf"
    )
    say(gather, "voice.privacy_menu", language)
    response.redirect(action, method="POST")
    return str(response)


def twiml_privacy_confirm(language: str) -> str:
    """Erasure cannot be undone: the same key once more confirms it; anything else does not."""
    response = VoiceResponse()
    action = f"{PRIVACY_PATH}?step=confirm"
    gather = response.gather(
        action=action, method="POST", num_digits=1, timeout=PRIVACY_TIMEOUT, input="dtmf"
    )
    say(gather, "voice.privacy_confirm", language)
    response.redirect(action, method="POST")
    return str(response)


def twiml_goodbye(key: str, language: str = DEFAULT_LANGUAGE) -> str:
    response = VoiceResponse()
    say(response, key, language)
    response.hangup()
    return str(response)


def twiml_consent_question(language: str) -> str:
    response = VoiceResponse()
    gather = response.gather(
        action=CONSENT_PATH, method="POST", num_digits=1, timeout=CONSENT_TIMEOUT, input="dtmf"
    )
    say(gather, "voice.consent", language)
    # No key pressed: the consent step runs without Digits, which means no.
    response.redirect(CONSENT_PATH, method="POST")
    return str(response)


def say_reference(parent: TwiML, reference: str, language: str) -> None:
    """The reference read slowly, one character at a time (« P, A, R, C, 0, 0, 4, 2 »): a
    caller writes it down as it is said, and keys it in later to follow the message."""
    locale, voice = say_voice(language)
    spoken = parent.say(translate("voice.reference", language), language=locale, voice=voice)
    spoken.break_(time=CHARACTER_PAUSE)
    for character in reference:
        if character == "-":
            spoken.break_(time=DASH_PAUSE)
            continue
        spoken.say_as(character, interpret_as="characters")
        spoken.break_(time=CHARACTER_PAUSE)


def twiml_reference(
    reference: str,
    language: str,
    saying: int,
    thanks: str | None = None,
    offer_callback: bool = False,
    offer_announcements: bool = False,
) -> str:
    """The end of a call: ``thanks`` (a catalogue key) if given, the reference, a key to hear
    it again and, to a caller who cannot receive SMS (``offer_callback``), a key to be called
    back with the outcome, or to one who can (``offer_announcements``), a key to be told of new
    campaigns by SMS (the offers travel in the query string, which Twilio signs); goodbye."""
    response = VoiceResponse()
    if thanks is not None:
        say(response, thanks, language)
    offer = "&offer=1" if offer_callback else ""
    offer += "&info=1" if offer_announcements else ""
    if saying < REFERENCE_SAYINGS or offer_callback or offer_announcements:
        gather = response.gather(
            action=f"{REFERENCE_PATH}?saying={saying + 1}{offer}",
            method="POST",
            num_digits=1,
            timeout=REFERENCE_TIMEOUT,
            input="dtmf",
        )
        say_reference(gather, reference, language)
        if saying < REFERENCE_SAYINGS:
            say(gather, "voice.reference_again", language)
        if offer_callback:
            say(gather, "voice.callback_offer", language)
        if offer_announcements:
            say(gather, "voice.announcements_offer", language)
    else:
        say_reference(response, reference, language)
    say(response, "voice.goodbye", language)
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
    say(gather, "voice.followup_ask", language)
    response.redirect(action, method="POST")
    return str(response)


def twiml_follow_answer(said: Sequence[str | Recording], language: str) -> str:
    """What the caller's contribution has become (the city's recorded answer played with
    ``<Play>``, a text said); star for another one; goodbye."""
    response = VoiceResponse()
    for item in said:
        if isinstance(item, Recording):
            response.play(item.url)
        else:
            say_text(response, item, language)
    gather = response.gather(
        action=f"{FOLLOW_PATH}?step=again",
        method="POST",
        num_digits=1,
        timeout=REFERENCE_TIMEOUT,
        input="dtmf",
    )
    say(gather, "voice.followup_more", language)
    say(response, "voice.goodbye", language)
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


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def twiml_response(body: str) -> web.Response:
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
        choices = await in_thread(lambda: start_call(runtime, call_sid, caller, called))
        language = await in_thread(lambda: call_language(runtime, call_sid))
    except SQLAlchemyError as exc:
        # Without the database no campaign can be chosen: a 5xx sends Twilio to the number's
        # fallback URL (or its own error message) rather than to a call we cannot keep.
        raise storage_unavailable("twilio voice webhook", exc) from exc
    log.info(
        "call from %s to %s: %d campaign(s) possible",
        log_id(runtime.vault.lookup_hash(CHANNEL, caller)),
        called,
        len(choices),
    )
    return twiml_response(_welcome(choices, settings, language, attempt=1))


def _welcome(
    choices: Sequence[CampaignChoice], settings: Settings, language: str, attempt: int
) -> str:
    """What a call starts with: goodbye (no open campaign), the one campaign's greeting, or
    the menu."""
    if not choices:
        return twiml_goodbye("voice.no_campaign", language)
    if len(choices) == 1:
        return twiml_greeting_and_record(choices[0], settings, language)
    return twiml_menu(choices, attempt, language)


async def _switch_language(runtime: Runtime, call_sid: str) -> str:
    try:
        language = await in_thread(lambda: switch_language(runtime, call_sid))
    except SQLAlchemyError as exc:
        raise storage_unavailable("twilio voice language", exc) from exc
    log.info("call %s: the caller switched to %s", call_sid[:10], language)
    return language


async def menu_choice(request: web.Request) -> web.Response:
    form = await read_signed_form(request)
    call_sid = _call_sid(form)
    runtime, settings = request.app[RUNTIME], request.app[SETTINGS]
    try:
        attempt = max(1, int(request.query.get("attempt", "1")))
    except ValueError:
        attempt = MENU_ATTEMPTS
    digits = form.get("Digits") or ""
    if digits == LANGUAGE_KEY:
        # The menu again, in the other language, as if for the first time.
        language = await _switch_language(runtime, call_sid)
        attempt, digits = 0, ""
    else:
        language = await _language_or_default(runtime, call_sid)
    if digits == PRIVACY_KEY:
        return twiml_response(twiml_privacy_menu(language, attempt=1))
    if digits == FOLLOW_KEY:
        return twiml_response(twiml_follow_ask(language, attempt=1))
    caller, called = form.get("From") or "", form.get("To") or ""
    try:
        chosen, choices = await in_thread(
            lambda: choose_campaign(runtime, call_sid, caller, called, digits)
        )
    except SQLAlchemyError as exc:
        raise storage_unavailable("twilio voice menu", exc) from exc
    if chosen is not None:
        return twiml_response(twiml_greeting_and_record(chosen, settings, language))
    if not choices:  # the campaigns closed while the caller was listening
        return twiml_response(twiml_goodbye("voice.no_campaign", language))
    if attempt >= MENU_ATTEMPTS:
        return twiml_response(twiml_goodbye("voice.menu_goodbye", language))
    return twiml_response(twiml_menu(choices, attempt + 1, language))


async def privacy(request: web.Request) -> web.Response:
    """A key pressed during the greeting (``step=greeting``): 9 the greeting again in the other
    language, 0 the caller's own data, star the follow-up, anything else the beep. The caller's
    own data, by keypad (0 during the greeting or the menu): 1 stops the SMS, 2 then 2 again
    erases everything (a landline caller has no other way to ask), 0 goes back to leaving a
    message. Without a valid caller number nothing can be asked for."""
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
        campaign = await in_thread(lambda: call_campaign(runtime, call_sid))
        language = await in_thread(lambda: call_language(runtime, call_sid))
    except SQLAlchemyError as exc:
        raise storage_unavailable("twilio voice privacy", exc) from exc

    async def back_to_the_message() -> web.Response:
        if campaign is not None:
            return twiml_response(twiml_record(settings, language))
        # No campaign chosen yet (0 was pressed in the campaign menu): the menu again.
        caller, called = form.get("From") or "", form.get("To") or ""
        choices = await in_thread(lambda: start_call(runtime, call_sid, caller, called))
        return twiml_response(_welcome(choices, settings, language, attempt=1))

    if step == "greeting":
        if digits == LANGUAGE_KEY and campaign is not None:
            language = await _switch_language(runtime, call_sid)
            return twiml_response(twiml_greeting_and_record(campaign, settings, language))
        if digits == PRIVACY_KEY:
            return twiml_response(twiml_privacy_menu(language, attempt=1))
        if digits == FOLLOW_KEY:
            return twiml_response(twiml_follow_ask(language, attempt=1))
        return await back_to_the_message()
    if step == "choice":
        if digits == PRIVACY_STOP:
            await _store_privacy_request(request, form, call_sid, "stop")
            return twiml_response(twiml_goodbye("voice.privacy_stopped", language))
        if digits == PRIVACY_FORGET:
            return twiml_response(twiml_privacy_confirm(language))
        if digits == PRIVACY_BACK:
            return await back_to_the_message()
        if attempt >= MENU_ATTEMPTS:
            return twiml_response(twiml_goodbye("voice.privacy_goodbye", language))
        return twiml_response(twiml_privacy_menu(language, attempt=attempt + 1))
    if step == "confirm":
        if digits == PRIVACY_FORGET:
            await _store_privacy_request(request, form, call_sid, "forget")
            return twiml_response(twiml_goodbye("voice.privacy_forgotten", language))
        return twiml_response(twiml_goodbye("voice.privacy_cancelled", language))
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
        raise storage_unavailable("twilio voice privacy", exc) from exc
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
        await in_thread(lambda: reserve_reference(runtime, call_sid))
        language = await in_thread(lambda: call_language(runtime, call_sid))
    except SQLAlchemyError as exc:
        # The message is recorded either way: ask in French rather than drop the caller.
        log.error("twilio voice recorded: database unavailable (%s)", type(exc).__name__)
        language = DEFAULT_LANGUAGE
    return twiml_response(twiml_consent_question(language))


async def consent(request: web.Request) -> web.Response:
    form = await read_signed_form(request)
    call_sid = _call_sid(form)
    runtime = request.app[RUNTIME]
    given = consent_from(form.get("Digits"))
    try:
        language = await in_thread(lambda: record_consent(runtime, call_sid, given))
        reference = await in_thread(lambda: reserve_reference(runtime, call_sid))
    except SQLAlchemyError as exc:
        # Unrecorded consent reads as "no" later, the safe side; the caller is still thanked.
        log.error("twilio voice consent: database unavailable (%s)", type(exc).__name__)
        language, reference = DEFAULT_LANGUAGE, None
    if reference is None:  # an unknown call, or no database: thanks and goodbye
        return twiml_response(
            twiml_goodbye("voice.thanks_yes" if given else "voice.thanks_no", language)
        )
    thanks = "voice.saved_yes" if given else "voice.saved_no"
    offer = await _offers_callback(runtime, call_sid)
    info = await _offers_announcements(runtime, call_sid)
    return twiml_response(
        twiml_reference(
            reference, language, 1, thanks=thanks, offer_callback=offer, offer_announcements=info
        )
    )


async def _offers_callback(runtime: Runtime, call_sid: str) -> bool:
    """Whether to offer a call back: only to a caller whose number cannot receive SMS (a
    landline; mobiles get the outcome by SMS), and whose number is known."""
    try:
        caller, _called = await in_thread(lambda: caller_of(runtime, call_sid))
    except SQLAlchemyError:
        return False
    return bool(caller) and E164.match(caller) is not None and not can_receive_sms(caller)


async def _offers_announcements(runtime: Runtime, call_sid: str) -> bool:
    """Whether to offer announcements: only to a caller whose number can receive an SMS."""
    try:
        caller, _called = await in_thread(lambda: caller_of(runtime, call_sid))
    except SQLAlchemyError:
        return False
    return bool(caller) and E164.match(caller) is not None and can_receive_sms(caller)


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
    digits = (form.get("Digits") or "").strip()
    offer = request.query.get("offer") == "1"
    info = request.query.get("info") == "1"
    if info and digits == ANNOUNCEMENTS_KEY:
        try:
            noted = await in_thread(lambda: record_announcements(runtime, call_sid))
        except SQLAlchemyError as exc:
            raise storage_unavailable("twilio voice announcements", exc) from exc
        if noted is None:  # an unknown call: nothing was recorded, nothing is promised
            return twiml_response(twiml_goodbye("voice.goodbye"))
        log.info("call %s: the caller asked for announcements", call_sid[:10])
        return twiml_response(twiml_goodbye("voice.announcements_noted", noted))
    if offer and digits == CALLBACK_KEY:
        try:
            language = await in_thread(lambda: record_callback_consent(runtime, call_sid))
        except SQLAlchemyError as exc:
            raise storage_unavailable("twilio voice call back", exc) from exc
        log.info("call %s: the caller asked to be called back", call_sid[:10])
        start, end = calling_hours(request.app[SETTINGS])
        response = VoiceResponse()
        say(response, "voice.callback_noted", language, start=start, end=end)
        response.hangup()
        return twiml_response(str(response))
    if digits != REFERENCE_AGAIN:
        return twiml_response(
            twiml_goodbye("voice.goodbye", await _language_or_default(runtime, call_sid))
        )
    try:
        reference = await in_thread(lambda: call_reference(runtime, call_sid))
        language = await in_thread(lambda: call_language(runtime, call_sid))
    except SQLAlchemyError as exc:
        log.error("twilio voice reference: database unavailable (%s)", type(exc).__name__)
        reference, language = None, DEFAULT_LANGUAGE
    if reference is None:
        return twiml_response(twiml_goodbye("voice.goodbye", language))
    saying = max(1, min(saying, REFERENCE_SAYINGS))
    return twiml_response(
        twiml_reference(reference, language, saying, offer_callback=offer, offer_announcements=info)
    )


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
            return twiml_response(twiml_follow_ask(language, attempt=1))
        return twiml_response(twiml_goodbye("voice.goodbye", language))
    try:
        attempt = max(1, int(request.query.get("attempt", "1")))
    except ValueError:
        attempt = MENU_ATTEMPTS
    if not digits:
        if attempt >= MENU_ATTEMPTS:
            return twiml_response(twiml_goodbye("voice.goodbye", language))
        return twiml_response(twiml_follow_ask(language, attempt=attempt + 1))
    try:
        said = await in_thread(lambda: follow_up(runtime, call_sid, digits))
    except SQLAlchemyError as exc:
        raise storage_unavailable("twilio voice follow-up", exc) from exc
    log.info("call %s: a contribution followed by keypad", call_sid[:10])
    return twiml_response(twiml_follow_answer(said, language))


async def _language_or_default(runtime: Runtime, call_sid: str) -> str:
    try:
        return await in_thread(lambda: call_language(runtime, call_sid))
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
        caller, called = await in_thread(lambda: caller_of(runtime, call_sid))
        message = recording_message(form, caller, called, datetime.now(UTC))
        # A second delivery of the same RecordingSid is absorbed by ingest's unique key.
        await request.app[INGEST].accept(message)
    except SQLAlchemyError as exc:
        # Not stored: ask Twilio to try again rather than pretend.
        raise storage_unavailable("twilio recording callback", exc) from exc
    return twiml_response(EMPTY_TWIML)
