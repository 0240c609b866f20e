"""The API's endpoints: the moderation console's reads and actions, as JSON.

Each handler reads and checks the request on the event loop, then does its database work in
one function run on the default executor (SQLAlchemy is synchronous). Actions go through
gateway.moderation.actions, so the console and the API decide, log and notify the same way.

The scope each route needs is in gateway.api.scopes and checked by the middleware before a
handler runs; the two reads open to ``read`` tokens (contributions, campaigns) answer those
with public data only (``shapes.public_item``). Bodies are read into the request models of
gateway.api.bodies; answers are built from the response models of gateway.api.responses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import campaigns, recorded_answers_web, residents
from gateway.api import bodies, responses, scopes, shapes
from gateway.api.auth import ACTOR
from gateway.api.bodies import DASHBOARD_DAYS, EVENTS_PER_PAGE, MAX_DASHBOARD_DAYS, MAX_PAGE
from gateway.api.errors import ApiError, error_response
from gateway.api.openapi import openapi_document
from gateway.api.responses import respond
from gateway.clock import now_utc
from gateway.models import Campaign, Contribution
from gateway.moderation import (
    actions,
    answer_recordings,
    answers,
    collected,
    deadletter,
    photos,
    queries,
)
from gateway.moderation import campaigns as campaign_admin
from gateway.moderation.accounts import MODERATE, Actor
from gateway.moderation.actions import DECISIONS, ActionError, Done
from gateway.moderation.synthesis import publish_synthesis as publish_campaign_synthesis
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

PREFIX = "/api/v1"
ID = "{id:[0-9]+}"
GROUP_ID = "{group_id:[0-9]+}"
NUMBER = "{number:[0-9]+}"
SLUG = "{slug}"

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


def _items(session: Session, ids: Sequence[int]) -> list[responses.Contribution]:
    found = {c.id: c for c in session.scalars(select(Contribution).where(Contribution.id.in_(ids)))}
    return shapes.contribution_items(session, [found[i] for i in ids if i in found])


# What an action's answer shows besides what changed: ActionResult's contribution,
# contributions or campaign.
Show = Callable[[Session, Done], dict[str, Any]]


async def _act(
    request: web.Request, act: Callable[[], Done], show: Show, status: int = 200
) -> web.Response:
    """Run a moderation action, then answer with what changed and ``show``'s additions."""
    runtime = _runtime(request)

    def work() -> responses.ActionResult:
        done = act()
        with runtime.sessions() as session:
            return responses.ActionResult(
                changed=list(done.changed),
                events=shapes.events_by_id(session, done.events),
                notices_queued=len(done.outbound),
                **show(session, done),
            )

    return respond(await _db(work), status)


def _decision(body: bodies.DecisionRequest | bodies.BulkDecisionRequest) -> tuple[str, str | None]:
    if body.action not in DECISIONS:
        raise ActionError(
            "console.errors.bad_decision",
            f"unknown action {body.action!r}; one of {sorted(DECISIONS)}",
        )
    return body.action, body.reason


def _public_only(request: web.Request) -> bool:
    """A token that may read public data only (scope ``read``)."""
    return not request[ACTOR].allows(MODERATE)


# Queue filters a read token may use: those over what is public. Not ``q`` (it searches the
# resident's own words and the transcript: an oracle for what the public version hides), not
# the groups (made from the original texts), the recording or the broadcast answer.
PUBLIC_FILTERS = frozenset(
    {"status", "campaign", "channel", "category", "neighbourhood", "from", "to", "sort"}
    | {"page", "per_page"}
)


def _public_filter(request: web.Request) -> queries.QueueFilter:
    for name in request.query:
        if name not in PUBLIC_FILTERS:
            raise ApiError(
                403,
                "insufficient_scope",
                f"the {name!r} filter needs a token of scope 'moderate'",
                field=name,
            )
    if request.query.get("status", "published") != "published":
        raise ApiError(
            403,
            "insufficient_scope",
            "a read token lists published contributions only (status=published)",
            field="status",
        )
    return queries.QueueFilter.from_params({**request.query, "status": "published", "grouped": "0"})


async def _list_public(request: web.Request) -> web.Response:
    f = _public_filter(request)
    runtime = _runtime(request)
    tz = ZoneInfo(runtime.settings.timezone)

    def work() -> responses.PublicContributionList:
        with runtime.sessions() as session:
            page = queries.queue(session, f, tz)
            return responses.PublicContributionList(
                items=[shapes.public_item(row.contribution) for row in page.rows],
                page=f.page,
                per_page=f.per_page,
                pages=page.pages,
                total=page.total,
            )

    return respond(await _db(work))


# -- contributions --------------------------------------------------------------------------


async def list_contributions(request: web.Request) -> web.Response:
    if _public_only(request):
        return await _list_public(request)
    params = dict(request.query)
    # One item per contribution unless the client asks for one row per group.
    params.setdefault("grouped", "0")
    f = queries.QueueFilter.from_params(params)
    runtime = _runtime(request)
    tz = ZoneInfo(runtime.settings.timezone)

    def work() -> responses.ContributionList:
        with runtime.sessions() as session:
            page = queries.queue(session, f, tz)
            return responses.ContributionList(
                items=shapes.queue_items(session, page.rows, f.grouped),
                page=f.page,
                per_page=f.per_page,
                pages=page.pages,
                total=page.total,
                contributions=page.contributions,
                counts=responses.StatusCounts(**page.counts),
            )

    return respond(await _db(work))


async def get_contribution(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    runtime = _runtime(request)
    public_only = _public_only(request)

    def work() -> responses.ContributionDetail | responses.PublicContribution:
        with runtime.sessions() as session:
            found = _contribution(session, contribution_id)
            if public_only:
                # Not published: as if it did not exist (a 403 would confirm that it does).
                if found.status != "published":
                    raise _not_found("contribution")
                return shapes.public_item(found)
            return shapes.contribution_detail(session, found)

    return respond(await _db(work))


MAX_IDEMPOTENCY_KEY = 200


async def collect_contribution(request: web.Request) -> web.Response:
    """A contribution an agent collected (gateway.moderation.collected: the console's form and
    spreadsheet upload check and file the same way). An ``Idempotency-Key`` header makes a
    retry answer with what the first request filed (200, ``created`` false)."""
    body = await bodies.read(request, bodies.CollectedContributionRequest)
    idempotency = request.headers.get("Idempotency-Key")
    if idempotency is not None and not 1 <= len(idempotency.strip()) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            400,
            "invalid_parameter",
            f"Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY} characters",
            field="Idempotency-Key",
        )
    runtime, actor = _runtime(request), request[ACTOR]
    tz = ZoneInfo(runtime.settings.timezone)
    entry = collected.Entry(
        campaign=body.campaign,
        text=body.text,
        channel=body.channel,
        collected_on=body.collected_on or "",
        place=body.place or "",
        neighbourhood=body.neighbourhood or "",
        kind=body.kind or "individual",
        group_description=body.group_description or "",
        contact=body.contact or "",
    )
    key = (
        collected.client_key(f"api:{actor.name}", idempotency.strip())
        if idempotency is not None
        else None
    )

    def work() -> responses.CollectedContribution:
        with runtime.sessions() as session:
            if key is not None and (found := collected.already_filed(session, key)) is not None:
                item = _items(session, [found.id])[0]
                return responses.CollectedContribution(
                    contribution=item, created=False, receipt=None
                )
            checked = collected.check(session, entry, tz=tz, now=now_utc())
        filed = collected.file(runtime, actor, checked, key=key)
        with runtime.sessions() as session:
            return responses.CollectedContribution(
                contribution=_items(session, [filed.contribution_id])[0],
                created=filed.created,
                receipt=filed.receipt,
            )

    try:
        answer = await _db(work)
    except collected.Invalid as invalid:
        first = next(iter(invalid.errors))
        return error_response(
            422,
            "invalid_contribution",
            f"refused: {', '.join(invalid.errors)}",
            field=first,
            params={"fields": invalid.errors},
        )
    return respond(answer, 201 if answer.created else 200)


def _show_one(contribution_id: int) -> Show:
    def show(session: Session, _done: Done) -> dict[str, Any]:
        return {"contribution": _items(session, [contribution_id])[0]}

    return show


async def decide_contribution(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    action, reason = _decision(await bodies.read(request, bodies.DecisionRequest))
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: actions.decide(runtime, actor, [contribution_id], action, reason=reason),
        _show_one(contribution_id),
    )


async def decide_many(request: web.Request) -> web.Response:
    body = await bodies.read(request, bodies.BulkDecisionRequest)
    ids = body.ids
    action, reason = _decision(body)
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: actions.decide(runtime, actor, ids, action, reason=reason),
        lambda session, _done: {"contributions": _items(session, list(dict.fromkeys(ids)))},
    )


async def classify_contribution(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    body = await bodies.read(request, bodies.ClassificationRequest)
    # Absent: unchanged (None). Null (or ""): cleared, for the fields that may be empty.
    given = body.model_fields_set
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: actions.classify(
            runtime,
            actor,
            contribution_id,
            category=(body.category or "") if "category" in given else None,
            neighbourhood=(body.neighbourhood or "") if "neighbourhood" in given else None,
            themes=body.themes,
            tags=body.tags,
            kind=body.kind,
        ),
        _show_one(contribution_id),
    )


async def _set_text(
    request: web.Request,
    contribution_id: int,
    text: str,
    act: Callable[[Runtime, Actor, int, str], Done],
    status: int = 200,
) -> web.Response:
    """An action that takes one text: a transcript, a public version, a reply."""
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: act(runtime, actor, contribution_id, text),
        _show_one(contribution_id),
        status,
    )


async def correct_transcript(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    body = await bodies.read(request, bodies.TranscriptRequest)
    return await _set_text(request, contribution_id, body.transcript, actions.correct_transcript)


async def set_public_text(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    body = await bodies.read(request, bodies.PublicTextRequest)
    return await _set_text(request, contribution_id, body.public_text, actions.set_public_text)


async def set_photo_public(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    number = bodies.path_id(request, "number", "attachment")
    body = await bodies.read(request, bodies.PhotoPublicRequest)
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: photos.set_public(runtime, actor, contribution_id, number - 1, body.public),
        _show_one(contribution_id),
    )


async def reply_to_contributor(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    body = await bodies.read(request, bodies.ReplyRequest)
    return await _set_text(request, contribution_id, body.text, actions.reply, status=201)


async def _answer(request: web.Request) -> tuple[str, str, str | None]:
    body = await bodies.read(request, bodies.AnswerRequest)
    return body.state, body.text or "", body.text_en


async def answer_contribution(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    state, text, text_en = await _answer(request)
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: answers.answer(runtime, actor, [contribution_id], state, text, text_en=text_en),
        _show_one(contribution_id),
    )


def _recording_language(request: web.Request, fields: dict[str, str] | None = None) -> str:
    return request.query.get("language") or (fields or {}).get("language") or "fr"


async def record_answer(request: web.Request) -> web.Response:
    """The city's answer recorded (raw audio body, or a multipart form's ``audio`` file)."""
    contribution_id = bodies.path_id(request, "id", "contribution")
    data, fields = await recorded_answers_web.read_upload(request)
    language = _recording_language(request, fields)
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: answer_recordings.attach(runtime, actor, [contribution_id], data, language),
        _show_one(contribution_id),
    )


async def remove_answer_recording(request: web.Request) -> web.Response:
    contribution_id = bodies.path_id(request, "id", "contribution")
    language = _recording_language(request)
    runtime, actor = _runtime(request), request[ACTOR]
    return await _act(
        request,
        lambda: answer_recordings.remove(runtime, actor, [contribution_id], language),
        _show_one(contribution_id),
    )


# -- groups ---------------------------------------------------------------------------------


def _group_members(session: Session, group_id: int) -> list[int]:
    ids = actions.group_members(session, group_id, pending_only=False)
    if not ids:
        raise _not_found("group")
    return ids


async def get_group(request: web.Request) -> web.Response:
    group_id = bodies.path_id(request, "group_id", "group")
    runtime = _runtime(request)

    def work() -> responses.Group:
        with runtime.sessions() as session:
            items = _items(session, _group_members(session, group_id))
            return responses.Group(
                id=group_id,
                size=len(items),
                pending=sum(1 for item in items if item.status == "pending"),
                items=items,
            )

    return respond(await _db(work))


async def decide_group(request: web.Request) -> web.Response:
    group_id = bodies.path_id(request, "group_id", "group")
    action, reason = _decision(await bodies.read(request, bodies.DecisionRequest))
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


async def answer_group(request: web.Request) -> web.Response:
    group_id = bodies.path_id(request, "group_id", "group")
    state, text, text_en = await _answer(request)
    runtime, actor = _runtime(request), request[ACTOR]

    def act() -> Done:
        with runtime.sessions() as session:
            _group_members(session, group_id)  # an unknown group is a 404
        return answers.answer_group(runtime, actor, group_id, state, text, text_en=text_en)

    return await _act(
        request,
        act,
        lambda session, _done: {
            "contributions": _items(session, _group_members(session, group_id))
        },
    )


def _group_show(group_id: int) -> Show:
    return lambda session, _done: {
        "contributions": _items(session, _group_members(session, group_id))
    }


async def record_group_answer(request: web.Request) -> web.Response:
    """One recording for every published contribution of a group (one file, shared)."""
    group_id = bodies.path_id(request, "group_id", "group")
    data, fields = await recorded_answers_web.read_upload(request)
    language = _recording_language(request, fields)
    runtime, actor = _runtime(request), request[ACTOR]

    def act() -> Done:
        with runtime.sessions() as session:
            _group_members(session, group_id)  # an unknown group is a 404
        ids = answers.published_members(runtime, group_id)
        return answer_recordings.attach(runtime, actor, ids, data, language)

    return await _act(request, act, _group_show(group_id))


async def remove_group_answer_recording(request: web.Request) -> web.Response:
    group_id = bodies.path_id(request, "group_id", "group")
    language = _recording_language(request)
    runtime, actor = _runtime(request), request[ACTOR]

    def act() -> Done:
        with runtime.sessions() as session:
            ids = _group_members(session, group_id)  # an unknown group is a 404
        return answer_recordings.remove(runtime, actor, ids, language)

    return await _act(request, act, _group_show(group_id))


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
    page = bodies.query_int(request, "page", 1, 1, MAX_PAGE)
    per_page = bodies.query_int(request, "per_page", EVENTS_PER_PAGE, 1, queries.MAX_PER_PAGE)
    runtime = _runtime(request)

    def work() -> responses.EventList:
        with runtime.sessions() as session:
            found = queries.log_page(
                session,
                contribution_id=contribution_id,
                actor=actor,
                action=action,
                page=page,
                per_page=per_page,
            )
            return responses.EventList(
                items=[shapes.event(e, ref) for e, ref in found.events],
                page=found.page,
                per_page=found.per_page,
                pages=found.pages,
                total=found.total,
            )

    return respond(await _db(work))


# -- campaigns ------------------------------------------------------------------------------


async def list_campaigns(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    public_only = _public_only(request)

    def work() -> responses.CampaignList:
        with runtime.sessions() as session:
            found = queries.campaigns(session)
            if public_only:
                # A draft is not announced yet.
                found = [c for c in found if c.status != "draft"]
            return responses.CampaignList(items=[shapes.campaign(c) for c in found])

    return respond(await _db(work))


async def set_campaign_status(request: web.Request) -> web.Response:
    actor = request[ACTOR]
    slug = request.match_info["slug"]
    status = (await bodies.read(request, bodies.CampaignStatusRequest)).status
    runtime = _runtime(request)
    return await _act(
        request,
        lambda: campaign_admin.set_campaign_status(runtime, actor, slug, status),
        lambda session, _done: {"campaign": shapes.campaign(_campaign(session, slug))},
    )


async def _save_campaign(request: web.Request, slug: str | None) -> web.Response:
    """POST (create, 201) or PUT (replace wholly) a campaign; the rules are a campaign
    file's (gateway.campaigns.parse): a refused one is a 422 naming the field, an existing
    slug on POST a 409."""
    actor = request[ACTOR]
    body = await bodies.read(request, bodies.CampaignRequest)
    runtime = _runtime(request)
    saved_slug = slug or body.slug

    def save() -> Done:
        try:
            return campaign_admin.save_campaign(
                runtime, actor, body.file_data(), slug=slug, source="api"
            )
        except campaigns.CampaignFileError as exc:
            raise ApiError(
                409 if exc.code == "exists" else 422,
                f"campaign.{exc.code}",
                str(exc).removeprefix("api: "),
                field=exc.field,
                params=exc.params,
            ) from None

    return await _act(
        request,
        save,
        lambda session, _done: {"campaign": shapes.campaign(_campaign(session, saved_slug))},
        201 if slug is None else 200,
    )


async def create_campaign(request: web.Request) -> web.Response:
    return await _save_campaign(request, None)


async def replace_campaign(request: web.Request) -> web.Response:
    return await _save_campaign(request, request.match_info["slug"])


async def publish_synthesis(request: web.Request) -> web.Response:
    """Publish a campaign's synthesis; the residents who asked for announcements are told."""
    actor = request[ACTOR]
    slug = request.match_info["slug"]
    body = await bodies.read(request, bodies.SynthesisRequest)
    runtime = _runtime(request)
    return await _act(
        request,
        lambda: publish_campaign_synthesis(runtime, actor, slug, body.url, body.summary),
        lambda session, _done: {"campaign": shapes.campaign(_campaign(session, slug))},
    )


# -- residents (admins: a request made in person) --------------------------------------------


async def forget_resident(request: web.Request) -> web.Response:
    """Erase a resident named by their address, on every channel of it (gateway.residents):
    for a resident who asks at the town hall or by post. Counts only in the answer."""
    body = await bodies.read(request, bodies.ResidentRequest)
    runtime, actor = _runtime(request), request[ACTOR]

    def work() -> responses.Erasure:
        erased = residents.forget_address(runtime, body.channel, body.address, actor=actor.name)
        return responses.Erasure(
            erased=responses.Erased(
                contributors=erased.contributors,
                contributions_detached=erased.contributions,
                messages=erased.messages,
                replies=erased.replies,
                calls=erased.calls,
                files=erased.files,
            ),
            known=bool(erased.contributors or erased.messages or erased.calls),
        )

    return respond(await _db(work))


async def opt_out_resident(request: web.Request) -> web.Response:
    """Send nothing more to a resident named by their address, on every channel of it."""
    body = await bodies.read(request, bodies.ResidentRequest)
    runtime, actor = _runtime(request), request[ACTOR]
    changed = await _db(
        lambda: residents.opt_out_address(runtime, body.channel, body.address, actor=actor.name)
    )
    return respond(responses.OptOut(opted_out=True, rows_changed=changed))


# -- messages that could not be delivered (admins) -------------------------------------------


async def list_failed_outbound(request: web.Request) -> web.Response:
    page = bodies.query_int(request, "page", 1, 1, MAX_PAGE)
    per_page = bodies.query_int(request, "per_page", deadletter.PER_PAGE, 1, queries.MAX_PER_PAGE)
    runtime = _runtime(request)

    def work() -> responses.FailedOutboundList:
        with runtime.sessions() as session:
            total = deadletter.failed_count(session)
            found = deadletter.failed_messages(session, page, per_page)
            return responses.FailedOutboundList(
                items=[shapes.failed_outbound(m) for m in found],
                page=page,
                per_page=per_page,
                pages=max(1, -(-total // per_page)),
                total=total,
            )

    return respond(await _db(work))


async def retry_outbound(request: web.Request) -> web.Response:
    outbound_id = int(request.match_info["id"])
    body = await bodies.read(request, bodies.OutboundActionRequest)
    runtime, actor = _runtime(request), request[ACTOR]
    outcome = await _db(lambda: deadletter.retry(runtime, outbound_id, actor, body.reason))
    return respond(shapes.outbound_outcome(outcome))


async def discard_outbound(request: web.Request) -> web.Response:
    outbound_id = int(request.match_info["id"])
    body = await bodies.read(request, bodies.OutboundActionRequest)
    runtime, actor = _runtime(request), request[ACTOR]
    outcome = await _db(lambda: deadletter.discard(runtime, outbound_id, actor, body.reason))
    return respond(shapes.outbound_outcome(outcome))


async def campaign_stats(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    days = bodies.query_int(request, "days", DASHBOARD_DAYS, 1, MAX_DASHBOARD_DAYS)
    runtime = _runtime(request)
    tz = ZoneInfo(runtime.settings.timezone)

    def work() -> responses.Stats:
        with runtime.sessions() as session:
            _campaign(session, slug)
            board = queries.dashboard(session, slug, tz, now_utc(), days=days)
            return shapes.stats(slug, days, board)

    return respond(await _db(work))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/openapi.json", openapi_document, name="api_openapi")
    routes: list[tuple[str, str, Any, str | None]] = [
        ("GET", "/contributions", list_contributions, "api_contributions"),
        ("POST", "/contributions", collect_contribution, None),
        ("GET", f"/contributions/{ID}", get_contribution, "api_contribution"),
        ("POST", f"/contributions/{ID}/decision", decide_contribution, None),
        ("POST", f"/contributions/{ID}/classification", classify_contribution, None),
        ("PUT", f"/contributions/{ID}/transcript", correct_transcript, None),
        ("PUT", f"/contributions/{ID}/public-text", set_public_text, None),
        ("PUT", f"/contributions/{ID}/attachments/{NUMBER}/public", set_photo_public, None),
        ("POST", f"/contributions/{ID}/replies", reply_to_contributor, None),
        ("POST", f"/contributions/{ID}/answer", answer_contribution, None),
        ("POST", f"/contributions/{ID}/answer/audio", record_answer, None),
        ("DELETE", f"/contributions/{ID}/answer/audio", remove_answer_recording, None),
        ("POST", "/decisions", decide_many, None),
        ("GET", f"/groups/{GROUP_ID}", get_group, "api_group"),
        ("POST", f"/groups/{GROUP_ID}/decision", decide_group, None),
        ("POST", f"/groups/{GROUP_ID}/answer", answer_group, None),
        ("POST", f"/groups/{GROUP_ID}/answer/audio", record_group_answer, None),
        ("DELETE", f"/groups/{GROUP_ID}/answer/audio", remove_group_answer_recording, None),
        ("GET", "/events", list_events, "api_events"),
        ("GET", "/campaigns", list_campaigns, "api_campaigns"),
        ("POST", "/campaigns", create_campaign, None),
        ("PUT", f"/campaigns/{SLUG}", replace_campaign, None),
        ("PUT", f"/campaigns/{SLUG}/status", set_campaign_status, None),
        ("POST", f"/campaigns/{SLUG}/synthesis", publish_synthesis, None),
        ("GET", f"/campaigns/{SLUG}/stats", campaign_stats, None),
        ("POST", "/residents/forget", forget_resident, None),
        ("POST", "/residents/opt-out", opt_out_resident, None),
        ("GET", "/outbound/failed", list_failed_outbound, "api_failed_outbound"),
        ("POST", f"/outbound/{ID}/retry", retry_outbound, None),
        ("POST", f"/outbound/{ID}/discard", discard_outbound, None),
    ]
    for method, path, handler, name in routes:
        if method == "GET":  # with HEAD, as add_get does
            route = r.add_get(PREFIX + path, handler, name=name)
        else:
            route = r.add_route(method, PREFIX + path, handler, name=name)
        canonical = route.resource.canonical if route.resource else path
        # Every route says which scope it needs: one without is a mistake, caught at start-up.
        if (method, canonical.removeprefix(PREFIX)) not in scopes.NEEDED:
            raise RuntimeError(f"{method} {canonical}: no scope in gateway.api.scopes.NEEDED")
