"""Which campaign an email is for, and when not to answer one.

Routing, first match wins (then the conversation engine does as for SMS):
1. a plus address: ``participez+parc@…`` names the campaign by slug or keyword;
2. a campaign keyword as the subject's first word ("PARC des bancs");
3. otherwise the text alone: a keyword at its start, or the campaign menu (the resident
   answers with the number, as by SMS; the quoted message below the answer is cut by
   channels.email.quotes).
A message with an empty body counts its subject as its text ("BUDGET une ludothèque").

Unverified senders (channels.email.authentication): ``sender_verified`` reads the verdict
stored at ingest. The conversation engine files such a message's words for moderators and
neither answers it nor takes it as a command (``Incoming.verified``).

Loops: auto-replies, bounces, lists and no-reply senders are never stored
(channels.email.automatic says which). What headers do not reveal, a robot answering every
message, shows as the same text sent again in reply to the gateway's own reply: that one is not
answered (the per-resident reply limit stops anything subtler).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.email.inbound import split_address
from gateway.conversation import CampaignInfo
from gateway.models import InboundMessage, OutboundMessage
from gateway.privacy import inbound_raw
from gateway.textnorm import clean, fold, split_first_word, token


def meta(vault: Any, message: InboundMessage) -> dict[str, Any]:
    """What ingest kept of a stored email (subject, ids, verdict), from its encrypted raw
    payload; {} once erased or when it does not decrypt for this row (privacy.Unreadable)."""
    if message.raw_encrypted is None:
        return {}
    binding = inbound_raw(message.channel, message.provider_message_id)
    try:
        data = json.loads(vault.decrypt_bytes(message.raw_encrypted, binding))
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def sender_verified(data: dict[str, Any]) -> bool:
    """Whether ingest found the sender to be who the From says. A message stored without a
    verdict (before verification existed) is not verified: nothing proves its sender."""
    verdict = data.get("authentication")
    return isinstance(verdict, dict) and verdict.get("verified") is True


def _keyword_of(campaigns: Sequence[CampaignInfo], name: str) -> str | None:
    wanted = fold(name).strip()
    if not wanted:
        return None
    for campaign in campaigns:
        if fold(campaign.slug) == wanted or any(fold(k) == wanted for k in campaign.keywords):
            return campaign.keywords[0] if campaign.keywords else None
    return None


def _is_keyword(campaigns: Sequence[CampaignInfo], word: str) -> bool:
    return bool(word) and any(token(k) == word for c in campaigns for k in c.keywords)


def text_for(
    body: str, subject: str, recipient: str | None, campaigns: Sequence[CampaignInfo]
) -> str:
    """The text the engine reads: the body, prefixed by the campaign's keyword when the
    address or the subject names one (and the body does not start with a keyword already)."""
    text = body if clean(body) else subject
    first, _ = split_first_word(clean(text))
    if _is_keyword(campaigns, first):
        return text
    keyword = None
    if recipient:
        _, tag, _ = split_address(recipient)
        keyword = _keyword_of(campaigns, tag) if tag else None
    if keyword is None and text is not subject:
        subject_word, _ = split_first_word(clean(subject))
        if _is_keyword(campaigns, subject_word):
            keyword = next(k for c in campaigns for k in c.keywords if token(k) == subject_word)
    return f"{keyword} {text}" if keyword else text


def answering_a_loop(session: Session, message: InboundMessage, data: dict[str, Any]) -> bool:
    """The same text as this sender's previous message, in reply to one of our replies."""
    parent = str(data.get("in_reply_to") or "")
    if not parent or message.sender_hash is None:
        return False
    ours = session.scalar(
        select(OutboundMessage.id).where(
            OutboundMessage.channel == "email", OutboundMessage.provider_message_id == parent
        )
    )
    if ours is None:
        return False
    previous = session.scalar(
        select(InboundMessage.text)
        .where(
            InboundMessage.channel == "email",
            InboundMessage.sender_hash == message.sender_hash,
            InboundMessage.id < message.id,
        )
        .order_by(InboundMessage.id.desc())
        .limit(1)
    )
    return previous is not None and clean(previous) == clean(message.text)
