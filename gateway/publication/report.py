"""A campaign's report: one self-contained HTML page the participation team prints or publishes.

What it shows (docs/publishing-report.md):

- the campaign's title and question, the period covered (first to last day a contribution
  was received) and totals: received, published, rejected, awaiting moderation, spam,
  answered;
- charts of the contributions received per channel, day, neighbourhood and category (every
  status: these are counts only), and of the published ones by the city's answer state; each
  chart is drawn by ``gateway.moderation.charts`` (the console dashboard's charts: an
  ``<svg role="img">`` with a title and a description listing every value) and followed by
  its data table, so the numbers are readable without the picture and on paper;
- the rejection reasons with their counts, a selection of published contributions and every
  answer the city gave, with the contributions it answers.

Every text comes from ``gateway.publication.records`` (public, anonymised versions only);
counts come from ``gateway.moderation.queries.dashboard``, the dashboard's own counting. A
neighbourhood that no public contribution carries and the campaign does not list (a
moderator's free-text correction on a pending one, say) is counted as "elsewhere" rather than
shown: a label is text too.

Self-contained: inline CSS (print styles included), inline SVG, no script, no web font, no
remote resource, and a Content-Security-Policy that forbids loading any, so the page looks the
same offline, on the city's site and on paper.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup
from sqlalchemy.orm import Session

from gateway.i18n import DEFAULT_LANGUAGE, catalogue, translate
from gateway.models import Campaign
from gateway.moderation import charts, queries
from gateway.moderation.answers import ANSWER_STATES
from gateway.privacy import AddressVault
from gateway.publication.records import PublicRecord, provenance, public_records

# Published contributions quoted in full: enough to give the tone, short enough to print.
SELECTION = 12
MAX_SELECTION = 200


@dataclass(frozen=True)
class Chart:
    key: str  # channel, day, neighbourhood, category, answer_state
    title: str
    column: str  # the data table's first column header
    svg: Markup  # drawn by gateway.moderation.charts, which escapes every label
    rows: list[tuple[str, int]]


@dataclass(frozen=True)
class Excerpt:
    """A published contribution as the report quotes it."""

    reference: str
    text: str
    provenance: str
    category: str
    answer: str | None  # the answer state's label


@dataclass(frozen=True)
class Answer:
    """One answer of the city (a group answer once), and the contributions it answers."""

    state: str
    state_label: str
    text: str
    # The French text in a report in another language: the answer has no translation (the
    # page marks its language and says so).
    untranslated: bool
    answered_on: str
    contributions: list[Excerpt]


@dataclass
class Report:
    language: str
    campaign_language: str
    title: str
    question: str
    status: str
    period: str
    generated: str
    totals: dict[str, int]
    charts: list[Chart]
    rejections: list[tuple[str, int]]
    selection_size: int
    selection: list[Excerpt] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)


class _Words:
    """The report's strings in one language (keys under ``public.report.``)."""

    def __init__(self, language: str) -> None:
        self.language = language

    def __call__(self, key: str, **params: object) -> str:
        return translate(f"public.report.{key}", self.language, **params)

    def label(self, group: str, value: str | None) -> str:
        """A channel's, category's or state's name; an unknown value shown as it is."""
        key = f"public.report.{group}.{value or 'none'}"
        if key in catalogue(DEFAULT_LANGUAGE):
            return translate(key, self.language)
        return value or translate(f"public.report.{group}.none", self.language)

    def day(self, value: date) -> str:
        return self(
            "date_long",
            day=self("first_day") if value.day == 1 else value.day,
            month=translate(f"public.months.m{value.month}", self.language),
            year=value.year,
        )


def build(
    session: Session,
    campaign: Campaign,
    vault: AddressVault,
    tz: ZoneInfo,
    *,
    language: str = DEFAULT_LANGUAGE,
    selection: int = SELECTION,
    organisation: str = "",
    now: datetime | None = None,
) -> Report:
    """Gather a campaign's report: counts from the database, texts from the public records."""
    if not 0 <= selection <= MAX_SELECTION:
        raise ValueError(f"the selection is 0 to {MAX_SELECTION} contributions, not {selection}")
    now = now or datetime.now(UTC)
    words = _Words(language)
    board = queries.dashboard(session, campaign.slug, tz, now, days=None)
    records = public_records(session, campaign, vault)
    published = [r for r in records if r.outcome == "published"]
    rejected = [r for r in records if r.outcome == "rejected"]
    statuses = board.per_status
    totals = {
        "received": sum(statuses.values()),
        "published": statuses.get("published", 0),
        "rejected": statuses.get("rejected", 0),
        "pending": statuses.get("pending", 0),
        "spam": statuses.get("spam", 0),
        "answered": sum(1 for r in published if r.answer_state),
    }
    return Report(
        language=language,
        campaign_language=campaign.language or DEFAULT_LANGUAGE,
        title=campaign.title,
        question=campaign.question,
        status=words(f"status.{campaign.status}"),
        period=_period(words, [day for day, _ in board.per_day]),
        generated=words(
            "generated", date=words.day(now.astimezone(tz).date()), organisation=organisation
        ),
        totals=totals,
        charts=_charts(words, board, campaign, records, published),
        rejections=_rejections(words, rejected),
        selection_size=selection,
        selection=[_excerpt(words, r, tz) for r in choose(published, selection)],
        answers=_answers(words, published, tz),
    )


def choose(published: Sequence[PublicRecord], size: int) -> list[PublicRecord]:
    """The quoted contributions: the most recent of each neighbourhood (those without one
    count as one more), then the most recent others, up to ``size``; newest first."""
    newest = sorted(
        (r for r in published if r.text and r.text.strip()),
        key=lambda r: (r.received_at, r.contribution_id),
        reverse=True,
    )
    seen: set[str | None] = set()
    first: list[PublicRecord] = []
    for record in newest:
        if record.neighbourhood not in seen:
            seen.add(record.neighbourhood)
            first.append(record)
    rest = [r for r in newest if r not in first]
    chosen = (first + rest)[:size]
    return sorted(chosen, key=lambda r: (r.received_at, r.contribution_id), reverse=True)


def _period(words: _Words, days: Sequence[date]) -> str:
    if not days:
        return words("period_none")
    if days[0] == days[-1]:
        return words("period_one_day", day=words.day(days[0]))
    return words("period", first=words.day(days[0]), last=words.day(days[-1]))


def _chart(words: _Words, key: str, svg: str, rows: list[tuple[str, int]]) -> Chart:
    return Chart(
        key=key,
        title=words(f"charts.per_{key}"),
        column=words(f"charts.column.{key}"),
        svg=Markup(svg),  # noqa: S704 - charts escapes every label and value it draws
        rows=rows,
    )


def _bars(words: _Words, key: str, rows: list[tuple[str, int]]) -> Chart:
    title = words(f"charts.per_{key}")
    svg = charts.bar_chart(rows, title=title, empty_label=words("charts.empty"))
    return _chart(words, key, svg, rows)


def _charts(
    words: _Words,
    board: queries.Dashboard,
    campaign: Campaign,
    records: Sequence[PublicRecord],
    published: Sequence[PublicRecord],
) -> list[Chart]:
    day_title = words("charts.per_day")
    made = [
        _chart(
            words,
            "day",
            charts.day_chart(board.per_day, title=day_title, empty_label=words("charts.empty")),
            [(words.day(day), n) for day, n in board.per_day],
        ),
        _bars(words, "channel", [(words.label("channels", v), n) for v, n in board.per_channel]),
        _bars(words, "neighbourhood", _neighbourhoods(words, board, campaign, records)),
        _bars(
            words, "category", [(words.label("categories", v), n) for v, n in board.per_category]
        ),
    ]
    states = Counter(r.answer_state for r in published)
    made.append(
        _bars(
            words,
            "answer_state",
            [(words.label("answer_states", s), states[s]) for s in (None, *ANSWER_STATES)],
        )
    )
    return made


def _neighbourhoods(
    words: _Words,
    board: queries.Dashboard,
    campaign: Campaign,
    records: Sequence[PublicRecord],
) -> list[tuple[str, int]]:
    shown = {str(n) for n in campaign.neighbourhoods or ()}
    shown |= {r.neighbourhood for r in records if r.neighbourhood}
    counts: Counter[str] = Counter()
    for value, n in board.per_neighbourhood:
        if not value:
            counts[words("neighbourhood_none")] += n
        elif value in shown:
            counts[value] += n
        else:
            counts[words("neighbourhood_other")] += n
    return counts.most_common()


def _rejections(words: _Words, rejected: Sequence[PublicRecord]) -> list[tuple[str, int]]:
    reasons = Counter((r.reason or "").strip() or words("rejections.no_reason") for r in rejected)
    return reasons.most_common()


def _excerpt(words: _Words, record: PublicRecord, tz: ZoneInfo) -> Excerpt:
    return Excerpt(
        reference=record.reference,
        text=record.text or "",
        provenance=provenance(record, words.language, tz),
        category=words.label("categories", record.category),
        answer=words.label("answer_states", record.answer_state) if record.answer_state else None,
    )


def _answers(words: _Words, published: Sequence[PublicRecord], tz: ZoneInfo) -> list[Answer]:
    """Every answer, newest first; one answer given to a group is shown once."""
    grouped: dict[tuple[str, str, str | None], list[PublicRecord]] = {}
    for record in published:
        if record.answer_state:  # every answered one, as the "answered" total counts them
            key = (record.answer_state, record.answer_text or "", record.answer_text_en)
            grouped.setdefault(key, []).append(record)
    answers = []
    for (state, text, text_en), answered in grouped.items():
        latest = max(r.answered_at or r.received_at for r in answered)
        english = words.language == "en" and bool(text_en)
        answers.append(
            (
                latest,
                Answer(
                    state=state,
                    state_label=words.label("answer_states", state),
                    text=text_en if english and text_en else text,
                    untranslated=words.language != DEFAULT_LANGUAGE and not english,
                    answered_on=words(
                        "answers.answered_on", date=words.day(latest.astimezone(tz).date())
                    ),
                    contributions=[_excerpt(words, r, tz) for r in answered],
                ),
            )
        )
    answers.sort(key=lambda pair: pair[0], reverse=True)
    return [answer for _, answer in answers]


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.publication", "templates"),
        autoescape=True,  # every public text is the resident's: always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(report: Report) -> str:
    """The report as one HTML document."""
    words = _Words(report.language)
    return _environment().get_template("report.html").render(report=report, _=words)
