"""What several pages share: the queue filter carried from page to page, form fields, and how
a refused action is shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from multidict import MultiDictProxy

from gateway import textnorm
from gateway.console import flash
from gateway.moderation.actions import ActionError
from gateway.moderation.queries import QueueFilter

# What request.post() gives: text fields, and files this console never asks for.
FormData = MultiDictProxy[Any]


def queue_filter(params: Mapping[str, str]) -> QueueFilter:
    return QueueFilter.from_params(params)


def query_string(f: QueueFilter, **changes: object) -> str:
    """The filter as a query string ("" for the default queue), ready to follow a "?"."""
    return urlencode(f.to_params(**changes))


def with_query(path: str, qs: str) -> str:
    return f"{path}?{qs}" if qs else path


def filter_from_query_string(qs: str) -> QueueFilter:
    """A filter from a query string a form sent back (re-encoded: never used as given)."""
    return QueueFilter.from_params(dict(parse_qsl(qs[:2000])))


def field(form: FormData, name: str, default: str = "") -> str:
    """A form's text field, without control characters (gateway.textnorm.drop_controls)."""
    value = form.get(name, default)
    return textnorm.drop_controls(value) if isinstance(value, str) else default


def fields(form: FormData, name: str) -> list[str]:
    return [textnorm.drop_controls(v) for v in form.getall(name, []) if isinstance(v, str)]


def refused(error: ActionError) -> flash.Flash:
    """An ActionError as the message shown to the moderator."""
    return flash.Flash(error.key, dict(error.params), error=True)


def parse_id(request: web.Request, name: str, *, lowest: int = 1) -> int:
    """A number from the path (a database id, or with ``lowest=0`` a position); 404 otherwise."""
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound() from None
    if not lowest <= value < 2**31:
        raise web.HTTPNotFound()
    return value
