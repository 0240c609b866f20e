"""A campaign's announcements (admins only, checked by the console middleware): how many
residents were told of its opening and of its synthesis (counts, never an address), and the
form that publishes the synthesis (gateway.moderation.synthesis)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import announcements
from gateway.console import flash
from gateway.console.rendering import error_page, render, see_other
from gateway.console.views.common import field, refused
from gateway.console.work import act, read
from gateway.models import Campaign
from gateway.moderation import synthesis
from gateway.moderation.actions import ActionError

PATH = "/moderation/admin/campaigns/{slug}/synthesis"


@dataclass(frozen=True)
class Page:
    campaign: Campaign
    announced: dict[str, announcements.Announced]


def _load(slug: str) -> Callable[[Session], Page | None]:
    def load(session: Session) -> Page | None:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if campaign is None:
            return None
        counts = announcements.announced(session, campaign)
        session.expunge(campaign)
        return Page(campaign, counts)

    return load


async def _page(
    request: web.Request,
    slug: str,
    *,
    status: int = 200,
    errors: list[flash.Flash] | None = None,
    url: str | None = None,
    summary: str | None = None,
) -> web.Response:
    page = await read(request, _load(slug))
    if page is None:
        return await error_page(request, 404, "console.errors.not_found")
    campaign = page.campaign
    return await render(
        request,
        "admin_synthesis.html",
        {
            "campaign": campaign,
            "opened": page.announced[announcements.OPENED],
            "synthesis": page.announced[announcements.SYNTHESIS],
            "url": url if url is not None else campaign.synthesis_url or "",
            "summary": summary if summary is not None else campaign.synthesis_summary or "",
            "max_url": synthesis.MAX_URL,
            "max_summary": synthesis.MAX_SUMMARY,
        },
        status=status,
        errors=errors,
        section="admin",
    )


async def synthesis_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, request.match_info["slug"][:64])


async def publish_synthesis(request: web.Request) -> web.StreamResponse:
    slug = request.match_info["slug"][:64]
    form = await request.post()
    url, summary = field(form, "url"), field(form, "summary")
    try:
        done = await act(
            request, lambda rt, actor: synthesis.publish_synthesis(rt, actor, slug, url, summary)
        )
    except ActionError as error:
        return await _page(
            request, slug, status=error.status, errors=[refused(error)], url=url, summary=summary
        )
    response = see_other(PATH.format(slug=slug))
    key = "console.flash.synthesis_published" if done.events else "console.flash.unchanged"
    flash.add(request, response, key)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, synthesis_page)
    app.router.add_post(PATH, publish_synthesis)
