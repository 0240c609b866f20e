"""The outbox: a reply to a resident as a queued row, and the per-person reply limit.

Every message the gateway decides to send (a receipt, a question, a moderator's decision, the
city's answer) becomes an ``OutboundMessage`` row here, in the transaction that decided it;
the outbound worker (workers.outbound) sends the rows. ``withhold_over_limit`` keeps a flood
or a loop with another automaton from costing the city hundreds of messages.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway.models import Contributor, OutboundMessage
from gateway.privacy import AddressVault, contributor_address, log_id, outbound_recipient
from gateway.runtime import Runtime
from gateway.sms_segments import encoding, segments

log = logging.getLogger(__name__)


def outbound_row(
    *,
    vault: AddressVault,
    decision_key: str,
    channel: str,
    contributor: Contributor,
    inbound_id: int | None,
    contribution_id: int | None,
    sender: str | None,
    key: str,
    text: str,
    now: datetime,
) -> OutboundMessage:
    """A reply to a resident, queued, with its own copy of their encrypted address."""
    return OutboundMessage(
        decision_key=decision_key,
        channel=channel,
        contributor_id=contributor.id,
        inbound_message_id=inbound_id,
        contribution_id=contribution_id,
        # Its own copy, encrypted for this row: an erased or unreadable address leaves None,
        # which the outbound job records as a failure without sending.
        recipient_encrypted=vault.rebind(
            contributor.address_encrypted,
            contributor_address(contributor.channel, contributor.address_hash),
            outbound_recipient(decision_key),
        ),
        sender=sender,
        text=text,
        message_key=key,
        encoding=encoding(text),
        segments=segments(text),
        status="queued",
        created_at=now,
    )


def replies_last_hour(session: Session, contributor: Contributor, now: datetime) -> int:
    """Replies decided for one resident in the last hour, withheld ones aside: the person's,
    on every channel of their address (a caller's SMS receipts count with their texts)."""
    person = (
        select(Contributor.id).where(Contributor.address_hash == contributor.address_hash)
        if contributor.address_hash
        else select(Contributor.id).where(Contributor.id == contributor.id)
    )
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(
                OutboundMessage.contributor_id.in_(person.scalar_subquery()),
                OutboundMessage.created_at >= now - timedelta(hours=1),
                OutboundMessage.status != "withheld",
            )
        )
        or 0
    )


ALWAYS_SENT = frozenset({"stop.confirmed", "stop.confirmed_filed", "forget.confirmed"})


def withhold_over_limit(
    runtime: Runtime,
    session: Session,
    contributor: Contributor,
    rows: list[OutboundMessage],
    now: datetime,
) -> None:
    """A resident's phone caught in a loop with another automaton, or a flood, must not make
    the city pay for (and the resident receive) hundreds of SMS: past ``replies_per_hour``,
    replies are kept as ``withheld`` and not sent. Contributions are still filed, and the
    confirmations of STOP and OUBLIER always go out."""
    limit = runtime.settings.replies_per_hour
    recent = replies_last_hour(session, contributor, now)
    for row in rows:
        if row.message_key in ALWAYS_SENT:
            continue
        if recent >= limit:
            row.status, row.recipient_encrypted = "withheld", None
            row.error = f"reply limit reached ({limit} an hour)"
            log.warning(
                "reply withheld for %s: %d replies in the last hour",
                log_id(contributor.address_hash),
                recent,
            )
        else:
            recent += 1


def delivery_failed(runtime: Runtime, provider: str, provider_message_id: str, why: str) -> bool:
    """A provider reports that a message it had accepted was not delivered (a rejected or
    undeliverable status): the row, ``sent`` until now, becomes ``failed`` with the reason, so
    that moderators see on the contribution's page that the resident was not told. Returns
    whether a sent message of that provider had that id. ``why`` must carry no address."""
    with runtime.sessions.begin() as session:
        changed = session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.provider == provider,
                OutboundMessage.provider_message_id == provider_message_id,
                OutboundMessage.status == "sent",
            )
            .values(status="failed", error=f"not delivered: {why}"[:500])
        ).rowcount  # type: ignore[attr-defined]
    if changed:
        log.info("outbound %s of %s: not delivered", provider_message_id, provider)
    return bool(changed)
