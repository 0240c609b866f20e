"""The API's endpoints: the moderation console's reads and actions, as JSON.

Each handler reads and checks the request on the event loop, then does its database work in
one function run on the default executor (SQLAlchemy is synchronous). Actions go through
gateway.moderation.actions, so the console and the API decide, log and notify the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api import bodies, shapes
from gateway.api.auth import ACTOR, require_admin
from gateway.api.errors import ApiError
from gateway.api.openapi import openapi_document
from gateway.models import Campaign, Contribution
from gateway.moderation import actions, queries
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import DECISIONS, ActionError, Done
from gateway.pipeline import now_utc
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

PREFIX = "/api/v1"
ID = "{id:[0-9]+}"
GROUP_ID = "{group_id:[0-9]+}"
SLUG = "{slug}"
MAX_BULK = queries.MAX_PER_PAGE  # ids in one bulk decision: one page of the queue
DASHBOARD_DAYS = 30
MAX_DASHBOARD_DAYS = 366
EVENTS_PER_PAGE = 50

T = TypeVar("T")


async def _db(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def _runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def _not_found(what: str) -> ActionError:
    return ActionError("console.errors.not_found", f"no such {what}", 404)


def _contribution(session: Session, contribution_id: int) -> Contribution:
    found = session.get(Contribution, contribution_id)
    if found is None:
        raise _not_found("contribution")
    return found


def _campaign(session: Session, slug: str) -> Campaign:
    found = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if found is None:
        raise _not_found("campaign")
    return found


def _items(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    found = {c.id: c for c in session.scalars(select(Contribution).where(Contribution.id.in_(ids)))}
    return shapes.contribution_items(session, [found[i] for i in ids if i in found])


def _result(session: Session, done: Done) -> dict[str, Any]:
    return {
        "changed": list(done.changed),
        "events": shapes.events_by_id(session, done.events),
        "notices_queued": len(done.outbound),
    }


async def _act(
    request: web.Request,
    act: Callable[[], Done],
    show: Callable[[Session, Done], dict[str, Any]],
    status: int = 200,
) -> web.Response:
    """Run a moderation action, then answer with what changed and ``show``'s additions."""
    runtime = _runtime(request)

    def work() -> dict[str, Any]:
        done = act()
        with runtime.sessions() as session:
            return {**_result(session, done), **show(session, done)}

    return web.json_response(await _db(work), status=status)


def _decision(body: dict[str, Any]) -> tuple[str, str | None]:
    action = bodies.string(body, "action")
    if action not in DECISIONS:
        raise ActionError(
            "console.errors.bad_decision", f"unknown action {action!r}; one of {sorted(DECISIONS)}"
        )
    return action, bodies.optional_string(body, "reason")


# -- contributions --------------------------------------------------------------------------


async def list_contributions(request: web.Request) -> web.Response:
    params = dict(request.query)
    # One item per contribution unless the client asks for one row per group.
    params.setdefault("grouped", "0")
    f = queries.QueueFilter.from_params(params)
    runtime = _runtime(request)
    tz = ZoneInfo(runtime.settings.timezone)

    def work() -> dict[str, Any]:
        with runtime.sessions() as session:
            page = queries.queue(session, f, tz)
            found = [row.contribution for row in page.rows]
            items = shapes.contribution_items(session, found)
            if f.grouped:
                for item, row in zip(items, page.rows, strict=True):
                    item["group_matching"] = row.group_size
            return {
                "items": items,
                "page": f.page,
                "per_page": f.per_page,
                "pages": page.pages,
                "total": page.total,
                "contributions": page.contributions,
                "counts": page.counts,
            }

    return web.json_response(await _db(work))


async def get_contribution(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    runtime = _runtime(request)

    def work() -> dict[str, Any]:
        with runtime.sessions() as session:
            return shapes.contribution_detail(session, _contribution(session, contribution_id))

    return web.json_response(await _db(work))


def _show_one(contribution_id: int) -> Callable[[Session, Done], dict[str, Any]]:
    def show(session: Session, _done: Done) -> dict[str, Any]:
        return {"contribution": _items(session, [contribution_id])[0]}

    return show


async def decide_contribution(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    action, reason = _decision(await bodies.json_object(request, ("action", "reason")))
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: actions.decide(runtime, actor, [contribution_id], action, reason=reason),
        _show_one(contribution_id),
    )


async def decide_many(request: web.Request) -> web.Response:
    body = await bodies.json_object(request, ("ids", "action", "reason"))
    ids = bodies.id_list(body, "ids", MAX_BULK)
    action, reason = _decision(body)
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: actions.decide(runtime, actor, ids, action, reason=reason),
        lambda session, _done: {"contributions": _items(session, list(dict.fromkeys(ids)))},
    )


async def classify_contribution(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    body = await bodies.json_object(
        request, ("category", "themes", "tags", "neighbourhood", "kind")
    )
    # Absent: unchanged. Null (or ""): cleared, where a field may be empty.
    changes: dict[str, Any] = {}
    for name in ("category", "neighbourhood"):
        if name in body:
            changes[name] = bodies.optional_string(body, name) or ""
    for name in ("themes", "tags"):
        changes[name] = bodies.string_list(body, name)
    if "kind" in body:
        changes["kind"] = bodies.string(body, "kind")
        if not changes["kind"]:
            raise bodies.invalid("kind", "'kind' cannot be empty")
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: actions.classify(runtime, actor, contribution_id, **changes),
        _show_one(contribution_id),
    )


async def _set_text(
    request: web.Request,
    field: str,
    act: Callable[[Runtime, Actor, int, str], Done],
    status: int = 200,
) -> web.Response:
    """An action that takes one text: a transcript, a public version, an answer."""
    contribution_id = bodies.path_id(request, "id", "contribution")
    text = bodies.string(await bodies.json_object(request, (field,)), field)
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: act(runtime, actor, contribution_id, text),
        _show_one(contribution_id),
        status,
    )


async def correct_transcript(request: web.Request) -> web.Response:
    return await _set_text(request, "transcript", actions.correct_transcript)


async def set_public_text(request: web.Request) -> web.Response:
    return await _set_text(request, "public_text", actions.set_public_text)


async def reply_to_contributor(request: web.Request) -> web.Response:
    return await _set_text(request, "text", actions.reply, status=201)


# -- groups ---------------------------------------------------------------------------------


def _group_members(session: Session, group_id: int) -> list[int]:
    ids = actions.group_members(session, group_id, pending_only=False)
    if not ids:
        raise _not_found("group")
    return ids


async def get_group(request: web.Request) -> web.Response:
    group_id = bodies.path_id(request, "group_id", "group")
    runtime = _runtime(request)

    def work() -> dict[str, Any]:
        with runtime.sessions() as session:
            items = _items(session, _group_members(session, group_id))
            return {
                "id": group_id,
                "size": len(items),
                "pending": sum(1 for item in items if item["status"] == "pending"),
                "items": items,
            }

    return web.json_response(await _db(work))


async def decide_group(request: web.Request) -> web.Response:
    group_id = bodies.path_id(request, "group_id", "group")
    action, reason = _decision(await bodies.json_object(request, ("action", "reason")))
    runtime, actor = _runtime(request), request[ACTOR]

    def act() -> Done:
        with runtime.sessions() as session:
            _group_members(session, group_id)  # an unknown group is a 404, not "nothing pending"
        return actions.decide_group(runtime, actor, group_id, action, reason=reason)

    return await _act(
        request,
        act,
        lambda session, _done: {
            "contributions": _items(session, _group_members(session, group_id))
        },
    )


# -- the moderation log ---------------------------------------------------------------------


async def list_events(request: web.Request) -> web.Response:
    contribution = request.query.get("contribution", "")
    if contribution and not (
        contribution.isascii() and contribution.isdigit() and 0 < int(contribution) <= bodies.MAX_ID
    ):
        raise ApiError(
            400,
            "invalid_parameter",
            "'contribution' must be a contribution id",
            field="contribution",
        )
    contribution_id = int(contribution) if contribution else None
    actor = request.query.get("actor") or None
    action = request.query.get("action") or None
    page = bodies.query_int(request, "page", 1, 1, 100_000)
    per_page = bodies.query_int(request, "per_page", EVENTS_PER_PAGE, 1, queries.MAX_PER_PAGE)
    runtime = _runtime(request)

    def work() -> dict[str, Any]:
        with runtime.sessions() as session:
            found = queries.log_page(
                session,
                contribution_id=contribution_id,
                actor=actor,
                action=action,
                page=page,
                per_page=per_page,
            )
            return {
                "items": [shapes.event_dict(e, ref) for e, ref in found.events],
                "page": found.page,
                "per_page": found.per_page,
                "pages": found.pages,
                "total": found.total,
            }

    return web.json_response(await _db(work))


# -- campaigns ------------------------------------------------------------------------------


async def list_campaigns(request: web.Request) -> web.Response:
    runtime = _runtime(request)

    def work() -> dict[str, Any]:
        with runtime.sessions() as session:
            return {"items": [shapes.campaign_dict(c) for c in queries.campaigns(session)]}

    return web.json_response(await _db(work))


async def set_campaign_status(request: web.Request) -> web.Response:
    actor = request[ACTOR]
    require_admin(actor)  # before reading the body: a moderator learns nothing more
    slug = request.match_info["slug"]
    status = bodies.string(await bodies.json_object(request, ("status",)), "status")
    runtime = _runtime(request)
    return await _act(
        request,
        lambda: actions.set_campaign_status(runtime, actor, slug, status),
        lambda session, _done: {"campaign": shapes.campaign_dict(_campaign(session, slug))},
    )


async def campaign_stats(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    days = bodies.query_int(request, "days", DASHBOARD_DAYS, 1, MAX_DASHBOARD_DAYS)
    runtime = _runtime(request)
    tz = ZoneInfo(runtime.settings.timezone)

    def work() -> dict[str, Any]:
        with runtime.sessions() as session:
            _campaign(session, slug)
            board = queries.dashboard(session, slug, tz, now_utc(), days=days)
            return shapes.stats_dict(slug, days, board)

    return web.json_response(await _db(work))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/openapi.json", openapi_document, name="api_openapi")
    r.add_get(f"{PREFIX}/contributions", list_contributions, name="api_contributions")
    r.add_get(f"{PREFIX}/contributions/{ID}", get_contribution, name="api_contribution")
    r.add_post(f"{PREFIX}/contributions/{ID}/decision", decide_contribution)
    r.add_post(f"{PREFIX}/contributions/{ID}/classification", classify_contribution)
    r.add_put(f"{PREFIX}/contributions/{ID}/transcript", correct_transcript)
    r.add_put(f"{PREFIX}/contributions/{ID}/public-text", set_public_text)
    r.add_post(f"{PREFIX}/contributions/{ID}/replies", reply_to_contributor)
    r.add_post(f"{PREFIX}/decisions", decide_many)
    r.add_get(f"{PREFIX}/groups/{GROUP_ID}", get_group, name="api_group")
    r.add_post(f"{PREFIX}/groups/{GROUP_ID}/decision", decide_group)
    r.add_get(f"{PREFIX}/events", list_events, name="api_events")
    r.add_get(f"{PREFIX}/campaigns", list_campaigns, name="api_campaigns")
    r.add_put(f"{PREFIX}/campaigns/{SLUG}/status", set_campaign_status)
    r.add_get(f"{PREFIX}/campaigns/{SLUG}/stats", campaign_stats)
