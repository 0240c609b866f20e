"""The city's answers: published contributions of a campaign in their public version, their
answer state, and a form to answer each (gateway.moderation.answers).

This is the one page an ``answerer`` account sees (an elected official, a city department):
public versions only, never what the resident wrote, their address or the moderation queue
(gateway.console.auth keeps them here). Moderators and admins use it too, and also find the
answer form on each contribution's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway import recorded_answers
from gateway.console import flash
from gateway.console.auth import HOME, safe_next
from gateway.console.rendering import render, see_other
from gateway.console.views.common import field, parse_id, refused, with_query
from gateway.console.work import act, read
from gateway.models import Campaign, Contribution
from gateway.moderation import answer_recordings
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError, Done
from gateway.moderation.answers import ANSWER_STATES, MAX_ANSWER, answer
from gateway.publication.records import PublicFilter, PublicRecord, public_records
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

PATH = "/moderation/answers"
PER_PAGE = 50
FILTER_STATES = (*ANSWER_STATES, "unanswered")


@dataclass(frozen=True)
class AnswersData:
    campaigns: list[tuple[str, str]]  # (slug, title)
    campaign: str | None
    records: list[PublicRecord]
    total: int
    # contribution id -> {"fr"|"en": the console's URL of its recorded answer}
    recordings: dict[int, dict[str, str]]


def _query(campaign: str | None, state: str | None, page: int = 1) -> str:
    params = {"campaign": campaign or "", "state": state or ""}
    if page > 1:
        params["page"] = str(page)
    return urlencode({k: v for k, v in params.items() if v})


async def answers_page(
    request: web.Request,
    *,
    status: int = 200,
    errors: list[flash.Flash] | None = None,
    drafts: dict[str, str] | None = None,
) -> web.StreamResponse:
    asked = request.query.get("campaign", "").strip()[:64] or None
    asked_state = request.query.get("state", "").strip()
    state = asked_state if asked_state in FILTER_STATES else None
    try:
        number = max(1, min(100_000, int(request.query.get("page", "1"))))
    except ValueError:
        number = 1
    vault = request.app[RUNTIME].vault

    def load(session: Session) -> AnswersData:
        public = select(Campaign).where(Campaign.status != "draft").order_by(Campaign.id)
        found = list(session.scalars(public))
        chosen = next((c for c in found if c.slug == asked), found[0] if found else None)
        records: list[PublicRecord] = []
        if chosen is not None:
            records = public_records(
                session,
                chosen,
                vault,
                PublicFilter(state=state),
                include_rejected=False,
            )
        return AnswersData(
            campaigns=[(c.slug, c.title) for c in found],
            campaign=chosen.slug if chosen else None,
            records=records,
            total=len(records),
            recordings=recordings_of(session, [r.contribution_id for r in records]),
        )

    data = await read(request, load)
    pages = max(1, -(-data.total // PER_PAGE))
    number = min(number, pages)
    start = (number - 1) * PER_PAGE

    def url(page: int) -> str:
        return with_query(PATH, _query(data.campaign, state, page))

    return await render(
        request,
        "answers.html",
        {
            "data": data,
            "records": data.records[start : start + PER_PAGE],
            "state": state or "",
            "states": ANSWER_STATES,
            "filter_states": FILTER_STATES,
            "max_answer": MAX_ANSWER,
            "recording_limits": recorded_answers.LIMITS,
            "here": with_query(PATH, _query(data.campaign, state, number)),
            "drafts": drafts or {},
            "prev_url": url(number - 1) if number > 1 else None,
            "next_url": url(number + 1) if number < pages else None,
            "page": number,
            "pages": pages,
        },
        status=status,
        section="answers",
        errors=errors,
    )


def _back(form_back: str) -> str:
    """The page the form was on: the answers page or a contribution's (a local console path
    only: never an open redirect)."""
    back = safe_next(form_back)
    return back if back != HOME else PATH


def recordings_of(session: Session, ids: list[int]) -> dict[int, dict[str, str]]:
    """The recorded answers of ``ids``, as the console's player fetches them."""
    found: dict[int, dict[str, str]] = {}
    for i in range(0, len(ids), 500):
        rows = session.execute(
            select(Contribution.id, Contribution.answer_audio, Contribution.answer_audio_en)
            .where(Contribution.id.in_(ids[i : i + 500]))
            .where(
                or_(
                    Contribution.answer_audio.is_not(None),
                    Contribution.answer_audio_en.is_not(None),
                )
            )
        )
        for cid, fr, en in rows:
            found[cid] = {
                language: recorded_answers.console_url(token)
                for language, token in (("fr", fr), ("en", en))
                if token
            }
    return found


# The answer form's recording fields, by language.
RECORDING_FIELDS = (("fr", "recording"), ("en", "recording_en"))


def _recording_work(form: Any) -> list[tuple[str, str, bytes | None]]:
    """What the form asks of the recordings: ("remove" | "attach", language, audio)."""
    work: list[tuple[str, str, bytes | None]] = []
    for language, name in RECORDING_FIELDS:
        if field(form, f"remove_{name}"):
            work.append(("remove", language, None))
        part = form.get(name)
        if isinstance(part, web.FileField):
            data = part.file.read()
            if data or part.filename:  # an empty file input sends no name and no bytes
                work.append(("attach", language, data))
    return work


async def answer_contribution(request: web.Request) -> web.StreamResponse:
    """The answer form: the answer (state and texts), then its recordings (attached, replaced
    or removed). The answer is saved first: a change of the answer takes off the recordings
    it had, and a recording needs an answer to read."""
    cid = parse_id(request, "id")
    form = await request.post()
    state, text, text_en = field(form, "state"), field(form, "text"), field(form, "text_en")
    back = _back(field(form, "back"))
    recording_work = _recording_work(form)

    def save(rt: Runtime, actor: Actor) -> Done:
        done = answer(rt, actor, [cid], state, text, text_en=text_en)
        for what, language, data in recording_work:
            if what == "remove":
                more = answer_recordings.remove(rt, actor, [cid], language)
            else:
                more = answer_recordings.attach(rt, actor, [cid], data or b"", language)
            done.changed.extend(i for i in more.changed if i not in done.changed)
            done.events.extend(more.events)
        return done

    try:
        done = await act(request, save)
    except ActionError as error:
        if not back.startswith(PATH):  # from a contribution's page: back there, with why
            response = see_other(back + "#answer")
            flash.add(request, response, error.key, error=True, **error.params)
            return response
        return await answers_page(
            request,
            status=error.status,
            errors=[refused(error)],
            drafts={"id": str(cid), "text": text, "text_en": text_en, "state": state},
        )

    def reference(session: Session) -> str:
        found = session.get(Contribution, cid)
        return found.reference if found else ""

    ref = await read(request, reference)
    response = see_other(f"{back}#{ref}" if ref else back)
    if done.changed:
        flash.add(request, response, "console.flash.answered", count=len(done.changed))
    else:
        flash.add(request, response, "console.flash.unchanged")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, answers_page)
    app.router.add_post(PATH + "/{id}", answer_contribution)
