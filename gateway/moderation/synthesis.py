"""A campaign's synthesis, published by an admin (console and API): where to read it and a short
summary, shown on the campaign's public page and announced to the residents who asked for
announcements (gateway.announcements), once each.

Publishing again with a corrected link or summary updates the page and the log, and
announces nothing more: a resident is told once that the synthesis is out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import announcements
from gateway.clock import now_utc
from gateway.models import Campaign
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError, Done, clean_text, log_event, run
from gateway.runtime import Runtime

MAX_URL = 500  # campaigns.synthesis_url
MAX_SUMMARY = 300  # an SMS announcement carries it: about two segments with accents


def check_url(url: str) -> str:
    """An absolute http(s) link, without spaces or control characters (it goes into SMS and
    an ``href``)."""
    url = url.strip()
    parts = urlsplit(url) if len(url) <= MAX_URL else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url)
    ):
        raise ActionError(
            "console.errors.bad_synthesis_url",
            f"the synthesis must be an http(s) link of at most {MAX_URL} characters",
            limit=MAX_URL,
        )
    return url


def publish_synthesis(
    runtime: Runtime, actor: Actor, slug: str, url: str, summary: str = ""
) -> Done:
    """Publish (or correct) a campaign's synthesis; the first publication is announced."""
    if not actor.is_admin:
        raise ActionError("console.errors.admin_only", "admins only", 403)
    url = check_url(url)
    summary = " ".join(clean_text(summary, MAX_SUMMARY).split())

    def work(session: Session, done: Done) -> None:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if campaign is None:
            raise ActionError("console.errors.not_found", "no such campaign", 404)
        if campaign.synthesis_url == url and (campaign.synthesis_summary or "") == summary:
            return
        before = {"campaign": slug, "url": campaign.synthesis_url}
        now = now_utc()
        campaign.synthesis_url, campaign.synthesis_summary = url, summary or None
        if campaign.synthesis_published_at is None:
            campaign.synthesis_published_at = now
        after: dict[str, Any] = {"campaign": slug, "url": url, "summary": summary}
        after["announced"] = announcements.synthesis_published(runtime, session, campaign, now)
        log_event(session, done, None, actor, "campaign_synthesis", before, after)

    return run(runtime, work)
