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
    allowed = urlsplit(of(runtime.settings).twilio_api_base)
    target = urlsplit(url)
    if (target.scheme, target.hostname, target.port) != (
        allowed.scheme,
        allowed.hostname,
        allowed.port,
    ):
        raise RecordingRefused(
            f"recording URL host {target.hostname!r} is not the Twilio API host "
            f"{allowed.hostname!r}"
        )
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
    try:
        response = requests.get(
            fetch_url,
            auth=(s.twilio_account_sid, s.twilio_auth_token),
            stream=True,
            timeout=30,
            allow_redirects=False,  # a redirect could lead off the allowed host
        )
    except requests.RequestException as exc:
        raise RecordingUnavailable(f"could not reach Twilio: {exc}") from exc
    with response:
        if response.status_code != 200:
            raise RecordingUnavailable(f"Twilio answered {response.status_code}")
        content_type = response.headers.get("Content-Type", "audio/wav").split(";")[0]
        suffix = ".mp3" if "mpeg" in content_type else ".wav"
        fd, tmp = tempfile.mkstemp(dir=target_dir, suffix=".part")
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise RecordingRefused(f"recording over {max_bytes} bytes: not kept")
                    fh.write(chunk)
            final = target_dir / f"{recording_sid}{suffix}"
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return final, content_type


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
