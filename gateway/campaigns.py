"""Campaign files (YAML, config/campaigns/) and their rows in the database."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import announcements
from gateway.clock import now_utc
from gateway.i18n import languages
from gateway.models import Campaign
from gateway.textnorm import token as normalise_word

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

STATUSES = ("draft", "open", "closed")
# a_priori: a moderator publishes; a_posteriori: published at once (redacted), reviewed after.
MODERATION_MODES = ("a_priori", "a_posteriori")
DEFAULT_TIMEZONE = "Europe/Paris"  # settings.timezone's default: the city's local time
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PREFIX = re.compile(r"^[A-Z0-9]{2,12}$")
# ``source`` of a campaign saved from the console or the API (gateway.moderation.campaigns):
# loading the campaign folder at start-up leaves it alone (``upsert(keep_edited=True)``).
EDITED_SOURCES = ("console", "api")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class CampaignFileError(ValueError):
    """A campaign refused, from a file, the console's form or the API's JSON alike.

    ``code`` names the moderator-facing message (``console.campaign_errors.<code>`` in the
    catalogue, with ``params``) and is the API's error code; ``field`` is the key at fault
    (``voice.audio``), when one is."""

    def __init__(
        self, message: str, code: str = "invalid", field: str | None = None, **params: Any
    ) -> None:
        super().__init__(message)
        self.code, self.field, self.params = code, field, params


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
    moderation_mode: str = "a_priori"  # one of MODERATION_MODES (file key ``moderation``)
    closes_at: datetime | None = None  # aware, UTC
    source: str | None = None


def parse(data: Any, source: str, timezone: str = DEFAULT_TIMEZONE) -> CampaignSpec:
    """A campaign from a mapping of a campaign file's keys: a YAML file, the console's form
    and the API's JSON all come through here, so that the rules are the same. ``timezone``
    is the city's (settings.timezone): an end date without an offset is in local time."""

    def fail(code: str, at: str | None, message: str, **params: Any) -> CampaignFileError:
        return CampaignFileError(f"{source}: {message}", code, at, **params)

    if not isinstance(data, dict):
        raise fail("not_mapping", None, "a campaign file is a mapping (slug: ..., title: ...)")
    slug = str(data.get("slug", ""))
    if not _SLUG.match(slug):
        raise fail(
            "bad_slug", "slug", f"slug {slug!r} must be lower case letters, digits and dashes"
        )
    title = str(data.get("title") or "").strip()
    if not title:
        raise fail("title_required", "title", "title is required")
    status = str(data.get("status", "draft"))
    if status not in STATUSES:
        raise fail(
            "bad_status", "status", f"status {status!r} must be one of {', '.join(STATUSES)}"
        )

    def str_list(name: str) -> list[str]:
        value = data.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise fail("not_list", name, f"{name} must be a list of strings", name=name)
        return [str(v).strip() for v in value if str(v).strip()]

    keywords = [k.upper() for k in str_list("keywords")]
    for keyword in keywords:
        if " " in keyword:
            raise fail(
                "keyword_spaces",
                "keywords",
                f"keyword {keyword!r} must be a single word",
                keyword=keyword,
            )
    phone_numbers = str_list("phone_numbers")
    for number in phone_numbers:
        if not _E164.match(number):
            raise fail(
                "bad_phone",
                "phone_numbers",
                f"phone number {number!r} must be in E.164 form (+33100000001)",
                number=number,
            )
    prefix = str(data.get("reference_prefix") or "").upper()
    if not prefix:
        base = keywords[0] if keywords else slug
        prefix = re.sub(r"[^A-Z0-9]", "", normalise_word(base).upper())[:12] or "AGORA"
    if not _PREFIX.match(prefix):
        raise fail(
            "bad_prefix",
            "reference_prefix",
            f"reference_prefix {prefix!r} must be 2 to 12 letters or digits",
            prefix=prefix,
        )
    language = str(data.get("language") or "fr")
    if language not in languages():
        raise fail(
            "bad_language",
            "language",
            f"language {language!r} has no catalogue; one of {', '.join(languages())}",
            language=language,
        )
    voice = data.get("voice") or {}
    if not isinstance(voice, dict):
        raise fail(
            "not_mapping_voice",
            "voice",
            "voice must be a mapping (greeting:, audio:, sms_receipt:)",
        )
    audio = str(voice.get("audio") or "").strip() or None
    if audio and not audio.startswith(("https://", "http://")):
        raise fail(
            "bad_audio_url",
            "voice.audio",
            "voice.audio must be an http(s) URL that the voice provider can fetch",
        )
    publication = data.get("publication") or {}
    if not isinstance(publication, dict):
        raise fail(
            "not_mapping_publication",
            "publication",
            "publication must be a mapping (rejected_text: shown | hidden)",
        )
    rejected_text = str(publication.get("rejected_text", "shown"))
    if rejected_text not in ("shown", "hidden"):
        raise fail(
            "bad_rejected_text",
            "publication.rejected_text",
            f"publication.rejected_text {rejected_text!r} must be shown or hidden",
        )
    moderation = str(data.get("moderation") or "a_priori")
    if moderation not in MODERATION_MODES:
        raise fail(
            "bad_moderation",
            "moderation",
            f"moderation {moderation!r} must be one of {', '.join(MODERATION_MODES)}",
            moderation=moderation,
        )
    decidim = data.get("decidim") or {}
    if not isinstance(decidim, dict):
        raise fail("not_mapping_decidim", "decidim", "decidim must be a mapping (component: ID)")
    component = decidim.get("component")
    if component is not None and (
        isinstance(component, bool) or not str(component).isdigit() or int(component) <= 0
    ):
        raise fail(
            "bad_component",
            "decidim.component",
            f"decidim.component {component!r} must be a proposals component's number",
        )
    try:
        closes_at = end_instant(data.get("closes_at"), timezone)
    except ValueError as exc:
        raise fail(
            "bad_closes_at",
            "closes_at",
            f"closes_at {data.get('closes_at')!r} must be an ISO date or date and time",
        ) from exc
    return CampaignSpec(
        public_rejected_text=rejected_text == "shown",
        decidim_component=int(component) if component is not None else None,
        moderation_mode=moderation,
        voice_greeting=str(voice.get("greeting") or "").strip() or None,
        voice_greeting_audio=audio,
        voice_sms_receipt=bool(voice.get("sms_receipt", True)),
        slug=slug,
        title=title,
        question=str(data.get("question") or "").strip(),
        keywords=keywords,
        status=status,
        phone_numbers=phone_numbers,
        neighbourhoods=str_list("neighbourhoods"),
        themes=str_list("themes"),
        reference_prefix=prefix,
        language=language,
        closes_at=closes_at,
        source=source,
    )


def end_instant(value: Any, timezone: str = DEFAULT_TIMEZONE) -> datetime | None:
    """``closes_at`` as an aware UTC instant. A date (``2027-03-31``) means the whole of that
    day is still open: the campaign closes at the next local midnight. A date and time
    without an offset is local time (``timezone``); with one, it is taken as written."""
    if value is None or value == "":
        return None
    zone = ZoneInfo(timezone)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value + timedelta(days=1), time())
    elif isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text) + timedelta(days=1), time())
        else:
            moment = datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a date: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def status_at(campaign: Campaign, now: datetime) -> str:
    """The status residents and the public see: ``closed`` once the end date has passed."""
    return (
        "open"
        if is_open(campaign, now)
        else ("closed" if campaign.status == "open" else campaign.status)
    )


def is_open(campaign: Campaign, now: datetime) -> bool:
    """Open to contributions: its status says so and its end date, if any, has not passed."""
    return campaign.status == "open" and (campaign.closes_at is None or now < campaign.closes_at)


def read_files(paths: list[Path], timezone: str = DEFAULT_TIMEZONE) -> list[CampaignSpec]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        else:
            files.append(path)
    specs: list[CampaignSpec] = []
    for file in files:
        # One campaign per file, or several as YAML documents (what ``export`` writes to one
        # file).
        try:
            documents = list(yaml.safe_load_all(file.read_text(encoding="utf-8"))) or [None]
        except (OSError, yaml.YAMLError) as exc:
            raise CampaignFileError(f"{file}: {exc}", "unreadable") from exc
        specs.extend(parse(data, str(file), timezone) for data in documents)
    return specs


def values(spec: CampaignSpec) -> dict[str, Any]:
    """The columns a spec sets, status aside (``set_status`` changes that)."""
    return {
        "title": spec.title,
        "question": spec.question,
        "keywords": spec.keywords,
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
        "closes_at": spec.closes_at,
        "moderation_mode": spec.moderation_mode,
        "source": spec.source,
    }


def set_status(campaign: Campaign, status: str) -> bool:
    """The one place a campaign's status changes: a campaign file, the console and the API
    all come through here (the console's and the API's callers also log it as an admin
    event, gateway.moderation.campaigns). Returns whether it changed. What should happen when
    a campaign opens (announcements) belongs here."""
    if status not in STATUSES:
        raise CampaignFileError(f"unknown status {status!r}", "bad_status", "status")
    if campaign.status == status:
        return False
    log.info("campaign %s: %s -> %s", campaign.slug, campaign.status, status)
    campaign.status = status
    return True


def _apply(campaign: Campaign, spec: CampaignSpec) -> bool:
    """Write a spec onto a row (new or not); whether anything but ``source`` changed."""
    new = values(spec)
    changed = any(getattr(campaign, k) != v for k, v in new.items() if k != "source")
    for key, value in new.items():
        setattr(campaign, key, value)
    return set_status(campaign, spec.status) or changed


def upsert(
    session: Session,
    specs: list[CampaignSpec],
    runtime: Runtime | None = None,
    *,
    keep_edited: bool = False,
) -> list[tuple[str, str]]:
    """Create or update campaigns by slug; returns (slug, "created" | "updated" | "unchanged"
    | "kept"). With ``keep_edited`` (the start-up load of the campaign folder), a campaign
    last saved from the console or the API is "kept" as it is: the file would undo an
    admin's edit at every restart. ``gateway campaigns load`` is an explicit import and
    overwrites. With ``runtime``, a campaign that becomes open is announced to the residents
    who asked (gateway.announcements; once per person, however often the file is loaded)."""
    existing = {c.slug: c for c in session.scalars(select(Campaign))}
    if keep_edited:
        specs = [
            s
            for s in specs
            if s.slug not in existing or existing[s.slug].source not in EDITED_SOURCES
        ]
    _check_keywords(specs, list(existing.values()))
    results = [
        (slug, "kept") for slug, c in existing.items() if keep_edited and c.source in EDITED_SOURCES
    ]
    opening: list[Campaign] = []
    for spec in specs:
        campaign = existing.get(spec.slug)
        if campaign is None:
            campaign = Campaign(slug=spec.slug, status="draft")
            _apply(campaign, spec)
            session.add(campaign)
            results.append((spec.slug, "created"))
            if spec.status == "open":
                opening.append(campaign)
            continue
        was_open = campaign.status == "open"
        results.append((spec.slug, "updated" if _apply(campaign, spec) else "unchanged"))
        if campaign.status == "open" and not was_open:
            opening.append(campaign)
    if runtime is not None and opening:
        session.flush()  # the new ones get their id
        now = now_utc()
        for campaign in opening:
            announcements.campaign_opened(runtime, session, campaign, now)
    return results


def create(session: Session, spec: CampaignSpec) -> Campaign:
    """A new campaign (console, API): refused when its slug exists (``exists``)."""
    if session.scalar(select(Campaign.id).where(Campaign.slug == spec.slug)) is not None:
        raise CampaignFileError(f"campaign {spec.slug!r} exists", "exists", "slug", slug=spec.slug)
    _check_keywords([spec], list(session.scalars(select(Campaign))))
    campaign = Campaign(slug=spec.slug, status="draft")
    _apply(campaign, spec)
    session.add(campaign)
    session.flush()
    return campaign


def replace(session: Session, slug: str, spec: CampaignSpec) -> tuple[Campaign, bool] | None:
    """Replace an existing campaign wholly (console, API); None when there is none. The slug
    is the campaign's name in URLs, references' history and exports: it does not change."""
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        return None
    if spec.slug != slug:
        raise CampaignFileError(
            f"the slug cannot change ({slug!r})", "slug_fixed", "slug", slug=slug
        )
    _check_keywords([spec], list(session.scalars(select(Campaign))))
    return campaign, _apply(campaign, spec)


def _check_keywords(specs: list[CampaignSpec], existing: list[Campaign]) -> None:
    """Keywords are unique across campaigns once normalised (accents, case): ``PARC`` and
    ``parc`` or ``ÉTÉ`` and ``ETE`` name one campaign only."""
    owners: dict[str, str] = {}
    loading = {s.slug for s in specs}
    # The campaigns already there first: a refusal names the one that has the keyword.
    pairs = [(c.slug, list(c.keywords)) for c in existing if c.slug not in loading] + [
        (s.slug, s.keywords) for s in specs
    ]
    for slug, keywords in pairs:
        for keyword in keywords:
            key = normalise_word(keyword)
            if key in owners and owners[key] != slug:
                raise CampaignFileError(
                    f"keyword {keyword!r} is used by both {owners[key]!r} and {slug!r}",
                    "keyword_taken",
                    "keywords",
                    keyword=keyword,
                    other=owners[key],
                )
            owners[key] = slug


# -- export: campaign files that ``load`` reads back unchanged --------------------------------


def file_data(campaign: Campaign, timezone: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """A campaign as a campaign file's mapping (``parse`` reads it back to the same row)."""
    data: dict[str, Any] = {
        "slug": campaign.slug,
        "title": campaign.title,
        "question": campaign.question or "",
        "keywords": list(campaign.keywords or []),
        "status": campaign.status,
        "phone_numbers": list(campaign.phone_numbers or []),
        "neighbourhoods": list(campaign.neighbourhoods or []),
        "themes": list(campaign.themes or []),
        "reference_prefix": campaign.reference_prefix,
        "language": campaign.language or "fr",
        "voice": {
            "greeting": campaign.voice_greeting,
            "audio": campaign.voice_greeting_audio,
            "sms_receipt": campaign.voice_sms_receipt,
        },
        "publication": {"rejected_text": "shown" if campaign.public_rejected_text else "hidden"},
        "moderation": campaign.moderation_mode,
    }
    if campaign.decidim_component is not None:
        data["decidim"] = {"component": campaign.decidim_component}
    if campaign.closes_at is not None:
        data["closes_at"] = campaign.closes_at.astimezone(ZoneInfo(timezone)).isoformat()
    return data


def dump(campaign: Campaign, timezone: str = DEFAULT_TIMEZONE) -> str:
    return yaml.safe_dump(
        file_data(campaign, timezone), allow_unicode=True, sort_keys=False, width=100
    )


def dump_all(campaigns: list[Campaign], timezone: str = DEFAULT_TIMEZONE) -> str:
    """Several campaigns as one YAML stream, one document each (``read_files`` reads it)."""
    return "---\n".join(dump(c, timezone) for c in campaigns)


def all_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.slug)))


def export(session: Session, output: Path, timezone: str = DEFAULT_TIMEZONE) -> list[Path]:
    """Every campaign to a campaign file: ``output`` is a folder (one ``<slug>.yaml`` each)
    or, when it ends in .yaml/.yml, one file holding one YAML document per campaign."""
    campaigns = all_campaigns(session)
    if output.suffix in (".yaml", ".yml"):
        output.write_text(dump_all(campaigns, timezone), encoding="utf-8")
        return [output]
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for campaign in campaigns:
        path = output / f"{campaign.slug}.yaml"
        path.write_text(dump(campaign, timezone), encoding="utf-8")
        written.append(path)
    return written
