"""Applying what the conversation engine decided: contributions filed or updated, replies
queued in the outbox, opt-out, opt-in and erasure, the conversation's new state; and the
context the engine is given (the resident, their contributions, the campaigns).

Both the processing of a message (gateway.processing) and the expiry of an abandoned
conversation (gateway.expiry) go through here, in the caller's transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import announcements, floods, media, persons, plugins, residents
from gateway import conversation as engine
from gateway.i18n import translate_for
from gateway.models import (
    Campaign,
    Contribution,
    Contributor,
    Conversation,
    InboundMessage,
    OutboundMessage,
)
from gateway.moderation import aposteriori, grouping
from gateway.outbox import outbound_row, withhold_over_limit
from gateway.references import UNASSIGNED_PREFIX, next_reference
from gateway.runtime import Runtime
from gateway.sms_segments import segments

log = logging.getLogger(__name__)

# The engine's receipts that say "recorded"; once published at once, "published" is true.
_PUBLISHED_RECEIPT_FOR = (engine.RECEIPT, engine.RECEIPT_EXPIRED)


def contributor_for(
    runtime: Runtime, session: Session, message: InboundMessage, now: datetime
) -> Contributor:
    assert message.sender_hash is not None
    address = runtime.vault.sender_for_contributor(message)  # encrypted for its own row
    also = persons.other_hashes(runtime.vault, message)
    return residents.contributor_for(
        session, message.channel, message.sender_hash, address, now, also
    )


def campaign_infos(session: Session, timezone: str) -> tuple[engine.CampaignInfo, ...]:
    zone = ZoneInfo(timezone)
    return tuple(
        engine.CampaignInfo(
            slug=c.slug,
            title=c.title,
            question=c.question,
            keywords=tuple(c.keywords or ()),
            status=c.status,
            phone_numbers=tuple(c.phone_numbers or ()),
            neighbourhoods=tuple(c.neighbourhoods or ()),
            closes_at=c.closes_at,
            # The last local day it was open (closing at midnight: the day before).
            closes_on=(c.closes_at.astimezone(zone) - timedelta(microseconds=1)).date().isoformat()
            if c.closes_at
            else "",
        )
        for c in session.scalars(select(Campaign).order_by(Campaign.id))
    )


def own_contributions(
    session: Session, address_hash: str | None, limit: int = 50
) -> tuple[engine.OwnContribution, ...]:
    """A person's latest contributions, as SUIVI tells them (by SMS, chat, or on the phone):
    every channel of their address (the same number by SMS and by voice is one resident,
    gateway.privacy.lookup_hash), newest first."""
    if not address_hash:
        return ()
    rows = session.execute(
        select(
            Contribution.reference,
            Contribution.status,
            Campaign.title,
            Contribution.decision_reason,
            Contribution.answer_state,
            Contribution.answer_text,
            Contribution.answer_text_en,
            Contribution.answer_audio,
            Contribution.answer_audio_en,
        )
        .outerjoin(Campaign, Contribution.campaign_id == Campaign.id)
        .join(Contributor, Contribution.contributor_id == Contributor.id)
        .where(Contributor.address_hash == address_hash)
        .order_by(Contribution.received_at.desc())
        .limit(limit)
    ).all()
    return tuple(
        engine.OwnContribution(
            reference=r,
            status=s,
            campaign_title=t or "",
            reason=reason,
            answer_state=answer_state,
            answer_text=answer_text,
            answer_text_en=answer_text_en,
            answer_audio=audio,
            answer_audio_en=audio_en,
        )
        for r, s, t, reason, answer_state, answer_text, answer_text_en, audio, audio_en in rows
    )


def context(
    runtime: Runtime, session: Session, contributor: Contributor, now: datetime
) -> engine.Context:
    sender = engine.Sender(
        first_contact=contributor.notice_sent_at is None,
        opted_out=contributor.opted_out,
        language=contributor.language,
        contributions=own_contributions(session, contributor.address_hash),
    )
    return engine.Context(
        now=now,
        campaigns=campaign_infos(session, runtime.settings.timezone),
        sender=sender,
        expiry=timedelta(minutes=runtime.settings.conversation_expiry_minutes),
        organisation=runtime.settings.organisation,
    )


def apply(
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
    pressure: floods.Pressure = floods.CALM,
) -> list[int]:
    if outcome.language:
        # The person's choice: every channel of their address (a caller's notices, a call back).
        contributor.language = outcome.language
        if contributor.address_hash:
            residents.set_language(session, contributor.address_hash, outcome.language)
    # STOP and START are about the person: every channel of their address (gateway.residents).
    if outcome.announcements is not None:
        announcements.subscribe(session, contributor, outcome.announcements, now)
    if outcome.opt_out:
        contributor.opted_out, contributor.opted_out_at = True, now
        contributor.announcements, contributor.announcements_at = False, None
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
            flood=pressure.flooding,
        )
        session.add(contribution)
        created.append(contribution)
        media.attach(session, contribution, new.media)
    session.flush()
    published: set[int] = set()  # indexes in ``created`` published at once (a posteriori)
    for index, (contribution, new) in enumerate(zip(created, outcome.contributions, strict=True)):
        grouping.assign(session, contribution)
        if aposteriori.publish_at_once(session, contribution, now):
            published.add(index)
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
    buttons = plugins.hook(channel, "buttons")  # answer buttons, on media that show them
    rows: list[OutboundMessage] = []
    texts: list[tuple[engine.Reply, str, str, int | None]] = []  # reply, key, text, contribution
    for reply in outcome.replies:
        params = dict(reply.params)
        contribution_id = None
        key = reply.key
        if reply.contribution is not None:
            filed = created[reply.contribution]
            if reply.contribution in published and key in _PUBLISHED_RECEIPT_FOR:
                key = engine.RECEIPT_PUBLISHED  # "published", not "recorded"
            params["reference"] = filed.reference
            contribution_id = filed.id
        text = translate_for(channel, key, reply.language or language, **params)
        if reply.key == engine.LANGUAGE_INVITE and texts and buttons is None:
            previous, previous_key, before, previous_id = texts[-1]
            joined = f"{before}\n{text}"
            if channel != "sms" or segments(joined) <= segments(before):
                # No extra message, no extra cost.
                texts[-1] = (previous, previous_key, joined, previous_id)
                continue
        texts.append((reply, key, text, contribution_id))
    for index, (reply, key, text, contribution_id) in enumerate(texts):
        rows.append(
            outbound_row(
                vault=runtime.vault,
                decision_key=f"{decision}-r{index}",
                channel=channel,
                contributor=contributor,
                inbound_id=inbound_id,
                contribution_id=contribution_id,
                sender=sender,
                key=key,
                text=text,
                now=now,
            )
        )
        if buttons is not None:
            rows[-1].buttons = buttons(reply.key, outcome.state, titles, language)
    if pressure.flooding:
        if floods.notice_due(session, contributor, now):
            rows.append(
                outbound_row(
                    vault=runtime.vault,
                    decision_key=f"{decision}-flood",
                    channel=channel,
                    contributor=contributor,
                    inbound_id=inbound_id,
                    contribution_id=None,
                    sender=sender,
                    key=floods.NOTICE,
                    text=translate_for(channel, floods.NOTICE, language),
                    now=now,
                )
            )
        floods.withhold_flooded(rows, contributor, pressure)
    withhold_over_limit(runtime, session, contributor, rows, now)
    floods.pace(rows, pressure, now)
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
        old_text = contribution.text
        contribution.text = f"{contribution.text}\n{change.append_text}".strip()
        aposteriori.refresh_public_text(contribution, old_text)
        grouping.assign(session, contribution)
    return contribution


def _default_sender(runtime: Runtime, channel: str) -> str | None:
    """The address a reply goes from when the resident's message does not say (its plugin's
    ``default_from``: the city's SMS number)."""
    default_from = plugins.hook(channel, "default_from")
    return default_from(runtime.settings) if default_from is not None else None


def forget(
    runtime: Runtime, session: Session, contributor: Contributor, message: InboundMessage
) -> None:
    """OUBLIER: erase the person (every channel of their address, gateway.residents.forget);
    their contributions stay, detached. The confirmation of this erasure, decided in the same
    transaction, keeps its own encrypted copy of the address until it is sent, then it is
    wiped like every other."""
    residents.forget_at_request(session, runtime.settings.data_path, message)
