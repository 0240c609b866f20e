"""Reading the moderation queue: filters, search, counts, groups, a contribution's history,
the moderation log, the live board's changes and the campaign dashboard.

Read-only; the console and the API share these so that both show the same queue.

Search is accent- and case-blind substring search over ``search_text`` (every word must
appear). It runs the same on SQLite and PostgreSQL; at a city's volume (tens of thousands of
contributions) a scan of one column takes milliseconds. A campaign with millions of messages
would want PostgreSQL's full-text index instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from gateway.models import (
    Campaign,
    Contribution,
    Contributor,
    InboundMessage,
    ModerationEvent,
    OutboundMessage,
)
from gateway.moderation.actions import CATEGORIES, CHANNELS, STATUSES
from gateway.textnorm import fold

PER_PAGE = 50
MAX_PER_PAGE = 200
# Not a status: the published contributions that the system published at once (a campaign
# moderated a posteriori) and no moderator has reviewed yet (gateway.moderation.aposteriori).
REVIEW = "review"


def _flag(value: str | None) -> bool | None:
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value))) if value else default
    except ValueError:
        return default


@dataclass(frozen=True)
class QueueFilter:
    """The queue's filters, as query parameters. Unknown or malformed values are ignored
    (an old bookmark must still open the queue), never an error."""

    status: str | None = "pending"  # None: every status
    campaign: str | None = None
    channel: str | None = None
    category: str | None = None
    neighbourhood: str | None = None
    date_from: date | None = None  # local dates (Settings.timezone), inclusive
    date_to: date | None = None
    has_audio: bool | None = None
    broadcast: bool | None = None
    flood: bool | None = None  # filed while its sender was over the flood limit (gateway.floods)
    q: str = ""
    group: int | None = None
    grouped: bool = True  # one row per group of identical texts
    newest_first: bool = False
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> QueueFilter:
        status = params.get("status", "pending")
        channel = params.get("channel") or None
        category = params.get("category") or None
        return cls(
            status=status if status in (*STATUSES, REVIEW) else None,
            campaign=params.get("campaign") or None,
            channel=channel if channel in CHANNELS else None,
            category=category if category in (*CATEGORIES, "none") else None,
            neighbourhood=params.get("neighbourhood") or None,
            date_from=_day(params.get("from")),
            date_to=_day(params.get("to")),
            has_audio=_flag(params.get("audio")),
            broadcast=_flag(params.get("broadcast")),
            flood=_flag(params.get("flood")),
            q=(params.get("q") or "").strip()[:200],
            group=_int(params.get("group"), 0, 0, 2**31) or None,
            grouped=_flag(params.get("grouped")) is not False,
            newest_first=params.get("sort") == "newest",
            page=_int(params.get("page"), 1, 1, 100_000),
            per_page=_int(params.get("per_page"), PER_PAGE, 1, MAX_PER_PAGE),
        )

    def to_params(self, **changes: Any) -> dict[str, str]:
        """Query parameters for this filter (with ``changes``), defaults left out."""
        f = replace(self, **changes)
        out: dict[str, str] = {}
        if f.status != "pending":
            out["status"] = f.status or "all"
        for name, key in (
            ("campaign", "campaign"),
            ("channel", "channel"),
            ("category", "category"),
            ("neighbourhood", "neighbourhood"),
            ("q", "q"),
        ):
            value = getattr(f, name)
            if value:
                out[key] = value
        if f.date_from:
            out["from"] = f.date_from.isoformat()
        if f.date_to:
            out["to"] = f.date_to.isoformat()
        if f.has_audio is not None:
            out["audio"] = "1" if f.has_audio else "0"
        if f.broadcast is not None:
            out["broadcast"] = "1" if f.broadcast else "0"
        if f.flood is not None:
            out["flood"] = "1" if f.flood else "0"
        if f.group:
            out["group"] = str(f.group)
        if not f.grouped:
            out["grouped"] = "0"
        if f.newest_first:
            out["sort"] = "newest"
        if f.page != 1:
            out["page"] = str(f.page)
        if f.per_page != PER_PAGE:
            out["per_page"] = str(f.per_page)
        return out


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions(
    f: QueueFilter, tz: ZoneInfo, *, with_status: bool = True, entity: Any = Contribution
) -> list[ColumnElement[bool]]:
    """The filter as SQL conditions on ``entity`` (Contribution, or an alias of it)."""
    c = entity
    conds: list[ColumnElement[bool]] = []
    if with_status and f.status == REVIEW:
        conds += [c.status == "published", c.awaiting_review.is_(True)]
    elif with_status and f.status:
        conds.append(c.status == f.status)
    if f.campaign:
        if f.campaign == "none":
            conds.append(c.campaign_id.is_(None))
        else:
            conds.append(c.campaign_id.in_(select(Campaign.id).where(Campaign.slug == f.campaign)))
    if f.channel:
        conds.append(c.channel == f.channel)
    if f.category == "none":
        conds.append(c.category.is_(None))
    elif f.category:
        conds.append(c.category == f.category)
    if f.neighbourhood == "none":
        conds.append(c.neighbourhood.is_(None))
    elif f.neighbourhood:
        conds.append(c.neighbourhood == f.neighbourhood)
    if f.date_from:
        start = datetime.combine(f.date_from, time.min, tz).astimezone(UTC)
        conds.append(c.received_at >= start)
    if f.date_to:
        end = datetime.combine(f.date_to + timedelta(days=1), time.min, tz).astimezone(UTC)
        conds.append(c.received_at < end)
    if f.has_audio is True:
        conds.append(c.audio_path.is_not(None))
    elif f.has_audio is False:
        conds.append(c.audio_path.is_(None))
    if f.broadcast is True:
        conds.append(c.broadcast_consent.is_(True))
    elif f.broadcast is False:
        conds.append(or_(c.broadcast_consent.is_(None), c.broadcast_consent.is_(False)))
    if f.flood is not None:
        conds.append(c.flood.is_(f.flood))
    for term in fold(f.q).split():
        conds.append(c.search_text.like(_like(term), escape="\\"))
    if f.group:
        conds.append(c.group_id == f.group)
    return conds


@dataclass
class QueueRow:
    contribution: Contribution
    group_size: int  # contributions of its group that match the filter (1: alone)


@dataclass
class QueuePage:
    filter: QueueFilter
    rows: list[QueueRow]
    total: int  # rows (groups, when grouped) matching, over every page
    contributions: int  # contributions matching, over every page
    counts: dict[str, int] = field(default_factory=dict)  # per status, under the other filters
    to_review: int = 0  # published at once and not reviewed yet, under the other filters

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.filter.per_page))


def queue(session: Session, f: QueueFilter, tz: ZoneInfo) -> QueuePage:
    """One page of the queue. Grouped, a group of identical texts is one row: its earliest
    contribution among those that match the filter, with the count of those.

    The grouped page walks the (status, received_at) index and skips a contribution when an
    earlier one of its group matches too (an indexed lookup by group), so a page costs about
    the same at 200 or 200,000 contributions; aggregating every matching row first (GROUP BY
    or a window) made the first page of a 20,000-contribution queue 100 times slower on
    SQLite (bench/console.py).
    """
    conds = conditions(f, tz)
    counts = status_counts(session, f, tz)
    to_review = review_count(session, f, tz)
    matching = to_review if f.status == REVIEW else counts[f.status] if f.status else counts["all"]
    offset = (f.page - 1) * f.per_page
    order = (
        (Contribution.received_at.desc(), Contribution.id.desc())
        if f.newest_first
        else (Contribution.received_at, Contribution.id)
    )
    if not (f.grouped and not f.group):
        flat = session.scalars(
            select(Contribution).where(*conds).order_by(*order).offset(offset).limit(f.per_page)
        )
        rows = [QueueRow(contribution=c, group_size=1) for c in flat]
        return QueuePage(
            filter=f,
            rows=rows,
            total=matching,
            contributions=matching,
            counts=counts,
            to_review=to_review,
        )
    earlier = aliased(Contribution)
    first_of_group = ~exists().where(
        earlier.group_id == Contribution.group_id,
        or_(
            earlier.received_at < Contribution.received_at,
            and_(earlier.received_at == Contribution.received_at, earlier.id < Contribution.id),
        ),
        *conditions(f, tz, entity=earlier),
    )
    page = list(
        session.scalars(
            select(Contribution)
            .where(*conds, first_of_group)
            .order_by(*order)
            .offset(offset)
            .limit(f.per_page)
        )
    )
    groups = [c.group_id for c in page if c.group_id is not None]
    sizes = (
        dict(
            session.execute(
                select(Contribution.group_id, func.count())
                .where(*conds, Contribution.group_id.in_(groups))
                .group_by(Contribution.group_id)
            ).all()
        )
        if groups
        else {}
    )
    # Two counts, not one with a FILTER clause: alone, the first is answered from the
    # (group_id, status, received_at) index without reading the rows.
    distinct_groups = session.scalar(
        select(func.count(func.distinct(Contribution.group_id))).where(*conds)
    )
    ungrouped = session.scalar(
        select(func.count())
        .select_from(Contribution)
        .where(*conds, Contribution.group_id.is_(None))
    )
    return QueuePage(
        filter=f,
        rows=[QueueRow(contribution=c, group_size=int(sizes.get(c.group_id, 1))) for c in page],
        total=int(distinct_groups or 0) + int(ungrouped or 0),
        contributions=matching,
        counts=counts,
        to_review=to_review,
    )


def review_count(session: Session, f: QueueFilter, tz: ZoneInfo) -> int:
    """How many contributions wait for a review after publication, under the other filters."""
    conds = conditions(replace(f, status=REVIEW), tz)
    return int(session.scalar(select(func.count()).select_from(Contribution).where(*conds)) or 0)


def status_counts(session: Session, f: QueueFilter, tz: ZoneInfo) -> dict[str, int]:
    conds = conditions(f, tz, with_status=False)
    found = dict(
        session.execute(
            select(Contribution.status, func.count()).where(*conds).group_by(Contribution.status)
        ).all()
    )
    counts = {status: int(found.get(status, 0)) for status in STATUSES}
    counts["all"] = sum(counts.values())
    return counts


def neighbourhoods(session: Session) -> list[str]:
    """Every neighbourhood a filter may name: the campaigns' and those recorded."""
    names: set[str] = set()
    for listed in session.scalars(select(Campaign.neighbourhoods)):
        names.update(listed or [])
    names.update(
        n for n in session.scalars(select(Contribution.neighbourhood).distinct()) if n is not None
    )
    return sorted(names, key=fold)


def campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.title)))


# -- one contribution ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationLine:
    at: datetime
    incoming: bool  # from the resident (True) or to them (False)
    text: str
    status: str | None = None  # an outgoing message's delivery status
    current: bool = False  # the message this contribution was filed from


def conversation(
    session: Session, contribution: Contribution, window: timedelta = timedelta(hours=6)
) -> list[ConversationLine]:
    """The messages exchanged with the resident around this contribution, oldest first.

    Only while the resident is known: after OUBLIER the link to their messages is erased.
    """
    contributor = (
        session.get(Contributor, contribution.contributor_id)
        if contribution.contributor_id
        else None
    )
    lines: list[ConversationLine] = []
    start, end = contribution.received_at - window, contribution.received_at + window
    if contributor is not None and contributor.address_hash:
        for m in session.scalars(
            select(InboundMessage).where(
                InboundMessage.sender_hash == contributor.address_hash,
                InboundMessage.channel == contribution.channel,
                InboundMessage.received_at.between(start, end),
            )
        ):
            lines.append(
                ConversationLine(
                    at=m.received_at,
                    incoming=True,
                    text=m.text,
                    current=m.id == contribution.inbound_message_id,
                )
            )
        for o in session.scalars(
            select(OutboundMessage).where(
                OutboundMessage.contributor_id == contributor.id,
                OutboundMessage.created_at.between(start, end),
            )
        ):
            lines.append(
                ConversationLine(at=o.created_at, incoming=False, text=o.text, status=o.status)
            )
    elif contribution.inbound_message_id:
        message = session.get(InboundMessage, contribution.inbound_message_id)
        if message is not None:
            lines.append(
                ConversationLine(
                    at=message.received_at, incoming=True, text=message.text, current=True
                )
            )
    return sorted(lines, key=lambda line: (line.at, not line.incoming))


def notices(session: Session, contribution_id: int) -> list[OutboundMessage]:
    """Every message sent or queued about this contribution (receipt, outcome, answers)."""
    return list(
        session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.contribution_id == contribution_id)
            .order_by(OutboundMessage.created_at, OutboundMessage.id)
        )
    )


def group_size(session: Session, contribution: Contribution) -> int:
    if contribution.group_id is None:
        return 1
    return int(
        session.scalar(select(func.count()).where(Contribution.group_id == contribution.group_id))
        or 1
    )


def neighbours(
    session: Session, contribution: Contribution, f: QueueFilter, tz: ZoneInfo
) -> tuple[int | None, int | None]:
    """The previous and next contribution in the queue as filtered (for j/k and after a
    decision). Ungrouped order, so that each member of a group can be reached."""
    conds = conditions(replace(f, group=None), tz)
    key = (Contribution.received_at, Contribution.id)
    here = (contribution.received_at, contribution.id)
    before = and_(
        Contribution.id != contribution.id,
        or_(key[0] < here[0], and_(key[0] == here[0], key[1] < here[1])),
    )
    after = and_(
        Contribution.id != contribution.id,
        or_(key[0] > here[0], and_(key[0] == here[0], key[1] > here[1])),
    )
    previous = session.scalar(
        select(Contribution.id)
        .where(*conds, before)
        .order_by(key[0].desc(), key[1].desc())
        .limit(1)
    )
    following = session.scalar(select(Contribution.id).where(*conds, after).order_by(*key).limit(1))
    if f.newest_first:
        previous, following = following, previous
    return previous, following


# -- the moderation log ---------------------------------------------------------------------


@dataclass
class LogPage:
    events: list[tuple[ModerationEvent, str | None]]  # with the contribution's reference
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def log_page(
    session: Session,
    *,
    contribution_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    page: int = 1,
    per_page: int = 100,
) -> LogPage:
    conds: list[ColumnElement[bool]] = []
    if contribution_id is not None:
        conds.append(ModerationEvent.contribution_id == contribution_id)
    if actor:
        conds.append(ModerationEvent.actor == actor)
    if action:
        conds.append(ModerationEvent.action == action)
    total = session.scalar(select(func.count()).select_from(ModerationEvent).where(*conds)) or 0
    rows = session.execute(
        select(ModerationEvent, Contribution.reference)
        .outerjoin(Contribution, Contribution.id == ModerationEvent.contribution_id)
        .where(*conds)
        .order_by(ModerationEvent.at.desc(), ModerationEvent.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return LogPage(
        events=[(e, ref) for e, ref in rows], total=int(total), page=page, per_page=per_page
    )


# -- the live board -------------------------------------------------------------------------


def changed_since(session: Session, since: datetime, *, limit: int = 200) -> list[Contribution]:
    """Contributions filed or changed (transcript arrived, decision) after ``since``."""
    return list(
        session.scalars(
            select(Contribution)
            .where(Contribution.updated_at > since)
            .order_by(Contribution.updated_at, Contribution.id)
            .limit(limit)
        )
    )


def latest(session: Session, *, limit: int = 50, campaign: str | None = None) -> list[Contribution]:
    query = select(Contribution).order_by(Contribution.received_at.desc(), Contribution.id.desc())
    if campaign:
        query = query.where(
            Contribution.campaign_id.in_(select(Campaign.id).where(Campaign.slug == campaign))
        )
    return list(session.scalars(query.limit(limit)))


# -- the campaign dashboard ------------------------------------------------------------------


@dataclass
class Dashboard:
    per_day: list[tuple[date, int]]
    per_channel: list[tuple[str, int]]
    per_category: list[tuple[str, int]]
    per_neighbourhood: list[tuple[str, int]]
    per_status: dict[str, int]
    waiting: int
    oldest_waiting: timedelta | None
    median_waiting: timedelta | None


def dashboard(
    session: Session, campaign: str | None, tz: ZoneInfo, now: datetime, days: int | None = 30
) -> Dashboard:
    """The campaign's counts (every campaign's with None); ``per_day`` covers the last
    ``days`` days, or the whole history with None (the campaign report)."""
    f = QueueFilter(status=None, campaign=campaign, grouped=False)
    conds = conditions(f, tz)

    def grouped(column: Any) -> list[tuple[str, int]]:
        rows = session.execute(
            select(column, func.count())
            .where(*conds)
            .group_by(column)
            .order_by(func.count().desc())
        ).all()
        return [(value if value is not None else "", int(n)) for value, n in rows]

    recent = list(conds)
    if days is not None:
        recent.append(Contribution.received_at >= (now - timedelta(days=days)).astimezone(UTC))
    per_day: dict[date, int] = {}
    for (received,) in session.execute(select(Contribution.received_at).where(*recent)):
        day = received.astimezone(tz).date()
        per_day[day] = per_day.get(day, 0) + 1
    waiting_times = sorted(
        now - received
        for (received,) in session.execute(
            select(Contribution.received_at).where(*conds, Contribution.status == "pending")
        )
    )
    median = waiting_times[len(waiting_times) // 2] if waiting_times else None
    counts = dict(grouped(Contribution.status))
    return Dashboard(
        per_day=sorted(per_day.items()),
        per_channel=grouped(Contribution.channel),
        per_category=grouped(Contribution.category),
        per_neighbourhood=grouped(Contribution.neighbourhood),
        per_status={status: counts.get(status, 0) for status in STATUSES},
        waiting=len(waiting_times),
        oldest_waiting=waiting_times[-1] if waiting_times else None,
        median_waiting=median,
    )
