"""Retention: what the gateway stored about residents goes once it has served (docs/privacy.md).

Two periods (settings):
- ``RAW_PAYLOAD_RETENTION_DAYS`` (30): a stored message's raw payload and sender address (the
  row itself stays, bare: its provider id absorbs a provider's late retry), its text and
  attachments once handled; a reply's recipient and text once sent or failed (the row stays:
  its decision key keeps a re-run job from sending it twice); a finished call back; an idle
  conversation; a quarantined delivery's payload; the recordings and files of rejected and
  spam contributions (counted from the moderator's decision).
- ``RETENTION_DAYS_AFTER_CLOSE`` (90): after a campaign closes, its contributions' recordings,
  radio copies and files, except the recordings the public page and podcast play (published,
  reviewed, the caller consented: ``broadcastable``) and the photos a moderator published;
  and the encrypted address of every person with nothing left open (no contribution in a
  campaign still within its period, no reply or call back waiting, no announcement asked
  for, no message in the period). Their look-up hash stays: it keeps an opt-out (STOP) in
  force and the public pseudonym of their contributions stable.

Call records (``voice_calls``) go after two days (gateway.residents.purge_calls), counted here.

What the public page and open data show is never touched: a contribution's text, public text,
metadata, answer, published photos and broadcastable recordings. Everything runs in the
caller's transaction; ``dry_run`` counts without changing anything. Logs carry counts only.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from gateway.audio_cache import cached_files
from gateway.models import (
    Callback,
    Campaign,
    Contribution,
    Contributor,
    Conversation,
    InboundMessage,
    OutboundMessage,
    QuarantinedMessage,
    VoiceCall,
)
from gateway.moderation.photos import public_photos
from gateway.publication.records import broadcastable
from gateway.residents import (
    AUDIO_KINDS,
    CALL_RETENTION,
    attachment_paths,
    delete_files,
    purge_calls,
    still_used,
)
from gateway.textcap import KIND as TEXT_KIND

log = logging.getLogger(__name__)

# Replies that will not be sent again: a failed one older than the period leaves the
# dead-letter list's retry (gateway.moderation.deadletter refuses a purged text).
FINISHED_REPLIES = ("sent", "failed", "discarded", "withheld")
FINISHED_CALLBACKS = ("done", "given_up", "failed")
# The daily run from the sweeper: one sweeper a day (a key that lives a day), one purge at a
# time (gateway.locks; the command takes the same lock).
LOCK_NAME = "retention"
DAY_KEY = "gateway:retention:day"


@dataclass
class PurgeReport:
    """Counts per kind of what went (or would go, in a dry run)."""

    payloads: int = 0  # stored messages whose payload, sender, text, attachments went
    replies: int = 0  # replies whose recipient and text went
    callbacks: int = 0  # finished call backs deleted
    conversations: int = 0  # idle conversations deleted
    quarantined: int = 0  # quarantined deliveries whose payload went
    calls: int = 0  # call records deleted
    recordings: int = 0  # contributions whose recording went
    attachments: int = 0  # contributions whose photos or files went
    addresses: int = 0  # contributor rows whose encrypted address went
    files: int = 0  # files deleted from the data folder

    def summary(self) -> str:
        return ", ".join(f"{name}={count}" for name, count in asdict(self).items())

    def __bool__(self) -> bool:
        return any(asdict(self).values())


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _closed_before(cutoff: datetime) -> ColumnElement[bool]:
    """Campaigns closed before ``cutoff``: by their end date, or by their status, dated by
    their last change (the status change or later: never earlier than the real closing)."""
    return or_(
        Campaign.closes_at <= cutoff,
        and_(Campaign.status == "closed", Campaign.updated_at <= cutoff),
    )


def purge(
    session: Session,
    data_path: Path,
    now: datetime,
    *,
    days_after_close: int,
    raw_days: int,
    dry_run: bool = False,
) -> PurgeReport:
    """Purge what is past its period (see the module's doc); returns the counts."""
    report = PurgeReport()
    raw_cutoff = now - timedelta(days=raw_days)
    close_cutoff = now - timedelta(days=days_after_close)
    files: set[str] = set()

    # Stored messages, once handled (a message still "received" waits for a worker).
    old_messages = (
        select(InboundMessage)
        .where(InboundMessage.received_at < raw_cutoff, InboundMessage.state != "received")
        .where(
            or_(
                InboundMessage.raw_encrypted.is_not(None),
                InboundMessage.sender_encrypted.is_not(None),
                InboundMessage.text != "",
                func.coalesce(func.length(func.cast(InboundMessage.attachments, _text())), 0) > 2,
            )
        )
    )
    messages = list(session.scalars(old_messages))
    report.payloads = len(messages)
    for message in messages:
        files.update(attachment_paths(message.attachments))
        if not dry_run:
            message.raw_encrypted = message.sender_encrypted = None
            message.text, message.attachments = "", []

    # Replies sent or given up: the row stays (decision key), its recipient and text go.
    done_replies = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.status.in_(FINISHED_REPLIES),
            OutboundMessage.created_at < raw_cutoff,
        )
        .where(or_(OutboundMessage.recipient_encrypted.is_not(None), OutboundMessage.text != ""))
    )
    report.replies = _count(session, done_replies)
    if not dry_run and report.replies:
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id.in_(done_replies.scalar_subquery()))
            .values(recipient_encrypted=None, text="", buttons=None)
            .execution_options(synchronize_session=False)
        )

    finished_callbacks = select(Callback.id).where(
        Callback.status.in_(FINISHED_CALLBACKS),
        func.coalesce(Callback.finished_at, Callback.created_at) < raw_cutoff,
    )
    report.callbacks = _count(session, finished_callbacks)
    if not dry_run and report.callbacks:
        session.execute(
            delete(Callback)
            .where(Callback.id.in_(finished_callbacks.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )

    idle = select(Conversation.id).where(
        Conversation.step == "idle", Conversation.updated_at < raw_cutoff
    )
    report.conversations = _count(session, idle)
    if not dry_run and report.conversations:
        session.execute(
            delete(Conversation)
            .where(Conversation.id.in_(idle.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )

    quarantined = select(QuarantinedMessage.id).where(
        QuarantinedMessage.quarantined_at < raw_cutoff,
        QuarantinedMessage.payload_encrypted.is_not(None),
    )
    report.quarantined = _count(session, quarantined)
    if not dry_run and report.quarantined:
        session.execute(
            update(QuarantinedMessage)
            .where(QuarantinedMessage.id.in_(quarantined.scalar_subquery()))
            .values(payload_encrypted=None)
            .execution_options(synchronize_session=False)
        )

    if dry_run:
        report.calls = _count(
            session, select(VoiceCall.id).where(VoiceCall.started_at < now - CALL_RETENTION)
        )
    else:
        report.calls = purge_calls(session, now)

    # Recordings and files: of contributions in campaigns closed long enough, and of rejected
    # and spam ones decided long enough ago. What the public sees stays.
    expired = (
        select(Contribution)
        .outerjoin(Campaign, Contribution.campaign_id == Campaign.id)
        .where(
            or_(
                _closed_before(close_cutoff),
                and_(
                    Contribution.status.in_(("rejected", "spam")),
                    func.coalesce(Contribution.moderated_at, Contribution.received_at) < raw_cutoff,
                ),
            )
        )
        .where(
            or_(
                Contribution.audio_path.is_not(None),
                func.coalesce(func.length(func.cast(Contribution.attachments, _text())), 0) > 2,
            )
        )
    )
    for contribution in session.scalars(expired).unique():
        recording, attachments = _private_media(contribution)
        if recording:
            report.recordings += 1
            files.update(recording)
            files.update(
                str(path.relative_to(data_path))
                for path in cached_files(data_path, contribution.id)
            )
        if attachments:
            report.attachments += 1
            files.update(attachments)
        if not dry_run:
            _strip(contribution, recording | attachments)

    # Addresses of the people with nothing left open.
    report.addresses = _forget_addresses(session, now, close_cutoff, dry_run=dry_run)

    if dry_run:
        # At most this many: a file another row still needs stays in the real run.
        report.files = sum(1 for p in files if (data_path / p).is_file())
        return report
    session.flush()
    report.files = delete_files(data_path, sorted(p for p in files if not still_used(session, p)))
    return report


def _text() -> Any:
    from sqlalchemy import String

    return String


def _private_media(contribution: Contribution) -> tuple[set[str], set[str]]:
    """The recording's paths (unless the public page plays it) and the files' paths (except
    the photos published and the whole text of a long message) of ``contribution``."""
    recording: set[str] = set()
    if not broadcastable(contribution):
        if contribution.audio_path:
            recording.add(contribution.audio_path)
        recording |= attachment_paths(
            i
            for i in contribution.attachments or []
            if isinstance(i, dict) and i.get("kind") in AUDIO_KINDS
        )
    items = list(contribution.attachments or [])
    public = set(public_photos(contribution)) if contribution.status == "published" else set[int]()
    attachments = attachment_paths(
        item
        for index, item in enumerate(items)
        if isinstance(item, dict)
        and item.get("kind") not in AUDIO_KINDS
        and item.get("kind") != TEXT_KIND
        and index not in public
    )
    return recording, attachments


def _strip(contribution: Contribution, paths: set[str]) -> None:
    if contribution.audio_path in paths:
        contribution.audio_path = None
        contribution.broadcast_consent = None
        if contribution.transcription_status == "pending":
            contribution.transcription_status = "failed"
            contribution.transcription_error = "audio removed after its retention period"
    items = list(contribution.attachments or [])
    kept = [i for i in items if not (isinstance(i, dict) and i.get("path") in paths)]
    if len(kept) != len(items):
        contribution.attachments = kept


# Every row of the person (one per channel of their address: gateway.residents).
_SIBLING = Contributor.__table__.alias("sibling")


def _forget_addresses(
    session: Session, now: datetime, close_cutoff: datetime, *, dry_run: bool
) -> int:
    person = Contributor.address_hash
    open_contribution = exists(
        select(Contribution.id)
        .outerjoin(Campaign, Contribution.campaign_id == Campaign.id)
        .join(_SIBLING, Contribution.contributor_id == _SIBLING.c.id)
        .where(_SIBLING.c.address_hash == person)
        .where(
            or_(
                Contribution.campaign_id.is_(None) & (Contribution.received_at >= close_cutoff),
                Contribution.campaign_id.is_not(None) & ~_closed_before(close_cutoff),
            )
        )
    )
    recent_message = exists(
        select(InboundMessage.id).where(
            InboundMessage.sender_hash == person, InboundMessage.received_at >= close_cutoff
        )
    )
    waiting_reply = exists(
        select(OutboundMessage.id).where(
            OutboundMessage.contributor_id == Contributor.id,
            OutboundMessage.status.in_(("queued", "sending")),
        )
    )
    waiting_callback = exists(
        select(Callback.id).where(
            Callback.contributor_id == Contributor.id,
            Callback.status.in_(("queued", "calling")),
        )
    )
    query = select(Contributor.id).where(
        Contributor.address_encrypted.is_not(None),
        Contributor.created_at < close_cutoff,
        Contributor.announcements.is_(False),
        ~open_contribution,
        ~recent_message,
        ~waiting_reply,
        ~waiting_callback,
    )
    ids = list(session.scalars(query))
    if ids and not dry_run:
        session.execute(
            update(Contributor)
            .where(Contributor.id.in_(ids))
            .values(address_encrypted=None)
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def run(runtime: Any, *, dry_run: bool = False, now: datetime | None = None) -> PurgeReport:
    """One purge with the runtime's settings, in one transaction, logged with its counts."""
    from gateway.clock import now_utc

    settings = runtime.settings
    with runtime.sessions.begin() as session:
        report = purge(
            session,
            settings.data_path,
            now or now_utc(),
            days_after_close=settings.retention_days_after_close,
            raw_days=settings.raw_payload_retention_days,
            dry_run=dry_run,
        )
        if not dry_run and report:
            session.info["erased"] = True  # SQLite's log is truncated (gateway.residents)
    log.info("retention%s: %s", " (dry run)" if dry_run else "", report.summary())
    return report


def daily(runtime: Any, now: datetime | None = None) -> PurgeReport | None:
    """The sweeper's daily purge: the first sweeper of the day runs it, under the lock the
    command also takes; None when it was not this one's turn."""
    from gateway.locks import Busy, hold

    redis: Redis = runtime.redis
    if not redis.set(DAY_KEY, "1", nx=True, ex=24 * 3600):
        return None
    try:
        with hold(redis, LOCK_NAME, wait=0):
            return run(runtime, now=now)
    except Busy:
        return None
    except Exception:
        redis.delete(DAY_KEY)  # try again at the next sweep rather than tomorrow
        raise
