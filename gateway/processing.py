"""Processing a stored message: the imperative shell around the conversation engine.

For one stored message: find the resident and their conversation, give the engine what it
needs, and apply what it decides (gateway.outcomes) in one transaction that also marks the
message processed. Running it twice changes nothing the second time.

Order per sender: a job for any message of a sender processes every unprocessed message of
that sender, oldest first, under the person's Redis lock (gateway.locks.sender_lock).
Whichever worker gets there first does the work in arrival order; the others find nothing.

A message that fails for a passing reason is retried (``MAX_ATTEMPTS``); one that would fail
the same way again is quarantined, and the sender's later messages go on.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway import conversation as engine
from gateway import enqueue, floods, media, outcomes, plugins
from gateway.clock import now_utc
from gateway.locks import SenderBusy, sender_lock
from gateway.logs import describe
from gateway.models import Conversation, InboundMessage
from gateway.privacy import inbound_sender, log_id, mark_private
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def process_inbound(runtime: Runtime, message_id: int) -> list[int]:
    """Process the sender's backlog up to and including ``message_id``; returns outbound ids."""
    with runtime.sessions() as session:
        message = session.get(InboundMessage, message_id)
        if message is None or message.state != "received":
            return []
        channel, sender_hash = message.channel, message.sender_hash
    if sender_hash is None:
        return []
    outbound: list[int] = []
    for _ in range(3):
        with sender_lock(runtime, channel, sender_hash):
            with runtime.sessions() as session:
                now_hash = session.scalar(
                    select(InboundMessage.sender_hash).where(InboundMessage.id == message_id)
                )
            if now_hash is not None and now_hash != sender_hash:
                # A key rotation moved the sender to their new hash meanwhile
                # (gateway.rotation): their backlog is under it now, and so is their lock.
                sender_hash = now_hash
                continue
            with runtime.sessions() as session:
                backlog = list(
                    session.scalars(
                        select(InboundMessage.id)
                        .where(
                            InboundMessage.channel == channel,
                            InboundMessage.sender_hash == sender_hash,
                            InboundMessage.state == "received",
                        )
                        .order_by(InboundMessage.received_at, InboundMessage.id)
                    )
                )
            for next_id in backlog:
                outbound.extend(_process_one(runtime, next_id))
            return outbound
    # Moved again and again (rotations back to back): a passing failure, the job is retried.
    raise SenderBusy(f"sender {log_id(sender_hash)} is being re-hashed")


def _process_one(runtime: Runtime, message_id: int) -> list[int]:
    with runtime.sessions.begin() as session:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == message_id)
            .values(attempts=InboundMessage.attempts + 1)
        )
        attempts = session.scalar(
            select(InboundMessage.attempts).where(InboundMessage.id == message_id)
        )
    try:
        # A file that cannot be had yet (the network) is a passing failure: retried.
        media.fetch_pending(runtime, message_id, last_attempt=(attempts or 0) >= MAX_ATTEMPTS)
    except Exception as exc:
        _mark_private(runtime, message_id, exc)
        _note_failure(runtime, message_id, exc, quarantine=False)
        raise
    to_transcribe: list[int] = []
    try:
        with runtime.sessions.begin() as session:
            outbound = _handle(runtime, session, message_id, to_transcribe)
    except Exception as exc:
        _mark_private(runtime, message_id, exc)
        if is_passing(exc):
            _note_failure(runtime, message_id, exc, quarantine=False)
            raise
        # The same message would fail the same way again: set it aside, and let the sender's
        # later messages through (they were waiting behind it, in order).
        _note_failure(runtime, message_id, exc, quarantine=True)
        return []
    enqueue.transcriptions(runtime, to_transcribe)
    return outbound


def is_passing(exc: BaseException) -> bool:
    """Whether a failure may pass by itself (the database or Redis unreachable or locked, the
    network, another worker holding the sender): the job is retried. Anything else (a message
    that breaks the code) would fail again identically."""
    from redis.exceptions import RedisError
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.ingest import is_outage

    if isinstance(exc, SQLAlchemyError):
        return is_outage(exc)
    return isinstance(exc, (RedisError, OSError, SenderBusy))


def _mark_private(runtime: Runtime, message_id: int, exc: BaseException) -> None:
    """The message's words and its sender's address travel with the exception, so that
    whoever records the failure (the log, the message's error, RQ in Redis) masks them even
    where an exception quoted them (gateway.privacy.mark_private)."""
    try:
        with runtime.sessions() as session:
            message = session.get(InboundMessage, message_id)
            if message is None:
                return
            sender = runtime.vault.decrypt_or_none(
                message.sender_encrypted,
                inbound_sender(message.channel, message.provider_message_id),
            )
            mark_private(exc, message.text, sender)
    except Exception as error:  # the database is what failed: the regular shapes still apply
        log.debug("message %d: private values not loaded (%s)", message_id, type(error).__name__)


def _note_failure(runtime: Runtime, message_id: int, exc: Exception, *, quarantine: bool) -> None:
    with runtime.sessions.begin() as session:
        message = session.get(InboundMessage, message_id)
        if message is None:
            return
        message.error = describe(exc)
        if quarantine:
            message.state = "quarantined"
            log.error(
                "message %d quarantined: %s (the sender's next messages go on; "
                "`gateway quarantine retry %d` once fixed)",
                message_id,
                message.error,
                message_id,
                exc_info=exc,
            )
        elif message.attempts >= MAX_ATTEMPTS:
            message.state = "failed"
            log.error(
                "message %d failed %d times; left for an operator", message_id, message.attempts
            )


def _handle(
    runtime: Runtime, session: Session, message_id: int, to_transcribe: list[int]
) -> list[int]:
    message = session.get(InboundMessage, message_id)
    if message is None or message.state != "received":
        return []
    now = now_utc()
    contributor = outcomes.contributor_for(runtime, session, message, now)
    conv = session.scalar(
        select(Conversation).where(
            Conversation.contributor_id == contributor.id, Conversation.channel == message.channel
        )
    )
    if conv is None:
        conv = Conversation(contributor_id=contributor.id, channel=message.channel, state={})
        session.add(conv)
        session.flush()
    state = engine.State.from_dict(conv.state)
    incoming, direct = _incoming(runtime, session, message, state, conv)
    if incoming is None:
        outcome = engine.Outcome(state=state, replies=(engine.Reply(direct),) if direct else ())
    else:
        context = outcomes.context(runtime, session, contributor, now)
        outcome = engine.handle(state, incoming, context)
    outbound = outcomes.apply(
        runtime,
        session,
        outcome,
        contributor=contributor,
        conv=conv,
        channel=message.channel,
        reply_from=message.recipient,
        decision=f"in{message.id}",
        inbound_id=message.id,
        now=now,
        to_transcribe=to_transcribe,
        sender_verified=incoming.verified if incoming is not None else None,
        pressure=floods.measure(session, runtime.settings, message),
    )
    message.state = "processed"
    message.processed_at = now
    message.error = None
    log.info(
        "%s message %d from %s processed: step=%s contributions=%d replies=%d",
        message.channel,
        message.id,
        log_id(message.sender_hash),
        outcome.state.step,
        len(outcome.contributions),
        len(outcome.replies),
    )
    if outcome.forget:
        outcomes.forget(runtime, session, contributor, message)
    return outbound


def _incoming(
    runtime: Runtime,
    session: Session,
    message: InboundMessage,
    state: engine.State,
    conv: Conversation,
) -> tuple[engine.Incoming | None, str | None]:
    """What the engine is given for a stored message; or (None, a catalogue key to answer
    instead, or None) when the message is for the channel alone (a stale button, an edit, an
    automatic sender's loop): the channel's plugin says which (gateway.plugins.interpret)."""
    refs, lost = media.kept(message)
    meaning = plugins.Interpretation()
    interpret = plugins.hook(message.channel, "interpret", message.provider)
    if interpret is not None:
        meaning = interpret(
            plugins.Arrival(
                runtime=runtime,
                session=session,
                message=message,
                state=state,
                conversation=conv,
                campaigns=engine.as_of(
                    outcomes.campaign_infos(session, runtime.settings.timezone),
                    message.received_at,
                ),
            )
        )
    if meaning.handled or meaning.reply:
        return None, meaning.reply
    incoming = engine.Incoming(
        text=message.text if meaning.text is None else meaning.text,
        received_at=message.received_at,
        recipient=message.recipient,
        attachments=lost,
        media=tuple(refs),
        start=meaning.start,
        verified=meaning.verified,
    )
    return incoming, None
