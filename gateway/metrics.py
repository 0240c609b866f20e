"""What an operator watches: Prometheus metrics (``/metrics``) and readiness (``/readyz``).

Two kinds of figures:

- **Counters** of events (webhooks answered, by provider and status; signature refusals;
  seconds of audio transcribed and seconds spent on it). Each process adds to its own tally
  and flushes it to one Redis hash (``HINCRBYFLOAT``), every few seconds from a web process,
  at the end of each job in a worker (a forked job's process is gone right after). So the
  figures are those of the whole installation, whatever the number of web processes,
  workers and machines, and they survive restarts (Prometheus copes with the rare reset when
  Redis itself loses them). A tally that cannot reach Redis is kept for the next flush.
- **Gauges** read at scrape time, from Redis and the database: queue depths and the age of
  each queue's oldest job, running jobs, workers alive, messages that could not be
  delivered (the dead-letter list), the moderation backlog per campaign, voice messages
  waiting for a transcript and the age of the oldest.

Nothing personal is ever a label or a value: labels are providers, statuses, queue names,
campaign slugs. ``/metrics`` answers requests from the machine itself (a Prometheus beside
it, or a tunnel), or with ``Authorization: Bearer <METRICS_TOKEN>`` when that setting is set;
a request a reverse proxy forwarded (``X-Forwarded-For``) is not from the machine.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from gateway.models import Campaign, Contribution, OutboundMessage
from gateway.queues import QUEUES
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

COUNTERS_KEY = "gateway:metrics:counters"
KEEP_COUNTERS = 7 * 24 * 3600
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Counters: name -> (help, label names). Every counter is declared here, so a scrape shows
# each one (at 0) before its first event, and a typo in a name fails loudly.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "webhook_requests": (
        "Webhook requests answered, by provider and HTTP status",
        ("provider", "status"),
    ),
    "webhook_signature_failures": (
        "Webhook requests refused: signature or secret missing or wrong",
        ("provider",),
    ),
    "outbound_sends": (
        "Messages handed to a provider, by result: sent, retry (refused for now), failed",
        ("provider", "result"),
    ),
    "transcribed_audio_seconds": ("Seconds of audio transcribed", ("language",)),
    "transcription_seconds": (
        "Seconds spent transcribing (real-time factor: this / audio)",
        ("language",),
    ),
}


class Tally:
    """One process's counts not yet flushed to Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}

    def add(self, name: str, value: float = 1, **labels: str) -> None:
        declared = COUNTERS[name][1]
        if set(labels) != set(declared):
            raise ValueError(f"counter {name} takes the labels {declared}, not {sorted(labels)}")
        field = json.dumps([name, [labels[label] for label in declared]])
        with self._lock:
            self._pending[field] = self._pending.get(field, 0.0) + value

    def flush(self, redis: Any) -> bool:
        """Adds the pending counts to Redis; False (and kept for the next time) if Redis is
        unreachable."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return True
        try:
            with redis.pipeline(transaction=False) as pipe:
                for field, value in pending.items():
                    pipe.hincrbyfloat(COUNTERS_KEY, field, value)
                # Refreshed at each flush: counts vanish only after a week without any event
                # (Prometheus sees a reset), and nothing in Redis lives unbounded.
                pipe.expire(COUNTERS_KEY, KEEP_COUNTERS)
                pipe.execute()
        except (RedisError, OSError) as exc:
            with self._lock:
                for field, value in pending.items():
                    self._pending[field] = self._pending.get(field, 0.0) + value
            log.debug("metrics: flush postponed (%s)", type(exc).__name__)
            return False
        return True


TALLY = Tally()


def count(name: str, value: float = 1, **labels: str) -> None:
    TALLY.add(name, value, **labels)


def flush(redis: Any) -> bool:
    return TALLY.flush(redis)


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueState:
    name: str
    waiting: int
    running: int
    oldest_age: float  # seconds; 0 when empty


def queue_states(runtime: Runtime, now: float | None = None) -> list[QueueState]:
    from rq.registry import StartedJobRegistry

    now = time.time() if now is None else now
    states = []
    for name in QUEUES:
        queue = runtime.queue(name)
        waiting = queue.count
        oldest = 0.0
        first = queue.get_job_ids(0, 0)
        if first:
            job = queue.fetch_job(first[0])
            if job is not None and job.enqueued_at is not None:
                enqueued = job.enqueued_at.replace(tzinfo=job.enqueued_at.tzinfo or UTC)
                oldest = max(0.0, now - enqueued.timestamp())
        running = StartedJobRegistry(name, connection=runtime.redis).count
        states.append(QueueState(name, waiting, running, oldest))
    return states


def workers_alive(runtime: Runtime) -> int:
    from rq import Worker

    return int(Worker.count(connection=runtime.redis))


class _Collector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield from self._redis_gauges()
        yield from self._database_gauges()

    def _counters(self) -> Iterator[Metric]:
        stored: dict[Any, Any] = {}
        try:
            stored = self.runtime.redis.hgetall(COUNTERS_KEY)
        except (RedisError, OSError):
            pass
        families = {
            name: CounterMetricFamily(f"gateway_{name}", help_text, labels=list(labels))
            for name, (help_text, labels) in COUNTERS.items()
        }
        for field, value in stored.items():
            try:
                name, values = json.loads(field)
                families[name].add_metric([str(v) for v in values], float(value))
            except (ValueError, KeyError, TypeError):
                continue  # a counter a newer or older version wrote: not ours to show
        yield from families.values()

    def _redis_gauges(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gateway_redis_up", "Whether Redis answered this scrape")
        try:
            states = queue_states(self.runtime)
            workers = workers_alive(self.runtime)
        except (RedisError, OSError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "gateway_queue_depth", "Jobs waiting, per queue", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "gateway_queue_oldest_job_age_seconds",
            "Age of the oldest waiting job, per queue (0 when empty)",
            labels=["queue"],
        )
        running = GaugeMetricFamily(
            "gateway_queue_running_jobs", "Jobs running, per queue", labels=["queue"]
        )
        for state in states:
            depth.add_metric([state.name], state.waiting)
            age.add_metric([state.name], state.oldest_age)
            running.add_metric([state.name], state.running)
        yield depth
        yield age
        yield running
        alive = GaugeMetricFamily("gateway_workers", "Workers registered and alive")
        alive.add_metric([], workers)
        yield alive

    def _database_gauges(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gateway_database_up", "Whether the database answered this scrape")
        try:
            figures = database_figures(self.runtime)
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        dead = GaugeMetricFamily(
            "gateway_dead_letters",
            "Messages that could not be delivered, waiting for an admin's retry or discard",
            labels=["channel"],
        )
        for channel, n in figures.dead_letters.items():
            dead.add_metric([channel], n)
        yield dead
        backlog = GaugeMetricFamily(
            "gateway_moderation_backlog",
            "Contributions waiting for a moderator, per campaign",
            labels=["campaign"],
        )
        for slug, n in figures.backlog.items():
            backlog.add_metric([slug], n)
        yield backlog
        pending = GaugeMetricFamily(
            "gateway_transcriptions_pending", "Voice messages waiting for their transcript"
        )
        pending.add_metric([], figures.transcriptions_pending)
        yield pending
        lag = GaugeMetricFamily(
            "gateway_transcription_lag_seconds",
            "Age of the oldest voice message waiting for its transcript (0 when none)",
        )
        lag.add_metric([], figures.transcription_lag)
        yield lag


@dataclass(frozen=True)
class DatabaseFigures:
    dead_letters: dict[str, int]
    backlog: dict[str, int]
    transcriptions_pending: int
    transcription_lag: float


def database_figures(runtime: Runtime) -> DatabaseFigures:
    """Counts on indexed columns only (statuses), so a scrape stays cheap on a big table."""
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        dead = dict(
            session.execute(
                select(OutboundMessage.channel, func.count())
                .where(OutboundMessage.status == "failed")
                .group_by(OutboundMessage.channel)
            ).all()
        )
        backlog = dict(
            session.execute(
                select(Campaign.slug, func.count(Contribution.id))
                .join(Contribution, Contribution.campaign_id == Campaign.id)
                .where(Contribution.status == "pending")
                .group_by(Campaign.slug)
            ).all()
        )
        for (slug,) in session.execute(select(Campaign.slug)):
            backlog.setdefault(slug, 0)
        pending, oldest = session.execute(
            select(func.count(), func.min(Contribution.received_at)).where(
                Contribution.transcription_status == "pending"
            )
        ).one()
    lag = 0.0
    if oldest is not None:
        lag = max(0.0, (now - oldest.replace(tzinfo=oldest.tzinfo or UTC)).total_seconds())
    return DatabaseFigures(dead, backlog, int(pending), lag)


def exposition(runtime: Runtime) -> bytes:
    """The installation's metrics in Prometheus's text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(runtime))
    return generate_latest(registry)


# -- access ----------------------------------------------------------------------------------


def allowed(remote: str | None, forwarded: bool, authorization: str, token: str) -> bool:
    """Whether a scrape may read the metrics: the right bearer token when METRICS_TOKEN is
    set; otherwise only from the machine itself, not forwarded by a proxy."""
    if token:
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)
    if forwarded or not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return remote.startswith("/")  # a Unix socket: only local users reach it


# -- readiness -------------------------------------------------------------------------------


def database_down(runtime: Runtime) -> str | None:
    """None when the database answers; else the error's type (never its text: a URL)."""
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return type(exc).__name__
    return None


def redis_down(runtime: Runtime) -> str | None:
    """None when Redis answers; else the error's type."""
    try:
        runtime.redis.ping()
    except Exception as exc:
        return type(exc).__name__
    return None


def readiness(runtime: Runtime) -> dict[str, str]:
    """Each part's state, ``ok`` or the reason it is not: the database, Redis, and the
    workers (at least one alive, or the process's own when it runs one)."""
    state: dict[str, str] = {}
    down = database_down(runtime)
    state["database"] = f"unreachable ({down})" if down else "ok"
    down = redis_down(runtime)
    if down:
        state["redis"] = f"unreachable ({down})"
        state["workers"] = "unknown: Redis is unreachable"
        return state
    state["redis"] = "ok"
    try:
        workers = workers_alive(runtime)
    except (RedisError, OSError) as exc:
        workers, state["redis"] = 0, f"unreachable ({type(exc).__name__})"
    state["workers"] = "ok" if workers else "no worker alive: start `gateway worker`"
    return state


# -- history, for the console's operations page ------------------------------------------------

HISTORY_KEY = "gateway:metrics:history"
SAMPLED_KEY = "gateway:metrics:sampled"
SAMPLE_EVERY = 60  # seconds between samples, whatever the number of web processes
KEEP_SAMPLES = 24 * 60  # a day of minutes
KEEP_HISTORY = (
    2 * 24 * 3600
)  # the list expires by itself (docs/privacy.md: Redis keeps nothing long)
# What the operations page draws over the last hours, in this order.
SERIES = (
    "inbound_waiting",
    "inbound_oldest_age",
    "outbound_waiting",
    "transcription_waiting",
    "workers",
    "dead_letters",
    "moderation_backlog",
    "transcription_lag",
    "webhooks",
    "signature_failures",
)


def snapshot(runtime: Runtime, now: float | None = None) -> dict[str, float]:
    """The figures at a glance, now: one number per series."""
    now = time.time() if now is None else now
    states = {state.name: state for state in queue_states(runtime, now)}
    figures = database_figures(runtime)
    stored = runtime.redis.hgetall(COUNTERS_KEY)
    totals: dict[str, float] = {}
    for field_name, value in stored.items():
        try:
            name = json.loads(field_name)[0]
            totals[name] = totals.get(name, 0.0) + float(value)
        except (ValueError, IndexError, TypeError):
            continue
    return {
        "t": now,
        "inbound_waiting": states["inbound"].waiting,
        "inbound_oldest_age": round(states["inbound"].oldest_age, 1),
        "outbound_waiting": states["outbound"].waiting,
        "transcription_waiting": states["transcription"].waiting,
        "workers": workers_alive(runtime),
        "dead_letters": sum(figures.dead_letters.values()),
        "moderation_backlog": sum(figures.backlog.values()),
        "transcription_lag": round(figures.transcription_lag, 1),
        "webhooks": totals.get("webhook_requests", 0.0),
        "signature_failures": totals.get("webhook_signature_failures", 0.0),
    }


def record_sample(runtime: Runtime, now: float | None = None) -> bool:
    """Adds a snapshot to the history, at most once a minute across every process; False when
    another process took this minute's sample (or Redis or the database is away)."""
    try:
        if not runtime.redis.set(SAMPLED_KEY, 1, nx=True, ex=SAMPLE_EVERY - 5):
            return False
        sample = snapshot(runtime, now)
        with runtime.redis.pipeline() as pipe:
            pipe.rpush(HISTORY_KEY, json.dumps(sample))
            pipe.ltrim(HISTORY_KEY, -KEEP_SAMPLES, -1)
            pipe.expire(HISTORY_KEY, KEEP_HISTORY)
            pipe.execute()
    except (RedisError, OSError, SQLAlchemyError) as exc:
        log.debug("metrics: no sample this minute (%s)", type(exc).__name__)
        return False
    return True


def history(runtime: Runtime, hours: float = 6) -> list[dict[str, float]]:
    """The samples of the last ``hours``, oldest first."""
    since = time.time() - hours * 3600
    samples = []
    for raw in runtime.redis.lrange(HISTORY_KEY, -int(hours * 3600 / SAMPLE_EVERY) - 5, -1):
        try:
            sample = json.loads(raw)
        except ValueError:
            continue
        if isinstance(sample, dict) and float(sample.get("t", 0)) >= since:
            samples.append(sample)
    return samples
