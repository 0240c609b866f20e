"""A group of identical or near-identical contributions (a tract many residents sent):
its members, how many residents sent it, and one decision for all of its pending members."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.console import flash
from gateway.console.present import Excerpt, excerpt
from gateway.console.rendering import error_page, render, see_other
from gateway.console.views.common import (
    field,
    parse_id,
    query_string,
    queue_filter,
    refused,
    with_query,
)
from gateway.console.work import act, read
from gateway.models import Contribution
from gateway.moderation import actions
from gateway.moderation.actions import ActionError

PATH = "/moderation/groups/"


@dataclass(frozen=True)
class Member:
    contribution: Contribution
    excerpt: Excerpt


@dataclass(frozen=True)
class GroupData:
    members: list[Member]
    residents: int
    pending: int


def _load(group_id: int, session: Session) -> GroupData | None:
    members = list(
        session.scalars(
            select(Contribution)
            .where(Contribution.group_id == group_id)
            .order_by(Contribution.received_at, Contribution.id)
        ).unique()
    )
    if not members:
        return None
    known = {m.contributor_id for m in members if m.contributor_id is not None}
    # A contribution whose author asked to be forgotten still counts as one resident.
    anonymous = sum(1 for m in members if m.contributor_id is None)
    return GroupData(
        members=[Member(m, excerpt(m, 240)) for m in members],
        residents=len(known) + anonymous,
        pending=sum(1 for m in members if m.status == "pending"),
    )


async def _page(
    request: web.Request,
    group_id: int,
    *,
    status: int = 200,
    errors: list[flash.Flash] | None = None,
    reason: str = "",
) -> web.Response:
    data = await read(request, lambda session: _load(group_id, session))
    if data is None:
        return await error_page(request, 404, "console.errors.group_not_found")
    f = queue_filter(request.query)
    return await render(
        request,
        "group.html",
        {
            "group_id": group_id,
            "data": data,
            "first": data.members[0].contribution,
            "qs": query_string(f, page=1),
            "queue_url": with_query("/moderation/queue", query_string(f)),
            "reason": reason,
        },
        status=status,
        errors=errors,
        section="queue",
    )


async def group_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, parse_id(request, "group_id"))


async def group_decision(request: web.Request) -> web.StreamResponse:
    group_id = parse_id(request, "group_id")
    form = await request.post()
    decided = field(form, "action")
    reason = field(form, "reason")
    try:
        done = await act(
            request,
            lambda rt, actor: actions.decide_group(
                rt, actor, group_id, decided, reason=reason or None
            ),
        )
    except ActionError as error:
        return await _page(
            request, group_id, status=error.status, errors=[refused(error)], reason=reason
        )
    f = queue_filter(request.query)
    response = see_other(with_query(f"{PATH}{group_id}", query_string(f, page=1)))
    if done.changed:
        flash.add(request, response, f"console.flash.bulk.{decided}", count=len(done.changed))
    else:
        flash.add(request, response, "console.flash.unchanged")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH + "{group_id}", group_page)
    app.router.add_post(PATH + "{group_id}/decision", group_decision)
