"""What the API shows of contributions, events, campaigns and statistics: the response models
(gateway.api.responses) filled from the database.

A contribution starts from the contract (gateway.exports.contribution_dict) and adds what
moderators work with. Never an address: no phone number, chat id, email or recipient; the
contributor is the pseudonymous id only, and a notice shows its key and delivery status,
never to whom it went.

A token of scope ``read`` (open data) sees the public shape instead (``public_item``): only
published contributions, their anonymised public version as ``text``, and nothing a
resident wrote or said in their own words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.api import responses
from gateway.exports import contribution_dict, timestamp
from gateway.models import Campaign, Contribution, ModerationEvent, OutboundMessage
from gateway.moderation import deadletter, photos, queries, redaction

# A contribution's own log in its detail; a longer history is on /api/v1/events.
DETAIL_EVENTS = 200
# What a stored transcript carries besides its text (transcription.engine.Transcript).
TRANSCRIPT_KEYS = ("words", "model", "language", "duration")


def group_sizes(session: Session, contributions: Iterable[Contribution]) -> dict[int, int]:
    """How many contributions each of these contributions' groups holds, in one query."""
    ids = {c.group_id for c in contributions if c.group_id is not None}
    if not ids:
        return {}
    rows = session.execute(
        select(Contribution.group_id, func.count())
        .where(Contribution.group_id.in_(ids))
        .group_by(Contribution.group_id)
    ).all()
    return {group: int(n) for group, n in rows if group is not None}


def _contribution_fields(c: Contribution, sizes: dict[int, int]) -> dict[str, Any]:
    return {
        **contribution_dict(c),
        "group_id": c.group_id,
        "group_size": sizes.get(c.group_id, 1) if c.group_id is not None else 1,
        "flood": c.flood,
        "awaiting_review": c.awaiting_review,
    }


def contribution_items(
    session: Session, found: Sequence[Contribution]
) -> list[responses.Contribution]:
    sizes = group_sizes(session, found)
    return [responses.Contribution(**_contribution_fields(c, sizes)) for c in found]


def queue_items(
    session: Session, rows: Sequence[queries.QueueRow], grouped: bool
) -> list[responses.QueueItem]:
    """The queue's page; grouped, each item says how many of its group match the filters."""
    sizes = group_sizes(session, [row.contribution for row in rows])
    items = []
    for row in rows:
        fields = _contribution_fields(row.contribution, sizes)
        if grouped:  # otherwise left out
            fields["group_matching"] = row.group_size
        items.append(responses.QueueItem(**fields))
    return items


def public_item(c: Contribution) -> responses.PublicContribution:
    """A published contribution as open data may show it. ``text`` is the public version a
    moderator approved; there is no ``transcript``, no ``public_text`` beside an original,
    no ``contributor`` (a pseudonym still links one person's contributions together), no
    collective's self-description, recording or broadcast answer."""
    text = c.public_text
    if text is None:
        # Published before public versions were kept: the same redactions publishing applies.
        text = redaction.apply(c.text or "", language=c.language or "fr")
    return responses.PublicContribution(
        id=c.id,
        reference=c.reference,
        campaign=c.campaign.slug if c.campaign else None,
        channel=c.channel,
        status=c.status,
        text=text,
        kind=c.kind,
        neighbourhood=c.neighbourhood,
        category=c.category,
        themes=list(c.themes or []),
        tags=list(c.tags or []),
        received_at=_timestamp(c.received_at),
        moderated_at=timestamp(c.moderated_at),
        answer_state=c.answer_state,
        answer_text=c.answer_text,
        answer_text_en=c.answer_text_en,
        answered_at=timestamp(c.answered_at),
    )


def _timestamp(value: datetime) -> str:
    """gateway.exports.timestamp of a column that is never null."""
    stamped = timestamp(value)
    if stamped is None:
        raise ValueError("a timestamp the database always has is missing")
    return stamped


def notice(outbound: OutboundMessage) -> responses.Notice:
    return responses.Notice(
        id=outbound.id,
        message_key=outbound.message_key,
        status=outbound.status,
        created_at=_timestamp(outbound.created_at),
        sent_at=timestamp(outbound.sent_at),
    )


def event(found: ModerationEvent, reference: str | None) -> responses.Event:
    return responses.Event(
        id=found.id,
        contribution_id=found.contribution_id,
        reference=reference,
        actor=found.actor,
        action=found.action,
        reason=found.reason,
        before=found.before,
        after=found.after,
        at=_timestamp(found.at),
    )


def transcript_detail(c: Contribution) -> responses.TranscriptDetail | None:
    if not c.transcript_detail:
        return None
    return responses.TranscriptDetail.model_validate(
        {key: c.transcript_detail.get(key) for key in TRANSCRIPT_KEYS}
    )


def attachments(c: Contribution) -> list[responses.Attachment]:
    return [
        responses.Attachment(
            number=index + 1,
            kind=str(item.get("kind") or "file"),
            content_type=str(item.get("content_type") or "application/octet-stream"),
            size=item.get("size") if isinstance(item.get("size"), int) else None,
            publishable=photos.publishable(item),
            public=photos.publishable(item) and item.get("public") is True,
        )
        for index, item in enumerate(c.attachments or [])
        if isinstance(item, dict)
    ]


def contribution_detail(session: Session, c: Contribution) -> responses.ContributionDetail:
    history = queries.log_page(session, contribution_id=c.id, per_page=DETAIL_EVENTS)
    return responses.ContributionDetail(
        **_contribution_fields(c, group_sizes(session, [c])),
        attachments=attachments(c),
        transcript_machine=c.transcript_machine,
        transcript_detail=transcript_detail(c),
        notices=[notice(n) for n in queries.notices(session, c.id)],
        events=[event(e, ref) for e, ref in history.events],
    )


def events_by_id(session: Session, ids: Sequence[int]) -> list[responses.Event]:
    if not ids:
        return []
    rows = session.execute(
        select(ModerationEvent, Contribution.reference)
        .outerjoin(Contribution, Contribution.id == ModerationEvent.contribution_id)
        .where(ModerationEvent.id.in_(ids))
        .order_by(ModerationEvent.id)
    ).all()
    return [event(e, ref) for e, ref in rows]


def campaign(found: Campaign) -> responses.Campaign:
    return responses.Campaign(
        slug=found.slug,
        title=found.title,
        question=found.question,
        status=found.status,
        keywords=list(found.keywords or []),
        neighbourhoods=list(found.neighbourhoods or []),
        themes=list(found.themes or []),
        language=found.language,
        reference_prefix=found.reference_prefix,
        moderation_mode=found.moderation_mode,
        closes_at=timestamp(found.closes_at),
    )


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def _none_if_empty(value: str) -> str | None:
    # The dashboard names "not set" with an empty string; JSON has null for that.
    return value or None


def stats(slug: str, days: int, board: queries.Dashboard) -> responses.Stats:
    return responses.Stats(
        campaign=slug,
        days=days,
        per_day=[responses.DayCount(date=day.isoformat(), count=n) for day, n in board.per_day],
        per_channel=[
            responses.ChannelCount(channel=value, count=n) for value, n in board.per_channel
        ],
        per_category=[
            responses.CategoryCount(category=_none_if_empty(value), count=n)
            for value, n in board.per_category
        ],
        per_neighbourhood=[
            responses.NeighbourhoodCount(neighbourhood=_none_if_empty(value), count=n)
            for value, n in board.per_neighbourhood
        ],
        per_status=responses.StatusCountsByStatus(**board.per_status),
        waiting=board.waiting,
        oldest_waiting_seconds=_seconds(board.oldest_waiting),
        median_waiting_seconds=_seconds(board.median_waiting),
    )


def failed_outbound(found: deadletter.FailedMessage) -> responses.FailedOutbound:
    return responses.FailedOutbound(
        id=found.id,
        channel=found.channel,
        provider=found.provider,
        contributor=found.contributor,
        reference=found.reference,
        text=found.text,
        reason=found.reason,
        attempts=found.attempts,
        created_at=timestamp(found.created_at) or "",
        last_attempt_at=timestamp(found.last_attempt_at),
    )


def outbound_outcome(outcome: deadletter.Outcome) -> responses.OutboundOutcome:
    return responses.OutboundOutcome(id=outcome.id, status=outcome.status, changed=outcome.changed)
