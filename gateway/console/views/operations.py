"""The operations page (admins only, checked by the console middleware): the figures of
/metrics and /readyz at a glance, each with a sparkline of the last hours (gateway.metrics'
history, sampled once a minute). Drawn on the server as SVG: no script, nothing inline for the
content security policy to refuse."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from gateway import metrics
from gateway.console.rendering import render
from gateway.console.work import offload
from gateway.webkeys import RUNTIME

PATH = "/moderation/admin/operations"
HOURS = 6
WIDTH, HEIGHT = 160, 32


@dataclass(frozen=True)
class Series:
    name: str
    now: float
    points: str  # an SVG polyline's points, "" with fewer than two samples
    low: float
    high: float


def sparkline(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = WIDTH / (len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{HEIGHT - 2 - (v - low) / span * (HEIGHT - 4):.1f}"
        for i, v in enumerate(values)
    )


async def operations_page(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]

    def gather() -> tuple[dict[str, str], list[Series], bool]:
        state = metrics.readiness(runtime)
        try:
            now = metrics.snapshot(runtime)
            samples = metrics.history(runtime, HOURS)
        except (RedisError, OSError, SQLAlchemyError):
            return state, [], False
        series = []
        for name in metrics.SERIES:
            values = [float(s.get(name, 0)) for s in samples] + [float(now[name])]
            series.append(Series(name, now[name], sparkline(values), min(values), max(values)))
        return state, series, True

    state, series, available = await offload(gather)
    return await render(
        request,
        "admin_operations.html",
        {
            "state": state,
            "series": series,
            "available": available,
            "hours": HOURS,
            "width": WIDTH,
            "height": HEIGHT,
        },
        section="admin",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, operations_page)
