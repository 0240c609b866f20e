"""Turning contributions and log entries into what a page shows.

Pure functions of the data and a translator: no database, no request, so templates stay
simple and these are easy to test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.console.rendering import Translator
from gateway.models import Contribution
from gateway.moderation.redaction import Redaction

EXCERPT = 180
LOW_CONFIDENCE = 0.6
CHANGE_TEXT = 300
# Fields of the log's before/after whose values are names in the catalogue.
LABELLED_FIELDS = {
    "status": "statuses",
    "category": "categories",
    "kind": "kinds",
    "notice": "notice_results",
}


@dataclass(frozen=True)
class Excerpt:
    text: str
    state: str  # text | transcript | pending | failed | empty


def excerpt(c: Contribution, limit: int = EXCERPT) -> Excerpt:
    """What a queue row shows: the text, else the transcript, else why there is none."""
    body = (c.text or "").strip() or (c.transcript or "").strip()
    if body:
        short = " ".join(body.split())
        if len(short) > limit:
            short = short[: limit - 1].rstrip() + "…"
        return Excerpt(short, "text" if (c.text or "").strip() else "transcript")
    if c.transcription_status == "pending":
        return Excerpt("", "pending")
    if c.transcription_status == "failed":
        return Excerpt("", "failed")
    return Excerpt("", "empty")


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    confidence: float

    @property
    def low(self) -> bool:
        return self.confidence < LOW_CONFIDENCE


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def words(detail: Mapping[str, Any] | None) -> list[Word]:
    """The recogniser's words with their timings (transcript_detail["words"]), if any."""
    raw = (detail or {}).get("words")
    if not isinstance(raw, list):
        return []
    found = []
    for item in raw:
        if not isinstance(item, Mapping) or not str(item.get("word", "")).strip():
            continue
        found.append(
            Word(
                word=str(item["word"]),
                start=_number(item.get("start"), 0.0),
                end=_number(item.get("end"), 0.0),
                confidence=_number(item.get("confidence"), 1.0),
            )
        )
    return found


@dataclass(frozen=True)
class Segment:
    text: str
    kind: str | None  # a redaction kind, or None for text kept as it is


def segments(text: str, redactions: Sequence[Redaction]) -> list[Segment]:
    """``text`` cut around the suggested redactions, to highlight them."""
    parts: list[Segment] = []
    position = 0
    for r in sorted(redactions, key=lambda r: r.start):
        if r.start < position or text[r.start : r.end] != r.text:
            continue
        if r.start > position:
            parts.append(Segment(text[position : r.start], None))
        parts.append(Segment(r.text, r.kind))
        position = r.end
    if position < len(text):
        parts.append(Segment(text[position:], None))
    return parts


@dataclass(frozen=True)
class Change:
    field: str
    before: str
    after: str


def _value(_: Translator, name: str, value: Any) -> str:
    if value is None or value == "" or value == []:
        return _("console.none")
    if name in LABELLED_FIELDS and isinstance(value, str):
        return _.label(LABELLED_FIELDS[name], value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return _("console.yes") if value else _("console.no")
    text = " ".join(str(value).split())
    return text if len(text) <= CHANGE_TEXT else text[: CHANGE_TEXT - 1] + "…"


def _blank(value: Any) -> Any:
    """A missing field and an empty one ("", [], None) say the same: nothing."""
    return None if value is None or value == "" or value == [] else value


def changes(
    _: Translator, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[Change]:
    """A log entry's before/after, one line per field that changed, readable (escaped by the
    template). A field the action left as it was (a reject keeps "no public version": "— → —")
    is not a change and gets no line."""
    before, after = before or {}, after or {}
    names = list(dict.fromkeys([*before, *after]))
    return [
        Change(
            field=_.label("fields", name),
            before=_value(_, name, before.get(name)) if name in before else "",
            after=_value(_, name, after.get(name)) if name in after else "",
        )
        for name in names
        if _blank(before.get(name)) != _blank(after.get(name))
    ]


def message_text(_: Translator, text: str | None, *, incoming: bool, channel: str) -> str:
    """What a conversation bubble says: the message, or what an empty one was (a call to the
    answering machine has no text: its recording is the contribution)."""
    if (text or "").strip():
        return text or ""
    if incoming and channel == "voice":
        return _("console.conversation.voice_message")
    return _("console.empty_text")
