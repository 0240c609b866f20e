"""``/metrics``, ``/readyz`` and the count of webhooks answered (gateway.metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway import metrics
from gateway.webkeys import RUNTIME, SETTINGS

log = logging.getLogger(__name__)

FLUSH_EVERY = 5.0  # seconds between a web process's flushes of its counts to Redis
WEBHOOKS = "/webhooks/"
# Refusals of a webhook's signature or shared secret: 401 or 403, as each plugin answers.
REFUSED = (401, 403)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/readyz", readyz)
    # Outermost, so that what the body caps refuse (413, 408) is counted too.
    app.middlewares.insert(0, count_webhooks)
    app.cleanup_ctx.append(_flushing)


@web.middleware
async def count_webhooks(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(WEBHOOKS):
        return await handler(request)
    # The provider is the path's first part: a fixed set of routes, so a bounded label; a
    # path no route knows (404) counts as "unknown", not as whatever a scanner tried.
    provider = request.path[len(WEBHOOKS) :].split("/", 1)[0]
    if request.match_info.http_exception is not None:
        provider = "unknown"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.count("webhook_requests", provider=provider, status=str(status))
        if status in REFUSED:
            metrics.count("webhook_signature_failures", provider=provider)


async def _flushing(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await _flush(app)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await _flush(app)


async def _flush(app: web.Application) -> None:
    runtime = app.get(RUNTIME)
    if runtime is not None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, metrics.flush, runtime.redis)
        # The operations page's history: once a minute, whichever web process comes first.
        await loop.run_in_executor(None, metrics.record_sample, runtime)


async def metrics_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not metrics.allowed(
        request.remote,
        forwarded="X-Forwarded-For" in request.headers or "Forwarded" in request.headers,
        authorization=request.headers.get("Authorization", ""),
        token=settings.metrics_token,
    ):
        log.warning("metrics: scrape refused (not local, or a wrong token)")
        raise web.HTTPForbidden(text="metrics: set METRICS_TOKEN, or scrape from this machine")
    runtime = request.app[RUNTIME]
    loop = asyncio.get_running_loop()
    # This process's own counts first, so that a scrape right after an event shows it.
    await loop.run_in_executor(None, metrics.flush, runtime.redis)
    body = await loop.run_in_executor(None, metrics.exposition, runtime)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database, Redis and at least one worker are there; 503 with each part's
    reason otherwise (a load balancer takes the process out; an operator reads why)."""
    runtime = request.app[RUNTIME]
    state = await asyncio.get_running_loop().run_in_executor(None, metrics.readiness, runtime)
    ready = all(value == "ok" for value in state.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", **state}, status=200 if ready else 503
    )
