"""MMS media (photos, sounds, PDFs): fetched by the worker with the account's credentials, only
from the configured Twilio API host (``TWILIO_API_BASE``), checked by their bytes, kept under
``DATA_DIR/media/twilio`` (sounds under ``DATA_DIR/audio/twilio``, to be transcribed), then
deleted at Twilio (the plugin's ``fetch_media`` hook, called by gateway.media).

A webhook's ``MediaUrl<N>`` is signed by Twilio, but it is a URL the gateway will call with the
account's credentials: it must name a Media resource of this account and of this message
(``/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}``) on the API's own
origin, or it is refused without a request. Twilio answers a media GET with a redirect to a
short-lived presigned URL on its CDN (``mms.twiliocdn.com``; ``s3-external-1.amazonaws.com``
for media stored before HTTP authentication was enforced): a redirect is followed only to the
API's own origin or to an origin of ``TWILIO_MEDIA_REDIRECT_ORIGINS``, at most twice, and the
credentials are sent to the API's origin only. These checks are the core's download guard
(gateway.downloads), which also refuses a CDN name that resolves to a private address.

Kept: images (JPEG, PNG, GIF, WebP, HEIC), sounds (AMR, MP3, AAC, OGG, M4A/3GPP, WAV) and PDF,
when the bytes are what the type says (gateway.filetypes), up to ``TWILIO_MEDIA_MAX_BYTES``
each and ``TWILIO_MEDIA_MAX_MESSAGE_BYTES`` for one message. Refused for good (the text goes
on, the resident is told, the moderator sees why): another type (video, vCard...), a file
over a cap, bytes that are not what they claim, a URL off the allowed origins, a medium Twilio
no longer has. A passing failure (network, 5xx, 429) lets the job be retried; on its last
attempt the message goes on without the file. What is kept or refused for good is deleted at
Twilio (``DELETE .../Media/{MediaSid}.json``): a failed delete is logged, not retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from channels.twilio import ids
from channels.twilio.settings import TwilioSettings, of
from gateway import downloads, files, filetypes
from gateway import media as core_media
from gateway.models import InboundMessage
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

PROVIDER = "twilio"
CHANNEL = "sms"
MAX_REDIRECTS = 2
AUDIO_TYPES = frozenset(
    {"audio/amr", "audio/mpeg", "audio/aac", "audio/ogg", "audio/mp4", "audio/3gpp", "audio/wav"}
)
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "audio/amr": ".amr",
    "audio/mpeg": ".mp3",
    "audio/aac": ".aac",
    "audio/ogg": ".ogg",
    "audio/mp4": ".m4a",
    "audio/3gpp": ".3gp",
    "audio/wav": ".wav",
    "application/pdf": ".pdf",
}

# Why a medium was not kept, as the console names it (console catalogue:
# console.attachments.refused_reasons.<reason>).
TYPE, TOO_LARGE, NOT_WHAT_IT_SAYS, FOREIGN, GONE, UNAVAILABLE = (
    "type",
    "too_large",
    "content",
    "origin",
    "gone",
    "unavailable",
)


class MediaRefused(Exception):
    """Not kept, for good; the message is log-safe (no URL, no address)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class MediaUnavailable(Exception):
    """Not had this time (network, Twilio's 5xx or 429): the job is retried."""


@dataclass(frozen=True)
class Fetched:
    kind: str  # photo | audio | file
    content_type: str
    data: bytes


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def origin_problem(origin: str) -> str | None:
    """Why ``origin`` cannot be a redirect target (a setting's value), or None: an origin is
    ``https://host[:port]``, nothing after it; plain http only to this machine (tests)."""
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return f"{origin[:80]!r} is not an origin (https://host or https://host:port)"
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        return f"{origin[:80]!r} is not an origin (https://host or https://host:port)"
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return f"{origin[:80]!r}: https only, except to a loopback host"
    return None


def media_path(settings: TwilioSettings, message_sid: str, url: str) -> tuple[str, str]:
    """(URL to fetch, MediaSid) when ``url`` names a medium of this account's ``message_sid``
    on the API's origin; MediaRefused otherwise."""
    if downloads.origin(url) != downloads.origin(settings.twilio_api_base):
        raise MediaRefused(FOREIGN, "media URL is not on the Twilio API host")
    parts = urlsplit(url)  # readable: its origin was
    if parts.username or parts.password or parts.query or parts.fragment:
        raise MediaRefused(FOREIGN, "media URL is not a Twilio Media resource")
    prefix = f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages/{message_sid}/Media/"
    if not parts.path.startswith(prefix):
        raise MediaRefused(FOREIGN, "media URL does not name this message's media")
    media_sid = parts.path[len(prefix) :]
    if not ids.MEDIA_SID.fullmatch(media_sid):
        raise MediaRefused(FOREIGN, "media URL does not end with a MediaSid")
    return url, media_sid


def guard(settings: TwilioSettings, cap: int) -> downloads.Guard:
    """The core's download guard (gateway.downloads) for one medium: the API's origin, the
    CDN origins a redirect may lead to, the types kept, ``cap`` bytes."""
    others = tuple(
        o.strip() for o in settings.twilio_media_redirect_origins.split(",") if o.strip()
    )
    return downloads.Guard(
        home=settings.twilio_api_base,
        others=others,
        max_bytes=cap,
        types=tuple(sorted(filetypes.IMAGE_TYPES | AUDIO_TYPES | {"application/pdf"})),
        max_redirects=MAX_REDIRECTS,
    )


def download(
    http: requests.Session, settings: TwilioSettings, url: str, declared: str, budget: int
) -> Fetched:
    """One medium's bytes, checked; ``budget``: bytes this message may still keep."""
    cap = min(settings.twilio_media_max_bytes, budget)
    auth = (settings.twilio_account_sid, settings.twilio_auth_token)
    try:
        got = downloads.download(guard(settings, cap), url, http=http, auth=auth, declared=declared)
    except downloads.Refused as exc:
        raise MediaRefused(exc.reason, str(exc)) from exc
    except downloads.Unreachable as exc:
        raise MediaUnavailable(str(exc)) from exc
    except downloads.Answered as exc:
        if exc.status in (404, 410):
            raise MediaRefused(GONE, f"Twilio answered {exc.status}") from exc
        # 401/403 (credentials), 429, 5xx: retried, then the message goes on without it.
        raise MediaUnavailable(f"Twilio answered {exc.status}") from exc
    return _checked(got.content_type, got.data)


def _checked(content_type: str, data: bytes) -> Fetched:
    if not data:
        raise MediaRefused(NOT_WHAT_IT_SAYS, "empty file")
    if content_type in filetypes.IMAGE_TYPES:
        sniffed = filetypes.sniff_image(data, content_type)
        if sniffed is None:
            raise MediaRefused(NOT_WHAT_IT_SAYS, "the bytes are not an image")
        return Fetched("photo", sniffed, data)
    if content_type in AUDIO_TYPES:
        if not filetypes.is_audio(data):
            raise MediaRefused(NOT_WHAT_IT_SAYS, "the bytes are not a sound file")
        return Fetched("audio", content_type, data)
    if not filetypes.is_pdf(data):
        raise MediaRefused(NOT_WHAT_IT_SAYS, "the bytes are not a PDF")
    return Fetched("file", content_type, data)


def fetch(runtime: Runtime, message_id: int, last_attempt: bool) -> None:
    """The hook: download the message's media not yet fetched, then delete them at Twilio."""
    with runtime.sessions() as session:
        message = session.get(InboundMessage, message_id)
        if message is None or message.state != "received":
            return
        if message.channel != CHANNEL or message.provider not in (None, PROVIDER):
            # A call's recording is gateway.recordings' (its own hook); another SMS
            # provider's message has no Twilio media.
            return
        message_sid = message.provider_message_id
        items = [dict(a) if isinstance(a, dict) else {} for a in message.attachments or []]
    pending = [
        i for i, a in enumerate(items) if a.get("url") and not a.get("path") and not a.get("error")
    ]
    if not pending:
        return
    settings = of(runtime.settings)
    kept_bytes = sum(int(a.get("size") or 0) for a in items if a.get("path"))
    with requests.Session() as http:
        try:
            for index in pending:
                item = items[index]
                try:
                    if not settings.configured:
                        raise MediaRefused(UNAVAILABLE, "TWILIO_ACCOUNT_SID/AUTH_TOKEN not set")
                    url, item["media_sid"] = media_path(settings, message_sid, str(item["url"]))
                    budget = settings.twilio_media_max_message_bytes - kept_bytes
                    got = download(http, settings, url, str(item.get("content_type") or ""), budget)
                except MediaUnavailable as exc:
                    if not last_attempt:
                        raise
                    _refuse(item, message_id, index, UNAVAILABLE, str(exc))
                    continue
                except MediaRefused as exc:
                    _refuse(item, message_id, index, exc.reason, str(exc))
                    continue
                folder = "audio" if got.kind == "audio" else "media"
                relative = (
                    f"{folder}/{PROVIDER}/{message_id}-{index}{_EXTENSIONS[got.content_type]}"
                )
                target = runtime.settings.data_path / relative
                files.private_dir(target.parent)
                files.write_private(target, got.data)
                item.update(
                    kind=got.kind, path=relative, content_type=got.content_type, size=len(got.data)
                )
                kept_bytes += len(got.data)
        finally:
            core_media.save(runtime, message_id, items)
            _delete_at_twilio(runtime, http, settings, message_sid, message_id, items)


def _refuse(item: dict[str, Any], message_id: int, index: int, reason: str, detail: str) -> None:
    item["error"], item["refused"] = detail[:300], reason
    log.warning("message %d: medium %d not kept (%s): %s", message_id, index, reason, detail)


def _delete_at_twilio(
    runtime: Runtime,
    http: requests.Session,
    settings: TwilioSettings,
    message_sid: str,
    message_id: int,
    items: list[dict[str, Any]],
) -> None:
    """Delete at Twilio what is settled (kept here, or refused for good with a MediaSid), once
    the message's record says so; mark them, so that a retried job does not delete again."""
    done = False
    for item in items:
        sid = str(item.get("media_sid") or "")
        settled = item.get("path") or item.get("refused") not in (None, UNAVAILABLE, GONE)
        if not ids.MEDIA_SID.fullmatch(sid) or not settled or item.get("deleted_at_twilio"):
            continue
        url = (
            f"{settings.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/"
            f"{settings.twilio_account_sid}/Messages/{message_sid}/Media/{sid}.json"
        )
        try:
            response = http.delete(
                url, auth=(settings.twilio_account_sid, settings.twilio_auth_token), timeout=15
            )
        except requests.RequestException as exc:
            log.warning(
                "message %d: medium not deleted at Twilio: %s", message_id, type(exc).__name__
            )
            continue
        if response.status_code in (200, 204, 404):
            item["deleted_at_twilio"] = True
            done = True
        else:
            log.warning(
                "message %d: medium not deleted at Twilio: %s", message_id, response.status_code
            )
    if done:
        core_media.save(runtime, message_id, items)
