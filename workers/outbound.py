"""Sending one outbound message, at most once.

A row is claimed with a conditional update (queued -> sending) so that two workers, or a job
enqueued twice, cannot both send it. A retryable failure (429, 5xx, connection refused) puts it
back to ``queued`` with ``next_attempt_at`` (exponential backoff, or the provider's
Retry-After); the sweeper enqueues it when due.

A send interrupted after the claim (its worker killed, the row left ``sending``) is never
retried blindly: the provider may have accepted it before the worker died. Recovery
(workers.recovery, or the sweeper after STUCK_SENDING) puts it back to ``queued`` marked
``RECONCILING``; the next attempt first asks the provider (the plugin's ``reconcile`` hook)
whether it has the message: found, the row is marked sent with the provider's id, and nothing
is sent again; not found, it is sent. A provider that cannot be asked (no hook: a bot API
without a list of sent messages) gets the old answer: failed, delivery unknown, because
sending twice is worse for a resident than a missing receipt an operator can see in the
dead-letter list. Every attempt at one row carries the same ``token`` (``OutgoingText``), so
a provider that resends without looking up (email) sends recognisably the same message.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gateway import announcements, metrics, pacing, plugins, residents
from gateway.clock import now_utc
from gateway.logs import describe
from gateway.messages import OutgoingText, SendError
from gateway.models import Contribution, Contributor, InboundMessage, OutboundMessage
from gateway.privacy import outbound_recipient, redact
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

# The ``error`` of a row put back to ``queued`` after an interrupted send: ask the provider
# before sending it again (workers.recovery, workers.sweeper).
RECONCILING = "interrupted while sending: the provider is asked before any new attempt"
INTERRUPTED = "interrupted while sending: delivery unknown, not retried"
# How far before the row's creation a provider's clock may be and still match.
CLOCK_SKEW = timedelta(minutes=5)

MAX_BACKOFF = timedelta(minutes=10)


def backoff(attempt: int) -> timedelta:
    return min(timedelta(seconds=2**attempt), MAX_BACKOFF)


def send(runtime: Runtime, outbound_id: int) -> str:
    """Returns the row's final status for this attempt: sent, queued (retry, or its turn at
    the provider's pace is later), failed, skipped."""
    return _send(runtime, outbound_id)[0]


def _send(runtime: Runtime, outbound_id: int) -> tuple[str, datetime | None]:
    """The status, and when the row was put back for its turn at the provider's pace (None
    when it was not)."""
    now = now_utc()
    with runtime.sessions.begin() as session:
        claimed = session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.id == outbound_id,
                OutboundMessage.status == "queued",
                (OutboundMessage.next_attempt_at.is_(None))
                | (OutboundMessage.next_attempt_at <= now),
            )
            .values(status="sending", attempts=OutboundMessage.attempts + 1, claimed_at=now)
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return "skipped", None
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        later = announcements.not_before(runtime.settings, row.message_key, now)
        if later is not None:  # due at night (a retry, a worker that was down): the morning
            row.status, row.next_attempt_at = "queued", later
            row.attempts -= 1
            return "queued", None
        if row.recipient_encrypted is None:
            row.status, row.error = "failed", "no recipient address (erased)"
            return "failed", None
        behind = _behind(session, row, now) if runtime.settings.outbound_pacing else None
        if behind is not None:  # an earlier message to the same person waits its turn
            _put_back(row, behind)
            return "queued", behind
        recipient = runtime.vault.decrypt_or_none(
            row.recipient_encrypted, outbound_recipient(row.decision_key)
        )
        if recipient is None:  # copied from another row, or written under another key
            row.status, row.recipient_encrypted = "failed", None
            row.error = "recipient address does not decrypt for this message: not sent"
            return "failed", None
        origin = _origin(session, row)
        carrier = origin.provider if origin is not None else None
        message = OutgoingText(
            channel=row.channel,
            recipient=recipient,
            sender=row.sender,
            text=row.text,
            buttons=row.buttons or None,
            thread=_thread(runtime, row.channel, origin),
            key=row.message_key,
            token=token(row),
        )
        attempts, segments = row.attempts, row.segments or 1
        reconciling = row.error == RECONCILING
        since = row.created_at
    # Back through the provider that carried the resident's message (a channel may have two).
    sender = runtime.sender(message.channel, carrier)
    if reconciling:  # asked first: a message the provider already has takes no turn
        outcome = _reconcile(runtime, outbound_id, attempts, sender.name, message, since)
        if outcome is not None:
            return outcome, None
    turn = _turn(runtime, runtime.carrier(message.channel, carrier), message, segments)
    if not turn.reserved:  # not within MAX_SLEEP: back in the queue for its turn
        later = now_utc() + timedelta(seconds=turn.wait)
        with runtime.sessions.begin() as session:
            row = session.get(OutboundMessage, outbound_id)
            if row is not None and row.status == "sending":
                _put_back(row, later)
        log.info("outbound %d: paced, its turn in %.1f s", outbound_id, turn.wait)
        return "queued", later
    if turn.wait > 0:
        time.sleep(turn.wait)
    try:
        provider_id = sender.send(message)
    except SendError as exc:
        status = _failed(runtime, outbound_id, attempts, exc, sender.name, message.recipient)
        metrics.count("outbound_sends", provider=sender.name, result=_RESULTS[status])
        return status, None
    except Exception as exc:  # a bug in an adapter: never leave the row in "sending"
        log.error(
            "outbound %d: unexpected error: %s",
            outbound_id,
            describe(exc, message.recipient),
            exc_info=exc,
        )
        status = _failed(
            runtime,
            outbound_id,
            attempts,
            SendError(describe(exc, message.recipient), retryable=False),
            sender.name,
            message.recipient,
        )
        metrics.count("outbound_sends", provider=sender.name, result=_RESULTS[status])
        return status, None
    with runtime.sessions.begin() as session:
        row = session.get(OutboundMessage, outbound_id)
        if row is None:  # erased while it was being sent (the resident asked to be forgotten)
            log.info(
                "outbound %d sent via %s; its row was erased meanwhile", outbound_id, sender.name
            )
            return "sent", None
        row.status, row.provider, row.provider_message_id = "sent", sender.name, provider_id
        row.sent_at, row.error, row.recipient_encrypted = now_utc(), None, None
    log.info("outbound %d sent via %s (%s segment(s))", outbound_id, sender.name, row.segments)
    metrics.count("outbound_sends", provider=sender.name, result="sent")
    return "sent", None


# What a provider's refusal left the row as, for gateway_outbound_sends_total's ``result``.
_RESULTS = {"queued": "retry", "failed": "failed", "sent": "sent", "skipped": "skipped"}


# -- pacing (gateway.pacing) --------------------------------------------------------------------

# The error a row put back for its turn carries: the later messages to the same person wait
# behind it (``_behind``), so that pacing never reorders what one resident receives.
PACED = "paced: waiting for its turn at the provider's rate"
# How long a message waits behind an earlier one to the same person being sent or paced.
BEHIND = timedelta(seconds=1)
# A send lasts at most its sleep (pacing.MAX_SLEEP) and the provider's answer (15 s).
SENDING_FOR = timedelta(seconds=30)


def _turn(
    runtime: Runtime, provider: str | None, message: OutgoingText, segments: int
) -> pacing.Turn:
    """The message's turn at its provider's pace (the rules its plugin declares)."""
    if not runtime.settings.outbound_pacing or provider is None:
        return pacing.Turn(True, 0.0)
    owner = next((p for p in plugins.for_channel(message.channel) if p.name == provider), None)
    if owner is None or owner.pace is None:
        return pacing.Turn(True, 0.0)  # the console outbox, a provider without rules
    pace = owner.pace(runtime.settings)
    try:
        recipient_hash = runtime.vault.lookup_hash(message.channel, message.recipient)
    except ValueError:  # an address the channel cannot normalise: one bucket for them all
        recipient_hash = "unknown"
    taken = pacing.buckets(
        provider,
        pace,
        sender=message.sender,
        recipient_hash=recipient_hash,
        segments=segments,
    )
    return runtime.pacer.reserve(taken)


def _put_back(row: OutboundMessage, when: datetime) -> None:
    """Queued again for ``when``, the attempt not counted (nothing was sent). A row waiting to
    be reconciled keeps its mark: its next attempt still asks the provider first, or a send
    the provider took before a crash would go out twice."""
    row.status, row.next_attempt_at = "queued", when
    row.error = RECONCILING if row.error == RECONCILING else PACED
    row.attempts -= 1


def _behind(session: Session, row: OutboundMessage, now: datetime) -> datetime | None:
    """When an earlier message to the same person is being sent or waits its turn: a moment
    after it (None: nothing ahead)."""
    if row.contributor_id is None:
        return None
    ahead = session.execute(
        select(OutboundMessage.status, OutboundMessage.next_attempt_at)
        .where(
            OutboundMessage.contributor_id == row.contributor_id,
            OutboundMessage.channel == row.channel,
            OutboundMessage.id < row.id,
            or_(
                # Being sent now; one claimed long ago lost its worker (the sweeper marks it
                # failed) and holds nothing up.
                (OutboundMessage.status == "sending")
                & (OutboundMessage.claimed_at >= now - SENDING_FOR),
                (OutboundMessage.status == "queued") & (OutboundMessage.error == PACED),
            ),
        )
        .order_by(OutboundMessage.next_attempt_at.desc())
        .limit(1)
    ).first()
    if ahead is None:
        return None
    due = ahead.next_attempt_at if ahead.status == "queued" else None
    return max(now, _aware(due) if due is not None else now) + BEHIND


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def token(row: OutboundMessage) -> str:
    """The row's idempotency token: the same for every attempt at it, unique to it."""
    created = row.created_at.strftime("%Y%m%d%H%M%S") if row.created_at else "0"
    return f"{row.id}.{created}"


def _reconcile(
    runtime: Runtime,
    outbound_id: int,
    attempts: int,
    provider: str,
    message: OutgoingText,
    since: Any,
) -> str | None:
    """After an interrupted attempt: ask the provider whether it has the message. Returns the
    row's status when that settles it (sent, queued to ask again, failed), None to send."""
    lookup = plugins.provider_hook(message.channel, provider, "reconcile")
    if lookup is None:
        with runtime.sessions.begin() as session:
            row = session.get(OutboundMessage, outbound_id)
            if row is not None:
                row.status, row.recipient_encrypted, row.error = "failed", None, INTERRUPTED
                row.provider = provider
        log.error(
            "outbound %d: interrupted send, %s cannot be asked: failed, delivery unknown",
            outbound_id,
            provider,
        )
        return "failed"
    try:
        found = list(lookup(runtime, message, (since or now_utc()) - CLOCK_SKEW))
    except SendError as exc:
        if exc.retryable and attempts < runtime.settings.outbound_max_attempts:
            reason = redact(str(exc), message.recipient)[:500]
            with runtime.sessions.begin() as session:
                row = session.get(OutboundMessage, outbound_id)
                if row is not None:  # ask again later, still before any new attempt
                    row.status, row.error = "queued", RECONCILING
                    row.next_attempt_at = now_utc() + backoff(attempts)
            log.warning("outbound %d: the provider cannot be asked now (%s)", outbound_id, reason)
            return "queued"
        with runtime.sessions.begin() as session:
            row = session.get(OutboundMessage, outbound_id)
            if row is not None:
                row.status, row.recipient_encrypted = "failed", None
                row.error = f"{INTERRUPTED}; {redact(str(exc), message.recipient)}"[:2000]
                row.provider = provider
        log.error("outbound %d: interrupted send, the provider could not be asked", outbound_id)
        return "failed"
    with runtime.sessions.begin() as session:
        row = session.get(OutboundMessage, outbound_id)
        if row is None:
            return "failed"
        # Another row with the same text to the same person (two receipts) owns its own id.
        taken = (
            set(
                session.scalars(
                    select(OutboundMessage.provider_message_id).where(
                        OutboundMessage.provider == provider,
                        OutboundMessage.provider_message_id.in_(found),
                        OutboundMessage.id != outbound_id,
                    )
                )
            )
            if found
            else set()
        )
        mine = next((pid for pid in found if pid not in taken), None)
        if mine is None:
            log.info(
                "outbound %d: interrupted send not found at %s: sending", outbound_id, provider
            )
            return None
        row.status, row.provider, row.provider_message_id = "sent", provider, mine
        row.sent_at, row.error, row.recipient_encrypted = now_utc(), None, None
    log.info("outbound %d: interrupted send found at %s: marked sent", outbound_id, provider)
    return "sent"


def _origin(session: Session, row: OutboundMessage) -> InboundMessage | None:
    """The resident's message a reply answers (or, for a notice, the message that brought the
    contribution in). None once that message is erased."""
    inbound_id = row.inbound_message_id
    if inbound_id is None and row.contribution_id is not None:
        contribution = session.get(Contribution, row.contribution_id)
        inbound_id = contribution.inbound_message_id if contribution else None
    return session.get(InboundMessage, inbound_id) if inbound_id else None


def _thread(
    runtime: Runtime, channel: str, message: InboundMessage | None
) -> dict[str, Any] | None:
    """What the reply threads on, for channels that thread (the plugin's ``thread`` hook):
    the message it answers (``_origin``), when it came by the same channel."""
    thread = plugins.hook(channel, "thread", message.provider if message else None)
    if thread is None or message is None or message.channel != channel:
        return None
    return cast("dict[str, Any] | None", thread(runtime, message))


def _failed(
    runtime: Runtime,
    outbound_id: int,
    attempts: int,
    exc: SendError,
    provider: str,
    recipient: str,
) -> str:
    # A provider's error quotes the address it refused ("The 'To' number +336... is not
    # valid", a mail server's refusal): stored and logged without it.
    reason = redact(str(exc), recipient)[:2000]
    with runtime.sessions.begin() as session:
        row = session.get(OutboundMessage, outbound_id)
        if row is None:  # erased meanwhile
            return "failed"
        row.error, row.provider = reason, provider
        if exc.recipient_opted_out and row.contributor_id is not None:
            contributor = session.get(Contributor, row.contributor_id)
            # The person unsubscribed (or blocked the bot): every channel of their address.
            if contributor is not None and contributor.address_hash:
                if residents.opt_out(session, contributor.address_hash, now_utc()):
                    log.info(
                        "outbound %d: recipient unsubscribed at the provider; opted out",
                        outbound_id,
                    )
        if exc.retryable and attempts < runtime.settings.outbound_max_attempts:
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after else backoff(attempts)
            row.status, row.next_attempt_at = "queued", now_utc() + delay
            log.warning(
                "outbound %d: attempt %d failed (%s); retry in %s",
                outbound_id,
                attempts,
                reason,
                delay,
            )
            return "queued"
        row.status, row.recipient_encrypted = "failed", None
        log.error(
            "outbound %d failed for good after %d attempt(s): %s", outbound_id, attempts, reason
        )
        return "failed"


def send_in_order(runtime: Runtime, outbound_ids: list[int]) -> list[str]:
    """One decision's messages, in order. When one is put back for its turn at the
    provider's pace, the ones after it wait behind it (``_hold``), not ahead of it."""
    statuses: list[str] = []
    for index, outbound_id in enumerate(outbound_ids):
        status, held = _send(runtime, outbound_id)
        statuses.append(status)
        if held is not None:
            rest = outbound_ids[index + 1 :]
            _hold(runtime, rest, held)
            statuses += ["queued"] * len(rest)
            break
    return statuses


def _hold(runtime: Runtime, outbound_ids: list[int], after: datetime) -> None:
    """Queued rows due before ``after``: due just after it, in their order, marked as waiting
    their turn (the attempt not counted: they were not tried)."""
    with runtime.sessions.begin() as session:
        for step, outbound_id in enumerate(outbound_ids, start=1):
            session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id == outbound_id,
                    OutboundMessage.status == "queued",
                    (OutboundMessage.next_attempt_at.is_(None))
                    | (OutboundMessage.next_attempt_at <= after),
                )
                .values(next_attempt_at=after + step * timedelta(milliseconds=10), error=PACED)
            )
