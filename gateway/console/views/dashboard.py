"""A campaign's dashboard: contributions per day, channel, category and neighbourhood, as
server-drawn SVG charts each with its data table, and how long contributions wait."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.orm import Session

from gateway.clock import now_utc
from gateway.console.rendering import Formatter, render, timezone, translator
from gateway.console.work import read
from gateway.models import Campaign
from gateway.moderation import charts, queries

PATH = "/moderation/dashboard"


@dataclass(frozen=True)
class Chart:
    id: str
    caption: str
    svg: str  # drawn by gateway.moderation.charts, which escapes every label
    rows: list[tuple[str, int]]


def _bars(chart_id: str, caption: str, rows: list[tuple[str, int]], empty: str) -> Chart:
    return Chart(chart_id, caption, charts.bar_chart(rows, title=caption, empty_label=empty), rows)


def _charts(fmt: Formatter, board: queries.Dashboard) -> list[Chart]:
    _ = fmt._
    empty = _("console.dashboard.empty")
    caption = _("console.dashboard.per_day")
    made = [
        Chart(
            "chart-days",
            caption,
            charts.day_chart(board.per_day, title=caption, empty_label=empty),
            [(fmt.long_date(day), n) for day, n in board.per_day],
        )
    ]
    for name, group, series in (
        ("channel", "channels", board.per_channel),
        ("category", "categories", board.per_category),
    ):
        rows = [(_.label(group, value or None), n) for value, n in series]
        made.append(_bars(f"chart-{name}", _(f"console.dashboard.per_{name}"), rows, empty))
    rows = [
        (value or _("console.dashboard.no_neighbourhood"), n)
        for value, n in board.per_neighbourhood
    ]
    made.append(_bars("chart-neighbourhood", _("console.dashboard.per_neighbourhood"), rows, empty))
    rows = [(_.label("statuses", status), n) for status, n in board.per_status.items()]
    made.append(_bars("chart-status", _("console.dashboard.per_status"), rows, empty))
    return made


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    slug = request.query.get("campaign", "").strip()[:64] or None
    tz = timezone(request)

    def load(session: Session) -> tuple[list[Campaign], queries.Dashboard]:
        found = queries.campaigns(session)
        chosen = slug if slug in {c.slug for c in found} else None
        return found, queries.dashboard(session, chosen, tz, now_utc())

    campaigns, board = await read(request, load)
    selected = slug if slug in {c.slug for c in campaigns} else None
    _ = translator(request)
    return await render(
        request,
        "dashboard.html",
        {
            "campaigns": campaigns,
            "selected": selected or "",
            "board": board,
            "charts": _charts(Formatter(_, tz), board),
        },
        section="dashboard",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, dashboard_page)
