"""The public pages, without login: every open or closed campaign, what was said and what the
city answered, and the open-data downloads.

``GET /campaigns``, ``GET /campaigns/{slug}``, ``GET /campaigns/{slug}/contributions.csv``
and ``.json`` (contracts). Server-rendered HTML that works without JavaScript (filters are a
GET form, pages are links), in French unless ``?lang=en``, printable. Everything shown comes
from gateway.publication.records: nothing personal can reach these pages.

A draft campaign is a 404, as an unknown one is: the public does not learn what is being
prepared.
"""

from __future__ import annotations

import asyncio
import functools
import io
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from sqlalchemy import func, select

from gateway import campaigns
from gateway.clock import now_utc
from gateway.i18n import DEFAULT_LANGUAGE, catalogue, translate
from gateway.models import Campaign, Contribution
from gateway.moderation.actions import CHANNELS
from gateway.moderation.answers import ANSWER_STATES
from gateway.publication import opendata
from gateway.publication.records import (
    PublicFilter,
    PublicRecord,
    count_public,
    provenance,
    public_campaign,
    public_campaigns,
    public_neighbourhoods,
    public_records,
)
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME, SETTINGS

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
LANGUAGES = ("fr", "en")
PER_PAGE = 50
CATEGORIES = ("diagnostic", "proposal", "question")
STATES = (*ANSWER_STATES, "unanswered", "rejected")
MAX_FILTER = 200
# No script, no frame, nothing from elsewhere: a page that shows what residents wrote must not
# be able to run anything they wrote, even if escaping ever failed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

T = TypeVar("T")

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class Text:
    """``_`` in the public templates, in the reader's language."""

    def __init__(self, language: str, tz: ZoneInfo) -> None:
        self.language = language
        self.tz = tz

    def __call__(self, key: str, **params: Any) -> str:
        return translate(f"public.{key}", self.language, **params)

    def has(self, key: str) -> bool:
        return f"public.{key}" in catalogue(self.language)

    def date(self, value: datetime) -> str:
        local = value.astimezone(self.tz)
        return self(
            "contribution.answered_on",
            day=self("provenance.first_day") if local.day == 1 else local.day,
            month=self(f"months.m{local.month}"),
            year=local.year,
        )

    def duration(self, seconds: float | None) -> str:
        total = max(0, round(seconds or 0))
        if total < 60:
            return self("seconds", seconds=total)
        return self("minutes_seconds", minutes=total // 60, seconds=total % 60)

    def provenance(self, record: PublicRecord) -> str:
        line = provenance(record, self.language, self.tz)
        return line[:1].upper() + line[1:]

    def answer_state(self, state: str) -> str:
        return translate(f"answer.state.{state}", self.language)


@dataclass(frozen=True)
class CampaignCard:
    campaign: Campaign
    published: int


async def _db(request: web.Request, fn: Callable[[Runtime], T]) -> T:
    runtime = request.app[RUNTIME]
    return await asyncio.get_running_loop().run_in_executor(None, fn, runtime)


def _language(request: web.Request) -> str:
    asked = request.query.get("lang", "")
    return asked if asked in LANGUAGES else DEFAULT_LANGUAGE


def _text(request: web.Request) -> Text:
    return Text(_language(request), ZoneInfo(request.app[SETTINGS].timezone))


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    return response


async def _render(
    request: web.Request, template: str, status: int = 200, **context: Any
) -> web.Response:
    _ = _text(request)
    other = "en" if _.language == "fr" else "fr"
    query = {k: v for k, v in request.query.items() if k != "lang"}
    if other != DEFAULT_LANGUAGE:
        query["lang"] = other
    page = {
        "_": _,
        "lang": _.language,
        "lang_query": ("?lang=en" if _.language == "en" else ""),
        "other_language_url": request.path + ("?" + urlencode(query) if query else ""),
        # A campaign past its end date shows as closed (gateway.campaigns.status_at).
        "status_of": functools.partial(campaigns.status_at, now=now_utc()),
        **context,
    }
    compiled = _environment.get_template(template)
    html = await asyncio.get_running_loop().run_in_executor(None, compiled.render, page)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    return _secure(response)  # type: ignore[return-value]


async def _not_found(request: web.Request) -> web.Response:
    return await _render(request, "not_found.html", status=404)


# -- pages --------------------------------------------------------------------------------------


async def campaigns_index(request: web.Request) -> web.Response:
    def load(runtime: Runtime) -> list[CampaignCard]:
        with runtime.read_sessions() as session:
            found = public_campaigns(session)
            counts = dict(
                session.execute(
                    select(Contribution.campaign_id, func.count())
                    .where(Contribution.status == "published")
                    .group_by(Contribution.campaign_id)
                ).all()
            )
            for campaign in found:
                session.expunge(campaign)
            return [CampaignCard(c, counts.get(c.id, 0)) for c in found]

    cards = await _db(request, load)
    return await _render(request, "campaigns.html", cards=cards)


def _choice(request: web.Request, name: str, allowed: tuple[str, ...] | None) -> str | None:
    value = request.query.get(name, "").strip()[:MAX_FILTER]
    if not value:
        return None
    if allowed is not None and value not in allowed:
        return None  # an unknown value filters nothing rather than erroring at a resident
    return value


def _page(request: web.Request) -> int:
    try:
        return max(1, min(100_000, int(request.query.get("page", "1"))))
    except ValueError:
        return 1


@dataclass(frozen=True)
class CampaignPage:
    campaign: Campaign
    records: list[PublicRecord]
    shown: int
    total: int
    neighbourhoods: list[str]


async def campaign_page(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    filters = PublicFilter(
        category=_choice(request, "category", CATEGORIES),
        neighbourhood=_choice(request, "neighbourhood", None),
        channel=_choice(request, "channel", CHANNELS),
        state=_choice(request, "state", STATES),
    )
    number = _page(request)

    def load(runtime: Runtime) -> CampaignPage | None:
        with runtime.read_sessions() as session:
            campaign = public_campaign(session, slug)
            if campaign is None:
                return None
            total = count_public(session, campaign)
            shown = count_public(session, campaign, filters) if filters != PublicFilter() else total
            pages = max(1, math.ceil(shown / PER_PAGE))
            start = (min(number, pages) - 1) * PER_PAGE
            records = public_records(
                session, campaign, runtime.vault, filters, offset=start, limit=PER_PAGE
            )
            places = public_neighbourhoods(session, campaign)
            session.expunge(campaign)
            return CampaignPage(campaign, records, shown, total, places)

    data = await _db(request, load)
    if data is None:
        return await _not_found(request)
    pages = max(1, math.ceil(data.shown / PER_PAGE))
    number = min(number, pages)
    current = {
        "category": filters.category or "",
        "neighbourhood": filters.neighbourhood or "",
        "channel": filters.channel or "",
        "state": filters.state or "",
    }
    params = {k: v for k, v in current.items() if v}
    if _language(request) != DEFAULT_LANGUAGE:
        params["lang"] = _language(request)

    def url(page: int) -> str:
        query = urlencode({**params, **({"page": page} if page > 1 else {})})
        return f"/campaigns/{slug}" + (f"?{query}" if query else "")

    return await _render(
        request,
        "campaign.html",
        data=data,
        records=data.records,
        current=current,
        filtered=bool(any(current.values())),
        categories=CATEGORIES,
        channels=CHANNELS,
        states=STATES,
        page=number,
        pages=pages,
        prev_url=url(number - 1) if number > 1 else None,
        next_url=url(number + 1) if number < pages else None,
    )


# Building a large campaign's open data takes seconds (every public contribution, its
# pseudonym and provenance line): the builds get their own thread, so that anonymous downloads
# never hold the threads that the pages, the console and /healthz wait on, and concurrent
# requests for the same file share one build (bench/publication.py measured eight concurrent
# downloads of a 20,000-contribution campaign starving /healthz for tens of seconds).
_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="open-data")
_BUILDS = web.AppKey("open_data_builds", dict)


async def contributions_download(request: web.Request) -> web.StreamResponse:
    slug, fmt = request.match_info["slug"], request.match_info["format"]
    settings = request.app[SETTINGS]
    runtime = request.app[RUNTIME]

    def build() -> bytes | None:
        with runtime.read_sessions() as session:
            campaign = public_campaign(session, slug)
            if campaign is None:
                return None
            records = opendata.records_for(session, runtime, campaign)
            buffer = io.BytesIO()
            opendata.write(records, fmt, buffer, settings, campaign=campaign)
            return buffer.getvalue()

    builds: dict[tuple[str, str], asyncio.Future[bytes | None]] = request.app[_BUILDS]
    key = (slug, fmt)
    pending = builds.get(key)
    if pending is None:  # the first asker starts the build; the others wait for the same one
        pending = asyncio.get_running_loop().run_in_executor(_BUILDER, build)
        builds[key] = pending
        pending.add_done_callback(lambda _: builds.pop(key, None))
    body = await asyncio.shield(pending)  # one asker leaving does not cancel it for others
    if body is None:
        return await _not_found(request)
    content_type = "text/csv" if fmt == "csv" else "application/json"
    response = web.Response(
        body=body,
        content_type=content_type,
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{slug}-contributions.{fmt}"',
            # Open data: anyone may fetch it from a script or another site.
            "Access-Control-Allow-Origin": "*",
        },
    )
    return _secure(response)


def add_routes(app: web.Application) -> None:
    app[_BUILDS] = {}
    app.router.add_get("/campaigns", campaigns_index, name="public_campaigns")
    app.router.add_get(
        "/campaigns/{slug}/contributions.{format:csv|json}",
        contributions_download,
        name="public_contributions_download",
    )
    app.router.add_get("/campaigns/{slug}", campaign_page, name="public_campaign")
    app.router.add_static("/static/public", STATIC, name="public_static")
