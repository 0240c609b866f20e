"""What of a contribution may leave the gateway: one public record, for every output.

The public page, the open-data files, the Decidim files and API, the podcast and the report
all read contributions through ``public_records``, so that what is public is decided in one
place:

- published contributions, and rejected ones with their public reason (the seeds ask to keep
  them visible); a rejected one's text is shown or hidden by the campaign's policy
  (``publication: {rejected_text: shown | hidden}`` in its campaign file). Pending and spam
  never leave.
- the text is the public (anonymised) version a moderator approved, never what the resident
  wrote or the transcript; a contribution published before public versions were kept gets
  the same automatic redactions publishing applies.
- the contributor is a pseudonym (``AddressVault.pseudonym``): the same person on every
  channel of one address gets one id within a campaign; a forgotten person has none.
- no address, chat id, phone number, original text, transcript, attachment or group
  self-description; audio only for a published voice contribution whose caller said yes to
  a broadcast (``broadcastable``), and not before a moderator reviewed it; a photo only when a
  moderator published it, checked for faces and plates, and only while the contribution is
  published (gateway.moderation.photos).
- a contribution published at once (a campaign moderated a posteriori) is public like any
  published one, in its automatically redacted version; a moderator's rejection withdraws
  it from every output at once, since they all read through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from gateway import textcap
from gateway.i18n import translate
from gateway.models import Campaign, Contribution, Contributor
from gateway.moderation import redaction
from gateway.moderation.photos import public_photos
from gateway.privacy import AddressVault, contributor_address

PUBLIC_STATUSES = ("published", "rejected")


@dataclass(frozen=True)
class PublicFilter:
    """The public page's filters (None: any). ``state`` is an answer state, ``unanswered``
    (published, no answer yet) or ``rejected`` (not kept by moderation)."""

    category: str | None = None
    neighbourhood: str | None = None
    channel: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class PublicRecord:
    reference: str
    campaign: str
    channel: str
    received_at: datetime
    outcome: str  # published | rejected
    text: str | None  # None: a rejected contribution whose text the campaign hides
    reason: str | None  # a rejection's public reason
    kind: str
    neighbourhood: str | None
    category: str | None
    themes: tuple[str, ...]
    tags: tuple[str, ...]
    contributor: str | None  # pseudonym; None once the person asked to be forgotten
    answer_state: str | None
    answer_text: str | None
    answer_text_en: str | None
    answered_at: datetime | None
    moderated_at: datetime | None
    audio: bool  # a broadcastable recording exists (see ``broadcastable``)
    audio_duration: float | None
    # Internal: used to find the recording and the Decidim id; never written to an output.
    contribution_id: int
    decidim_id: str | None
    awaiting_review: bool = False  # published at once, no moderator has reviewed it yet
    # Collected by an agent (gateway.moderation.collected): the day and place they gave, which
    # the provenance line shows instead of the arrival; never the agent's name.
    collected_at: datetime | None = None
    collected_place: str | None = None
    # The photos a moderator published (their numbers among the contribution's attachments,
    # from 1), for a published contribution only: served at /campaigns/{slug}/photos/.
    photos: tuple[int, ...] = ()


def broadcastable(contribution: Contribution) -> bool:
    """Whether this contribution's recording may be heard publicly (page, podcast, studio):
    published and reviewed by a moderator, a voice message with its recording still kept,
    and the caller said yes."""
    return (
        contribution.status == "published"
        # Published at once (a posteriori): its words are public, its voice waits for a
        # moderator's review (gateway.moderation.aposteriori).
        and not contribution.awaiting_review
        and contribution.channel == "voice"
        and contribution.broadcast_consent is True
        and bool(contribution.audio_path)
    )


def public_text(contribution: Contribution) -> str:
    if contribution.public_text is not None:
        return contribution.public_text
    # Published before public versions were kept: the same redactions publishing applies.
    return textcap.without_marker(
        redaction.apply(contribution.text or "", language=contribution.language or "fr")
    )


def _public(
    campaign: Campaign, filters: PublicFilter, include_rejected: bool = True
) -> list[ColumnElement[bool]]:
    """The conditions that pick a campaign's public contributions, filters applied."""
    statuses = PUBLIC_STATUSES if include_rejected else ("published",)
    where = [Contribution.campaign_id == campaign.id, Contribution.status.in_(statuses)]
    if filters.category:
        where.append(Contribution.category == filters.category)
    if filters.neighbourhood:
        where.append(Contribution.neighbourhood == filters.neighbourhood)
    if filters.channel:
        where.append(Contribution.channel == filters.channel)
    if filters.state == "rejected":
        where.append(Contribution.status == "rejected")
    elif filters.state == "unanswered":
        where += [Contribution.status == "published", Contribution.answer_state.is_(None)]
    elif filters.state:
        where += [Contribution.status == "published", Contribution.answer_state == filters.state]
    return where


def public_records(
    session: Session,
    campaign: Campaign,
    vault: AddressVault,
    filters: PublicFilter | None = None,
    *,
    include_rejected: bool = True,
    offset: int = 0,
    limit: int | None = None,
) -> list[PublicRecord]:
    """The campaign's public contributions, oldest first (``offset``/``limit``: one page of
    them, so that a page of 50 costs 50 rows however large the campaign)."""
    query = (
        select(Contribution, Contributor.address_hash)
        .outerjoin(Contributor, Contribution.contributor_id == Contributor.id)
        .where(*_public(campaign, filters or PublicFilter(), include_rejected))
        .order_by(Contribution.received_at, Contribution.id)
        .offset(offset)
        .limit(limit)
    )
    found = list(session.execute(query).unique())
    bases = pseudonym_bases(session, vault, {h for _, h in found if h})
    return [
        _record(contribution, campaign, vault, bases.get(h, h) if h else None)
        for contribution, h in found
    ]


def pseudonym_bases(session: Session, vault: AddressVault, hashes: set[str]) -> dict[str, str]:
    """What each person's open-data pseudonym is computed from: their look-up hash under key
    id 1 (the root, which stays in the key file), recomputed from an address of theirs when
    one is kept, so that a key rotation, which re-hashes people under the new key, changes
    no published pseudonym; the stored hash itself when no address is kept (a person whose
    address was erased or purged keeps the hash they had; docs/privacy.md says when that is
    not the root's)."""
    bases: dict[str, str] = {}
    wanted = sorted(hashes)
    rows = [
        row
        for start in range(0, len(wanted), 500)  # a whole export: bounded IN lists
        for row in session.execute(
            select(Contributor.address_hash, Contributor.channel, Contributor.address_encrypted)
            .where(
                Contributor.address_hash.in_(wanted[start : start + 500]),
                Contributor.address_encrypted.is_not(None),
            )
            .order_by(Contributor.id)
        )
    ]
    for address_hash, channel, token in rows:
        if address_hash is None or address_hash in bases:
            continue
        address = vault.decrypt_or_none(token, contributor_address(channel, address_hash))
        if address is not None:
            bases[address_hash] = vault.root_lookup_hash(channel, address)
    return bases


def count_public(session: Session, campaign: Campaign, filters: PublicFilter | None = None) -> int:
    """How many public contributions ``public_records`` would return."""
    query = select(func.count(Contribution.id)).where(*_public(campaign, filters or PublicFilter()))
    return int(session.scalar(query) or 0)


def public_neighbourhoods(session: Session, campaign: Campaign) -> list[str]:
    """The neighbourhoods public contributions name, and the campaign's own list."""
    named = session.scalars(
        select(Contribution.neighbourhood)
        .where(*_public(campaign, PublicFilter()), Contribution.neighbourhood.is_not(None))
        .distinct()
    )
    return sorted({n for n in named if n} | set(campaign.neighbourhoods or ()))


def _record(
    c: Contribution, campaign: Campaign, vault: AddressVault, address_hash: str | None
) -> PublicRecord:
    hidden = c.status == "rejected" and not campaign.public_rejected_text
    published = c.status == "published"
    return PublicRecord(
        reference=c.reference,
        campaign=campaign.slug,
        channel=c.channel,
        received_at=c.received_at,
        outcome=c.status,
        text=None if hidden else public_text(c),
        reason=c.decision_reason if c.status == "rejected" else None,
        kind=c.kind,
        neighbourhood=c.neighbourhood,
        category=c.category,
        themes=tuple(c.themes or ()),
        tags=tuple(c.tags or ()),
        contributor=vault.pseudonym(campaign.slug, address_hash) if address_hash else None,
        # An answer given while published stays in the log if the contribution is later
        # rejected; only a published contribution shows one.
        answer_state=c.answer_state if published else None,
        answer_text=c.answer_text if published else None,
        answer_text_en=c.answer_text_en if published else None,
        answered_at=c.answered_at if published else None,
        moderated_at=c.moderated_at,
        audio=broadcastable(c),
        audio_duration=c.audio_duration if broadcastable(c) else None,
        contribution_id=c.id,
        decidim_id=c.decidim_id,
        awaiting_review=c.awaiting_review,
        collected_at=c.collected_at,
        collected_place=c.collected_place,
        photos=tuple(i + 1 for i in public_photos(c)) if published else (),
    )


def provenance(record: PublicRecord, language: str, tz: ZoneInfo) -> str:
    """« recueilli par SMS le 12 mars à 18 h 04, quartier du Parc », in the city's time; for a
    contribution an agent collected, « recueilli par un agent, marché du Parc, 12 mars »."""
    if record.collected_at is not None:
        return _collected(record, record.collected_at, language, tz)
    local = record.received_at.astimezone(tz)
    place = (
        translate("public.provenance.place", language, neighbourhood=record.neighbourhood)
        if record.neighbourhood
        else ""
    )
    return translate(
        "public.provenance.line",
        language,
        channel=translate(f"public.provenance.channel.{record.channel}", language),
        day=translate("public.provenance.first_day", language) if local.day == 1 else local.day,
        month=translate(f"public.months.m{local.month}", language),
        hour=local.hour,
        minute=local.minute,
        place=place,
    )


def _collected(record: PublicRecord, collected_at: datetime, language: str, tz: ZoneInfo) -> str:
    local = collected_at.astimezone(tz)
    if record.collected_place:
        place = translate(
            "public.provenance.collected_place", language, place=record.collected_place
        )
    elif record.neighbourhood:
        place = translate("public.provenance.place", language, neighbourhood=record.neighbourhood)
    else:
        place = ""
    return translate(
        "public.provenance.collected",
        language,
        place=place,
        day=translate("public.provenance.first_day", language) if local.day == 1 else local.day,
        month=translate(f"public.months.m{local.month}", language),
    )


def public_campaigns(session: Session) -> Sequence[Campaign]:
    """Campaigns the public sees: open and closed ones (a draft is not announced yet)."""
    return list(
        session.scalars(
            select(Campaign).where(Campaign.status.in_(("open", "closed"))).order_by(Campaign.id)
        )
    )


def public_campaign(session: Session, slug: str) -> Campaign | None:
    return session.scalar(
        select(Campaign).where(Campaign.slug == slug, Campaign.status.in_(("open", "closed")))
    )
