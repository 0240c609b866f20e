"""One contribution: what the resident said (text, recording, transcript word by word),
where it came from, and every form a moderator uses on it (decide, classify, correct the
transcript, write the public version, answer the resident), with its notices and history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.orm import Session

from gateway import callbacks, recorded_answers, textcap
from gateway.console import flash, present
from gateway.console.rendering import error_page, render, see_other, timezone, translator
from gateway.console.views.common import (
    field,
    fields,
    parse_id,
    query_string,
    queue_filter,
    refused,
    with_query,
)
from gateway.console.work import act, read
from gateway.models import Callback, Campaign, Contribution, InboundMessage, OutboundMessage
from gateway.moderation import actions, answers, photos, queries, redaction
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError, Done
from gateway.moderation.queries import QueueFilter
from gateway.runtime import Runtime
from gateway.webkeys import SETTINGS

PATH = "/moderation/contributions/"
QUEUE = "/moderation/queue"
# Decisions after which the moderator moves on to the next contribution of the queue.
MOVE_ON = ("publish", "reject", "spam")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Neighbour:
    id: int
    reference: str


@dataclass(frozen=True)
class ContributionData:
    contribution: Contribution
    campaign: Campaign | None
    conversation: list[queries.ConversationLine]
    notices: list[OutboundMessage]
    callbacks: list[Callback]  # call backs to a caller without SMS (gateway.callbacks)
    history: queries.LogPage
    previous: Neighbour | None
    following: Neighbour | None
    group_size: int
    reachable: str  # ok | forgotten | opted_out
    # Computed with the rest, in the worker thread: redaction reads the whole text, and the
    # event loop serving every other request must not (gateway.moderation.redaction).
    suggestions: list[redaction.Redaction]
    segments: list[present.Segment]
    redacted: str  # the text with the suggestions applied: the public version's first draft
    # Media of the message that brought it in which were not kept, by reason (an MMS's
    # video, a file too large); and the attachments a moderator may publish (photos).
    refused: list[str]
    publishable: list[int]


def _neighbour(session: Session, contribution_id: int | None) -> Neighbour | None:
    if contribution_id is None:
        return None
    other = session.get(Contribution, contribution_id)
    return Neighbour(other.id, other.reference) if other else None


def _refused(session: Session, c: Contribution) -> list[str]:
    message = session.get(InboundMessage, c.inbound_message_id) if c.inbound_message_id else None
    items = message.attachments if message is not None else []
    return [str(i["refused"]) for i in items or [] if isinstance(i, dict) and i.get("refused")]


def _reachable(c: Contribution) -> str:
    if c.contributor is None or c.contributor.address_encrypted is None:
        return "forgotten"
    if c.contributor.opted_out:
        return "opted_out"
    return "ok"


async def _load(request: web.Request, cid: int, f: QueueFilter) -> ContributionData | None:
    tz = timezone(request)

    def load(session: Session) -> ContributionData | None:
        c = session.get(Contribution, cid)
        if c is None:
            return None
        previous, following = queries.neighbours(session, c, f, tz)
        text = c.text or ""
        suggestions = redaction.suggest(text)
        return ContributionData(
            contribution=c,
            campaign=c.campaign,
            conversation=queries.conversation(session, c),
            notices=queries.notices(session, cid),
            callbacks=callbacks.of_contribution(session, cid),
            history=queries.log_page(session, contribution_id=cid, per_page=200),
            previous=_neighbour(session, previous),
            following=_neighbour(session, following),
            group_size=queries.group_size(session, c),
            reachable=_reachable(c),
            suggestions=suggestions,
            segments=present.segments(text, suggestions),
            redacted=textcap.without_marker(redaction.apply(text, suggestions, language="fr")),
            refused=_refused(session, c),
            publishable=[
                i for i, item in enumerate(c.attachments or []) if photos.publishable(item)
            ],
        )

    return await read(request, load)


async def _page(
    request: web.Request,
    cid: int,
    *,
    status: int = 200,
    errors: list[flash.Flash] | None = None,
    drafts: Mapping[str, str] | None = None,
) -> web.Response:
    f = queue_filter(request.query)
    data = await _load(request, cid, f)
    if data is None:
        return await error_page(request, 404, "console.errors.not_found")
    c = data.contribution
    drafts = drafts or {}
    neighbourhood_options = list(data.campaign.neighbourhoods or []) if data.campaign else []
    if c.neighbourhood and c.neighbourhood not in neighbourhood_options:
        neighbourhood_options.append(c.neighbourhood)
    qs = query_string(f, page=1)
    _ = translator(request)
    return await render(
        request,
        "contribution.html",
        {
            "c": c,
            "data": data,
            "qs": qs,
            "queue_url": with_query(QUEUE, query_string(f)),
            "words": present.words(c.transcript_detail),
            "suggestions": data.suggestions,
            "segments": data.segments,
            "public_text": drafts.get("public_text") or c.public_text or data.redacted,
            "drafts": drafts,
            "neighbourhood_options": neighbourhood_options,
            "themes": list(data.campaign.themes or []) if data.campaign else [],
            "categories": actions.CATEGORIES,
            "kinds": actions.KINDS,
            "history": [
                (event, present.changes(_, event.before, event.after))
                for event, _ref in data.history.events
            ],
            "conversation": [
                (
                    line,
                    present.message_text(_, line.text, incoming=line.incoming, channel=c.channel),
                )
                for line in data.conversation
            ],
            "max_reply": actions.MAX_REPLY,
            "max_answer": answers.MAX_ANSWER,
            "answer_states": answers.ANSWER_STATES,
            "answer_recordings": {
                language: recorded_answers.console_url(token)
                for language, token in (("fr", c.answer_audio), ("en", c.answer_audio_en))
                if token
            },
            "recording_limits": recorded_answers.LIMITS,
        },
        status=status,
        errors=errors,
        section="queue",
    )


async def contribution_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, parse_id(request, "id"))


def _here(request: web.Request, cid: int) -> str:
    return with_query(f"{PATH}{cid}", query_string(queue_filter(request.query), page=1))


async def _perform(
    request: web.Request,
    cid: int,
    action: Callable[[Runtime, Actor], Done],
    success: str,
    drafts: Mapping[str, str],
) -> web.StreamResponse:
    """Run a form's action; back to the page with a confirmation, or the page again with the
    refusal (and what was typed) under the action's HTTP status."""
    try:
        done = await act(request, action)
    except ActionError as error:
        return await _page(
            request, cid, status=error.status, errors=[refused(error)], drafts=drafts
        )
    response = see_other(_here(request, cid))
    flash.add(request, response, success if done.changed else "console.flash.unchanged")
    return response


async def decision(request: web.Request) -> web.StreamResponse:
    cid = parse_id(request, "id")
    form = await request.post()
    decided = field(form, "action")
    reason = field(form, "reason")
    try:
        done = await act(
            request,
            lambda rt, actor: actions.decide(rt, actor, [cid], decided, reason=reason or None),
        )
    except ActionError as error:
        return await _page(
            request, cid, status=error.status, errors=[refused(error)], drafts={"reason": reason}
        )
    f = queue_filter(request.query)
    tz = timezone(request)

    def next_one(session: Session) -> tuple[str, Neighbour | None]:
        c = session.get(Contribution, cid)
        assert c is not None
        return c.reference, _neighbour(session, queries.neighbours(session, c, f, tz)[1])

    reference, following = await read(request, next_one)
    key = f"console.flash.decided.{decided}" if done.changed else "console.flash.unchanged"
    if decided not in MOVE_ON:
        response = see_other(_here(request, cid))
        flash.add(request, response, key, reference=reference)
        return response
    if following is not None:
        response = see_other(_here(request, following.id))
        flash.add(request, response, key, reference=reference)
        flash.add(request, response, "console.flash.next", reference=following.reference)
    else:
        response = see_other(with_query(QUEUE, query_string(f, page=1)))
        flash.add(request, response, key, reference=reference)
        flash.add(request, response, "console.flash.queue_done")
    return response


async def classify(request: web.Request) -> web.StreamResponse:
    cid = parse_id(request, "id")
    form = await request.post()
    tags = [t for t in field(form, "tags").split(",") if t.strip()]
    return await _perform(
        request,
        cid,
        lambda rt, actor: actions.classify(
            rt,
            actor,
            cid,
            category=field(form, "category"),
            themes=fields(form, "themes"),
            tags=tags,
            neighbourhood=field(form, "neighbourhood"),
            kind=field(form, "kind") or None,
        ),
        "console.flash.classified",
        {},
    )


TextAction = Callable[[Runtime, Actor, int, str], Done]


def _text_form(name: str, action: TextAction, success: str) -> Handler:
    """A form with one text field (a corrected transcript, a public version, an answer)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        cid = parse_id(request, "id")
        text = field(await request.post(), name)
        return await _perform(
            request, cid, lambda rt, actor: action(rt, actor, cid, text), success, {name: text}
        )

    return handler


transcript = _text_form("transcript", actions.correct_transcript, "console.flash.transcript_saved")
public_text = _text_form("public_text", actions.set_public_text, "console.flash.public_text_saved")
reply = _text_form("text", actions.reply, "console.flash.reply_sent")


async def photo_public(request: web.Request) -> web.StreamResponse:
    """Publish a photo (public=1) after checking it for faces and plates, or withdraw it."""
    cid = parse_id(request, "id")
    index = parse_id(request, "n", lowest=0)
    public = field(await request.post(), "public") == "1"
    success = "console.flash.photo_published" if public else "console.flash.photo_unpublished"
    return await _perform(
        request,
        cid,
        lambda rt, actor: photos.set_public(rt, actor, cid, index, public),
        success,
        {},
    )


AUDIO_TYPES = ("audio/",)


async def audio(request: web.Request) -> web.StreamResponse:
    """The recording, to logged-in moderators only (the middleware checks the session)."""
    cid = parse_id(request, "id")

    def recording(session: Session) -> tuple[str | None, str | None] | None:
        c = session.get(Contribution, cid)
        return (c.audio_path, c.audio_content_type) if c else None

    found = await read(request, recording)
    audio_path, content_type = found or (None, None)
    if not audio_path:
        raise web.HTTPNotFound()
    data = request.app[SETTINGS].data_path
    root = (data / "audio").resolve()
    path = (data / audio_path).resolve()
    if not path.is_relative_to(root):
        raise web.HTTPForbidden()
    if not path.is_file():
        raise web.HTTPNotFound()
    if not content_type or not content_type.startswith(AUDIO_TYPES):
        content_type = "application/octet-stream"
    return web.FileResponse(
        path, headers={"Content-Type": content_type, "Cache-Control": "no-store"}
    )


# Shown in the page as they are; anything else (SVG can carry scripts, HTML, PDF...) is only
# offered as a download, never rendered by the browser from the console's origin.
INLINE_IMAGES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
# The whole text of a message cut at MAX_TEXT_CHARS (gateway.textcap): plain text, which the
# browser shows as text (the console's nosniff and content security policy apply).
TEXT_KIND = "text"


async def attachment(request: web.Request) -> web.StreamResponse:
    """A photo, drawing or file the resident sent, to logged-in moderators only."""
    cid = parse_id(request, "id")
    index = parse_id(request, "n", lowest=0)

    def listed(session: Session) -> list[dict[str, object]] | None:
        c = session.get(Contribution, cid)
        return list(c.attachments or []) if c else None

    items = await read(request, listed)
    if not items or index >= len(items) or not isinstance(items[index], dict):
        raise web.HTTPNotFound()
    item = items[index]
    data = request.app[SETTINGS].data_path
    root = (data / "media").resolve()
    path = (data / str(item.get("path") or "")).resolve()
    if not path.is_relative_to(root):
        raise web.HTTPForbidden()
    if not path.is_file():
        raise web.HTTPNotFound()
    content_type = str(item.get("content_type") or "")
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if content_type in INLINE_IMAGES:
        headers["Content-Type"] = content_type
    elif item.get("kind") == TEXT_KIND and content_type.startswith("text/plain"):
        headers["Content-Type"] = "text/plain; charset=utf-8"
        headers["Content-Disposition"] = f'inline; filename="message-{cid}-{index}.txt"'
    else:
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Disposition"] = f'attachment; filename="attachment-{cid}-{index}"'
    return web.FileResponse(path, headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH + "{id}", contribution_page)
    app.router.add_get(PATH + "{id}/audio", audio)
    app.router.add_get(PATH + "{id}/attachments/{n}", attachment)
    app.router.add_post(PATH + "{id}/attachments/{n}/public", photo_public)
    app.router.add_post(PATH + "{id}/decision", decision)
    app.router.add_post(PATH + "{id}/classify", classify)
    app.router.add_post(PATH + "{id}/transcript", transcript)
    app.router.add_post(PATH + "{id}/public-text", public_text)
    app.router.add_post(PATH + "{id}/reply", reply)
