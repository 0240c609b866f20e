"""Twilio's recordings: fetched with the account's credentials, only from the configured API
host and only the recording the callback names, then deleted at Twilio once kept (the voice
plugin's ``fetch_recording`` and ``delete_recording`` hooks, called by gateway.recordings)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from channels.twilio import ids
from channels.twilio.settings import of
from gateway import downloads
from gateway.recordings import RecordingRefused, RecordingUnavailable
from gateway.runtime import Runtime

log = logging.getLogger(__name__)


def fetch(runtime: Runtime, details: dict[str, Any], target_dir: Path) -> tuple[Path, str]:
    """The hook: the recording a stored callback names (its ``url`` and ``recording_sid``)."""
    return fetch_recording(
        runtime, str(details.get("url") or ""), str(details.get("recording_sid") or ""), target_dir
    )


def delete(runtime: Runtime, details: dict[str, Any]) -> None:
    delete_from_twilio(runtime, str(details.get("recording_sid") or ""))


def check_recording_url(runtime: Runtime, url: str) -> str:
    """The URL to fetch, if it is on the configured Twilio API host; else RecordingRefused."""
    target = urlsplit(url)
    if downloads.origin(url) != downloads.origin(of(runtime.settings).twilio_api_base):
        raise RecordingRefused("recording URL is not on the Twilio API host")
    if target.username or target.password or not target.path.startswith("/2010-04-01/"):
        raise RecordingRefused("recording URL is not a Twilio recording resource")
    return url


def fetch_recording(
    runtime: Runtime, url: str, recording_sid: str, target_dir: Path
) -> tuple[Path, str]:
    """Download a recording (WAV) with the account's credentials into ``target_dir``."""
    s, max_bytes = of(runtime.settings), runtime.settings.max_recording_bytes
    url = check_recording_url(runtime, url)
    # The SID becomes a file name and the URL must name that recording of this account:
    # checked here too, whatever the webhook let through (channels.twilio.ids).
    try:
        recording_sid = ids.recording_sid(recording_sid)
    except ids.InvalidSid as exc:
        raise RecordingRefused(str(exc)) from exc
    expected = f"/2010-04-01/Accounts/{s.twilio_account_sid}/Recordings/{recording_sid}"
    if urlsplit(url).path not in (expected, expected + ".wav", expected + ".mp3"):
        raise RecordingRefused("recording URL does not name this account's recording")
    fetch_url = url if url.endswith((".wav", ".mp3")) else url + ".wav"
    fd, tmp = tempfile.mkstemp(dir=target_dir, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            got = downloads.download(
                guard(runtime, max_bytes),
                fetch_url,
                auth=(s.twilio_account_sid, s.twilio_auth_token),
                declared="audio/wav",
                out=fh,
            )
        final = (
            target_dir / f"{recording_sid}{'.mp3' if got.content_type == 'audio/mpeg' else '.wav'}"
        )
        os.replace(tmp, final)
    except downloads.Refused as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RecordingRefused(f"recording not kept: {exc}") from exc
    except (downloads.Unreachable, downloads.Answered) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RecordingUnavailable(f"Twilio: {exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final, got.content_type


def guard(runtime: Runtime, max_bytes: int) -> downloads.Guard:
    """The core's download guard (gateway.downloads): the API's origin only (a redirect may
    stay on it), a sound, ``max_bytes``."""
    return downloads.Guard(
        home=of(runtime.settings).twilio_api_base,
        max_bytes=max_bytes,
        types=("audio/wav", "audio/mpeg"),
    )


def delete_from_twilio(runtime: Runtime, recording_sid: str) -> None:
    s = of(runtime.settings)
    if not ids.RECORDING_SID.fullmatch(recording_sid):
        log.warning("recording not deleted from Twilio: not a RecordingSid")
        return
    url = (
        f"{s.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/{s.twilio_account_sid}"
        f"/Recordings/{recording_sid}.json"
    )
    try:
        response = requests.delete(
            url, auth=(s.twilio_account_sid, s.twilio_auth_token), timeout=15
        )
        if response.status_code not in (200, 204, 404):
            log.warning(
                "recording %s not deleted from Twilio: %s", recording_sid, response.status_code
            )
    except requests.RequestException as exc:
        log.warning("recording %s not deleted from Twilio: %s", recording_sid, exc)
