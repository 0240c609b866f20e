"""The imperative shell around the conversation engine.

For one stored message: find the resident and their conversation, give the engine what it
needs, and apply what it decides (contributions, replies, opt-out, erasure) in one transaction
that also marks the message processed. Running it twice changes nothing the second time.

Order per sender: a job for any message of a sender processes every unprocessed message of
that sender, oldest first, under a per-sender Redis lock. Whichever worker gets there first
does the work in arrival order; the others find nothing left.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway import conversation as engine
from gateway import locks, media, residents
from gateway.i18n import translate_for
from gateway.logs import describe
from gateway.models import (
    Campaign,
    Contribution,
    Contributor,
    Conversation,
    InboundMessage,
    OutboundMessage,
    ReferenceCounter,
)
from gateway.moderation import grouping
from gateway.privacy import (
    AddressVault,
    contributor_address,
    inbound_sender,
    log_id,
    mark_private,
    outbound_recipient,
)
from gateway.runtime import Runtime
from gateway.sms_segments import encoding, segments
from gateway.textnorm import clean

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
UNASSIGNED_PREFIX = "AGORA"


class SenderBusy(RuntimeError):
    """Another live worker held this sender's lock for the whole wait; the job is retried."""


# How long a job waits for its sender's lock: longer than a lock lives without renewal
# (gateway.locks.LOCK_TTL), so that a lock left by a holder that died on another machine
# expires while we wait; a dead holder on this machine is cleared at start-up.
SENDER_LOCK_WAIT = 45


def now_utc() -> datetime:
    return datetime.now(UTC)


@contextmanager
def sender_lock(runtime: Runtime, channel: str, sender_hash: str) -> Iterator[None]:
    """One worker at a time per sender (messages in arrival order). The lock names its holder
    and is short-lived with renewal (gateway.locks): a crashed holder never holds it for long.

    The lock is the person's, whatever the channel: the look-up hash is one for a number that
    texts and calls (gateway.residents), so an OUBLIER by SMS and a voice message being filed
    never interleave. Its name is a digest of the hash, not the hash: Redis (and the embedded
    server's append-only file) never holds the value that finds a person's rows."""
    del channel  # the hash already says which address space it belongs to
    digest = hashlib.sha256(sender_hash.encode()).hexdigest()[:32]
    try:
        with locks.hold(runtime.redis, f"person:{digest}", wait=SENDER_LOCK_WAIT):
            yield
    except locks.Busy:
        raise SenderBusy(f"sender {log_id(sender_hash)} is busy") from None


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
    with sender_lock(runtime, channel, sender_hash):
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
    enqueue_transcriptions(runtime, to_transcribe)
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


def enqueue_transcriptions(runtime: Runtime, contribution_ids: list[int]) -> None:
    """Queue the transcription of contributions filed with a recording (a voice note). On a
    Redis failure they stay ``pending``; ``gateway transcribe --pending`` completes them."""
    from redis.exceptions import RedisError

    from gateway.queues import TRANSCRIPTION

    for contribution_id in contribution_ids:
        try:
            runtime.queue(TRANSCRIPTION).enqueue(
                "workers.jobs.transcribe_contribution",
                contribution_id,
                job_id=f"transcribe-{contribution_id}",
                job_timeout=3600,
                result_ttl=600,
                failure_ttl=7 * 24 * 3600,
            )
        except (RedisError, OSError) as exc:
            log.warning("contribution %d: transcription not queued (%s)", contribution_id, exc)


def _handle(
    runtime: Runtime, session: Session, message_id: int, to_transcribe: list[int]
) -> list[int]:
    message = session.get(InboundMessage, message_id)
    if message is None or message.state != "received":
        return []
    now = now_utc()
    contributor = _contributor_for(runtime, session, message, now)
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
        context = _context(runtime, session, contributor, now)
        outcome = engine.handle(state, incoming, context)
    outbound = _apply(
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
        _forget(runtime, session, contributor, message)
    return outbound


def _incoming(
    runtime: Runtime,
    session: Session,
    message: InboundMessage,
    state: engine.State,
    conv: Conversation,
) -> tuple[engine.Incoming | None, str | None]:
    """What the engine is given for a stored message; or (None, a catalogue key to answer
    instead) when the message is for the channel alone (a stale button, an edit)."""
    refs, lost = media.kept(message)
    text, start = message.text, None
    verified: bool | None = None  # only email doubts its sender (channels/email/authentication)
    if message.channel == "telegram":
        from channels.telegram import commands

        if message.kind == "edit":
            return None, _apply_edit(session, message, state, conv)
        text = _latest_edit(session, message) or text
        given = (
            commands.from_button(text, state.step, state.options)
            if message.kind == "button"
            else commands.from_text(text)
        )
        if given.reply:
            return None, given.reply
        text, start = given.text, given.start
    elif message.channel == "email":
        from channels.email import routing

        meta = routing.meta(runtime.vault, message)
        if routing.answering_a_loop(session, message, meta):
            log.info("email %d: an automatic sender repeating itself; not answered", message.id)
            return None, None
        text = routing.text_for(
            text, meta.get("subject") or "", message.recipient, campaign_infos(session)
        )
        verified = routing.sender_verified(meta)
        if not verified:
            log.info("email %d: sender not verified: filed for moderators, unanswered", message.id)
    incoming = engine.Incoming(
        text=text,
        received_at=message.received_at,
        recipient=message.recipient,
        attachments=lost,
        media=tuple(refs),
        start=start,
        verified=verified,
    )
    return incoming, None


def _latest_edit(session: Session, message: InboundMessage) -> str | None:
    """The text of the latest edit of this message still waiting in the backlog, if any: the
    resident corrected it before it was read, so the correction is what counts. The edits are
    then done with."""
    if not message.provider_ref or message.sender_hash is None:
        return None
    edits = list(
        session.scalars(
            select(InboundMessage)
            .where(
                InboundMessage.channel == message.channel,
                InboundMessage.sender_hash == message.sender_hash,
                InboundMessage.provider_ref == message.provider_ref,
                InboundMessage.kind == "edit",
                InboundMessage.state == "received",
            )
            .order_by(InboundMessage.received_at, InboundMessage.id)
        )
    )
    for edit in edits:
        edit.state, edit.processed_at, edit.error = (
            "processed",
            now_utc(),
            "applied to the original",
        )
    return edits[-1].text if edits else None


def _apply_edit(
    session: Session, message: InboundMessage, state: engine.State, conv: Conversation
) -> str:
    """An edit that arrives once its message was read: it replaces the text the conversation
    still keeps (the campaign menu is open); a filed contribution is not changed."""
    original = session.scalar(
        select(InboundMessage)
        .where(
            InboundMessage.channel == message.channel,
            InboundMessage.sender_hash == message.sender_hash,
            InboundMessage.provider_ref == message.provider_ref,
            InboundMessage.kind == "message",
            InboundMessage.id < message.id,
        )
        .order_by(InboundMessage.id.desc())
        .limit(1)
    )
    before = clean(original.text) if original is not None else ""
    after = clean(message.text)
    if before and after and state.step == engine.CHOOSE_CAMPAIGN and before in state.text:
        state.text = state.text.replace(before, after, 1)
        conv.state = state.to_dict()
        return "telegram.edit_noted"
    return "telegram.edit_too_late"


def expire_conversation(runtime: Runtime, conversation_id: int) -> list[int]:
    """File what an abandoned conversation kept (called by the sweeper's job)."""
    with runtime.sessions() as session:
        conv = session.get(Conversation, conversation_id)
        if conv is None:
            return []
        contributor = session.get(Contributor, conv.contributor_id)
        if contributor is None or contributor.address_hash is None:
            return []
        channel, sender_hash = conv.channel, contributor.address_hash
    with sender_lock(runtime, channel, sender_hash), runtime.sessions.begin() as session:
        conv = session.get(Conversation, conversation_id)
        if conv is None:
            return []
        state = engine.State.from_dict(conv.state)
        now = now_utc()
        if not engine.is_expired(state, now):
            return []
        contributor = session.get(Contributor, conv.contributor_id)
        assert contributor is not None
        context = _context(runtime, session, contributor, now)
        outcome = engine.expire(state, context)
        stamp = conv.expires_at.strftime("%Y%m%d%H%M%S") if conv.expires_at else "none"
        to_transcribe: list[int] = []
        outbound = _apply(
            runtime,
            session,
            outcome,
            contributor=contributor,
            conv=conv,
            channel=conv.channel,
            reply_from=None,
            decision=f"conv{conv.id}-exp{stamp}",
            inbound_id=None,
            now=now,
            to_transcribe=to_transcribe,
        )
    enqueue_transcriptions(runtime, to_transcribe)
    return outbound


def _contributor_for(
    runtime: Runtime, session: Session, message: InboundMessage, now: datetime
) -> Contributor:
    assert message.sender_hash is not None
    address = runtime.vault.sender_for_contributor(message)  # encrypted for its own row
    return residents.contributor_for(session, message.channel, message.sender_hash, address, now)


def campaign_infos(session: Session) -> tuple[engine.CampaignInfo, ...]:
    return tuple(
        engine.CampaignInfo(
            slug=c.slug,
            title=c.title,
            question=c.question,
            keywords=tuple(c.keywords or ()),
            status=c.status,
            phone_numbers=tuple(c.phone_numbers or ()),
            neighbourhoods=tuple(c.neighbourhoods or ()),
        )
        for c in session.scalars(select(Campaign).order_by(Campaign.id))
    )


def _context(
    runtime: Runtime, session: Session, contributor: Contributor, now: datetime
) -> engine.Context:
    own = session.execute(
        select(
            Contribution.reference,
            Contribution.status,
            Campaign.title,
            Contribution.decision_reason,
            Contribution.answer_state,
            Contribution.answer_text,
            Contribution.answer_text_en,
        )
        .outerjoin(Campaign, Contribution.campaign_id == Campaign.id)
        .join(Contributor, Contribution.contributor_id == Contributor.id)
        # The same number by SMS and by voice is one resident (gateway.privacy.lookup_hash).
        .where(Contributor.address_hash == contributor.address_hash)
        .order_by(Contribution.received_at.desc())
        .limit(50)
    ).all()
    sender = engine.Sender(
        first_contact=contributor.notice_sent_at is None,
        opted_out=contributor.opted_out,
        language=contributor.language,
        contributions=tuple(
            engine.OwnContribution(
                reference=r,
                status=s,
                campaign_title=t or "",
                reason=reason,
                answer_state=answer_state,
                answer_text=answer_text,
                answer_text_en=answer_text_en,
            )
            for r, s, t, reason, answer_state, answer_text, answer_text_en in own
        ),
    )
    return engine.Context(
        now=now,
        campaigns=campaign_infos(session),
        sender=sender,
        expiry=timedelta(minutes=runtime.settings.conversation_expiry_minutes),
        organisation=runtime.settings.organisation,
    )


def next_reference(session: Session, prefix: str) -> str:
    counter = session.get(ReferenceCounter, prefix, with_for_update=True)
    if counter is None:
        counter = ReferenceCounter(prefix=prefix, value=0)
        session.add(counter)
    counter.value += 1
    session.flush()
    return f"{prefix}-{counter.value:04d}"


def _apply(
    runtime: Runtime,
    session: Session,
    outcome: engine.Outcome,
    *,
    contributor: Contributor,
    conv: Conversation,
    channel: str,
    reply_from: str | None,
    decision: str,
    inbound_id: int | None,
    now: datetime,
    to_transcribe: list[int],
    sender_verified: bool | None = None,
) -> list[int]:
    if outcome.language:
        contributor.language = outcome.language
    # STOP and START are about the person: every channel of their address (gateway.residents).
    if outcome.opt_out:
        contributor.opted_out, contributor.opted_out_at = True, now
        if contributor.address_hash:
            residents.opt_out(session, contributor.address_hash, now)
    if outcome.opt_in:
        contributor.opted_out, contributor.opted_out_at = False, None
        if contributor.address_hash:
            residents.opt_in(session, contributor.address_hash)
    if outcome.notice_sent:
        contributor.notice_sent_at = now

    campaigns = {c.slug: c for c in session.scalars(select(Campaign))}
    created: list[Contribution] = []
    for new in outcome.contributions:
        campaign = campaigns.get(new.campaign) if new.campaign else None
        prefix = campaign.reference_prefix if campaign else UNASSIGNED_PREFIX
        contribution = Contribution(
            reference=next_reference(session, prefix),
            campaign_id=campaign.id if campaign else None,
            contributor_id=contributor.id,
            inbound_message_id=inbound_id,
            channel=channel,
            text=new.text,
            kind=new.kind,
            group_description=new.group,
            neighbourhood=new.neighbourhood,
            language=contributor.language,
            filed_on_expiry=new.expired,
            sender_verified=sender_verified,
            received_at=new.received_at,
        )
        session.add(contribution)
        created.append(contribution)
        media.attach(session, contribution, new.media)
    session.flush()
    for contribution, new in zip(created, outcome.contributions, strict=True):
        grouping.assign(session, contribution)
        if contribution.transcription_status == "pending" and contribution.audio_path:
            to_transcribe.append(contribution.id)
        log.info(
            "contribution %s filed (%s%s)",
            contribution.reference,
            channel,
            f", {len(new.media)} media" if new.media else "",
        )
    for change in outcome.updates:
        updated = _update_contribution(session, contributor, change)
        if updated is not None and updated.transcription_status == "pending" and change.media:
            to_transcribe.append(updated.id)

    language = contributor.language
    sender = reply_from or _default_sender(runtime, channel)
    titles = {c.slug: c.title for c in campaigns.values()}
    rows: list[OutboundMessage] = []
    for index, reply in enumerate(outcome.replies):
        params = dict(reply.params)
        contribution_id = None
        if reply.contribution is not None:
            filed = created[reply.contribution]
            params["reference"] = filed.reference
            contribution_id = filed.id
        rows.append(
            outbound_row(
                vault=runtime.vault,
                decision_key=f"{decision}-r{index}",
                channel=channel,
                contributor=contributor,
                inbound_id=inbound_id,
                contribution_id=contribution_id,
                sender=sender,
                key=reply.key,
                text=translate_for(channel, reply.key, language, **params),
                now=now,
            )
        )
        if channel == "telegram":
            from channels.telegram.commands import keyboard

            rows[-1].buttons = keyboard(reply.key, outcome.state, titles, language)
    _withhold_over_limit(runtime, session, contributor, rows, now)
    session.add_all(rows)

    state = outcome.state.to_dict()
    if outcome.track is not None:
        # The engine cannot know references (assigned here): it names the contribution whose
        # reference the conversation must remember (to record the neighbourhood later).
        state["reference"] = created[outcome.track].reference
    conv.state = state
    conv.step = outcome.state.step
    conv.expires_at = getattr(outcome.state, "expires_at", None)
    session.flush()
    return [row.id for row in rows]


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


def _withhold_over_limit(
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


def _update_contribution(
    session: Session, contributor: Contributor, change: engine.ContributionUpdate
) -> Contribution | None:
    contribution = session.scalar(
        select(Contribution).where(
            Contribution.reference == change.reference,
            Contribution.contributor_id == contributor.id,
        )
    )
    if contribution is None:
        log.info("update for %s ignored: not this resident's contribution", change.reference)
        return None
    if change.neighbourhood is not None:
        contribution.neighbourhood = change.neighbourhood
    if change.media:
        media.attach(session, contribution, change.media)
    if change.append_text:
        contribution.text = f"{contribution.text}\n{change.append_text}".strip()
        grouping.assign(session, contribution)
    return contribution


def _default_sender(runtime: Runtime, channel: str) -> str | None:
    if channel in ("sms", "voice"):
        return runtime.settings.twilio_from_number or None
    return None


def _forget(
    runtime: Runtime, session: Session, contributor: Contributor, message: InboundMessage
) -> None:
    """OUBLIER: erase the person (every channel of their address, gateway.residents.forget);
    their contributions stay, detached. The confirmation of this erasure, decided in the same
    transaction, keeps its own encrypted copy of the address until it is sent, then it is
    wiped like every other."""
    residents.forget_at_request(session, runtime.settings.data_path, message)
