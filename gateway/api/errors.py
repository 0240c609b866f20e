"""Errors as the API answers them: ``{"error": {"code": ..., "message": ...}}``
(gateway.api.responses.Error).

``code`` is stable and meant for programs: the catalogue key of a refused moderation action
(``console.errors.reason_required``) or a short code for what the API itself refuses
(``invalid_json``, ``invalid_body``, ``unauthorized``...). ``message`` is for the developer
reading a log, in English; what moderators read lives in the console's catalogue.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.api.responses import Error, ErrorDetail, respond
from gateway.moderation.actions import ActionError

log = logging.getLogger(__name__)

API_ROOT = "/api/"

# Refusals that aiohttp itself raises (routing, body size), by status.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
}
# Headers of aiohttp's own refusals that a client needs (the methods a path allows).
KEPT_HEADERS = ("Allow",)


class ApiError(Exception):
    """A request the API refuses before any moderation action runs."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field
        self.headers = dict(headers or {})
        self.params = dict(params or {})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    if params:
        error["params"] = dict(params)
    return respond(Error(error=ErrorDetail(**error)), status, headers)


API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"


def in_api(request: web.Request) -> bool:
    return request.path.startswith(API_ROOT)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal under /api/ as a JSON error, aiohttp's own (404, 405, 413) included."""
    if not in_api(request):
        return await handler(request)
    return with_api_headers(await _answer(request, handler))


def with_api_headers(response: web.StreamResponse) -> web.StreamResponse:
    # Moderation data, per token: no shared cache may keep it.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # JSON only: nothing to load, nothing to frame, no address to leak in a Referer.
    response.headers.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(
            exc.status, exc.code, str(exc), field=exc.field, params=exc.params, headers=exc.headers
        )
    except ActionError as exc:
        return error_response(exc.status, exc.key, str(exc), params=exc.params)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: exc.headers[k] for k in KEPT_HEADERS if k in exc.headers}
        return error_response(
            exc.status, HTTP_CODES.get(exc.status, "http_error"), exc.reason, headers=headers
        )
    except Exception:
        log.exception("API request %s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "the request could not be completed")
