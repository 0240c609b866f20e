"""The moderation console under /moderation/ (server-rendered, aiohttp-jinja2).

Modules, one job each: ``auth`` (sessions, login, CSRF, roles, security headers),
``rendering`` (templates, language, local time), ``flash`` (messages after a redirect),
``work`` (database and actions off the event loop), ``present`` (what pages show),
``views/*`` (one module per page), ``live`` (the live board and its event stream).
Routes, ids and data attributes are a contract with the browser tests: change them together.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.console import auth, live, rendering
from gateway.console.views import (
    admin,
    announcements,
    answers,
    campaign_form,
    collect,
    contribution,
    dashboard,
    groups,
    log,
    operations,
    outbound,
    queue,
    residents,
)

STATIC = Path(__file__).parent / "static"


async def _home(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=302, headers={"Location": auth.HOME})


def setup(app: web.Application) -> None:
    """Add the console's routes, templates and middlewares to the gateway's app."""
    rendering.setup(app)
    app.middlewares.append(auth.console_middleware)
    app.router.add_get(auth.ROOT, _home)
    app.router.add_get(auth.PREFIX, _home)
    auth.add_routes(app)
    for page in (
        queue,
        contribution,
        groups,
        log,
        dashboard,
        admin,
        campaign_form,
        residents,
        answers,
        collect,
        announcements,
        outbound,
        operations,
    ):
        page.add_routes(app)
    live.setup(app)
    app.router.add_static(auth.PREFIX + "static", STATIC, follow_symlinks=False)
