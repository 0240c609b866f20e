"""Messages that could not be delivered: the dead-letter list, its retry and its discard.

An outbound message (a receipt, a question, a decision's notice, the city's answer) that
failed for good (workers.outbound: a refusal, or retries exhausted) stays ``failed`` with its
reason. Admins see those here (console and API), never the address: the channel, the
provider, the contributor's pseudonymous id, the contribution's reference, the text, the
reason, the attempts and the dates. Two actions, each one transaction with its
``ModerationEvent``:

- retry: back to ``queued`` with its attempts reset and a fresh copy of the resident's
  encrypted address (the failed row's copy was wiped), then enqueued. Only a ``failed`` row
  changes (a conditional update), so a double click or a retried API call sends nothing
  twice; a row already queued, being sent or sent is left as it is. Refused for a resident
  who opted out or was forgotten since (their address is gone), with the reason.
- discard: ``discarded``, kept for the record, never sent; discarding twice changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway import residents
from gateway.models import Contribution, Contributor, OutboundMessage
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError, Done, clean_text, log_event, run
from gateway.outbox import ALWAYS_SENT
from gateway.privacy import contributor_address, outbound_recipient
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

FAILED = "failed"
DISCARDED = "discarded"
PER_PAGE = 50
MAX_REASON = 500
# Still on its way: a retry leaves it alone (it will be, or was, sent once).
ON_ITS_WAY = ("queued", "sending", "sent")


@dataclass(frozen=True)
class FailedMessage:
    """One row of the list, without any address."""

    id: int
    channel: str
    provider: str | None
    contributor: str | None  # the pseudonymous id
    reference: str | None
    text: str
    reason: str | None
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None


@dataclass(frozen=True)
class Outcome:
    """What a retry or a discard did: the row's status after it, and whether it changed."""

    id: int
    status: str
    changed: bool


def failed_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.status == FAILED)
        )
        or 0
    )


def failed_messages(
    session: Session, page: int = 1, per_page: int = PER_PAGE
) -> list[FailedMessage]:
    """The failed messages, the most recent first."""
    rows = session.execute(
        select(OutboundMessage, Contributor.public_id, Contribution.reference)
        .outerjoin(Contributor, Contributor.id == OutboundMessage.contributor_id)
        .outerjoin(Contribution, Contribution.id == OutboundMessage.contribution_id)
        .where(OutboundMessage.status == FAILED)
        .order_by(OutboundMessage.created_at.desc(), OutboundMessage.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return [
        FailedMessage(
            id=row.id,
            channel=row.channel,
            provider=row.provider,
            contributor=public_id,
            reference=reference,
            text=row.text,
            reason=row.error,
            attempts=row.attempts,
            created_at=row.created_at,
            last_attempt_at=row.claimed_at,
        )
        for row, public_id, reference in rows
    ]


def _row(session: Session, outbound_id: int) -> OutboundMessage:
    row = session.get(OutboundMessage, outbound_id)
    if row is None:
        raise ActionError("console.errors.not_found", "no such message", 404)
    return row


def _before(row: OutboundMessage) -> dict[str, object]:
    return {"outbound": row.id, "status": row.status, "attempts": row.attempts}


def retry(runtime: Runtime, outbound_id: int, actor: Actor, reason: str | None = None) -> Outcome:
    outcome: list[Outcome] = []
    reason = clean_text(reason or "", MAX_REASON) or None

    def work(session: Session, done: Done) -> None:
        row = _row(session, outbound_id)
        if row.status in ON_ITS_WAY:
            outcome.append(Outcome(row.id, row.status, changed=False))
            return
        if row.status != FAILED:  # discarded, withheld: not for the list's retry
            raise ActionError("console.outbound.errors.not_failed", f"message is {row.status}", 409)
        if not row.text:
            # The retention purge (gateway.retention) wiped it: nothing left to send.
            raise ActionError(
                "console.outbound.errors.purged", "its text was purged: not sent", 409
            )
        contributor = session.get(Contributor, row.contributor_id) if row.contributor_id else None
        if contributor is None or contributor.forgotten_at or not contributor.address_hash:
            raise ActionError(
                "console.outbound.errors.forgotten", "the resident was forgotten: not sent", 409
            )
        if row.message_key not in ALWAYS_SENT and residents.is_opted_out(
            session, contributor.address_hash
        ):
            raise ActionError(
                "console.outbound.errors.opted_out", "the resident opted out: not sent", 409
            )
        recipient = runtime.vault.rebind(
            contributor.address_encrypted,
            contributor_address(contributor.channel, contributor.address_hash),
            outbound_recipient(row.decision_key),
        )
        if recipient is None:
            raise ActionError(
                "console.outbound.errors.forgotten", "no readable address: not sent", 409
            )
        before = _before(row) | {"reason": row.error}
        # Conditional: of two retries at once, one changes the row and the other nothing.
        changed = session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == row.id, OutboundMessage.status == FAILED)
            .values(
                status="queued",
                attempts=0,
                next_attempt_at=None,
                claimed_at=None,
                recipient_encrypted=recipient,
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        after = {"outbound": row.id, "status": "queued", "attempts": 0}
        outcome.append(
            _logged(session, done, row, changed, actor, "outbound_retry", before, after, reason)
        )
        if changed:
            done.outbound.append(row.id)

    run(runtime, work)  # enqueues what it re-queued, once committed
    (result,) = outcome
    if result.changed:
        log.info("outbound %d re-queued by %s", outbound_id, actor.name)
    return result


def _logged(
    session: Session,
    done: Done,
    row: OutboundMessage,
    changed: int,
    actor: Actor,
    action: str,
    before: dict[str, Any],
    after: dict[str, Any],
    reason: str | None,
) -> Outcome:
    """The end of a retry or a discard: of two at once, the one whose conditional update
    changed nothing reports the row as the other left it; the one that changed it is logged."""
    if not changed:
        session.refresh(row)
        return Outcome(row.id, row.status, changed=False)
    contribution = session.get(Contribution, row.contribution_id) if row.contribution_id else None
    log_event(session, done, contribution, actor, action, before, after, reason)
    return Outcome(row.id, str(after["status"]), changed=True)


def discard(runtime: Runtime, outbound_id: int, actor: Actor, reason: str | None = None) -> Outcome:
    outcome: list[Outcome] = []
    reason = clean_text(reason or "", MAX_REASON) or None

    def work(session: Session, done: Done) -> None:
        row = _row(session, outbound_id)
        if row.status == DISCARDED:
            outcome.append(Outcome(row.id, row.status, changed=False))
            return
        if row.status != FAILED:
            raise ActionError("console.outbound.errors.not_failed", f"message is {row.status}", 409)
        before = _before(row) | {"reason": row.error}
        changed = session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == row.id, OutboundMessage.status == FAILED)
            .values(status=DISCARDED, recipient_encrypted=None, next_attempt_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        after = {"outbound": row.id, "status": DISCARDED}
        outcome.append(
            _logged(session, done, row, changed, actor, "outbound_discard", before, after, reason)
        )

    run(runtime, work)
    (result,) = outcome
    if result.changed:
        log.info("outbound %d discarded by %s", outbound_id, actor.name)
    return result
