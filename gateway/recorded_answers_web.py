"""The city's recorded answer on the web (gateway.recorded_answers).

``GET /audio/answers/<token>.mp3``: the file, without login, for the voice provider's player and the
console's player. A wrong token, a token no contribution refers to any more and a missing
file all answer 404, alike.

Uploads (the API's ``POST …/answer/audio``, the console's recording form) are larger than the
app's body limit for webhooks (``MAX_WEBHOOK_BYTES``): gateway.bodycaps gives these routes, and
these only, their own cap (``recorded_answers.MAX_BYTES`` and room for the form).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import hdrs, web

from gateway import recorded_answers
from gateway.webkeys import RUNTIME

PATH = "/audio/answers/{token}.mp3"


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, audio)


async def read_upload(request: web.Request) -> tuple[bytes, dict[str, str]]:
    """The audio of an upload, and the form's text fields: a multipart form's ``audio`` file,
    or the whole body (any audio content type)."""
    if request.content_type == "multipart/form-data":
        form = await request.post()
        part = form.get("audio")
        data = part.file.read() if isinstance(part, web.FileField) else b""
        return data, {k: v for k, v in form.items() if isinstance(v, str)}
    return await request.read(), {}


async def audio(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    token = request.match_info["token"]

    def find() -> Path | None:
        with runtime.read_sessions() as session:
            return recorded_answers.serveable(session, runtime.settings.data_path, token)

    path = await asyncio.get_running_loop().run_in_executor(None, find)
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(
        path,
        headers={
            hdrs.CONTENT_TYPE: recorded_answers.CONTENT_TYPE,
            # Revalidated on each use: once the answer changes, no cache keeps the old voice.
            hdrs.CACHE_CONTROL: "no-cache",
            "X-Content-Type-Options": "nosniff",
            # Nobody needs it indexed; the token is not a secret worth leaking by a Referer.
            "X-Robots-Tag": "noindex",
            "Referrer-Policy": "no-referrer",
        },
    )
