"""What admins do to campaigns from the console and the API: create one, replace one wholly,
open or close one. Each is one transaction that writes an admin event in the moderation log
(who, what, before/after), like the actions on contributions (gateway.moderation.actions).

The campaign itself is checked by gateway.campaigns.parse, the very rules a campaign file
follows, from a mapping of a campaign file's keys (the API's JSON as is; the console's form
turned into one): a refusal is a ``CampaignFileError`` naming the field and the catalogue
message. Status changes go through gateway.campaigns.set_status, the only place they happen.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import announcements, campaigns
from gateway.clock import now_utc
from gateway.models import Campaign
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError, Done, log_event, run
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

# What a campaign saved from the console or the API says in ``campaigns.source``: loading the
# campaign folder at start-up leaves such a campaign alone (gateway.campaigns.upsert).
EDITED_SOURCES = campaigns.EDITED_SOURCES


def _admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise ActionError("console.errors.admin_only", "admins only", 403)


def _status_event(
    runtime: Runtime, session: Session, done: Done, actor: Actor, campaign: Campaign, before: str
) -> None:
    """Log a status change; a campaign that opens is announced to the residents who asked
    (gateway.announcements: once per person and campaign, however often it is reopened)."""
    after: dict[str, Any] = {"campaign": campaign.slug, "status": campaign.status}
    if campaign.status == "open":
        session.flush()  # a new campaign gets its id
        after["announced"] = announcements.campaign_opened(runtime, session, campaign, now_utc())
    log_event(
        session,
        done,
        None,
        actor,
        "campaign_status",
        {"campaign": campaign.slug, "status": before},
        after,
    )


def save_campaign(
    runtime: Runtime, actor: Actor, data: dict[str, Any], *, slug: str | None, source: str
) -> Done:
    """Create a campaign (``slug`` None) or replace the one named ``slug`` with ``data`` (a
    campaign file's keys). Raises CampaignFileError (refused), ActionError (403, 404)."""
    _admin(actor)
    try:
        return _save(runtime, actor, data, slug=slug, source=source)
    except campaigns.CampaignFileError as refused:
        # The rule and the field only: enough to see what scripts or admins trip over.
        log.info(
            "campaign refused from %s by %s: %s (%s)",
            source,
            actor.name,
            refused.code,
            refused.field,
        )
        raise


def _save(
    runtime: Runtime, actor: Actor, data: dict[str, Any], *, slug: str | None, source: str
) -> Done:
    spec = campaigns.parse(data, source, runtime.settings.timezone)
    timezone = runtime.settings.timezone

    def work(session: Session, done: Done) -> None:
        if slug is None:
            campaign = campaigns.create(session, spec)
            log_event(
                session,
                done,
                None,
                actor,
                "campaign_create",
                None,
                campaigns.file_data(campaign, timezone),
            )
            if campaign.status != "draft":
                _status_event(runtime, session, done, actor, campaign, "draft")
            return
        found = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if found is None:
            raise ActionError("console.errors.not_found", "no such campaign", 404)
        before = campaigns.file_data(found, timezone)
        replaced = campaigns.replace(session, slug, spec)
        assert replaced is not None
        campaign, changed = replaced
        if not changed:
            return
        after = campaigns.file_data(campaign, timezone)
        log_event(session, done, None, actor, "campaign_edit", before, after)
        if before["status"] != campaign.status:
            _status_event(runtime, session, done, actor, campaign, before["status"])

    return run(runtime, work)


def set_campaign_status(runtime: Runtime, actor: Actor, slug: str, status: str) -> Done:
    """Open, close (or put back to draft) a campaign."""
    _admin(actor)
    if status not in campaigns.STATUSES:
        raise ActionError("console.errors.bad_status", f"unknown status {status!r}")

    def work(session: Session, done: Done) -> None:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if campaign is None:
            raise ActionError("console.errors.not_found", "no such campaign", 404)
        before = campaign.status
        if campaigns.set_status(campaign, status):
            _status_event(runtime, session, done, actor, campaign, before)

    return run(runtime, work)


def set_greeting_audio(runtime: Runtime, actor: Actor, slug: str, url: str) -> str | None:
    """The answering machine's greeting becomes the audio at ``url`` (an uploaded greeting,
    gateway.greetings); returns the URL it replaces."""
    _admin(actor)
    replaced: list[str | None] = []

    def work(session: Session, done: Done) -> None:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if campaign is None:
            raise ActionError("console.errors.not_found", "no such campaign", 404)
        replaced.append(campaign.voice_greeting_audio)
        log_event(
            session,
            done,
            None,
            actor,
            "campaign_edit",
            {"campaign": slug, "voice": {"audio": campaign.voice_greeting_audio}},
            {"campaign": slug, "voice": {"audio": url}},
        )
        campaign.voice_greeting_audio = url
        campaign.source = "console"

    run(runtime, work)
    return replaced[0]
