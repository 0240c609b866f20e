"""Radio Agora's public routes, without login (the console's middleware guards /moderation/
only): the podcast feed and the episodes' audio.

``GET /campaigns/{slug}/podcast.xml`` and ``GET /campaigns/{slug}/audio/{reference}.mp3``.
The audio answers 404 alike for an unknown campaign, a draft one, an unknown reference and a
contribution that exists but may not be heard: nobody learns from it which references exist.
Database work and encoding run in the executor, never on the event loop.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web

from gateway.publication import podcast, radio
from gateway.publication.records import public_campaign
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

FEED_PATH = "/campaigns/{slug}/podcast.xml"
AUDIO_PATH = "/campaigns/{slug}/audio/{reference:[A-Za-z0-9][A-Za-z0-9_-]{0,63}}.mp3"
# The feed is rebuilt on each request (a decision shows at once); proxies and apps may keep
# it five minutes. The audio is revalidated on each use (ETag): once a contribution may no
# longer be heard, no cache in between keeps serving the voice.
FEED_CACHE = "public, max-age=300"
AUDIO_CACHE = "no-cache"


def add_routes(app: web.Application) -> None:
    app.router.add_get(FEED_PATH, feed)
    app.router.add_get(AUDIO_PATH, audio)
    app.on_startup.append(_watch)


async def _watch(app: web.Application) -> None:
    # After the runtime's own start-up (cleanup_ctx runs first): from now on, a decision taken
    # in this process deletes the cached episode it withdraws as soon as it is committed.
    radio.watch(app[RUNTIME])


def _feed(runtime: Runtime, slug: str) -> bytes | None:
    with runtime.read_sessions() as session:
        campaign = public_campaign(session, slug)
        if campaign is None:
            return None
        session.expunge(campaign)
    items = radio.episodes(runtime, campaign)
    return podcast.render(runtime.settings, campaign, items)


async def feed(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    slug = request.match_info["slug"]
    body = await asyncio.get_running_loop().run_in_executor(None, _feed, runtime, slug)
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=body,
        headers={
            hdrs.CONTENT_TYPE: podcast.MEDIA_TYPE,
            hdrs.CACHE_CONTROL: FEED_CACHE,
            "X-Content-Type-Options": "nosniff",
        },
    )


async def audio(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    slug, reference = request.match_info["slug"], request.match_info["reference"]
    clip = await asyncio.get_running_loop().run_in_executor(
        None, radio.episode_for, runtime, slug, reference
    )
    if clip is None:
        raise web.HTTPNotFound()
    # FileResponse gives Content-Length, ETag and Last-Modified, and answers Range requests
    # with 206 (podcast apps seek and resume); the file is opened when sent, and a file
    # deleted this instant gives a 404 too.
    return web.FileResponse(
        clip.path,
        headers={
            hdrs.CONTENT_TYPE: radio.CONTENT_TYPE,
            hdrs.CACHE_CONTROL: AUDIO_CACHE,
            "X-Content-Type-Options": "nosniff",
        },
    )
