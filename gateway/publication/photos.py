"""The photos a moderator published, without login:
``GET /campaigns/{slug}/photos/{reference}-{n}``.

Served only while the campaign is public, the contribution published and the photo marked
public (gateway.moderation.photos); any other case answers 404 alike, so that nobody learns
which references or photos exist. Revalidated on each use (``no-cache``): a photo withdrawn
is not kept by a cache in between. The type is the one checked from the bytes when the file
was kept, with ``nosniff``, shown inline under a neutral file name.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import hdrs, web
from sqlalchemy import select

from gateway.models import Contribution
from gateway.moderation.photos import public_photos
from gateway.publication.records import public_campaign
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

PHOTO_PATH = "/campaigns/{slug}/photos/{reference:[A-Za-z0-9][A-Za-z0-9_-]{0,63}}-{n:[0-9]{1,3}}"
PHOTO_CACHE = "no-cache"


def photo_path(slug: str, reference: str, number: int) -> str:
    return f"/campaigns/{slug}/photos/{reference}-{number}"


def add_routes(app: web.Application) -> None:
    app.router.add_get(PHOTO_PATH, photo)


def published_photo(
    runtime: Runtime, slug: str, reference: str, number: int
) -> tuple[Path, str] | None:
    """(file, content type) of a photo the public may see, else None."""
    with runtime.read_sessions() as session:
        campaign = public_campaign(session, slug)
        if campaign is None:
            return None
        contribution = session.scalar(
            select(Contribution).where(
                Contribution.campaign_id == campaign.id,
                Contribution.reference == reference,
                Contribution.status == "published",
            )
        )
        if contribution is None or number - 1 not in public_photos(contribution):
            return None
        item = contribution.attachments[number - 1]
    data = runtime.settings.data_path
    path = (data / str(item["path"])).resolve()
    if not path.is_relative_to((data / "media").resolve()) or not path.is_file():
        return None
    return path, str(item["content_type"])


async def photo(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    slug, reference = request.match_info["slug"], request.match_info["reference"]
    number = int(request.match_info["n"])
    found = await asyncio.get_running_loop().run_in_executor(
        None, published_photo, runtime, slug, reference, number
    )
    if found is None:
        raise web.HTTPNotFound()
    path, content_type = found
    return web.FileResponse(
        path,
        headers={
            hdrs.CONTENT_TYPE: content_type,
            hdrs.CACHE_CONTROL: PHOTO_CACHE,
            hdrs.CONTENT_DISPOSITION: f'inline; filename="{reference}-{number}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
