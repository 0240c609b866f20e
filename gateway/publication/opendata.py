"""Open data: a campaign's public contributions as CSV or JSON (data dictionary:
docs/open-data.md).

CSV for French spreadsheet software: UTF-8 with a byte-order mark (without it Excel reads
UTF-8 as Windows-1252 and « é » becomes « Ã© »), ``;`` between fields (the list separator
of a French locale, where ``,`` is the decimal mark), CRLF line ends, every field quoted when
needed. A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would
be run as a formula by a spreadsheet (« =HYPERLINK(…) » sent by SMS): it gets a leading
apostrophe, which spreadsheets show as text (OWASP's advice on CSV injection). The JSON
file carries the exact text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from gateway.exports import timestamp
from gateway.models import Campaign
from gateway.publication.photos import photo_path
from gateway.publication.records import PublicRecord, provenance, public_records
from gateway.runtime import Runtime
from gateway.settings import Settings

# The columns, in order (docs/open-data.md describes each one).
COLUMNS = (
    "reference",
    "campaign",
    "contributor",
    "channel",
    "received_at",
    "provenance",
    "neighbourhood",
    "kind",
    "category",
    "themes",
    "tags",
    "outcome",
    "rejection_reason",
    "text",
    "answer_state",
    "answer_text",
    "answer_text_en",
    "answered_at",
    "audio_url",
    "photo_urls",
)
LIST_SEPARATOR = " | "
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def records_for(session: Session, runtime: Runtime, campaign: Campaign) -> list[PublicRecord]:
    return public_records(session, campaign, runtime.vault)


def audio_url(settings: Settings, record: PublicRecord) -> str | None:
    """The public recording (gateway.publication.audio serves it), for broadcastable ones."""
    if not record.audio:
        return None
    base = settings.public_url.rstrip("/")
    return f"{base}/campaigns/{record.campaign}/audio/{record.reference}.mp3"


def photo_urls(settings: Settings, record: PublicRecord) -> list[str]:
    """The photos a moderator published (gateway.publication.photos serves them)."""
    base = settings.public_url.rstrip("/")
    return [f"{base}{photo_path(record.campaign, record.reference, n)}" for n in record.photos]


def row(record: PublicRecord, settings: Settings) -> dict[str, Any]:
    """One contribution as open data: the JSON shape; CSV joins the lists."""
    return {
        "reference": record.reference,
        "campaign": record.campaign,
        "contributor": record.contributor,
        "channel": record.channel,
        "received_at": timestamp(record.received_at),
        "provenance": provenance(record, "fr", ZoneInfo(settings.timezone)),
        "neighbourhood": record.neighbourhood,
        "kind": record.kind,
        "category": record.category,
        "themes": list(record.themes),
        "tags": list(record.tags),
        "outcome": record.outcome,
        "rejection_reason": record.reason,
        "text": record.text,
        "answer_state": record.answer_state,
        "answer_text": record.answer_text,
        "answer_text_en": record.answer_text_en,
        "answered_at": timestamp(record.answered_at),
        "audio_url": audio_url(settings, record),
        "photo_urls": photo_urls(settings, record),
    }


def write(
    records: Sequence[PublicRecord],
    fmt: str,
    stream: IO[bytes],
    settings: Settings,
    *,
    campaign: Campaign | None = None,
    progress: Callable[[int], object] | None = None,
) -> None:
    """Write ``records`` as ``fmt`` (csv or json) to a binary stream."""
    step = progress or (lambda _n: None)
    if fmt == "csv":
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="", write_through=True)
        writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for record in records:
            values = row(record, settings)
            writer.writerow([_cell(values[name]) for name in COLUMNS])
            step(1)
        text.flush()
        text.detach()  # the caller owns the stream
        return
    if fmt == "json":
        document: dict[str, Any] = {
            "generated_at": timestamp(datetime.now(UTC)),
            "campaign": _campaign(campaign, records),
            "contributions": [],
        }
        for record in records:
            document["contributions"].append(row(record, settings))
            step(1)
        stream.write(json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8"))
        stream.write(b"\n")
        return
    raise ValueError(f"unknown open-data format {fmt!r}")


def _campaign(campaign: Campaign | None, records: Sequence[PublicRecord]) -> dict[str, Any]:
    if campaign is None:
        return {"slug": records[0].campaign if records else None}
    return {
        "slug": campaign.slug,
        "title": campaign.title,
        "question": campaign.question,
        "status": campaign.status,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = LIST_SEPARATOR.join(str(v) for v in value)
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text
