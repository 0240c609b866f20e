"""Contributions collected by agents: in the street, on paper, at a meeting or a workshop.

One path for the console's form, the API (``POST /api/v1/contributions``) and the spreadsheet
import (gateway.moderation.collected_import): ``check`` reads what the agent gave (strings, as
a form, a JSON body or a spreadsheet row has them) and returns the checked entry or the
errors by field, as catalogue keys (``console.collect.errors.*``); ``file`` files a checked
entry.

What ``file`` does, in one transaction:

- the contribution, with its own reference (« PARC-0042 »), the channel the agent chose
  (``COLLECTED_CHANNELS``), the day and place of collection, the agent's account name
  (``collected_by``: shown to moderators, never public) and a key (``collected_key``) under
  which a retried entry finds the one already filed instead of filing it twice;
- when the resident wants to hear back, the person behind the phone number or email address
  they gave, found or created exactly as if they had written from it (the same pseudonymous
  contributor: someone who also texts is one person; their address encrypted like every
  other, gateway.privacy), and the receipt with the reference, queued on that channel through
  the same notice path as a moderator's decision (gateway.moderation.actions.notify: opt-out,
  the per-person limit and a forgotten person are respected). Outcomes then reach them the
  normal way. Without an address, nothing is sent: the agent hands the reference over.
- a line in the moderation log (``collect``), naming the agent.

A draft campaign refuses entries; a closed one accepts them, since paper forms collected
while it was open may arrive after its end (docs/agents.md).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import persons, plugins, residents, textnorm
from gateway.files import private_dir, write_private
from gateway.models import Campaign, Contribution
from gateway.moderation import aposteriori, grouping
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import (
    COLLECTED_CHANNELS,
    KINDS,
    MAX_TEXT,
    Done,
    log_event,
    notify,
    run,
)
from gateway.phone import can_receive_sms
from gateway.privacy import contributor_address
from gateway.references import next_reference
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

MAX_PLACE = 200
MAX_GROUP = 500
MAX_CONTACT = 320  # the longest email address RFC 5321 allows
# The oldest collection date accepted: a typo (1926) is refused rather than filed.
OLDEST = date(2000, 1, 1)
# Scans and photos of the paper: what a phone's camera or a scanner gives, up to 10 MB.
MAX_SCAN_BYTES = 10 * 1024 * 1024
SCAN_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}
_MAGIC = {
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "application/pdf": b"%PDF-",
}
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
RECEIPT = "receipt.collected"
RECEIPT_PUBLISHED = "receipt.collected_published"


@dataclass(frozen=True)
class Entry:
    """What an agent gives, as text (a form, a JSON body, a spreadsheet row); "" is absent."""

    campaign: str = ""
    text: str = ""
    channel: str = ""
    collected_on: str = ""  # 2026-03-12, 12/03/2026, or an ISO 8601 date and time
    place: str = ""
    neighbourhood: str = ""
    kind: str = "individual"
    group_description: str = ""
    contact: str = ""  # a phone number or an email address, for the receipt and outcome


@dataclass(frozen=True)
class Checked:
    campaign: str
    text: str
    channel: str
    collected_at: datetime
    place: str | None
    neighbourhood: str | None
    kind: str
    group_description: str | None
    contact_channel: str | None  # sms | email
    contact: str | None  # E.164 or lower-case email; never logged


@dataclass
class Invalid(Exception):
    """The fields at fault, each with its catalogue key (``console.collect.errors.<code>``)."""

    errors: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return ", ".join(f"{name}: {code}" for name, code in self.errors.items())


@dataclass(frozen=True)
class Filed:
    contribution_id: int
    reference: str
    created: bool  # False: the key had already filed it (a retry), nothing new
    receipt: str | None  # what the notice path did (queued, opted_out...); None: no address


def error_key(code: str) -> str:
    return f"console.collect.errors.{code}"


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _parse_day(value: str, tz: ZoneInfo, now: datetime) -> datetime | None:
    """The collection date: a day (local noon, so that it is the same day in every time
    zone's reading of it) or an ISO date and time; None when unreadable."""
    value = value.strip()
    if not value:
        return now
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            day = datetime.strptime(value, pattern).date()
        except ValueError:
            continue
        return datetime.combine(day, time(12, 0), tzinfo=tz).astimezone(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def parse_contact(value: str) -> tuple[str, str] | str:
    """(channel, address) for a phone number (E.164; a French number may be written
    nationally) or an email address; else the error's code."""
    value = value.strip()
    if len(value) > MAX_CONTACT:
        return "contact_invalid"
    if "@" in value:
        if not _EMAIL.match(value):
            return "contact_invalid"
        channel, address = "email", value.lower()
    else:
        try:
            parsed = phonenumbers.parse(value, "FR")
        except phonenumbers.NumberParseException:
            return "contact_invalid"
        if not phonenumbers.is_valid_number(parsed):
            return "contact_invalid"
        address = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if not can_receive_sms(address):
            return "contact_no_sms"
        channel = "sms"
    if channel not in plugins.channels():
        return "contact_channel_unavailable"
    return channel, address


def check(session: Session, entry: Entry, *, tz: ZoneInfo, now: datetime) -> Checked:
    """The entry, checked and normalised; raises ``Invalid`` with every field at fault."""
    errors: dict[str, str] = {}
    campaign = None
    slug = entry.campaign.strip()
    if not slug:
        errors["campaign"] = error_key("campaign_required")
    else:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug.lower()))
        if campaign is None:
            errors["campaign"] = error_key("campaign_unknown")
        elif campaign.status == "draft":
            errors["campaign"] = error_key("campaign_draft")

    text = textnorm.clean(entry.text).strip()
    if not text:
        errors["text"] = error_key("text_required")
    elif len(text) > MAX_TEXT:
        errors["text"] = error_key("text_too_long")

    channel = entry.channel.strip().lower()
    if channel not in COLLECTED_CHANNELS:
        errors["channel"] = error_key("channel_unknown")

    collected_at = _parse_day(entry.collected_on, tz, now)
    if collected_at is None:
        errors["collected_on"] = error_key("date_invalid")
    elif collected_at.astimezone(tz).date() > now.astimezone(tz).date():
        errors["collected_on"] = error_key("date_future")
    elif collected_at.astimezone(tz).date() < OLDEST:
        errors["collected_on"] = error_key("date_too_old")

    place = _one_line(entry.place) or None
    if place is not None and len(place) > MAX_PLACE:
        errors["place"] = error_key("place_too_long")

    neighbourhood = _one_line(entry.neighbourhood) or None
    if neighbourhood is not None:
        listed = [str(n) for n in (campaign.neighbourhoods or [])] if campaign else []
        if listed:
            folded = {textnorm.fold(n): n for n in listed}
            found = folded.get(textnorm.fold(neighbourhood))
            if found is None:
                errors["neighbourhood"] = error_key("neighbourhood_unknown")
            neighbourhood = found
        elif len(neighbourhood) > MAX_PLACE:
            errors["neighbourhood"] = error_key("place_too_long")

    kind = entry.kind.strip().lower() or "individual"
    if kind not in KINDS:
        errors["kind"] = error_key("kind_unknown")
    group = _one_line(entry.group_description) or None
    if kind == "collective" and group is None:
        errors["group_description"] = error_key("group_required")
    elif group is not None and len(group) > MAX_GROUP:
        errors["group_description"] = error_key("group_too_long")
    if kind != "collective":
        group = None

    contact_channel = contact = None
    if entry.contact.strip():
        parsed = parse_contact(entry.contact)
        if isinstance(parsed, str):
            errors["contact"] = error_key(parsed)
        else:
            contact_channel, contact = parsed

    if errors:
        raise Invalid(errors)
    assert campaign is not None and collected_at is not None
    return Checked(
        campaign=campaign.slug,
        text=text,
        channel=channel,
        collected_at=collected_at,
        place=place,
        neighbourhood=neighbourhood,
        kind=kind,
        group_description=group,
        contact_channel=contact_channel,
        contact=contact,
    )


def client_key(scope: str, key: str) -> str:
    """The stored form of a client's key (an API client's Idempotency-Key, a form's token, a
    spreadsheet row's fingerprint): a digest, so that its length and content are bounded and
    keys from two sources never meet."""
    return hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()[:64]


def already_filed(session: Session, key: str) -> Contribution | None:
    return session.scalar(select(Contribution).where(Contribution.collected_key == key))


def file(
    runtime: Runtime,
    actor: Actor,
    checked: Checked,
    *,
    key: str | None = None,
    scan: dict[str, object] | None = None,
) -> Filed:
    """File a checked entry as ``actor`` (see the module's doc). ``key``: a ``client_key``;
    the contribution it already filed is returned instead of a new one. ``scan``: a stored
    scan or photo of the paper (``store_scan``)."""
    result: list[Filed] = []

    def work(session: Session, done: Done) -> None:
        if key is not None:
            found = already_filed(session, key)
            if found is not None:
                result.append(Filed(found.id, found.reference, False, None))
                return
        now = datetime.now(UTC)
        campaign = session.scalar(select(Campaign).where(Campaign.slug == checked.campaign))
        assert campaign is not None  # checked
        contributor = None
        if checked.contact_channel and checked.contact:
            address_hash = persons.resolve(
                session, runtime.vault, checked.contact_channel, checked.contact
            )
            contributor = residents.contributor_for(
                session,
                checked.contact_channel,
                address_hash,
                runtime.vault.encrypt(
                    checked.contact, contributor_address(checked.contact_channel, address_hash)
                ),
                now,
            )
            if contributor.address_encrypted is None:
                # A row made without an address (an admin's opt-out of a person not yet seen).
                contributor.address_encrypted = runtime.vault.encrypt(
                    checked.contact, contributor_address(contributor.channel, address_hash)
                )
        contribution = Contribution(
            reference=next_reference(session, campaign.reference_prefix),
            campaign_id=campaign.id,
            contributor_id=contributor.id if contributor else None,
            channel=checked.channel,
            text=checked.text,
            kind=checked.kind,
            group_description=checked.group_description,
            neighbourhood=checked.neighbourhood,
            language=contributor.language if contributor else campaign.language or "fr",
            collected_at=checked.collected_at,
            collected_place=checked.place,
            collected_by=actor.name,
            collected_key=key,
            attachments=[scan] if scan else [],
            received_at=now,
            created_at=now,
        )
        session.add(contribution)
        session.flush()
        grouping.assign(session, contribution)
        # A posteriori campaigns publish an agent's entry at once too, redacted like the rest.
        published = aposteriori.publish_at_once(session, contribution, now)
        log_event(
            session,
            done,
            contribution,
            actor,
            "collect",
            None,
            {"channel": checked.channel, "follow_up": contributor is not None},
        )
        receipt = None
        if contributor is not None:
            receipt = notify(
                runtime,
                session,
                done,
                contribution,
                RECEIPT_PUBLISHED if published else RECEIPT,
                f"collect-{contribution.id}",
            )
        log.info(
            "contribution %s collected (%s) by %s%s",
            contribution.reference,
            checked.channel,
            actor.name,
            f", receipt {receipt}" if receipt else "",
        )
        result.append(Filed(contribution.id, contribution.reference, True, receipt))

    run(runtime, work)
    return result[0]


def new_form_key() -> str:
    """A token for one form: submitting it twice (a double click, a reload) files once."""
    return secrets.token_urlsafe(18)


def scan_type(data: bytes, declared: str) -> str | None:
    """The scan's content type when it is one accepted and its bytes say so; else None."""
    content_type = declared.split(";", 1)[0].strip().lower()
    if content_type == "image/jpg":
        content_type = "image/jpeg"
    magic = _MAGIC.get(content_type)
    if magic is None or not data.startswith(magic):
        # Trust the bytes over a browser's guess (some send application/octet-stream).
        found = [t for t, m in _MAGIC.items() if data.startswith(m)]
        return found[0] if found else None
    return content_type


def store_scan(data_path: Path, data: bytes, declared_type: str, name: str) -> dict[str, object]:
    """Keep a scan or photo of the paper under the data folder's media (served to logged-in
    moderators only, like residents' photos); raises ``Invalid`` for a refused file."""
    if len(data) > MAX_SCAN_BYTES:
        raise Invalid({"scan": error_key("scan_too_big")})
    content_type = scan_type(data, declared_type)
    if content_type is None:
        raise Invalid({"scan": error_key("scan_type")})
    folder = private_dir(data_path / "media" / "collected")
    stored = folder / (secrets.token_hex(12) + SCAN_TYPES[content_type])
    write_private(stored, data)
    safe_name = re.sub(r"[^\w.\- ]", "_", Path(name or "scan").name)[:100]
    return {
        "kind": "scan",
        "path": str(stored.relative_to(data_path)),
        "content_type": content_type,
        "size": len(data),
        "name": safe_name,
    }


def today(tz: ZoneInfo, now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(tz).date().isoformat()
