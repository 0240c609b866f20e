"""Inbound flood limits: a sender (or everyone) writing faster than people write.

Counted on the database's own rows (``inbound_messages`` by ``sender_hash`` and
``received_at``, both indexed), so that every worker of every machine agrees and the count
holds when Redis is down. The window is the minute before the message's own arrival time, so
processing a message twice (a retry) counts the same.

- Per sender: past ``FLOOD_PER_SENDER_PER_MINUTE`` messages in that minute, a message is still
  stored, processed and filed (nothing is lost), but its contribution is marked ``flood``:
  moderators see the mark in the queue (and can filter on it), and an a posteriori campaign
  does not publish it at once (gateway.moderation.aposteriori). Its replies are withheld;
  the sender gets one notice (``flood.notice``) instead, at most one an hour
  (``NOTICE_EVERY``), then silence. The confirmations of STOP and OUBLIER still go out.
  Other residents are not affected: the count is the sender's own.
- Globally: past ``FLOOD_GLOBAL_PER_MINUTE`` messages in that minute from everyone, replies
  are not dropped but paced: each one is scheduled (``next_attempt_at``) as far after the
  limit as the message is, spreading the excess over the following minutes at the limit's
  rate; the sweeper sends them when due (workers.sweeper). Contributions are filed at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from gateway.models import Contributor, InboundMessage, OutboundMessage
from gateway.outbox import ALWAYS_SENT
from gateway.privacy import log_id
from gateway.settings import Settings

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=1)
NOTICE = "flood.notice"
NOTICE_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Pressure:
    """How hard the minute before a message was: its sender's count and everyone's."""

    sender_count: int = 0
    global_count: int = 0
    sender_limit: int = 0
    global_limit: int = 0

    @property
    def flooding(self) -> bool:
        return 0 < self.sender_limit < self.sender_count

    @property
    def global_excess(self) -> int:
        """How many messages past the global limit this one came (0: within it)."""
        if self.global_limit <= 0:
            return 0
        return max(0, self.global_count - self.global_limit)


CALM = Pressure()


def _in_window(message: InboundMessage) -> list[ColumnElement[bool]]:
    return [
        InboundMessage.received_at > message.received_at - WINDOW,
        (InboundMessage.received_at < message.received_at)
        | ((InboundMessage.received_at == message.received_at) & (InboundMessage.id <= message.id)),
    ]


def measure(session: Session, settings: Settings, message: InboundMessage) -> Pressure:
    """The pressure at ``message``'s arrival: messages in the minute up to it (itself counted)."""
    per_sender = settings.flood_per_sender_per_minute
    overall = settings.flood_global_per_minute
    sender_count = global_count = 0
    if per_sender > 0 and message.sender_hash is not None:
        sender_count = (
            session.scalar(
                select(func.count())
                .select_from(InboundMessage)
                .where(InboundMessage.sender_hash == message.sender_hash, *_in_window(message))
            )
            or 0
        )
    if overall > 0:
        global_count = (
            session.scalar(
                select(func.count()).select_from(InboundMessage).where(*_in_window(message))
            )
            or 0
        )
    return Pressure(sender_count, global_count, per_sender, overall)


def notice_due(session: Session, contributor: Contributor, now: datetime) -> bool:
    """Whether this sender has not had the flood notice within ``NOTICE_EVERY``."""
    earlier = session.scalar(
        select(OutboundMessage.id)
        .where(
            OutboundMessage.contributor_id == contributor.id,
            OutboundMessage.message_key == NOTICE,
            OutboundMessage.created_at > now - NOTICE_EVERY,
        )
        .limit(1)
    )
    return earlier is None


def withhold_flooded(
    rows: list[OutboundMessage], contributor: Contributor, pressure: Pressure
) -> None:
    """A flooding sender's replies are kept as ``withheld`` (never sent), except the
    confirmations that must always go out (STOP, OUBLIER) and the flood notice itself."""
    for row in rows:
        if row.message_key in ALWAYS_SENT or row.message_key == NOTICE:
            continue
        row.status, row.recipient_encrypted = "withheld", None
        row.error = f"flood limit ({pressure.sender_limit} messages a minute)"
    log.info(
        "flood from %s: %d messages in a minute; replies withheld",
        log_id(contributor.address_hash),
        pressure.sender_count,
    )


def pace(rows: list[OutboundMessage], pressure: Pressure, now: datetime) -> None:
    """Past the global limit, replies still to send are scheduled later, at the limit's rate."""
    excess = pressure.global_excess
    if not excess:
        return
    due = now + timedelta(seconds=60 * excess / pressure.global_limit)
    for row in rows:
        if row.status == "queued":
            row.next_attempt_at = due
    log.info("global inbound limit passed by %d messages: replies paced to %s", excess, due)
