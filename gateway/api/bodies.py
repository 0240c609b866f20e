"""Reading what a client sends: JSON objects with strictly typed fields, ids, query integers.

Strict on purpose: a script that sends ``"tags": "vélo"`` or misspells ``neighbourhood``
gets a 400 naming the field, rather than a change it did not mean. The moderation actions
then check the values themselves (a known category, a reason for a rejection).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from aiohttp import web

from gateway.api.errors import ApiError
from gateway.moderation.actions import ActionError

MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_body", message, field=field)


async def json_object(request: web.Request, fields: Collection[str]) -> dict[str, Any]:
    """The request's body: a JSON object whose keys are among ``fields``.

    Reading the body enforces the app's client_max_size (413)."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise invalid(unknown[0], f"unknown field {unknown[0]!r}; expected {sorted(fields)}")
    return body


def string(body: dict[str, Any], field: str) -> str:
    """A required string."""
    if field not in body:
        raise invalid(field, f"{field!r} is required")
    value = body[field]
    if not isinstance(value, str):
        raise invalid(field, f"{field!r} must be a string")
    return value


def optional_string(body: dict[str, Any], field: str) -> str | None:
    """A string, or None when absent or null."""
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise invalid(field, f"{field!r} must be a string or null")
    return value


def string_list(body: dict[str, Any], field: str) -> list[str] | None:
    """A list of strings, or None when absent."""
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(field, f"{field!r} must be a list of strings")
    return value


def id_list(body: dict[str, Any], field: str, limit: int) -> list[int]:
    if field not in body:
        raise invalid(field, f"{field!r} is required")
    value = body[field]
    if not isinstance(value, list) or not all(type(v) is int and 0 < v <= MAX_ID for v in value):
        raise invalid(field, f"{field!r} must be a list of contribution ids (positive integers)")
    if len(value) > limit:
        raise invalid(field, f"at most {limit} ids at once")
    return value


def path_id(request: web.Request, name: str, what: str) -> int:
    """An id from the path (the route allows digits only); too large to exist is not found."""
    value = int(request.match_info[name])
    if not 0 < value <= MAX_ID:
        raise ActionError("console.errors.not_found", f"no such {what}", 404)
    return value


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter, clamped to [low, high]; not an integer is a 400."""
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name!r} must be an integer", field=name
        ) from None
    return max(low, min(high, value))
