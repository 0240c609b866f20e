"""The one place that says how large a request's body may be, and the middleware that holds
every route to it (docs/security.md).

Each route that takes a body has a kind, found from its path pattern (``RULES``, read against
the route table's canonical paths: ``/moderation/answers/{id}``, not the path asked); each kind
has a cap (``caps``). The webhooks, the console's forms and the API's JSON share the smallest
(``MAX_WEBHOOK_BYTES``); the uploads (a recorded answer, a greeting, a scan of a paper form, a
day's spreadsheet) get their own, a little over their file's limit for the form around it.

``capped`` (the app's outermost middleware) reads the whole body before any handler, login or
CSRF check runs:

- a ``Content-Length`` over the cap is answered 413 at once, nothing read;
- a chunked body (no length) or a body longer than it said is read up to the cap, then 413;
- a body that takes longer than ``MAX_BODY_SECONDS`` to arrive (a slow client, on purpose or
  not) is answered 408;

and the connection is closed after either, so that the rest is never read. Nothing reaches a
handler, so nothing is stored. What was read is handed to the handler as the request's body
(``read``, ``post``, ``json`` and multipart forms all work as before), under the same cap.

The log line names the method, the route's pattern and the sizes: never the path's values, the
client's address or any of the body.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Mapping

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.typedefs import Handler

from gateway import greetings, i18n, recorded_answers
from gateway.api import errors
from gateway.moderation.collected import MAX_SCAN_BYTES
from gateway.moderation.collected_import import MAX_IMPORT_BYTES
from gateway.settings import Settings
from gateway.webkeys import SETTINGS

log = logging.getLogger(__name__)

# Room for a form's other fields and its multipart boundaries around an uploaded file.
FORM_ROOM = 64 * 1024

WEBHOOK, FORM, API, RECORDING, GREETING, SCAN, IMPORT = (
    "webhook",
    "form",
    "api",
    "recording",
    "greeting",
    "scan",
    "import",
)

# (canonical path pattern, kind): the first that matches. A route none matches is held to the
# smallest cap, and tests/test_body_caps.py fails until it is given a kind here.
RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), kind)
    for pattern, kind in (
        (r"^/api/v1/(contributions|groups)/\{[a-z_]+\}/answer/audio$", RECORDING),
        (r"^/moderation/answers/\{id\}$", RECORDING),
        (r"^/moderation/admin/campaigns/\{slug\}/greeting$", GREETING),
        (r"^/moderation/collect$", SCAN),
        (r"^/moderation/collect/import$", IMPORT),
        (r"^/webhooks/", WEBHOOK),
        (r"^/moderation/", FORM),
        (r"^/api/v1/", API),
    )
)


def caps(settings: Settings) -> Mapping[str, int]:
    """Bytes a body of each kind may have."""
    small = settings.max_webhook_bytes
    return {
        WEBHOOK: small,
        FORM: small,
        API: small,
        RECORDING: recorded_answers.MAX_BYTES + FORM_ROOM,
        GREETING: greetings.MAX_BYTES + FORM_ROOM,
        SCAN: MAX_SCAN_BYTES + FORM_ROOM,
        IMPORT: MAX_IMPORT_BYTES + FORM_ROOM,
    }


@functools.lru_cache(maxsize=512)  # a route table's patterns: a bounded set, asked per request
def kind_of(pattern: str) -> str | None:
    """The kind of the route whose canonical path is ``pattern``; None: no rule names it."""
    for rule, kind in RULES:
        if rule.search(pattern):
            return kind
    return None


def cap_for(settings: Settings, pattern: str) -> int:
    kind = kind_of(pattern)
    return caps(settings)[kind] if kind else settings.max_webhook_bytes


def _pattern(request: web.Request) -> str:
    """The route's canonical path (no values from the path asked); "?" for no route."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "?"


class _TooLarge(Exception):
    pass


async def _read(reader: StreamReader, cap: int) -> bytes:
    chunks, size = [], 0
    async for chunk in reader.iter_any():
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(request: web.Request, status: int, key: str, **params: int) -> web.StreamResponse:
    """The answer: the API's JSON error under /api/ (its code: ``payload_too_large``,
    ``request_timeout``), the catalogue's sentence elsewhere."""
    response: web.StreamResponse
    if errors.in_api(request):
        message = {413: "request body too large", 408: "request body too slow"}[status]
        response = errors.with_api_headers(
            errors.error_response(status, errors.HTTP_CODES[status], message, params=params)
        )
    else:
        response = web.Response(
            status=status, text=i18n.translate(key, i18n.DEFAULT_LANGUAGE, **params)
        )
    response.force_close()  # the rest of the body is never read
    return response


@web.middleware
async def capped(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.body_exists:
        return await handler(request)
    settings = request.app[SETTINGS]
    pattern = _pattern(request)
    cap = cap_for(settings, pattern)
    declared = request.content_length
    if declared is not None and declared > cap:
        log.warning(
            "body refused (413): %s %s declares %d bytes, cap %d",
            request.method,
            pattern,
            declared,
            cap,
        )
        return _refusal(request, 413, "http.body_too_large", kilobytes=cap // 1024)
    content = request.content
    if content.is_eof() and content.total_bytes <= cap:
        # The whole body came with the headers (a webhook's few hundred bytes, nearly always)
        # and is within the cap: nothing is left to wait for or to count, so the handler
        # reads it where it is. Copying it through a timed read cost the event loop a quarter
        # of a webhook's time (docs/benchmarks.md).
        if cap <= request.client_max_size:
            return await handler(request)
        return await handler(request.clone(client_max_size=cap))
    capped_request = request.clone(client_max_size=cap)
    try:
        async with asyncio.timeout(settings.max_body_seconds):
            body = await _read(capped_request.content, cap)
    except _TooLarge:
        log.warning("body refused (413): %s %s over the %d-byte cap", request.method, pattern, cap)
        return _refusal(request, 413, "http.body_too_large", kilobytes=cap // 1024)
    except TimeoutError:
        log.warning(
            "body refused (408): %s %s not received within %d s",
            request.method,
            pattern,
            settings.max_body_seconds,
        )
        return _refusal(request, 408, "http.body_too_slow", seconds=settings.max_body_seconds)
    # The handler reads what was read here, as if from the connection (a reader that never
    # asks the connection to pause: everything is already in memory).
    replay = StreamReader(
        request.protocol, max(len(body), 1) * 2 + 1, loop=asyncio.get_running_loop()
    )
    replay.feed_data(body)
    replay.feed_eof()
    capped_request._payload = replay
    return await handler(capped_request)
