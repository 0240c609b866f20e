"""What the API shows of contributions, events, campaigns and statistics.

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
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.exports import contribution_dict, timestamp
from gateway.models import Campaign, Contribution, ModerationEvent, OutboundMessage
from gateway.moderation import queries, redaction

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


def contribution_item(c: Contribution, sizes: dict[int, int]) -> dict[str, Any]:
    item = contribution_dict(c)
    item.update(
        group_id=c.group_id,
        group_size=sizes.get(c.group_id, 1) if c.group_id is not None else 1,
    )
    return item


def contribution_items(session: Session, found: Sequence[Contribution]) -> list[dict[str, Any]]:
    sizes = group_sizes(session, found)
    return [contribution_item(c, sizes) for c in found]


def public_item(c: Contribution) -> dict[str, Any]:
    """A published contribution as open data may show it. ``text`` is the public version a
    moderator approved; there is no ``transcript``, no ``public_text`` beside an original,
    no ``contributor`` (a pseudonym still links one person's contributions together), no
    collective's self-description, recording or broadcast answer."""
    text = c.public_text
    if text is None:
        # Published before public versions were kept: the same redactions publishing applies.
        text = redaction.apply(c.text or "", language=c.language or "fr")
    return {
        "id": c.id,
        "reference": c.reference,
        "campaign": c.campaign.slug if c.campaign else None,
        "channel": c.channel,
        "status": c.status,
        "text": text,
        "kind": c.kind,
        "neighbourhood": c.neighbourhood,
        "category": c.category,
        "themes": list(c.themes or []),
        "tags": list(c.tags or []),
        "received_at": timestamp(c.received_at),
        "moderated_at": timestamp(c.moderated_at),
        "answer_state": c.answer_state,
        "answer_text": c.answer_text,
        "answer_text_en": c.answer_text_en,
        "answered_at": timestamp(c.answered_at),
    }


def notice_dict(notice: OutboundMessage) -> dict[str, Any]:
    return {
        "id": notice.id,
        "message_key": notice.message_key,
        "status": notice.status,
        "created_at": timestamp(notice.created_at),
        "sent_at": timestamp(notice.sent_at),
    }


def event_dict(event: ModerationEvent, reference: str | None) -> dict[str, Any]:
    return {
        "id": event.id,
        "contribution_id": event.contribution_id,
        "reference": reference,
        "actor": event.actor,
        "action": event.action,
        "reason": event.reason,
        "before": event.before,
        "after": event.after,
        "at": timestamp(event.at),
    }


def transcript_detail(c: Contribution) -> dict[str, Any] | None:
    if not c.transcript_detail:
        return None
    return {key: c.transcript_detail.get(key) for key in TRANSCRIPT_KEYS}


def contribution_detail(session: Session, c: Contribution) -> dict[str, Any]:
    detail = contribution_item(c, group_sizes(session, [c]))
    history = queries.log_page(session, contribution_id=c.id, per_page=DETAIL_EVENTS)
    detail.update(
        transcript_machine=c.transcript_machine,
        transcript_detail=transcript_detail(c),
        notices=[notice_dict(n) for n in queries.notices(session, c.id)],
        events=[event_dict(e, ref) for e, ref in history.events],
    )
    return detail


def events_by_id(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = session.execute(
        select(ModerationEvent, Contribution.reference)
        .outerjoin(Contribution, Contribution.id == ModerationEvent.contribution_id)
        .where(ModerationEvent.id.in_(ids))
        .order_by(ModerationEvent.id)
    ).all()
    return [event_dict(e, ref) for e, ref in rows]


def campaign_dict(campaign: Campaign) -> dict[str, Any]:
    # Not the campaign's phone numbers: the API lists no number at all, so that a client
    # never has to tell the city's numbers from residents'.
    return {
        "slug": campaign.slug,
        "title": campaign.title,
        "question": campaign.question,
        "status": campaign.status,
        "keywords": list(campaign.keywords or []),
        "neighbourhoods": list(campaign.neighbourhoods or []),
        "themes": list(campaign.themes or []),
        "language": campaign.language,
        "reference_prefix": campaign.reference_prefix,
    }


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if value is not None else None


def _counted(name: str, rows: list[tuple[str, int]]) -> list[dict[str, Any]]:
    # The dashboard names "not set" with an empty string; JSON has null for that.
    return [{name: value or None, "count": n} for value, n in rows]


def stats_dict(slug: str, days: int, board: queries.Dashboard) -> dict[str, Any]:
    return {
        "campaign": slug,
        "days": days,
        "per_day": [{"date": day.isoformat(), "count": n} for day, n in board.per_day],
        "per_channel": _counted("channel", board.per_channel),
        "per_category": _counted("category", board.per_category),
        "per_neighbourhood": _counted("neighbourhood", board.per_neighbourhood),
        "per_status": dict(board.per_status),
        "waiting": board.waiting,
        "oldest_waiting_seconds": _seconds(board.oldest_waiting),
        "median_waiting_seconds": _seconds(board.median_waiting),
    }
