"""Ingest: store what a provider delivered, then enqueue it; answer the provider either way.

The row is committed before the provider gets its answer, with a unique key on (channel,
provider message id) so that a provider's retry is absorbed. The job id derives from the row,
so enqueueing twice names the same job. When Redis is down the message stays stored with
state ``received`` and the sweeper (workers.sweeper) enqueues it later: nothing is lost.

Webhooks arrive concurrently; ``BatchingIngest`` groups the rows that arrive while the previous
batch is being written into one transaction and one Redis pipeline (group commit), which is
what lets one process accept a thousand webhooks a second on SQLite.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from gateway import db, enqueue, persons, textcap
from gateway.messages import IncomingMessage
from gateway.models import InboundMessage, QuarantinedMessage
from gateway.privacy import inbound_raw, inbound_sender, log_id, quarantine_payload
from gateway.queues import inbound_batch_job_id
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BATCH = 200
# The longest a webhook's rows wait for a locked database before the webhook answers 503 with
# Retry-After (gateway.outages): a provider may give a webhook 15 s, and rows queued behind a batch
# that waits wait too.
WRITE_WAIT_SECONDS = 5
# Webhooks a second above which the in-process worker of `gateway serve` pauses (a flood).
BUSY_RATE = 100.0
# Seconds between two checkpoints of SQLite's WAL while webhooks are written (at most: none
# while nothing is). SQLite's own, in the committing thread every 4 MB of WAL, made the commits
# cost as much as the inserts: a quarter of the webhook writer's time under a burst, and the
# batches behind them waited (docs/benchmarks.md).
CHECKPOINT_EVERY = 0.25


@dataclass(frozen=True)
class Stored:
    message_id: int | None  # None for a duplicate delivery or a quarantined one
    duplicate: bool
    enqueued: bool
    quarantined: bool = False  # kept aside with its reason (``quarantine``): answer it as stored


# Half of a UTF-16 surrogate pair on its own: JSON lets a payload carry one ("\\ud83d" from a
# phone that cut an emoji in two), and no database column can store it as text.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and no UTF-8 column a lone surrogate: both become the
    # replacement character; the exact value stays in the encrypted raw payload.
    return _LONE_SURROGATE.sub("\ufffd", value.replace("\x00", "\ufffd"))


def _raw_bytes(raw: Any) -> bytes:
    """The provider's payload as stored: UTF-8 JSON, or ASCII JSON (every character escaped,
    losslessly) when it holds what UTF-8 cannot encode."""
    try:
        return json.dumps(raw, ensure_ascii=False, sort_keys=True).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(raw, ensure_ascii=True, sort_keys=True).encode("ascii")


def _row(runtime: Runtime, message: IncomingMessage, data_path: Path) -> dict[str, Any]:
    vault = runtime.vault
    settings = runtime.settings
    # The one place every channel's text passes: cut to MAX_TEXT_CHARS, kept whole beside.
    message = textcap.capped(message, data_path, settings.max_text_chars, settings.language)
    raw = _raw_bytes(message.raw)
    provider_id = _text(message.provider_message_id)  # as stored: the row's key in the bindings
    return {
        "channel": message.channel,
        "provider_message_id": provider_id,
        # Every key's hash, current first: ``_settle_hashes`` keeps the one the person has.
        "sender_hash": list(vault.lookup_hashes(message.channel, message.sender).values()),
        "sender_encrypted": vault.encrypt(
            message.sender, inbound_sender(message.channel, provider_id)
        ),
        "recipient": _text(message.recipient) if message.recipient is not None else None,
        "text": _text(message.text),
        "attachments": message.attachments,
        "provider_ref": message.provider_ref,
        "kind": message.kind,
        "provider": message.provider or None,
        "raw_encrypted": vault.encrypt_bytes(raw, inbound_raw(message.channel, provider_id)),
        "received_at": message.received_at,
        "state": "received",
        "attempts": 0,
    }


# The columns ingest writes, in the order of the driver-level statement's values.
_COLUMNS = (
    "channel",
    "provider_message_id",
    "sender_hash",
    "sender_encrypted",
    "recipient",
    "text",
    "attachments",
    "provider_ref",
    "kind",
    "provider",
    "raw_encrypted",
    "received_at",
    "state",
    "attempts",
    "job_id",
)
# Bound values per statement: SQLite before 3.32 takes no more than 999.
_MAX_VALUES = 999
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _insert_ignoring_duplicates(
    runtime: Runtime, rows: list[dict[str, Any]], checkpoints_elsewhere: bool = False
) -> dict[str, int]:
    """Insert rows, skipping (channel, provider id) pairs already stored; returns new ids.

    One multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` per (up to) 66 rows, handed to
    the driver as it is: SQLAlchemy's own insertmanyvalues built the same statement, with about a
    fifth of the writer thread's time spent in its per-execution bookkeeping (cache keys,
    compiled parameters, result processing). The values still go through each column's own
    bind processing (JSON, UTC datetimes), so that what is stored is what the ORM stores."""
    if not rows:
        return {}
    engine = runtime.engine
    dialect = engine.dialect
    placeholder = _PLACEHOLDERS[dialect.paramstyle]  # pysqlite's and psycopg's
    table = cast(Table, InboundMessage.__table__)
    processors = [table.c[name].type._cached_bind_processor(dialect) for name in _COLUMNS]
    try:
        values = [
            tuple(
                row[name] if process is None else process(row[name])
                for name, process in zip(_COLUMNS, processors, strict=True)
            )
            for row in rows
        ]
    except (ValueError, TypeError) as exc:
        raise _refused_value(exc) from exc
    per_statement = max(1, _MAX_VALUES // len(_COLUMNS))
    new: dict[str, int] = {}
    with (
        db.waiting_at_most(engine, WRITE_WAIT_SECONDS) as connection,
        db.leaving_checkpoints(connection) if checkpoints_elsewhere else nullcontext(),
        connection.begin(),
    ):
        if dialect.name == "postgresql":
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{WRITE_WAIT_SECONDS}s'")
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            try:
                result = connection.exec_driver_sql(
                    _insert_sql(placeholder, len(chunk)), tuple(v for row in chunk for v in row)
                )
            except (ValueError, TypeError) as exc:
                # psycopg adapts a JSON value only now, and raises the encoder's own error.
                raise _refused_value(exc) from exc
            for row_id, channel, provider_id in result:
                new[f"{channel}\x00{provider_id}"] = row_id
    return new


def _refused_value(exc: Exception) -> StatementError:
    """A value the column types or the driver refuse, reported as SQLAlchemy reports one
    (not an outage: ``store`` stores the rows one by one and quarantines that one)."""
    return StatementError("a value the column types refuse", None, None, exc, hide_parameters=True)


@functools.lru_cache(maxsize=256)
def _insert_sql(placeholder: str, count: int) -> str:
    one = "(" + ", ".join([placeholder] * len(_COLUMNS)) + ")"
    return (
        # Only this module's constants and placeholders: no value is ever formatted in.
        f"INSERT INTO inbound_messages ({', '.join(_COLUMNS)}) VALUES "  # noqa: S608
        + ", ".join([one] * count)
        + " ON CONFLICT (channel, provider_message_id) DO NOTHING"
        " RETURNING id, channel, provider_message_id"
    )


def _settle_hashes(runtime: Runtime, rows: list[dict[str, Any]]) -> None:
    """Each row's sender hash: the one the sender's rows already carry, under whichever key of
    the ring (a rotation re-hashes people one at a time, gateway.persons), else the current
    key's. One look-up for the whole batch, and none with a single key in the ring."""
    several = [row for row in rows if len(row["sender_hash"]) > 1]
    known: set[str] = set()
    if several:
        with runtime.engine.connect() as connection:
            known = persons.known_among(
                connection, {h for row in several for h in row["sender_hash"]}
            )
    for row in rows:
        row["sender_hash"] = persons.choose(row["sender_hash"], known)


def store(
    runtime: Runtime, messages: Sequence[IncomingMessage], *, checkpoints_elsewhere: bool = False
) -> list[Stored]:
    """Store messages and enqueue the new ones. Raises SQLAlchemyError if the database is down
    (the caller answers the provider with a 5xx so that it retries); never raises for Redis.
    ``checkpoints_elsewhere``: the caller checkpoints SQLite's WAL on another thread
    (``BatchingIngest``), so these commits do not (gateway.db.leaving_checkpoints).

    A message the database refuses for what it holds (a field longer than its column, a value
    it cannot take) is quarantined with its reason (``quarantine``) and answered like a stored
    one: the provider retrying it would change nothing, and it must never hold up the messages
    behind it (a mailbox read, a batch of webhooks)."""
    if not messages:
        return []
    results: list[Stored | None] = [None] * len(messages)
    rows: dict[int, dict[str, Any]] = {}
    data_path = runtime.settings.data_path  # resolved once a batch: it asks the file system
    for index, message in enumerate(messages):
        problem = _refused(message)
        if problem is None:
            try:
                rows[index] = _row(runtime, message, data_path)
            except (ValueError, TypeError, UnicodeError) as exc:
                problem = f"unreadable: {type(exc).__name__}"
        if problem is not None:
            quarantine(runtime, message, problem)
            results[index] = Stored(None, False, False, quarantined=True)
    job_id = (
        inbound_batch_job_id([f"{m.channel}:{m.provider_message_id}" for m in messages])
        if len(rows) > 1
        else None
    )
    for row in rows.values():
        row["job_id"] = job_id
    _settle_hashes(runtime, list(rows.values()))
    new_ids: dict[str, int] = {}
    try:
        new_ids = (
            _insert_ignoring_duplicates(runtime, list(rows.values()), checkpoints_elsewhere)
            if rows
            else {}
        )
    except SQLAlchemyError as exc:
        if is_outage(exc):
            raise
        # One bad row must not cost the others their place: store them one by one, and
        # quarantine the one the database refuses.
        log.warning(
            "batch insert of %d message(s) refused (%s); storing them one by one",
            len(rows),
            type(exc).__name__,
        )
        for index, row in rows.items():
            try:
                new_ids.update(_insert_ignoring_duplicates(runtime, [row], checkpoints_elsewhere))
            except SQLAlchemyError as one:
                if is_outage(one):
                    raise
                quarantine(runtime, messages[index], f"refused by the database: {_why(one)}")
                results[index] = Stored(None, False, False, quarantined=True)
    to_enqueue: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, row in rows.items():
        if results[index] is not None:
            continue
        key = f"{row['channel']}\x00{row['provider_message_id']}"
        message_id = new_ids.get(key)
        if message_id is None or key in seen:
            log.info(
                "duplicate %s delivery absorbed (sender %s)",
                row["channel"],
                log_id(row["sender_hash"]),
            )
            results[index] = Stored(None, True, False)
            continue
        seen.add(key)
        to_enqueue.append((message_id, row["channel"]))
        results[index] = Stored(message_id, False, True)
    done = [r for r in results if r is not None]
    assert len(done) == len(messages)
    if not enqueue.inbound(runtime, to_enqueue, job_id):
        done = [Stored(r.message_id, r.duplicate, False, quarantined=r.quarantined) for r in done]
    return done


# The columns a provider's values go into, and their sizes (gateway.models.InboundMessage).
_LIMITS = {
    "provider_message_id": 128,
    "recipient": 128,
    "provider_ref": 64,
    "kind": 16,
    "provider": 16,
}


def _refused(message: IncomingMessage) -> str | None:
    """Why a message cannot be stored as it is (checked before the database would say it)."""
    if len(message.channel) > 16:
        return "channel name too long"
    if not message.provider_message_id:
        return "no provider message id"
    for name, limit in _LIMITS.items():
        value = getattr(message, name)
        if value is not None and len(value) > limit:
            return f"{name} longer than {limit} characters"
    return None


def is_outage(exc: BaseException) -> bool:
    """Whether a database error says the database cannot take any message right now (down,
    locked, a schema behind its code: the provider must retry later), rather than that it
    refuses this message's data (too long a value, a constraint): that one is quarantined."""
    from sqlalchemy.exc import DataError, IntegrityError, StatementError

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return not isinstance(exc, (DataError, IntegrityError))
    # A value our own column types refused before it reached the database: the data.
    return not isinstance(exc, StatementError)


def _why(exc: SQLAlchemyError) -> str:
    """The database's reason without the statement or its values (which hold the message)."""
    original = getattr(exc, "orig", None)
    name = type(original).__name__ if original is not None else type(exc).__name__
    diag = getattr(original, "diag", None)
    column = getattr(diag, "column_name", None) if diag is not None else None
    return f"{name}" + (f" ({column})" if column else "")


def quarantine(runtime: Runtime, message: IncomingMessage, reason: str) -> None:
    """Keep a message that cannot be stored as one: encrypted, with its reason, out of the way
    of those behind it. Raises SQLAlchemyError only when the database is down."""
    vault = runtime.vault
    provider_key = hashlib.sha256(
        f"{message.channel}\x00{message.provider_message_id}".encode("utf-8", "replace")
    ).hexdigest()
    payload = json.dumps(
        {
            "channel": message.channel,
            "provider_message_id": message.provider_message_id,
            "sender": message.sender,
            "recipient": message.recipient,
            "text": message.text,
            "attachments": message.attachments,
            "raw": message.raw,
            "provider_ref": message.provider_ref,
            "kind": message.kind,
            "provider": message.provider or None,
        },
        ensure_ascii=False,
        default=str,
    ).encode("utf-8", "replace")
    candidates: list[str] = []
    try:
        candidates = list(vault.lookup_hashes(message.channel, message.sender).values())
    except (ValueError, TypeError, AttributeError):
        pass
    with runtime.sessions.begin() as session:
        # The hash the sender's rows have (gateway.persons), so that an erasure finds it.
        known = persons.known_among(session, set(candidates)) if len(candidates) > 1 else set()
        sender_hash = persons.choose(candidates, known) if candidates else None
        session.add(
            QuarantinedMessage(
                channel=message.channel[:16],
                provider_key=provider_key,
                sender_hash=sender_hash,
                reason=reason[:500],
                payload_encrypted=vault.encrypt_bytes(
                    payload, quarantine_payload(message.channel[:16], provider_key)
                ),
                received_at=message.received_at,
            )
        )
    log.warning(
        "a %s message was quarantined (sender %s): %s",
        message.channel[:16],
        log_id(sender_hash),
        reason,
    )


class BatchingIngest:
    """Group commit for concurrent webhooks, on one writer thread (SQLite has one writer)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: asyncio.Queue[tuple[IncomingMessage, asyncio.Future[Stored]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        # SQLite: the WAL is checkpointed here, beside the writer, never in a webhook's commit.
        self._checkpoints = runtime.engine.dialect.name == "sqlite"
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = 0.0
        self.messages = 0
        self.batches = 0
        self._window_start = time.monotonic()
        self._window_count = 0
        self._last_rate = 0.0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="ingest-writer")

    async def stop(self) -> None:
        if self._task is not None:
            # Let what was accepted be written before the process goes.
            while self._queue is not None and not self._queue.empty():
                await asyncio.sleep(0.01)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)
        if self.batches:
            log.info(
                "ingest: %d message(s) stored in %d batch(es), %.1f per batch",
                self.messages,
                self.batches,
                self.messages / self.batches,
            )

    def busy(self, threshold: float = BUSY_RATE) -> bool:
        """Whether webhooks are arriving faster than ``threshold`` a second (over the last
        full second): a worker sharing this process backs off, since answering providers
        comes first and stored messages wait safely."""
        now = time.monotonic()
        if now - self._window_start > 2.0:
            return False
        return (
            max(self._last_rate, self._window_count / max(now - self._window_start, 1.0))
            > threshold
        )

    async def accept(self, message: IncomingMessage) -> Stored:
        assert self._queue is not None, "BatchingIngest.start() was not awaited"
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._last_rate = self._window_count / (now - self._window_start)
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        await self._queue.put((message, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            messages = [m for m, _ in batch]
            self.messages += len(messages)
            self.batches += 1
            try:
                results = await loop.run_in_executor(
                    self._executor,
                    functools.partial(
                        store, self.runtime, messages, checkpoints_elsewhere=self._checkpoints
                    ),
                )
            except Exception as exc:
                if isinstance(exc, SQLAlchemyError) and is_outage(exc):
                    # Every webhook of the batch answers 503: the incident is logged once
                    # there (gateway.outages), not once per batch.
                    log.debug("could not store %d message(s): database unavailable", len(batch))
                else:
                    log.exception("could not store %d message(s)", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            self._maybe_checkpoint(loop)

    def _maybe_checkpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a checkpoint of SQLite's WAL on its own thread, unless one is running or
        one ran less than CHECKPOINT_EVERY ago. Nobody waits for it: the rows are committed
        already, and a checkpoint that fails (a locked database) is tried again later."""
        if not self._checkpoints:
            return
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        now = time.monotonic()
        if now - self._last_checkpoint < CHECKPOINT_EVERY:
            return
        self._last_checkpoint = now
        self._checkpointing = loop.run_in_executor(self._checkpointer, self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            db.checkpoint(self.runtime.engine)
        except (SQLAlchemyError, sqlite3.Error) as exc:
            log.debug("WAL checkpoint put off: %s", type(exc).__name__)
