"""Campaign files (YAML, config/campaigns/) and their rows in the database."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import announcements
from gateway.clock import now_utc
from gateway.models import Campaign
from gateway.textnorm import token as normalise_word

if TYPE_CHECKING:
    from gateway.runtime import Runtime

STATUSES = ("draft", "open", "closed")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PREFIX = re.compile(r"^[A-Z0-9]{2,12}$")


class CampaignFileError(ValueError):
    pass


@dataclass(frozen=True)
class CampaignSpec:
    slug: str
    title: str
    question: str
    keywords: list[str]
    status: str
    phone_numbers: list[str] = field(default_factory=list)
    neighbourhoods: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    reference_prefix: str = ""
    language: str = "fr"
    voice_greeting: str | None = None
    voice_greeting_audio: str | None = None
    voice_sms_receipt: bool = True
    public_rejected_text: bool = True
    decidim_component: int | None = None
    source: str | None = None


def parse(data: Any, source: str) -> CampaignSpec:
    def fail(message: str) -> CampaignFileError:
        return CampaignFileError(f"{source}: {message}")

    if not isinstance(data, dict):
        raise fail("a campaign file is a mapping (slug: ..., title: ...)")
    slug = str(data.get("slug", ""))
    if not _SLUG.match(slug):
        raise fail(f"slug {slug!r} must be lower case letters, digits and dashes")
    title = str(data.get("title") or "").strip()
    if not title:
        raise fail("title is required")
    status = str(data.get("status", "draft"))
    if status not in STATUSES:
        raise fail(f"status {status!r} must be one of {', '.join(STATUSES)}")

    def str_list(name: str) -> list[str]:
        value = data.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise fail(f"{name} must be a list of strings")
        return [str(v).strip() for v in value if str(v).strip()]

    keywords = [k.upper() for k in str_list("keywords")]
    for keyword in keywords:
        if " " in keyword:
            raise fail(f"keyword {keyword!r} must be a single word")
    prefix = str(data.get("reference_prefix") or "").upper()
    if not prefix:
        base = keywords[0] if keywords else slug
        prefix = re.sub(r"[^A-Z0-9]", "", normalise_word(base).upper())[:12] or "AGORA"
    if not _PREFIX.match(prefix):
        raise fail(f"reference_prefix {prefix!r} must be 2 to 12 letters or digits")
    voice = data.get("voice") or {}
    if not isinstance(voice, dict):
        raise fail("voice must be a mapping (greeting:, audio:, sms_receipt:)")
    audio = str(voice.get("audio") or "").strip() or None
    if audio and not audio.startswith(("https://", "http://")):
        raise fail("voice.audio must be an http(s) URL that the voice provider can fetch")
    publication = data.get("publication") or {}
    if not isinstance(publication, dict):
        raise fail("publication must be a mapping (rejected_text: shown | hidden)")
    rejected_text = str(publication.get("rejected_text", "shown"))
    if rejected_text not in ("shown", "hidden"):
        raise fail(f"publication.rejected_text {rejected_text!r} must be shown or hidden")
    decidim = data.get("decidim") or {}
    if not isinstance(decidim, dict):
        raise fail("decidim must be a mapping (component: ID)")
    component = decidim.get("component")
    if component is not None and (
        isinstance(component, bool) or not str(component).isdigit() or int(component) <= 0
    ):
        raise fail(f"decidim.component {component!r} must be a proposals component's number")
    return CampaignSpec(
        public_rejected_text=rejected_text == "shown",
        decidim_component=int(component) if component is not None else None,
        voice_greeting=str(voice.get("greeting") or "").strip() or None,
        voice_greeting_audio=audio,
        voice_sms_receipt=bool(voice.get("sms_receipt", True)),
        slug=slug,
        title=title,
        question=str(data.get("question") or "").strip(),
        keywords=keywords,
        status=status,
        phone_numbers=str_list("phone_numbers"),
        neighbourhoods=str_list("neighbourhoods"),
        themes=str_list("themes"),
        reference_prefix=prefix,
        language=str(data.get("language") or "fr"),
        source=source,
    )


def read_files(paths: list[Path]) -> list[CampaignSpec]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        else:
            files.append(path)
    specs = []
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CampaignFileError(f"{file}: {exc}") from exc
        specs.append(parse(data, str(file)))
    return specs


def upsert(
    session: Session, specs: list[CampaignSpec], runtime: Runtime | None = None
) -> list[tuple[str, str]]:
    """Create or update campaigns by slug; returns (slug, "created" | "updated" | "unchanged").

    With ``runtime``, a campaign that becomes open is announced to the residents who asked
    (gateway.announcements; once per person, however often the file is loaded)."""
    existing = {c.slug: c for c in session.scalars(select(Campaign))}
    _check_keywords(specs, list(existing.values()))
    results = []
    opening: list[Campaign] = []
    for spec in specs:
        values = {
            "title": spec.title,
            "question": spec.question,
            "keywords": spec.keywords,
            "status": spec.status,
            "phone_numbers": spec.phone_numbers,
            "neighbourhoods": spec.neighbourhoods,
            "themes": spec.themes,
            "reference_prefix": spec.reference_prefix,
            "language": spec.language,
            "voice_greeting": spec.voice_greeting,
            "voice_greeting_audio": spec.voice_greeting_audio,
            "voice_sms_receipt": spec.voice_sms_receipt,
            "public_rejected_text": spec.public_rejected_text,
            "decidim_component": spec.decidim_component,
            "source": spec.source,
        }
        campaign = existing.get(spec.slug)
        if campaign is None:
            campaign = Campaign(slug=spec.slug, **values)
            session.add(campaign)
            results.append((spec.slug, "created"))
            if spec.status == "open":
                opening.append(campaign)
            continue
        changed = any(getattr(campaign, k) != v for k, v in values.items() if k != "source")
        if spec.status == "open" and campaign.status != "open":
            opening.append(campaign)
        for key, value in values.items():
            setattr(campaign, key, value)
        results.append((spec.slug, "updated" if changed else "unchanged"))
    if runtime is not None and opening:
        now = now_utc()
        for campaign in opening:
            announcements.campaign_opened(runtime, session, campaign, now)
    return results


def _check_keywords(specs: list[CampaignSpec], existing: list[Campaign]) -> None:
    owners: dict[str, str] = {}
    loading = {s.slug for s in specs}
    pairs = [(s.slug, s.keywords) for s in specs] + [
        (c.slug, list(c.keywords)) for c in existing if c.slug not in loading
    ]
    for slug, keywords in pairs:
        for keyword in keywords:
            key = normalise_word(keyword)
            if key in owners and owners[key] != slug:
                raise CampaignFileError(
                    f"keyword {keyword!r} is used by both {owners[key]!r} and {slug!r}"
                )
            owners[key] = slug
