"""The queue: filters, search, counts per status, grouped rows, bulk decisions."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.orm import Session

from gateway.console import flash
from gateway.console.present import Excerpt, excerpt
from gateway.console.rendering import render, see_other, timezone
from gateway.console.views.common import (
    field,
    fields,
    filter_from_query_string,
    query_string,
    queue_filter,
    refused,
    with_query,
)
from gateway.console.work import act, read
from gateway.models import Campaign, Contribution
from gateway.moderation import actions, queries
from gateway.moderation.actions import ActionError
from gateway.moderation.queries import QueueFilter

PATH = "/moderation/queue"
# "review": published at once (a posteriori campaign), waiting for a moderator's review.
STATUS_TABS = ("pending", queries.REVIEW, "published", "rejected", "spam", "all")


@dataclass(frozen=True)
class Row:
    contribution: Contribution
    group_size: int
    excerpt: Excerpt


@dataclass(frozen=True)
class QueueData:
    page: queries.QueuePage
    rows: list[Row]
    campaigns: list[Campaign]
    neighbourhoods: list[str]


async def _load(request: web.Request, f: QueueFilter) -> QueueData:
    tz = timezone(request)

    def load(session: Session) -> QueueData:
        page = queries.queue(session, f, tz)
        return QueueData(
            page=page,
            rows=[Row(r.contribution, r.group_size, excerpt(r.contribution)) for r in page.rows],
            campaigns=queries.campaigns(session),
            neighbourhoods=queries.neighbourhoods(session),
        )

    return await read(request, load)


async def _page(
    request: web.Request,
    f: QueueFilter,
    *,
    status: int = 200,
    errors: list[flash.Flash] | None = None,
    selected: frozenset[int] = frozenset(),
    reason: str = "",
    select_all: bool = False,
) -> web.Response:
    data = await _load(request, f)
    if select_all:
        selected = frozenset(r.contribution.id for r in data.rows)
    page = data.page
    counts = {**page.counts, queries.REVIEW: page.to_review}
    tabs = [
        (
            name,
            counts.get(name, 0),
            with_query(PATH, query_string(f, status=None if name == "all" else name, page=1)),
            (f.status or "all") == name,
        )
        for name in STATUS_TABS
        # Only where there is something to review: a city without a posteriori campaigns
        # never sees the tab.
        if name != queries.REVIEW or page.to_review or f.status == queries.REVIEW
    ]
    return await render(
        request,
        "queue.html",
        {
            "f": f,
            "data": data,
            "tabs": tabs,
            "qs": query_string(f),
            "filter_qs": query_string(f, page=1),
            "prev_url": with_query(PATH, query_string(f, page=f.page - 1)) if f.page > 1 else None,
            "next_url": with_query(PATH, query_string(f, page=f.page + 1))
            if f.page < page.pages
            else None,
            "select_all_url": with_query(PATH, query_string(f))
            + ("&" if query_string(f) else "?")
            + "select=all",
            "group_toggle_url": with_query(PATH, query_string(f, grouped=not f.grouped, page=1)),
            "selected": selected,
            "reason": reason,
            "statuses": actions.STATUSES,
            "channels": actions.CHANNELS,
            "categories": actions.CATEGORIES,
            "decisions": tuple(actions.DECISIONS),
        },
        status=status,
        errors=errors,
        section="queue",
    )


async def queue_page(request: web.Request) -> web.StreamResponse:
    f = queue_filter(request.query)
    return await _page(request, f, select_all=request.query.get("select") == "all")


async def bulk(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    f = filter_from_query_string(field(form, "back"))
    decision = field(form, "action")
    reason = field(form, "reason")
    ids = [int(v) for v in fields(form, "ids") if v.isdigit() and len(v) < 10]
    try:
        done = await act(
            request,
            lambda rt, actor: actions.decide(rt, actor, ids, decision, reason=reason or None),
        )
    except ActionError as error:
        return await _page(
            request,
            f,
            status=error.status,
            errors=[refused(error)],
            selected=frozenset(ids),
            reason=reason,
        )
    response = see_other(with_query(PATH, query_string(f)))
    if done.changed:
        flash.add(request, response, f"console.flash.bulk.{decision}", count=len(done.changed))
    else:
        flash.add(request, response, "console.flash.unchanged")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, queue_page)
    app.router.add_post(PATH + "/bulk", bulk)
