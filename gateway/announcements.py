"""Announcements to the residents who asked for them: a campaign opening in their
neighbourhood, a campaign's synthesis published.

Nobody receives one by default. A resident opts in by sending ``INFO`` (or ``NEWS``; ``/info``
on a chat app) and ends it with ``INFO STOP`` (or ``STOP INFO``); ``STOP`` ends every message,
announcements included, and a later ``START`` does not bring them back (INFO again does).
The choice is the person's: every channel of their address (SMS and calls from one number).
Erasure (OUBLIER) deletes the contributor rows, so the opt-in goes with them, and the queued
announcements with the rest of their outbox.

Who is told:

- a campaign opens (its status becomes ``open``: console, API or a campaign file): each
  opted-in resident whose neighbourhoods meet the campaign's. A resident's neighbourhoods are
  the ones they named in their contributions; one who named none is told of every campaign,
  and so is everyone when the campaign names no neighbourhood;
- a synthesis is published: the same residents, and whoever contributed to that campaign.

At most one message per person and campaign for each (the outbox's ``decision_key``:
``announce-open-<campaign id>-<contributor id>``), however often the campaign is reopened or
its file loaded. Announcements travel as text: SMS, a chat app, email. A caller is texted on
the number they called from when it can receive an SMS; a landline caller gets nothing.

Pacing: announcements are bulk sends. Each one is an outbox row scheduled ahead
(``next_attempt_at``), spaced by its channel's pace (the slowest configured provider's
rate for many recipients, from the rules its plugin declares for every send,
``gateway.pacing``; capped by the ``ANNOUNCEMENT_RATE`` setting), after the announcements
already scheduled on that channel, and only within ``ANNOUNCEMENT_HOURS`` (local time): a
campaign opened at night is announced from the next morning. Rows are not enqueued when
decided: the sweeper enqueues them as they fall due, so a receipt or a reply, enqueued at
once, never waits behind a thousand announcements.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from gateway import plugins
from gateway.clock import within_hours
from gateway.i18n import translate_for
from gateway.models import Campaign, Contribution, Contributor, OutboundMessage
from gateway.outbox import outbound_row
from gateway.phone import can_receive_sms, sms_sender
from gateway.privacy import contributor_address
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.textnorm import fold

log = logging.getLogger(__name__)

OPENED, SYNTHESIS = "announce.opened", "announce.synthesis"
KEYS = (OPENED, SYNTHESIS)
# The decision keys' prefixes, by kind: one row per campaign and person.
PREFIXES = {OPENED: "announce-open", SYNTHESIS: "announce-synthesis"}
DEFAULT_RATE = 1.0  # a message a second, for a provider that declares no pace
CANCELLED = "announcements stopped before it was sent"


# -- the resident's choice ----------------------------------------------------------------------


def _person(contributor: Contributor) -> list[ColumnElement[bool]]:
    if contributor.address_hash:
        return [Contributor.address_hash == contributor.address_hash]
    return [Contributor.id == contributor.id]


def subscribe(session: Session, contributor: Contributor, wanted: bool, now: datetime) -> int:
    """INFO (``wanted``) or INFO STOP: the person, on every channel of their address. Ending
    them also withdraws the announcements still waiting to be sent. Returns the rows changed."""
    changed = session.execute(
        update(Contributor)
        .where(*_person(contributor))
        .values(announcements=wanted, announcements_at=now if wanted else None)
        .execution_options(synchronize_session="fetch")
    ).rowcount  # type: ignore[attr-defined]
    if not wanted:
        ids = list(session.scalars(select(Contributor.id).where(*_person(contributor))))
        withdraw(session, ids)
    return int(changed or 0)


def stop(session: Session, address_hash: str) -> None:
    """STOP or a provider's unsubscription (gateway.residents.opt_out): announcements end with
    every other message."""
    ids = list(
        session.scalars(select(Contributor.id).where(Contributor.address_hash == address_hash))
    )
    if not ids:
        return
    session.execute(
        update(Contributor)
        .where(Contributor.id.in_(ids))
        .values(announcements=False, announcements_at=None)
        .execution_options(synchronize_session="fetch")
    )
    withdraw(session, ids)


def withdraw(session: Session, contributor_ids: Sequence[int]) -> int:
    """The announcements still queued for these rows are not sent: kept as ``withheld``
    (visible, counted), without the address."""
    if not contributor_ids:
        return 0
    changed = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.contributor_id.in_(contributor_ids),
            OutboundMessage.message_key.in_(KEYS),
            OutboundMessage.status == "queued",
        )
        .values(status="withheld", recipient_encrypted=None, error=CANCELLED)
        .execution_options(synchronize_session="fetch")
    ).rowcount  # type: ignore[attr-defined]
    return int(changed or 0)


# -- who is told --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    contributor: Contributor  # the row whose address the announcement goes to
    channel: str  # the channel it is sent on (a caller's: SMS)


def interested(named: set[str], contributed: set[int], campaign: Campaign, kind: str) -> bool:
    """The rule (see the module's doc): a synthesis reaches the campaign's contributors; and
    a person is told of a campaign in a neighbourhood they named, of any campaign when they
    named none, of every campaign that names none."""
    if kind == SYNTHESIS and campaign.id in contributed:
        return True
    wanted = {fold(str(n)) for n in campaign.neighbourhoods or []}
    return not wanted or not named or bool(named & wanted)


def recipients(
    runtime: Runtime, session: Session, campaign: Campaign, kind: str
) -> list[Recipient]:
    """One recipient per opted-in person the announcement concerns, oldest first. A handful
    of queries whatever the number of residents (no query per person)."""
    wanted = Contributor.announcements.is_(True)
    rows = list(
        session.scalars(
            select(Contributor)
            .where(wanted, Contributor.address_encrypted.is_not(None))
            .order_by(Contributor.id)
        )
    )
    people: dict[str, list[Contributor]] = defaultdict(list)
    for row in rows:
        people[_key(row.address_hash, row.id)].append(row)
    # The person's every row (a row made later on another channel of their address, a
    # caller's, is theirs too): STOP on any of them, and what they named anywhere.
    opted_in = select(Contributor.address_hash).where(wanted).scalar_subquery()
    theirs = or_(Contributor.address_hash.in_(opted_in), wanted)
    stopped = {
        _key(h, i)
        for h, i in session.execute(
            select(Contributor.address_hash, Contributor.id).where(
                theirs, Contributor.opted_out.is_(True)
            )
        )
    }
    named: dict[str, set[str]] = defaultdict(set)
    contributed: dict[str, set[int]] = defaultdict(set)
    for address_hash, contributor_id, neighbourhood, campaign_id in session.execute(
        select(
            Contributor.address_hash,
            Contributor.id,
            Contribution.neighbourhood,
            Contribution.campaign_id,
        )
        .join(Contribution, Contribution.contributor_id == Contributor.id)
        .where(theirs)
    ):
        person = _key(address_hash, contributor_id)
        if neighbourhood:
            named[person].add(fold(neighbourhood))
        if campaign_id is not None:
            contributed[person].add(campaign_id)
    found: list[Recipient] = []
    for person, own in people.items():
        if person in stopped:
            continue
        if not interested(named[person], contributed[person], campaign, kind):
            continue
        recipient = _reachable(runtime, own)
        if recipient is not None:
            found.append(recipient)
    return found


def _key(address_hash: str | None, contributor_id: int) -> str:
    """A person: their address's hash, or the row itself when it has none."""
    return address_hash or f"#{contributor_id}"


def _reachable(runtime: Runtime, rows: list[Contributor]) -> Recipient | None:
    """The row and channel that carry text to this person: a written channel first; a caller
    by SMS when their number can receive one."""
    for row in sorted(rows, key=lambda r: r.channel == "voice"):
        if row.channel != "voice":
            return Recipient(row, row.channel)
        number = runtime.vault.decrypt_or_none(
            row.address_encrypted, contributor_address(row.channel, row.address_hash)
        )
        if number is not None and can_receive_sms(number):
            return Recipient(row, "sms")
    return None


# -- pacing -------------------------------------------------------------------------------------


def rate(settings: Settings, channel: str) -> float:
    """Messages a second on ``channel``: its slowest configured provider's pace (the rules its
    plugin declares for every send, gateway.pacing), capped by ``ANNOUNCEMENT_RATE``."""
    paces = [
        (p.pace(settings).bulk_rate() if p.pace is not None else None) or DEFAULT_RATE
        for p in plugins.for_channel(channel)
        if p.configured(settings)
    ]
    pace = min(paces) if paces else DEFAULT_RATE
    if settings.announcement_rate > 0:
        pace = min(pace, settings.announcement_rate)
    return pace


def hours(settings: Settings) -> tuple[int, int]:
    start, _, end = settings.announcement_hours.partition("-")
    return int(start), int(end)


def not_before(settings: Settings, key: str | None, now: datetime) -> datetime | None:
    """For the outbound worker: when an announcement due ``now`` outside the hours (a retry
    after a provider's refusal, a worker that was down overnight) may go instead; None when it
    may go now, or when the message is not an announcement."""
    if key not in KEYS:
        return None
    allowed = within_hours(now, hours(settings), settings.timezone)
    return allowed if allowed > now else None


def schedule(
    first: datetime, count: int, pace: float, allowed: tuple[int, int], timezone: str
) -> list[datetime]:
    """When each of ``count`` messages may go: one every ``1/pace`` seconds from ``first``,
    only within the ``allowed`` hours (a slot that falls outside moves to their next opening,
    and the spacing goes on from there)."""
    interval = timedelta(seconds=1 / pace)
    slots: list[datetime] = []
    moment = first
    for _ in range(count):
        moment = within_hours(moment, allowed, timezone)
        slots.append(moment)
        moment += interval
    return slots


def _first_slot(session: Session, settings: Settings, channel: str, now: datetime) -> datetime:
    """After the announcements already waiting on the channel: two campaigns opened a minute
    apart share the provider's pace."""
    last = session.scalar(
        select(func.max(OutboundMessage.next_attempt_at)).where(
            OutboundMessage.channel == channel,
            OutboundMessage.message_key.in_(KEYS),
            OutboundMessage.status == "queued",
        )
    )
    if last is None or last < now:
        return now
    return last + timedelta(seconds=1 / rate(settings, channel))


# -- the announcements --------------------------------------------------------------------------


def campaign_opened(runtime: Runtime, session: Session, campaign: Campaign, now: datetime) -> int:
    """A campaign's status became ``open``: queue its announcement to the residents who asked.
    Returns how many were queued now (0 when everyone concerned was told already)."""
    return _announce(runtime, session, campaign, OPENED, now)


def synthesis_published(
    runtime: Runtime, session: Session, campaign: Campaign, now: datetime
) -> int:
    """A campaign's synthesis was published: queue its announcement (once per person)."""
    return _announce(runtime, session, campaign, SYNTHESIS, now)


def _text(campaign: Campaign, kind: str, channel: str, language: str) -> str:
    if kind == SYNTHESIS:
        return translate_for(
            channel,
            SYNTHESIS,
            language,
            title=campaign.title,
            summary=campaign.synthesis_summary or "",
            url=campaign.synthesis_url or "",
        ).replace("  ", " ")
    numbers = [str(n) for n in campaign.phone_numbers or []]
    call = translate_for(channel, "announce.call", language, number=numbers[0]) if numbers else ""
    keywords = [str(k) for k in campaign.keywords or []]
    key = OPENED if keywords else "announce.opened_no_keyword"
    return translate_for(
        channel,
        key,
        language,
        title=campaign.title,
        question=campaign.question or "",
        keyword=keywords[0] if keywords else "",
        call=call,
    ).replace("  ", " ")


def _announce(
    runtime: Runtime, session: Session, campaign: Campaign, kind: str, now: datetime
) -> int:
    session.flush()  # a campaign just added has its id
    prefix = f"{PREFIXES[kind]}-{campaign.id}-"
    done = set(
        session.scalars(
            select(OutboundMessage.decision_key).where(
                OutboundMessage.decision_key.startswith(prefix, autoescape=True)
            )
        )
    )
    todo = [
        r
        for r in recipients(runtime, session, campaign, kind)
        if f"{prefix}{r.contributor.id}" not in done
    ]
    by_channel: dict[str, list[Recipient]] = defaultdict(list)
    for recipient in todo:
        by_channel[recipient.channel].append(recipient)
    settings = runtime.settings
    queued = 0
    for channel, group in by_channel.items():
        slots = schedule(
            _first_slot(session, settings, channel, now),
            len(group),
            rate(settings, channel),
            hours(settings),
            settings.timezone,
        )
        sender = sms_sender(settings, None, campaign) if channel == "sms" else None
        rows = []
        for recipient, slot in zip(group, slots, strict=True):
            contributor = recipient.contributor
            row = outbound_row(
                vault=runtime.vault,
                decision_key=f"{prefix}{contributor.id}",
                channel=channel,
                contributor=contributor,
                inbound_id=None,
                contribution_id=None,
                sender=sender,
                key=kind,
                text=_text(campaign, kind, channel, contributor.language),
                now=now,
            )
            row.next_attempt_at = slot
            rows.append(row)
        session.add_all(rows)
        queued += len(rows)
    session.flush()
    log.info("campaign %s: %d announcement(s) queued (%s)", campaign.slug, queued, kind)
    return queued


# -- what the console shows (counts only, never an address) --------------------------------------


def opted_in(session: Session) -> int:
    """Residents (people, not rows) who asked for announcements and have not said STOP."""
    return int(
        session.scalar(
            select(func.count(func.distinct(func.coalesce(Contributor.address_hash, "")))).where(
                Contributor.announcements.is_(True), Contributor.opted_out.is_(False)
            )
        )
        or 0
    )


@dataclass(frozen=True)
class Announced:
    queued: int = 0
    sent: int = 0
    not_sent: int = 0  # failed, or withheld (STOP before its turn)

    @property
    def total(self) -> int:
        return self.queued + self.sent + self.not_sent


def announced(session: Session, campaign: Campaign) -> dict[str, Announced]:
    """How many residents were announced the campaign's opening and its synthesis, by
    kind, and where the messages stand."""
    result: dict[str, Announced] = {}
    for kind, prefix in PREFIXES.items():
        counts: dict[str, int] = defaultdict(int)
        for status, count in session.execute(
            select(OutboundMessage.status, func.count())
            .where(OutboundMessage.decision_key.startswith(f"{prefix}-{campaign.id}-"))
            .group_by(OutboundMessage.status)
        ):
            counts[status] += count
        result[kind] = Announced(
            queued=counts["queued"] + counts["sending"],
            sent=counts["sent"],
            not_sent=counts["failed"] + counts["withheld"],
        )
    return result
