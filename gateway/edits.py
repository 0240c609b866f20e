"""Edited messages, on channels that let residents edit what they sent (chat apps): the
stored edit (``InboundMessage.kind == "edit"``, naming its message by ``provider_ref``)
against the message it corrects.

An edit that arrives before its message was read replaces the text (the correction is what
counts); one that arrives once the campaign menu is open replaces the text the conversation
keeps; a filed contribution is not changed. A plugin's ``interpret`` hook calls these in the
message's transaction and says what the resident is told.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import conversation as engine
from gateway.clock import now_utc
from gateway.models import Conversation, InboundMessage
from gateway.textnorm import clean


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
) -> bool:
    """An edit that arrives once its message was read: it replaces the text the conversation
    still keeps (the campaign menu is open), and True is returned; a filed contribution is not
    changed (False: the resident is to send a new message)."""
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
        return True
    return False
