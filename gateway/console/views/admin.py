"""Administration (admins only, checked by the console middleware): moderator accounts and
campaign statuses."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.console import flash
from gateway.console.keys import VIEWER
from gateway.console.rendering import error_page, render, see_other
from gateway.console.views.common import field, parse_id, refused
from gateway.console.work import act, offload, read, write
from gateway.models import Campaign, Contribution, Moderator
from gateway.moderation import accounts
from gateway.moderation import campaigns as campaign_admin
from gateway.moderation.actions import ActionError
from gateway.publication import decidim_api
from gateway.webkeys import RUNTIME

ACCOUNTS = "/moderation/admin/accounts"
CAMPAIGNS = "/moderation/admin/campaigns"
CAMPAIGN_STATUSES = ("draft", "open", "closed")


async def _accounts_page(
    request: web.Request,
    *,
    status: int = 200,
    errors: list[flash.Flash] | None = None,
    name: str = "",
    role: str = "moderator",
) -> web.Response:
    moderators = await read(
        request, lambda session: list(session.scalars(select(Moderator).order_by(Moderator.name)))
    )
    return await render(
        request,
        "admin_accounts.html",
        {
            "moderators": moderators,
            "roles": accounts.ROLES,
            "name": name,
            "role": role,
            "min_password": accounts.MIN_PASSWORD_LENGTH,
        },
        status=status,
        errors=errors,
        section="admin",
    )


async def accounts_page(request: web.Request) -> web.StreamResponse:
    return await _accounts_page(request)


async def add_account(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = field(form, "name").strip()
    role = field(form, "role", "moderator")
    password = field(form, "password")
    language = field(form, "language", "fr")

    def add(session: Session) -> None:
        accounts.add_moderator(
            session, name, password, role=role, language=language if language == "en" else "fr"
        )

    try:
        await write(request, add)
    except accounts.AccountError as error:
        return await _accounts_page(
            request,
            status=400,
            errors=[flash.Flash(error.key, {"min": accounts.MIN_PASSWORD_LENGTH}, error=True)],
            name=name,
            role=role,
        )
    response = see_other(ACCOUNTS)
    flash.add(request, response, "console.flash.account_added", name=name)
    return response


async def set_active(request: web.Request) -> web.StreamResponse:
    moderator_id = parse_id(request, "id")
    active = field(await request.post(), "active") == "1"
    if moderator_id == request[VIEWER].moderator_id and not active:
        return await _accounts_page(
            request,
            status=409,
            errors=[flash.Flash("console.errors.deactivate_self", error=True)],
        )

    def change(session: Session) -> str | None:
        moderator = session.get(Moderator, moderator_id)
        if moderator is None:
            return None
        # Deactivating also deletes the account's sessions, so that its open pages and live
        # board stop at once and reactivating it later revives no old cookie.
        accounts.set_active(session, moderator, active)
        return moderator.name

    name = await write(request, change)
    if name is None:
        return await error_page(request, 404, "console.errors.not_found")
    response = see_other(ACCOUNTS)
    key = "console.flash.account_activated" if active else "console.flash.account_deactivated"
    flash.add(request, response, key, name=name)
    return response


@dataclass(frozen=True)
class CampaignRow:
    campaign: Campaign
    contributions: int
    pending: int
    # Direct publication to Decidim (gateway.publication.decidim_api): contributions published
    # there, contributions with an error, the last queued run's state.
    decidim_published: int = 0
    decidim_errors: int = 0
    decidim_run: str | None = None


async def _campaigns_page(
    request: web.Request, *, status: int = 200, errors: list[flash.Flash] | None = None
) -> web.Response:
    runtime = request.app[RUNTIME]

    def load(session: Session) -> list[CampaignRow]:
        on_decidim = decidim_api.counts(session)
        counts: dict[tuple[int | None, str], int] = {
            (cid, st): int(n)
            for cid, st, n in session.execute(
                select(Contribution.campaign_id, Contribution.status, func.count()).group_by(
                    Contribution.campaign_id, Contribution.status
                )
            ).all()
        }
        rows = []
        for campaign in session.scalars(select(Campaign).order_by(Campaign.title)):
            mine = {st: n for (cid, st), n in counts.items() if cid == campaign.id}
            done, failing = on_decidim.get(campaign.id, (0, 0))
            run = (
                decidim_api.last_run(runtime, campaign.slug)
                if campaign.decidim_component is not None
                else None
            )
            rows.append(
                CampaignRow(
                    campaign, sum(mine.values()), mine.get("pending", 0), done, failing, run
                )
            )
        return rows

    rows = await read(request, load)
    return await render(
        request,
        "admin_campaigns.html",
        {
            "rows": rows,
            "statuses": CAMPAIGN_STATUSES,
            "decidim_configured": runtime.settings.decidim_configured,
        },
        status=status,
        errors=errors,
        section="admin",
    )


async def campaigns_page(request: web.Request) -> web.StreamResponse:
    return await _campaigns_page(request)


async def campaign_status(request: web.Request) -> web.StreamResponse:
    slug = request.match_info["slug"][:64]
    wanted = field(await request.post(), "status")
    try:
        done = await act(
            request, lambda rt, actor: campaign_admin.set_campaign_status(rt, actor, slug, wanted)
        )
    except ActionError as error:
        return await _campaigns_page(request, status=error.status, errors=[refused(error)])
    response = see_other(CAMPAIGNS)
    if done.events:
        flash.add(request, response, "console.flash.campaign_status", slug=slug)
    else:
        flash.add(request, response, "console.flash.unchanged")
    return response


async def decidim_publish(request: web.Request) -> web.StreamResponse:
    """Queue the campaign's publication to Decidim (workers.jobs.publish_to_decidim)."""
    slug = request.match_info["slug"][:64]
    runtime = request.app[RUNTIME]
    campaign = await read(
        request, lambda session: session.scalar(select(Campaign).where(Campaign.slug == slug))
    )
    if campaign is None:
        return await error_page(request, 404, "console.errors.not_found")
    if not runtime.settings.decidim_configured or campaign.decidim_component is None:
        return await _campaigns_page(
            request,
            status=409,
            errors=[flash.Flash("console.errors.decidim_not_ready", error=True)],
        )
    try:
        queued = await offload(lambda: decidim_api.enqueue(runtime, slug))
    except (RedisError, OSError):
        return await _campaigns_page(
            request,
            status=503,
            errors=[flash.Flash("console.errors.decidim_queue_down", error=True)],
        )
    response = see_other(CAMPAIGNS)
    key = "console.flash.decidim_queued" if queued else "console.flash.decidim_already"
    flash.add(request, response, key, slug=slug)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(ACCOUNTS, accounts_page)
    app.router.add_post(ACCOUNTS, add_account)
    app.router.add_post(ACCOUNTS + "/{id}/active", set_active)
    app.router.add_get(CAMPAIGNS, campaigns_page)
    app.router.add_post(CAMPAIGNS + "/{slug}/status", campaign_status)
    app.router.add_post(CAMPAIGNS + "/{slug}/decidim", decidim_publish)
