"""Pages: the Jinja2 environment (autoescaped), the reader's language and local time.

Every string a moderator reads comes from the catalogue (``console.*`` keys) through ``_``;
every date is shown in ``Settings.timezone``, formatted the way the catalogue says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.console import flash
from gateway.console.keys import JINJA, VIEWER
from gateway.i18n import DEFAULT_LANGUAGE, catalogue, translate
from gateway.webkeys import SETTINGS

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("fr", "en")


class Translator:
    """``_`` in templates: ``_("console.queue.title")``, ``_.label("channels", "sms")``."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE

    def __call__(self, key: str, **params: Any) -> str:
        return translate(key, self.language, **params)

    def has(self, key: str) -> bool:
        return key in catalogue(self.language) or key in catalogue(DEFAULT_LANGUAGE)

    def label(self, group: str, value: str | None, default: str | None = None) -> str:
        """The name of a value (a channel, a status...); unknown values shown as they are."""
        key = f"console.{group}.{value or 'none'}"
        if self.has(key):
            return self(key)
        if default is not None:
            return default
        return value or self("console.none")


class Formatter:
    """Dates, times and durations in the reader's language and the gateway's time zone."""

    def __init__(self, translator: Translator, tz: ZoneInfo, now: datetime | None = None) -> None:
        self._ = translator
        self.tz = tz
        self.now = (now or datetime.now(UTC)).astimezone(tz)

    def local(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(self.tz)

    def time(self, value: datetime) -> str:
        local = self.local(value)
        return self._("console.format.time", hour=local.hour, minute=local.minute)

    def long_date(self, value: date | datetime) -> str:
        day = self.local(value).date() if isinstance(value, datetime) else value
        return self._(
            "console.format.date_long",
            day=self._("console.format.first_day") if day.day == 1 else day.day,
            month=self._(f"console.months.m{day.month}"),
            year=day.year,
        )

    def long_datetime(self, value: datetime) -> str:
        return self._(
            "console.format.datetime_long", date=self.long_date(value), time=self.time(value)
        )

    def when(self, value: datetime) -> str:
        """Short, for tables: today and yesterday by name, otherwise day/month/year."""
        local = self.local(value)
        days = (self.now.date() - local.date()).days
        if days == 0:
            return self._("console.format.today", time=self.time(value))
        if days == 1:
            return self._("console.format.yesterday", time=self.time(value))
        return self._(
            "console.format.datetime_short",
            day=local.day,
            month=local.month,
            year=local.year,
            time=self.time(value),
        )

    def iso(self, value: datetime) -> str:
        return self.local(value).isoformat(timespec="seconds")

    def duration(self, seconds: float | None) -> str:
        if seconds is None:
            return ""
        total = max(0, round(seconds))
        if total < 60:
            return self._("console.format.seconds", seconds=total)
        return self._("console.format.minutes_seconds", minutes=total // 60, seconds=total % 60)

    def age(self, value: timedelta | None) -> str:
        if value is None:
            return self._("console.none")
        minutes = int(value.total_seconds() // 60)
        if minutes < 1:
            return self._("console.format.age_less")
        if minutes < 60:
            return self._("console.format.age_minutes", minutes=minutes)
        hours, minutes = divmod(minutes, 60)
        if hours < 24:
            return self._("console.format.age_hours", hours=hours, minutes=minutes)
        days, hours = divmod(hours, 24)
        return self._("console.format.age_days", days=days, hours=hours)


def _fmt(context: Mapping[str, Any]) -> Formatter:
    formatter = context["fmt"]
    assert isinstance(formatter, Formatter)
    return formatter


@jinja2.pass_context
def _when(context: Mapping[str, Any], value: datetime) -> str:
    return _fmt(context).when(value)


@jinja2.pass_context
def _long_datetime(context: Mapping[str, Any], value: datetime) -> str:
    return _fmt(context).long_datetime(value)


@jinja2.pass_context
def _long_date(context: Mapping[str, Any], value: date) -> str:
    return _fmt(context).long_date(value)


@jinja2.pass_context
def _iso(context: Mapping[str, Any], value: datetime) -> str:
    return _fmt(context).iso(value)


@jinja2.pass_context
def _duration(context: Mapping[str, Any], value: float | None) -> str:
    return _fmt(context).duration(value)


@jinja2.pass_context
def _age(context: Mapping[str, Any], value: timedelta | None) -> str:
    return _fmt(context).age(value)


FILTERS: dict[str, Callable[..., str]] = {
    "when": _when,
    "long_datetime": _long_datetime,
    "long_date": _long_date,
    "iso": _iso,
    "duration": _duration,
    "age": _age,
}


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        app_key=JINJA,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
        filters=FILTERS,
    )


def timezone(request: web.Request) -> ZoneInfo:
    return ZoneInfo(request.app[SETTINGS].timezone)


def language(request: web.Request) -> str:
    viewer = request.get(VIEWER)
    if viewer is not None:
        return viewer.language if viewer.language in LANGUAGES else DEFAULT_LANGUAGE
    # Before login (the login page): French unless English was asked for.
    asked = request.query.get("lang", "")
    return asked if asked in LANGUAGES else DEFAULT_LANGUAGE


def translator(request: web.Request) -> Translator:
    return Translator(language(request))


async def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    section: str = "",
    errors: list[flash.Flash] | None = None,
) -> web.Response:
    """A page, with the flashed messages of the last redirect and ``errors`` on top."""
    _ = translator(request)
    viewer = request.get(VIEWER)
    messages = flash.pending(request) + list(errors or [])
    shown = [
        {"text": _(m.key, **m.params) if _.has(m.key) else m.key, "error": m.error}
        for m in messages
    ]
    page = {
        "_": _,
        "lang": _.language,
        "fmt": Formatter(_, timezone(request)),
        "viewer": viewer,
        "csrf": viewer.csrf if viewer else "",
        "flashes": shown,
        "section": section,
        "languages": LANGUAGES,
        **(context or {}),
    }
    # Rendered on a worker thread: a page of the queue is tens of milliseconds of Python that
    # would otherwise hold the event loop, and with it every webhook's answer.
    compiled = aiohttp_jinja2.get_env(request.app, app_key=JINJA).get_template(template)
    html = await asyncio.get_running_loop().run_in_executor(None, compiled.render, page)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    flash.clear(request, response)
    return response


async def error_page(request: web.Request, status: int, key: str, **params: Any) -> web.Response:
    return await render(
        request,
        "error.html",
        {"status": status, "message_key": key, "message_params": params},
        status=status,
    )


def see_other(location: str) -> web.Response:
    """POST/redirect/GET: the page to show after a form was handled."""
    return web.Response(status=303, headers={"Location": location})
