"""The moderation log: every action, newest first, who did what, when, and what changed."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.console import present
from gateway.console.rendering import render, translator
from gateway.console.views.common import with_query
from gateway.console.work import read
from gateway.models import ModerationEvent
from gateway.moderation import queries

PATH = "/moderation/log"
PER_PAGE = 50
ACTIONS = (
    "publish",
    "reject",
    "spam",
    "reopen",
    "classify",
    "correct_transcript",
    "anonymise",
    "reply",
    "campaign_status",
)


@dataclass(frozen=True)
class LogData:
    page: queries.LogPage
    actors: list[str]


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(100_000, int(value or 1)))
    except ValueError:
        return 1


async def log_page(request: web.Request) -> web.StreamResponse:
    actor = request.query.get("actor", "").strip()[:100] or None
    action = request.query.get("action", "").strip()[:32] or None
    number = _page_number(request.query.get("page"))

    def load(session: Session) -> LogData:
        return LogData(
            page=queries.log_page(
                session, actor=actor, action=action, page=number, per_page=PER_PAGE
            ),
            actors=sorted(session.scalars(select(ModerationEvent.actor).distinct())),
        )

    data = await read(request, load)
    _ = translator(request)
    params = {k: v for k, v in (("actor", actor), ("action", action)) if v}

    def url(page: int) -> str:
        return with_query(PATH, urlencode({**params, **({"page": page} if page > 1 else {})}))

    return await render(
        request,
        "log.html",
        {
            "data": data,
            "entries": [
                (event, reference, present.changes(_, event.before, event.after))
                for event, reference in data.page.events
            ],
            "actor": actor or "",
            "action": action or "",
            "actions": ACTIONS,
            "prev_url": url(number - 1) if number > 1 else None,
            "next_url": url(number + 1) if number < data.page.pages else None,
        },
        section="log",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, log_page)
