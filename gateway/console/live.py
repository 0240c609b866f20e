"""The live board: the latest contributions, then new and changed ones as they happen.

The page lists ``queries.latest``; its script opens ``/moderation/live/events``, a stream of
Server-Sent Events. One background task per app polls the database (``changed_since``) every
half second while someone is watching and fans each batch out to every open stream's queue,
so a hundred open boards cost one query, not a hundred. Each stream first catches up from
its ``Last-Event-ID`` (or ``since``), so a reconnecting board misses nothing. On shutdown the
streams are told to end, so ``gateway serve`` stops at once instead of waiting for them.

A stream lives no longer than the session that opened it: every ``recheck`` seconds the same
task asks, in one query, which of its streams' sessions are still open (not logged out, not
idle or expired, the account still active; gateway.moderation.accounts.live_sessions) and
ends the others. The stream itself does not count as activity: a board left alone ends with
its session's idle timeout, like any other page.

The poller looks a few seconds back on each round: a transaction stamps ``updated_at`` before
it commits, so a row can become visible with a stamp older than the newest one seen. Rows
already sent (same id and stamp) are not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from gateway import textcap
from gateway.clock import now_utc
from gateway.console.auth import idle_timeout, secure_headers
from gateway.console.keys import VIEWER
from gateway.console.rendering import Formatter, Translator, render, timezone, translator
from gateway.console.work import offload, read
from gateway.models import Contribution
from gateway.moderation import accounts, queries, redaction
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

log = logging.getLogger(__name__)

PATH = "/moderation/live"
LOOK_BACK = timedelta(seconds=5)
CATCH_UP = timedelta(days=1)  # the oldest a reconnecting board may ask for
BATCH = 200
MAX_BATCHES = 10

Snapshot = dict[str, Any]
# The caller's answer to "may this be broadcast?"; no answer means no.
BROADCAST = {
    True: "console.live.broadcast_yes",
    False: "console.live.broadcast_no",
    None: "console.live.broadcast_unknown",
}


def on_air(c: Contribution) -> tuple[str, str | None, bool]:
    """The text and transcript the board shows, and whether personal data was masked.

    The board is read aloud on air: it shows the public version once a moderator has written
    it, and until then the text with the suggested redactions applied, so that a phone
    number, an e-mail, an address or a name is never read out by mistake. The raw text
    stays on the contribution page, for moderators.
    """
    text, transcript = c.text or "", c.transcript
    if c.public_text:
        # Once a moderator has written it, the public version is all the board shows.
        return c.public_text, (c.public_text if transcript else transcript), False
    language = c.language or "fr"
    shown_text = textcap.without_marker(redaction.apply(text, language=language))
    shown_transcript = redaction.apply(transcript, language=language) if transcript else transcript
    return shown_text, shown_transcript, (shown_text, shown_transcript) != (text, transcript)


def snapshot(c: Contribution) -> Snapshot:
    """A contribution as the board's events carry it (data: the page inserts it as text).
    ``text`` and ``transcript`` are what may be read on air (see ``on_air``)."""
    text, transcript, masked = on_air(c)
    return {
        "id": c.id,
        "reference": c.reference,
        "channel": c.channel,
        "campaign": c.campaign.slug if c.campaign else None,
        "campaign_title": c.campaign.title if c.campaign else None,
        "received_at": c.received_at.astimezone(UTC).isoformat(),
        "updated_at": c.updated_at.astimezone(UTC).isoformat(),
        "text": text,
        "transcript": transcript,
        "masked": masked,
        "transcription_status": c.transcription_status,
        "status": c.status,
        "public_text": c.public_text,
        "broadcast_consent": c.broadcast_consent,
        "neighbourhood": c.neighbourhood,
    }


def fetch(runtime: Runtime, since: datetime) -> list[Snapshot]:
    """Every contribution changed after ``since``, oldest change first (blocking)."""
    found: list[Snapshot] = []
    with runtime.sessions() as session:
        for _ in range(MAX_BATCHES):
            rows = queries.changed_since(session, since, limit=BATCH)
            found.extend(snapshot(c) for c in rows)
            if len(rows) < BATCH:
                break
            since = rows[-1].updated_at
    return found


def open_sessions(runtime: Runtime, token_hashes: set[str], idle: timedelta) -> set[str]:
    """Which of these sessions are still open (blocking)."""
    with runtime.sessions() as session:
        return accounts.live_sessions(session, token_hashes, now_utc(), idle=idle)


class LiveHub:
    """The one poller of an app and the queues of the streams it feeds, each with the hash of
    the session token that opened it."""

    def __init__(
        self,
        interval: float = 0.5,
        heartbeat: float = 15.0,
        recheck: float = 3.0,
        idle: timedelta = accounts.SESSION_IDLE,
    ) -> None:
        self.interval = interval
        self.heartbeat = heartbeat
        self.recheck = recheck
        self.idle = idle
        self._subscribers: dict[asyncio.Queue[list[Snapshot] | None], str] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(
        self, runtime: Runtime, session_token_hash: str
    ) -> asyncio.Queue[list[Snapshot] | None]:
        queue: asyncio.Queue[list[Snapshot] | None] = asyncio.Queue()
        self._subscribers[queue] = session_token_hash
        if self._task is None or self._task.done():
            # Started on the first viewer: the runtime exists only once the app has started.
            self._task = asyncio.create_task(self._poll(runtime), name="console-live-poller")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[list[Snapshot] | None]) -> None:
        self._subscribers.pop(queue, None)

    async def _end_closed_sessions(self, runtime: Runtime) -> None:
        """End every stream whose session was closed, timed out or deactivated."""
        hashes = set(self._subscribers.values())
        try:
            alive = await offload(functools.partial(open_sessions, runtime, hashes, self.idle))
        except Exception:
            # Not a reason to end anyone's board: asked again at the next round.
            log.exception("live board: checking the sessions failed")
            return
        for queue, token_hash in list(self._subscribers.items()):
            if token_hash not in alive:
                self._subscribers.pop(queue, None)
                queue.put_nowait(None)

    async def _poll(self, runtime: Runtime) -> None:
        loop = asyncio.get_running_loop()
        cursor = now_utc()
        sent: dict[int, str] = {}
        next_check = loop.time() + self.recheck
        while not self._closed and self._subscribers:
            await asyncio.sleep(self.interval)
            if loop.time() >= next_check:
                next_check = loop.time() + self.recheck
                await self._end_closed_sessions(runtime)
            try:
                rows = await offload(functools.partial(fetch, runtime, cursor - LOOK_BACK))
            except Exception:
                log.exception("live board: polling the database failed")
                continue
            fresh = [row for row in rows if sent.get(row["id"]) != row["updated_at"]]
            for row in fresh:
                sent[row["id"]] = row["updated_at"]
                cursor = max(cursor, datetime.fromisoformat(row["updated_at"]))
            horizon = (cursor - 2 * LOOK_BACK).isoformat()
            sent = {k: v for k, v in sent.items() if v >= horizon}
            if fresh:
                for queue in list(self._subscribers):
                    queue.put_nowait(fresh)

    async def close(self, _app: web.Application | None = None) -> None:
        """End every stream (on app shutdown) and stop polling."""
        self._closed = True
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


LIVE = web.AppKey("console_live", LiveHub)


def localised(_: Translator, fmt: Formatter, row: Snapshot) -> Snapshot:
    """The event for one reader: the data plus its labels in their language."""
    received = datetime.fromisoformat(row["received_at"])
    consent = row["broadcast_consent"]
    return {
        **row,
        "labels": {
            "channel": _.label("channels", row["channel"]),
            "status": _.label("statuses", row["status"]),
            "received": fmt.when(received),
            "received_long": fmt.long_datetime(received),
            "transcription": _.label("transcription", row["transcription_status"])
            if row["transcription_status"]
            else "",
            "broadcast": _(BROADCAST[consent]) if row["channel"] == "voice" else "",
        },
    }


def _since(request: web.Request) -> datetime | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("since") or ""
    try:
        value = datetime.fromisoformat(raw.strip()[:40])
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return max(value, now_utc() - CATCH_UP)


def _event(row: Snapshot) -> bytes:
    data = json.dumps(row, ensure_ascii=True, separators=(",", ":"))
    return f"id: {row['updated_at']}\nevent: contribution\ndata: {data}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    hub = request.app[LIVE]
    if hub.closed:
        raise web.HTTPServiceUnavailable()
    runtime = request.app[RUNTIME]
    session_token_hash = accounts.token_hash(request[VIEWER].session_token)
    _ = translator(request)
    fmt = Formatter(_, timezone(request))
    campaign = request.query.get("campaign") or None
    since = _since(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "X-Accel-Buffering": "no"}
    )
    secure_headers(request, response)
    await response.prepare(request)
    queue = hub.subscribe(runtime, session_token_hash)

    async def send(rows: list[Snapshot]) -> None:
        for row in rows:
            if campaign is None or row["campaign"] == campaign:
                await response.write(_event(localised(_, fmt, row)))

    try:
        await response.write(b"retry: 3000\n: connected\n\n")
        if since is not None:
            await send(await offload(lambda: fetch(runtime, since)))
        while True:
            try:
                rows = await asyncio.wait_for(queue.get(), timeout=hub.heartbeat)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if rows is None:
                break
            await send(rows)
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        hub.unsubscribe(queue)
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


async def live_page(request: web.Request) -> web.StreamResponse:
    campaign = request.query.get("campaign", "").strip()[:64] or None
    _ = translator(request)
    fmt = Formatter(_, timezone(request))
    # Taken before reading: the stream catches up from here, so nothing falls in between.
    since = now_utc()

    def load(session: Session) -> tuple[list[Snapshot], list[Any]]:
        rows = [snapshot(c) for c in queries.latest(session, limit=50, campaign=campaign)]
        return rows, queries.campaigns(session)

    rows, campaigns = await read(request, load)
    return await render(
        request,
        "live.html",
        {
            "items": [localised(_, fmt, row) for row in rows],
            "since": since.isoformat(),
            "campaigns": campaigns,
            "campaign": campaign or "",
        },
        section="live",
    )


def setup(app: web.Application) -> None:
    hub = LiveHub(idle=idle_timeout(app))
    app[LIVE] = hub
    app.on_shutdown.append(hub.close)
    app.router.add_get(PATH, live_page)
    app.router.add_get(PATH + "/events", events)
