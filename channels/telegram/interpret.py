"""What a stored Telegram message means before the conversation engine sees it (the plugin's
``interpret`` hook): a command (/start, /suivi, ...), a tapped button, or an edit of an
earlier message.

An edit that arrives before its message was read replaces the text (the correction is what
counts); one that arrives once the campaign menu is open replaces the text the conversation
keeps; a filed contribution is not changed, and the resident is told to send a new message.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.telegram import commands
from gateway import conversation as engine
from gateway.clock import now_utc
from gateway.models import Conversation, InboundMessage
from gateway.plugins import Arrival, Interpretation
from gateway.textnorm import clean


def interpret(arrival: Arrival) -> Interpretation:
    message, state, session = arrival.message, arrival.state, arrival.session
    if message.kind == "edit":
        return Interpretation(reply=apply_edit(session, message, state, arrival.conversation))
    text = latest_edit(session, message) or message.text
    given = (
        commands.from_button(text, state.step, state.options)
        if message.kind == "button"
        else commands.from_text(text)
    )
    if given.reply:
        return Interpretation(reply=given.reply)
    return Interpretation(text=given.text, start=given.start)


def latest_edit(session: Session, message: InboundMessage) -> str | None:
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


def apply_edit(
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
