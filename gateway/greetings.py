"""Answering machine greetings uploaded by an admin: checked by decoding them, kept under the
data folder (``DATA_DIR/greetings/``) and served without login at an unguessable URL that the
voice provider fetches (``<Play>``): ``{PUBLIC_URL}/greetings/<random>.<mp3|wav>``.

A greeting is the city's own recording, nothing personal: public by design, like the audio
URL a campaign file may give (``voice.audio``), which the upload replaces. Only MP3 and WAV
are kept: what a voice provider's ``<Play>`` plays.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

from aiohttp import web

from gateway import files
from gateway.settings import Settings
from gateway.webkeys import SETTINGS

log = logging.getLogger(__name__)

FOLDER = "greetings"
ROUTE = "/greetings"
MAX_BYTES = 5 * 1024 * 1024  # a minute of 128 kb/s MP3 is about 1 MB
MAX_SECONDS = 180
FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav"}
_NAME = re.compile(r"^[A-Za-z0-9_-]{32}\.(mp3|wav)$")


class GreetingError(ValueError):
    """A refused upload; ``key`` names the admin-facing message (console.greeting.<key>)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def check(data: bytes) -> str:
    """The greeting's format ("mp3" or "wav") once it decoded whole; GreetingError otherwise.
    Decoding (not the file's name or announced type) says what it is."""
    from transcription.audio import AudioError, decode_to_pcm

    if len(data) > MAX_BYTES:
        raise GreetingError("too_large", f"{len(data)} bytes, more than {MAX_BYTES}")
    try:
        audio = decode_to_pcm(data, max_seconds=MAX_SECONDS)
    except AudioError as exc:
        key = "too_long" if exc.code == "too_long" else "unreadable"
        raise GreetingError(key, exc.message) from None
    container = audio.source_format.split("/")[0]
    if container not in FORMATS:
        raise GreetingError("bad_format", f"{audio.source_format}: MP3 or WAV only")
    if audio.truncated or audio.duration < 0.5:
        raise GreetingError("unreadable", f"{audio.source_format}: truncated or empty")
    return container


def folder(settings: Settings) -> Path:
    return settings.data_path / FOLDER


def store(settings: Settings, data: bytes, fmt: str) -> str:
    """Keep a checked greeting; returns its public URL."""
    name = f"{secrets.token_urlsafe(24)}.{fmt}"
    files.private_dir(folder(settings))
    files.write_private(folder(settings) / name, data)
    return f"{settings.public_url.rstrip('/')}{ROUTE}/{name}"


def local_file(settings: Settings, url: str | None) -> Path | None:
    """The stored file behind a greeting URL of ours; None for any other URL."""
    prefix = f"{settings.public_url.rstrip('/')}{ROUTE}/"
    if not url or not url.startswith(prefix) or not _NAME.match(url[len(prefix) :]):
        return None
    return folder(settings) / url[len(prefix) :]


def remove(settings: Settings, url: str | None) -> None:
    """Delete a greeting of ours that nothing uses any more."""
    path = local_file(settings, url)
    if path is not None:
        path.unlink(missing_ok=True)


async def serve(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not _NAME.match(name):
        raise web.HTTPNotFound()
    path = folder(request.app[SETTINGS]) / name
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(
        path,
        headers={
            "Content-Type": FORMATS[name.rsplit(".", 1)[1]],
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(ROUTE + "/{name}", serve)
