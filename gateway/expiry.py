"""A conversation left unfinished: after its expiry, what it kept is filed (by the sweeper's
job, under the person's lock) and the resident is told, as if they had finished it."""

from __future__ import annotations

from gateway import conversation as engine
from gateway import enqueue, outcomes
from gateway.clock import now_utc
from gateway.locks import sender_lock
from gateway.models import Contributor, Conversation
from gateway.runtime import Runtime


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
        context = outcomes.context(runtime, session, contributor, now)
        outcome = engine.expire(state, context)
        stamp = conv.expires_at.strftime("%Y%m%d%H%M%S") if conv.expires_at else "none"
        to_transcribe: list[int] = []
        outbound = outcomes.apply(
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
    enqueue.transcriptions(runtime, to_transcribe)
    return outbound
