"""Moderation a posteriori: a campaign's contributions published at once, reviewed after.

A campaign is moderated ``a_priori`` (the default: nothing is public until a moderator
publishes it) or ``a_posteriori`` (campaign file ``moderation: a_posteriori``). In the second
mode a contribution is published as soon as it is filed, in its public version only: the
text with every automatic redaction applied (phone numbers, e-mail addresses, street
addresses, a name after "je m'appelle"), the same version a moderator's hurried "publish"
gives. It keeps the status ``published`` and is marked ``awaiting_review`` until a moderator
decides: the queue lists those as "to review" (gateway.moderation.queries). A moderator then

- confirms it ("publish" again): the mark goes, nothing else changes, no second notice;
- rejects it (with a reason): it leaves the public page, open data and the podcast, stays
  listed with its reason as any rejected contribution, and the resident is told;
- marks it as spam (gone, no notice) or reopens it (back to pending, unpublished).

What is published at once, and what waits for a moderator as in a priori:

- a written contribution as soon as it is filed; a voice message once its transcript exists
  (gateway.transcripts), never before, and its recording is not heard publicly (public page,
  podcast, studio folder) until a moderator has reviewed it: a voice names people more easily
  than a text, and no redaction reaches into audio;
- never an email whose sender could not be verified (``sender_verified`` False: the address
  may be forged), a text identical or near-identical to an earlier one of the campaign (a
  tract, a flood: ``group_id`` names another contribution), an empty text (a photo alone),
  a failed or pending transcription, a contribution filed while its sender was over the
  flood limit (``flood``, gateway.floods), or a contribution with no campaign (its mode is
  not known).

What the redaction cannot catch (a name without an introduction, an insult, a defamatory
sentence) is public until a moderator withdraws it: that is the accepted risk of a
posteriori moderation, which is why it is a campaign's choice and not the default.

The system's publication is logged as a moderation event by the actor ``system`` (action
``auto_publish``), in the same transaction as the filing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway import textcap
from gateway.models import Campaign, Contribution, ModerationEvent
from gateway.moderation import redaction

log = logging.getLogger(__name__)

A_PRIORI, A_POSTERIORI = "a_priori", "a_posteriori"
MODES = (A_PRIORI, A_POSTERIORI)
SYSTEM = "system"  # the actor of an automatic publication in the moderation log
AUTO_PUBLISH = "auto_publish"


def automatic_public_text(text: str) -> str:
    """The public version the system gives a text: every suggested redaction applied, and
    the "text cut" marker of an over-long message left out. A moderator who publishes without
    writing a public version gets the same (gateway.moderation.actions)."""
    return textcap.without_marker(redaction.apply(text or "", language="fr"))


def held_back(contribution: Contribution, campaign: Campaign | None) -> str | None:
    """Why this contribution is not published at once (a word for the log), or None."""
    if campaign is None or campaign.moderation_mode != A_POSTERIORI:
        return "a_priori"
    if contribution.status != "pending":
        return "decided"
    if contribution.sender_verified is False:
        return "unverified_sender"
    if contribution.flood:
        return "flood"
    if contribution.transcription_status not in (None, "done"):
        return "no_transcript"
    if not (contribution.text or "").strip():
        return "empty"
    if contribution.group_id is not None and contribution.group_id != contribution.id:
        return "duplicate"
    return None


def publish_at_once(session: Session, contribution: Contribution, now: datetime) -> bool:
    """Publish a just-filed (or just-transcribed) contribution of an a posteriori campaign;
    returns whether it was. The contribution must be flushed and grouped
    (gateway.moderation.grouping.assign) first: a duplicate is held back."""
    campaign = session.get(Campaign, contribution.campaign_id) if contribution.campaign_id else None
    reason = held_back(contribution, campaign)
    if reason is not None:
        if reason not in ("a_priori", "decided"):
            log.info(
                "contribution %s held for moderation before publication (%s)",
                contribution.reference,
                reason,
            )
        return False
    before: dict[str, Any] = {
        "status": contribution.status,
        "public_text": contribution.public_text,
    }
    contribution.status = "published"
    contribution.public_text = automatic_public_text(contribution.text)
    contribution.awaiting_review = True
    contribution.decision_reason = None
    contribution.moderated_by, contribution.moderated_at = SYSTEM, now
    session.add(
        ModerationEvent(
            contribution_id=contribution.id,
            actor=SYSTEM,
            action=AUTO_PUBLISH,
            before=before,
            after={
                "status": "published",
                "public_text": contribution.public_text,
                "awaiting_review": True,
            },
            at=now,
        )
    )
    session.flush()
    log.info("contribution %s published at once (a posteriori)", contribution.reference)
    return True


def refresh_public_text(contribution: Contribution, old_text: str) -> None:
    """The resident added to a contribution published at once and not yet reviewed: its
    public version follows, unless a moderator has already written one."""
    if not contribution.awaiting_review:
        return
    if contribution.public_text == automatic_public_text(old_text):
        contribution.public_text = automatic_public_text(contribution.text)
