"""The web application: webhooks, health, the moderation console and the JSON API."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from gateway import (
    api,
    campaigns,
    console,
    greetings,
    metrics,
    metrics_web,
    plugins,
    recorded_answers_web,
)
from gateway.bodycaps import capped
from gateway.ingest import BatchingIngest
from gateway.outages import middleware as storage_outages
from gateway.publication import pages, radio_web
from gateway.publication import photos as public_photos
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.webkeys import INGEST, RUNTIME, SERVICES, SETTINGS

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, services: bool = True) -> web.Application:
    """The gateway's app; ``services``: run the channel plugins' background services (only
    one of several pre-forked web processes does)."""
    settings = settings.ensure_secret_key()
    # Every body is held to its route's cap by gateway.bodycaps (outermost): the app's own
    # limit is only the floor aiohttp applies to anything it would read otherwise.
    app = web.Application(client_max_size=settings.max_webhook_bytes)
    app.middlewares.append(capped)
    app[SETTINGS] = settings
    app[SERVICES] = services
    app.middlewares.append(storage_outages)  # logs the end of a storage outage
    app.cleanup_ctx.append(_runtime_ctx)
    app.router.add_get("/healthz", healthz)
    metrics_web.setup(app)
    for plugin in plugins.installed():
        if plugin.routes is not None:
            plugin.routes(app)  # the plugin's webhooks, whether configured or not (they refuse)
    console.setup(app)
    api.setup(app)
    pages.add_routes(app)
    radio_web.add_routes(app)
    greetings.add_routes(app)
    public_photos.add_routes(app)
    recorded_answers_web.add_routes(app)
    return app


async def _runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    runtime = await loop.run_in_executor(None, Runtime.open, settings)
    app[RUNTIME] = runtime
    await loop.run_in_executor(None, load_campaigns, runtime)
    if runtime.embedded:
        await loop.run_in_executor(None, runtime.embedded.ensure_running)
    ingest = BatchingIngest(runtime)
    await ingest.start()
    app[INGEST] = ingest
    background = None
    if runtime.embedded and settings.embedded_worker:
        from workers.recovery import recover
        from workers.runner import Ticker, start_thread_worker, stop_thread_worker
        from workers.sweeper import sweep

        # What a previous run left when it died (its jobs, its senders' locks) is taken back
        # before anything else, so that nothing waits for a timeout (workers.recovery).
        await loop.run_in_executor(None, recover, runtime)
        await loop.run_in_executor(None, sweep, runtime)
        # The worker thread shares the GIL with the event loop: hand the GIL over every
        # millisecond instead of every five, so that webhooks are answered promptly while it
        # works through a backlog.
        sys.setswitchinterval(0.001)
        worker = start_thread_worker(runtime, should_pause=ingest.busy)
        ticker = Ticker(runtime, on_tick=lambda: _revive_embedded_redis(runtime))
        ticker.start()
        background = (worker, ticker)
    services = await _start_services(runtime) if app[SERVICES] else []
    try:
        yield
    finally:
        if background:  # told first, so that the worker winds down while the services stop
            background[0].stop()
            background[1].stop()
        await _stop_services(services)
        if background:
            worker, ticker = background
            # A job still running after the grace period is handed back to the queue.
            await loop.run_in_executor(None, stop_thread_worker, worker)
            await loop.run_in_executor(None, ticker.join, 2)
        await ingest.stop()
        await loop.run_in_executor(None, runtime.close)


async def _start_services(runtime: Runtime) -> list[plugins.Stop]:
    """The channel plugins' background services that their settings enable (a mail receiver,
    a mailbox reader): a configured channel then needs no other command than `gateway serve`."""
    stoppers = []
    for plugin in plugins.installed():
        for service in plugin.services:
            if service.enabled(runtime.settings):
                log.info("starting %s (%s)", service.name, plugin.name)
                stoppers.append(await service.start(runtime))
    return stoppers


async def _stop_services(stoppers: list[plugins.Stop]) -> None:
    for stop in reversed(stoppers):
        await stop()


def _revive_embedded_redis(runtime: Runtime) -> None:
    # The embedded server is ours to keep alive: if it died, start it again (the append-only
    # file brings the queues back; the sweeper re-enqueues anything lost).
    if runtime.embedded and not runtime.embedded.alive():
        log.warning("embedded Redis is down; restarting it")
        runtime.embedded.ensure_running()


# Attempts at the start-up load of the campaign folder when another process races it.
LOAD_ATTEMPTS = 3


def load_campaigns(runtime: Runtime) -> None:
    directory = runtime.settings.effective_campaigns_dir
    if not directory.is_dir():
        log.warning("no campaign folder at %s", directory)
        return
    specs = campaigns.read_files([directory], runtime.settings.timezone)
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        try:
            with runtime.sessions.begin() as session:
                results = campaigns.upsert(session, specs, runtime, keep_edited=True)
            break
        except IntegrityError:
            # Two `gateway serve` started at the same moment on a database without these
            # campaigns (systemctl starting agora-web@8081 and @8082): both found none and
            # both inserted, and the other committed first. Its rows are visible now: the
            # next attempt finds them and compares instead of inserting.
            if attempt == LOAD_ATTEMPTS:
                raise
            log.info("campaigns created meanwhile by another process; loading again")
    # What changed, a line each; what did not, one line for all (a city may have dozens).
    for slug, result in results:
        if result != "unchanged":
            log.info("campaign %s: %s", slug, result)
    same = sum(result == "unchanged" for _, result in results)
    if same:
        log.info("%d campaign(s) unchanged in %s", same, directory)


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    loop = asyncio.get_running_loop()

    def check() -> dict[str, str]:
        database, redis = metrics.database_down(runtime), metrics.redis_down(runtime)
        return {
            "database": f"down: {database}" if database else "ok",
            "redis": f"down: {redis}" if redis else "ok",
        }

    status = await loop.run_in_executor(None, check)
    ok = status["database"] == "ok"
    # Without Redis the gateway still accepts and stores messages: degraded, not down.
    status["status"] = "ok" if ok and status["redis"] == "ok" else ("degraded" if ok else "down")
    return web.json_response(status, status=200 if ok else 503)
