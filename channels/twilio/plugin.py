"""Twilio: SMS and the answering machine (voice), as one channel plugin (gateway.plugins)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from channels.twilio.settings import TwilioSettings, of
from gateway.messages import OutgoingText, Sender
from gateway.pacing import Limit, Pace
from gateway.plugins import ChannelPlugin
from gateway.runtime import Runtime
from gateway.settings import Settings, SettingsError


def _sender(settings: Settings) -> Sender:
    from channels.twilio.sms import TwilioSender

    twilio = of(settings)
    return TwilioSender(
        twilio.twilio_account_sid,
        twilio.twilio_auth_token,
        twilio.twilio_api_base,
        twilio.twilio_messaging_service_sid,
    )


def _routes(app: web.Application) -> None:
    from channels.twilio import callbacks, voice, webhooks

    app.router.add_post("/webhooks/twilio/sms", webhooks.sms_webhook)
    app.router.add_post(voice.VOICE_PATH, voice.incoming_call)
    app.router.add_post(voice.CHOOSE_PATH, voice.menu_choice)
    app.router.add_post(voice.RECORDED_PATH, voice.recorded)
    app.router.add_post(voice.CONSENT_PATH, voice.consent)
    app.router.add_post(voice.REFERENCE_PATH, voice.reference_again)
    app.router.add_post(voice.FOLLOW_PATH, voice.follow)
    app.router.add_post(callbacks.CALLBACK_PATH, callbacks.answered)
    app.router.add_post(callbacks.CALLBACK_STATUS_PATH, callbacks.status)
    app.router.add_post(voice.PRIVACY_PATH, voice.privacy)
    app.router.add_post(voice.RECORDING_PATH, voice.recording_status)


def _check(settings: Settings) -> None:
    from channels.twilio.ids import ACCOUNT_SID
    from channels.twilio.media import origin_problem

    twilio = of(settings)
    for origin in twilio.twilio_media_redirect_origins.split(","):
        problem = origin_problem(origin.strip()) if origin.strip() else None
        if problem:
            raise SettingsError(f"GATEWAY_TWILIO_MEDIA_REDIRECT_ORIGINS: {problem}")
    if twilio.twilio_media_max_bytes < 1 or twilio.twilio_media_max_message_bytes < 1:
        raise SettingsError(
            "GATEWAY_TWILIO_MEDIA_MAX_BYTES and GATEWAY_TWILIO_MEDIA_MAX_MESSAGE_BYTES must be "
            "positive"
        )

    # The account SID goes into the REST API's URLs (recordings fetched and deleted).
    sid = of(settings).twilio_account_sid
    if sid and not ACCOUNT_SID.fullmatch(sid):
        raise SettingsError(
            "GATEWAY_TWILIO_ACCOUNT_SID is not an account SID (AC followed by 32 hex "
            "digits, as in Twilio's console)"
        )


def _fetch_recording(
    runtime: Runtime, details: dict[str, Any], target_dir: Path
) -> tuple[Path, str]:
    from channels.twilio import recordings

    return recordings.fetch(runtime, details, target_dir)


def _delete_recording(runtime: Runtime, details: dict[str, Any]) -> None:
    from channels.twilio import recordings

    recordings.delete(runtime, details)


def _fetch_media(runtime: Runtime, message_id: int, last_attempt: bool) -> None:
    from channels.twilio import media

    media.fetch(runtime, message_id, last_attempt)


def _place_call(runtime: Runtime, to: str, from_: str | None, callback_id: int) -> str:
    from channels.twilio import callbacks

    return callbacks.place_call(runtime, to, from_, callback_id)


def _reconcile(runtime: Runtime, message: OutgoingText, since: datetime) -> list[str]:
    from channels.twilio.sms import TwilioSender

    sender = _sender(runtime.settings)
    assert isinstance(sender, TwilioSender)
    return sender.find_sent(message, since)


def _default_from(settings: Settings) -> str | None:
    return of(settings).twilio_from_number or None


def _pace(settings: Settings) -> Pace:
    # A long code sends about one SMS segment a second (Twilio queues the rest, then refuses
    # them): per sending number, or per Messaging Service when one picks the number.
    twilio = of(settings)
    return Pace(
        (Limit("sender", twilio.twilio_segments_per_second, "segment"),),
        sender=twilio.twilio_messaging_service_sid or None,
    )


def _doctor(settings: Settings) -> list[Any]:
    """`gateway doctor`: the account resource, read with the credentials (changes nothing)."""
    import requests

    from gateway.doctor import ok, problem, warning

    twilio = of(settings)
    url = (
        f"{twilio.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/{twilio.twilio_account_sid}.json"
    )
    try:
        response = requests.get(  # not a download: the account resource, as JSON
            url, auth=(twilio.twilio_account_sid, twilio.twilio_auth_token), timeout=10
        )
    except requests.RequestException as exc:
        return [warning("twilio", f"not reachable ({type(exc).__name__})", "check the network")]
    if response.status_code in (401, 404):
        return [
            problem(
                "twilio",
                f"credentials refused ({response.status_code})",
                "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN in Twilio's console",
            )
        ]
    if response.status_code != 200:
        return [warning("twilio", f"answered {response.status_code}", "try again later")]
    status = str(response.json().get("status", ""))
    if status != "active":
        return [problem("twilio", f"account {status}", "see the account in Twilio's console")]
    return [ok("twilio", "credentials accepted, account active")]


plugin = ChannelPlugin(
    name="twilio",
    channels=("sms", "voice"),
    settings=TwilioSettings,
    configured=lambda settings: of(settings).configured,
    sender=_sender,
    routes=_routes,
    default_from=_default_from,
    check=_check,
    address_spaces={"sms": "phone", "voice": "phone"},
    # A Messaging Service picks the sending number from its pool.
    picks_sender=lambda settings: bool(of(settings).twilio_messaging_service_sid),
    fetch_recording=_fetch_recording,
    delete_recording=_delete_recording,
    place_call=_place_call,
    fetch_media=_fetch_media,  # an MMS's photos and sounds
    pace=_pace,
    reconcile=_reconcile,  # an interrupted send: Twilio's list of messages says if it went
    doctor=_doctor,
    # The library dumps every request's URL and headers, then the response, ten lines a send at
    # INFO; workers.outbound logs each send in one line.
    quiet_loggers=("twilio.http_client",),
)
