"""Which campaign a message is about: by slug, by its first word, or by the address it was
sent to (the open campaigns it may belong to, best first)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from gateway.conversation.model import CLOSED, DRAFT, OPEN, CampaignInfo
from gateway.textnorm import token


def as_of(campaigns: Sequence[CampaignInfo], moment: datetime) -> tuple[CampaignInfo, ...]:
    """The campaigns as they stand at ``moment``: an open campaign past its end date is
    closed, and behaves exactly as one an admin closed. ``closes_on`` is kept only where the
    end date has passed (the reply names the day only then)."""

    def at(c: CampaignInfo) -> CampaignInfo:
        if c.closes_at is not None and c.closes_at <= moment and c.status in (OPEN, CLOSED):
            return replace(c, status=CLOSED)
        return replace(c, closes_on="") if c.closes_on else c

    return tuple(at(c) for c in campaigns)


def by_slug(campaigns: Sequence[CampaignInfo], slug: str | None) -> CampaignInfo | None:
    return next((c for c in campaigns if c.slug == slug), None) if slug else None


def title_of(campaigns: Sequence[CampaignInfo], slug: str) -> str:
    campaign = by_slug(campaigns, slug)
    return campaign.title if campaign else slug


def campaign_for_keyword(
    campaigns: Sequence[CampaignInfo], word: str, open_only: bool
) -> CampaignInfo | None:
    """The campaign a first word names; an open one wins over a past or future one."""
    if not word:
        return None
    named = [c for c in campaigns if any(token(k) == word for k in c.keywords)]
    for status in (OPEN,) if open_only else (OPEN, DRAFT, CLOSED):
        for campaign in named:
            if campaign.status == status:
                return campaign
    if not open_only and named:
        return named[0]
    return None


def _address(value: str) -> str:
    """Numbers compare by digits ("+33 1 00…" is "+331…"); other addresses by case."""
    compact = re.sub(r"[\s().\-]", "", value)
    if re.fullmatch(r"\+?\d+", compact):
        return compact
    return value.strip().casefold()


def default_candidates(
    campaigns: Sequence[CampaignInfo], recipient: str | None
) -> list[CampaignInfo]:
    """The open campaigns a message without keyword may belong to, best first.

    The number the resident wrote to says the most; failing that, any open
    campaign.
    """
    open_campaigns = [c for c in campaigns if c.status == OPEN]
    if recipient:
        wanted = _address(recipient)
        by_number = [
            c for c in open_campaigns if any(_address(n) == wanted for n in c.phone_numbers)
        ]
        if by_number:
            return by_number
    return open_campaigns
