"""Worker start-up and shutdown: the standalone ``gateway worker`` and the thread inside ``serve``.

Stopping. SIGTERM or SIGINT (systemd, Docker, Ctrl+C) stops a worker within ten seconds
whatever it is doing, so that a ``systemctl restart`` never hangs and never ends in a SIGKILL
in the middle of a job:

- idle, it waits on Redis one second at a time and notices the request within a second;
- reconnecting to Redis, every pause between attempts is cut short, and an attempt fails fast
  (gateway.queues: a short connect timeout, few retries);
- busy, the job gets ``STOP_GRACE`` seconds to finish; then its work horse is killed and the
  job is put back at the front of its queue, for another worker or the next start to run
  again (every job is idempotent). A second signal does that at once (a cold shutdown).

RQ's own warm shutdown waits for the job however long it takes, blocks a minute at a time on
Redis, and sleeps up to a minute between reconnection attempts without looking at a stop
request: hence the overrides below. A watchdog ends the process at ``STOP_DEADLINE`` if
something still blocks (a Redis server that accepts connections and never answers).

Start-up. Both kinds of worker first take back what a dead process left behind
(workers.recovery), then sweep, then work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from redis.exceptions import RedisError
from rq import SimpleWorker, Worker, worker_registration
from rq.exceptions import DequeueTimeout, StopRequested
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import TimerDeathPenalty
from rq.utils import now
from rq.worker import BaseWorker, WorkerStatus
from sqlalchemy.exc import SQLAlchemyError

from gateway import locks
from gateway.queues import QUEUES, process_tag
from gateway.runtime import Runtime
from workers import context
from workers.failures import RedactedFailures
from workers.recovery import (
    PROCESS_FIELD,
    interrupted_sends,
    recover,
    requeue,
    running,
    take_back_interrupted,
)
from workers.sweeper import sweep

log = logging.getLogger(__name__)

# Seconds a running job gets to finish after a stop request, then it is queued again.
STOP_GRACE = 5.0
# Seconds after the stop request at which the process ends whatever blocks it.
STOP_DEADLINE = 9.0
# Seconds a worker blocks on Redis waiting for a job: how soon an idle worker sees a stop request.
POLL = 1
# RQ keeps a worker's registration for worker_ttl + 60 s after its last heartbeat; ours beat
# every POLL seconds when idle and every second when busy, so that the registration of a
# worker that died on another machine expires within a minute and a half (workers.recovery).
WORKER_TTL = 30
# Pauses between attempts to reach Redis again.
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 5.0


class Shutdown:
    """A stop request, shared by a process's workers: the first signal asks for a warm
    shutdown, the second for a cold one. Set from a signal handler, so it only sets
    attributes (no lock, no log); waits poll it."""

    def __init__(self) -> None:
        self.requested_at: float | None = None
        self.cold = False

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def request(self) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()
        else:
            self.cold = True

    def grace_over(self) -> bool:
        if self.requested_at is None:
            return False
        return self.cold or time.monotonic() - self.requested_at >= STOP_GRACE

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, less if a stop is requested; returns whether one was."""
        end = time.monotonic() + seconds
        while self.requested_at is None:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(0.1, left))
        return self.requested


class StoppableWorker(BaseWorker):
    """What both kinds of worker share: a dequeue loop that sees a stop request within a
    second, survives Redis outages, and tears down without Redis."""

    should_pause: Callable[[], bool] | None = None

    def __init__(self, *args: Any, shutdown: Shutdown | None = None, **kwargs: Any) -> None:
        self.shutdown = shutdown or Shutdown()  # before RQ's __init__ sets _stop_requested
        kwargs.setdefault("worker_ttl", WORKER_TTL)
        super().__init__(*args, **kwargs)
        # Which process this is, beyond its pid (workers.recovery): taken in the worker's own
        # process, before any fork.
        self.process_since = locks.this_process().since

    def serialize(self) -> dict[Any, Any]:
        return {**super().serialize(), PROCESS_FIELD: self.process_since}

    def register_birth(self) -> None:
        super().register_birth()
        running(self.name, now=True)

    # RQ's loops look at _stop_requested (between jobs, and while suspended by `rq suspend`).
    @property
    def _stop_requested(self) -> bool:
        return self.shutdown.requested

    @_stop_requested.setter
    def _stop_requested(self, value: bool) -> None:
        if value:
            self.shutdown.request()

    def _install_signal_handlers(self) -> None:
        # The process installs its own, once (run_worker); a thread worker leaves signals to
        # its host process.
        pass

    @property
    def dequeue_timeout(self) -> int:
        return POLL

    @property
    def connection_timeout(self) -> int:
        # RQ raises the connection's read timeout to dequeue_timeout + 10; a blocking pop of
        # POLL seconds needs less, and a hung server must not hold a stop up for long.
        return POLL + 4

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """Wait for a job, POLL seconds at a time, looking at the stop request in between.
        ``timeout`` None (burst): one look, and None when the queues are empty."""
        pause = RECONNECT_FIRST
        idle_marked = False
        paused_beat = 0.0
        while True:
            if self.shutdown.requested:
                self.log.info("Worker %s: stopping on request", self.name)
                raise StopRequested()
            if self.should_pause is not None and self.should_pause():
                if time.monotonic() - paused_beat > POLL:  # paused is alive, not dead
                    with contextlib.suppress(RedisError, OSError):
                        self.heartbeat()
                    paused_beat = time.monotonic()
                time.sleep(0.1)
                continue
            try:
                if not idle_marked:
                    self.set_state(WorkerStatus.IDLE)
                    self.procline("Listening on " + ",".join(self.queue_names()))
                    idle_marked = True
                self.heartbeat()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                result = self.queue_class.dequeue_any(
                    self._ordered_queues,
                    None if timeout is None else self.dequeue_timeout,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
            except DequeueTimeout:
                continue
            except (RedisError, OSError) as exc:
                if timeout is None:
                    raise
                self.log.warning(
                    "Worker %s: Redis unavailable (%s); trying again in %.1f s",
                    self.name,
                    exc,
                    pause,
                )
                self.shutdown.wait(pause)
                pause = min(pause * 2, RECONNECT_MAX)
                idle_marked = False
                continue
            if result is None:
                return None
            job, queue = result
            self.reorder_queues(reference_queue=queue)
            job.redis_server_version = self.get_redis_server_version()
            self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
            self.heartbeat()
            return result

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's heartbeat, which also writes who the worker is and lists it again: a Redis
        restarted without its data (or failed over) must still know this worker as alive,
        or recovery (workers.recovery) would take its running job for abandoned."""
        self.last_heartbeat = now()
        connection = pipeline if pipeline is not None else self.connection.pipeline()
        connection.hset(self.key, mapping=self.serialize())
        connection.expire(self.key, timeout or self.worker_ttl + 60)
        worker_registration.register(self, connection)
        if pipeline is None:
            connection.execute()

    def subscribe(self) -> None:
        """RQ's command channel (`rq shutdown`, stop a job), listened to by a thread.

        RQ lets that thread block a minute at a time and relies on the reply to UNSUBSCRIBE to
        wake it at teardown; when the reply is read before the thread's stop flag is set, or
        the connection was lost (a Redis restart), redis-py's stop() waits the full minute
        (rq/rq#1613): the cause of `gateway worker` ignoring SIGTERM after a Redis restart.
        Here the thread looks at its flag every half second."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=0.5, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def unsubscribe(self) -> None:
        thread, pubsub = self.pubsub_thread, self.pubsub
        self.pubsub_thread = None
        if thread is None or pubsub is None:
            return
        with contextlib.suppress(RedisError, OSError):
            pubsub.unsubscribe()
        try:
            thread.stop(timeout=POLL + 2)  # type: ignore[call-arg,unused-ignore]
        except TypeError:  # redis-py before 8: stop() takes no timeout and does not wait
            thread.stop()
        with contextlib.suppress(RedisError, OSError):
            pubsub.close()

    def teardown(self) -> None:
        # Each step on its own: unregistering needs Redis (without it the registration expires
        # by itself), and the command thread must stop whatever happened to Redis.
        if self.is_horse:
            return
        running(self.name, now=False)
        try:
            self.register_death()
        except (RedisError, OSError) as exc:
            self.log.warning("Worker %s: could not unregister (%s)", self.name, exc)
        self.unsubscribe()


class ThreadWorker(StoppableWorker, RedactedFailures, SimpleWorker):
    """An RQ worker that runs inside another process's thread (``gateway serve``).

    RQ installs signal handlers and times jobs out with SIGALRM, both of which only work in
    the main thread; this one leaves signals to the host process and times jobs out with a
    timer. ``should_pause`` (set by ``gateway serve``): true while webhooks flood in; the
    worker waits, because it shares the interpreter (and its lock) with the web server, and
    answering providers comes first.
    """

    death_penalty_class = TimerDeathPenalty

    def stop(self) -> None:
        self.shutdown.request()


class ForkWorker(StoppableWorker, RedactedFailures, Worker):
    """``gateway worker``: RQ's forking worker, each job in a child process ("work horse"),
    with a bounded warm shutdown: a job still running STOP_GRACE seconds after the stop
    request is stopped and queued again."""

    _abandoned: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The parent looks at the horse (and at the stop request) every second.
        kwargs.setdefault("job_monitoring_interval", 1)
        super().__init__(*args, **kwargs)

    def setup_work_horse_signals(self) -> None:
        # systemd (KillMode=control-group) and `docker stop` signal every process of the
        # service, the horse included: the parent decides when the job stops, not the signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def execute_job(self, job: Job, queue: Queue) -> None:
        self._abandoned = None
        super().execute_job(job, queue)

    def maintain_heartbeats(self, job: Job) -> None:
        """Called every second while the horse works."""
        if self.shutdown.grace_over() and self._abandoned is None and self.horse_pid:
            self.log.warning(
                "Worker %s: job %s still running %.0f s after the stop request; stopping it "
                "and queueing it again",
                self.name,
                job.id,
                STOP_GRACE,
            )
            self._abandoned = job.id
            self.kill_horse()  # SIGKILL to the horse's process group; waited for by RQ
            return
        try:
            super().maintain_heartbeats(job)
        except (RedisError, OSError) as exc:
            # Bookkeeping only: keep watching the horse through a Redis outage.
            self.log.warning("Worker %s: heartbeat failed (%s)", self.name, exc)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
    ) -> None:
        if job.id != self._abandoned:
            super().handle_job_failure(job, queue, started_job_registry, exc_string)
            return
        self._abandoned = None
        execution, self.execution = self.execution, None
        try:
            self.set_current_job_id(None)
            # A send it was in the middle of: checked with the provider before any new
            # attempt (workers.outbound), as after a crash.
            sends = interrupted_sends(job)
            if sends:
                try:
                    take_back_interrupted(context.get_runtime(), sends)
                except SQLAlchemyError as exc:  # the sweeper takes it back after STUCK_SENDING
                    self.log.warning(
                        "Worker %s: send(s) %s left sending (%s)", self.name, sends, exc
                    )
            requeue(self.connection, job, queue, execution.id if execution else None)
            # The horse may have died holding a sender's lock: the next holder must not wait.
            locks.release_dead(self.connection)
            self.log.info("Worker %s: job %s queued again", self.name, job.id)
        except (RedisError, OSError) as exc:
            # The next start's recovery takes it back (its worker is then dead).
            self.log.warning("Worker %s: could not queue job %s again (%s)", self.name, job.id, exc)


class Ticker(threading.Thread):
    """Runs the sweeper: due outbound retries every ``fast`` seconds; recovery and a full sweep
    every ``sweep_interval_seconds``."""

    def __init__(self, runtime: Runtime, fast: float = 2.0, on_tick: object = None) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.runtime = runtime
        self.fast = fast
        self.full_every = max(1, round(runtime.settings.sweep_interval_seconds / fast))
        self._stop_event = threading.Event()
        self.on_tick = on_tick

    def run(self) -> None:
        tick = 0
        while not self._stop_event.wait(self.fast):
            tick += 1
            full = tick % self.full_every == 0
            try:
                if callable(self.on_tick):
                    self.on_tick()
                if full:
                    recover(self.runtime)
                sweep(self.runtime, only_due_outbound=not full)
            except Exception:
                log.exception("sweeper tick failed")

    def stop(self) -> None:
        self._stop_event.set()


class InProcessWorker(threading.Thread):
    """The worker thread of ``gateway serve``; survives Redis restarts (a new RQ worker, with a
    new name, is registered each time the connection comes back)."""

    def __init__(
        self,
        runtime: Runtime,
        queues: Sequence[str] = QUEUES,
        should_pause: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(name="rq-worker", daemon=True)
        self.runtime = runtime
        self.queues = queues
        self.should_pause = should_pause
        self.shutdown = Shutdown()
        self._worker: ThreadWorker | None = None

    def run(self) -> None:
        pause = RECONNECT_FIRST
        while not self.shutdown.requested:
            started = time.monotonic()
            try:
                self._worker = ThreadWorker(
                    [self.runtime.queue(q) for q in self.queues],
                    connection=self.runtime.redis,
                    name=f"{process_tag()}-{uuid.uuid4().hex[:8]}",
                    shutdown=self.shutdown,
                )
                self._worker.should_pause = self.should_pause
                self._worker.work(with_scheduler=False, logging_level="WARNING")
            except (RedisError, OSError) as exc:
                log.warning("in-process worker lost Redis (%s); retrying", exc)
            except Exception:
                log.exception("in-process worker failed; restarting it")
            if time.monotonic() - started > 60:
                pause = RECONNECT_FIRST
            self.shutdown.wait(pause)
            pause = min(pause * 2, RECONNECT_MAX)

    def stop(self) -> None:
        if not self.shutdown.requested:  # a second request would not hurry a thread
            self.shutdown.request()

    def abandon(self) -> None:
        """The process exits while a job still runs in this thread: put the job back at the
        front of its queue and give up this process's locks, so that the next worker (or
        this gateway's next start) runs it again without waiting for anything to expire."""
        worker = self._worker
        if worker is None:
            return
        try:
            job_id = worker.get_current_job_id()
            execution = worker.execution
            if job_id is not None:
                job = Job.fetch(job_id, connection=worker.connection)
                requeue(
                    worker.connection,
                    job,
                    Queue(job.origin, connection=worker.connection),
                    execution.id if execution else None,
                )
                log.warning("job %s did not finish in time; queued again", job_id)
            locks.release_own()
            running(worker.name, now=False)
            worker.register_death()
        except Exception as exc:  # exiting anyway: the next start's recovery takes it back
            log.warning("could not hand the running job back (%s)", exc)


def start_thread_worker(
    runtime: Runtime,
    queues: Sequence[str] = QUEUES,
    should_pause: Callable[[], bool] | None = None,
) -> InProcessWorker:
    context.set_runtime(runtime)
    worker = InProcessWorker(runtime, queues, should_pause)
    worker.start()
    return worker


def stop_thread_worker(worker: InProcessWorker) -> None:
    """Ask the worker thread to stop (if not asked yet) and wait for it; a job still running
    STOP_GRACE seconds after the request is handed back to its queue."""
    worker.stop()
    asked = worker.shutdown.requested_at or time.monotonic()
    worker.join(max(0.0, asked + STOP_GRACE - time.monotonic()))
    if worker.is_alive():
        worker.abandon()


def run_worker(runtime: Runtime, queues: Sequence[str], burst: bool) -> bool:
    """``gateway worker``: recover and sweep once, then work until stopped; a sweeper thread
    runs beside a long-lived worker. RQ's forking Worker runs each job in a child process, so a
    crash in a job (a decoder on a corrupt file) never takes the worker down, and what the
    parent loaded (the speech model) is shared with every child."""
    context.set_runtime(runtime)
    shutdown = Shutdown()
    current: list[ForkWorker] = []
    _on_stop_signals(shutdown)
    _start_watchdog(shutdown, current)
    if not shutdown.requested:
        recover(runtime)
        sweep(runtime)
    ticker = None
    if not burst:
        # Beside an embedded Redis (a `gateway worker` next to `gateway serve` on one machine),
        # the worker keeps it alive too: should it die while the web server is idle, nobody
        # else would start it again, and the worker would wait for it forever.
        ticker = Ticker(runtime, on_tick=(lambda: revive_embedded(runtime)))
        ticker.start()
    worked = False
    pause = RECONNECT_FIRST
    try:
        while not shutdown.requested:
            started = time.monotonic()
            try:
                worker = ForkWorker(
                    [runtime.queue(q) for q in queues],
                    connection=runtime.redis,
                    name=f"{process_tag()}-{uuid.uuid4().hex[:8]}",
                    shutdown=shutdown,
                )
                current[:] = [worker]
                worked |= bool(worker.work(burst=burst, with_scheduler=False, logging_level="INFO"))
                if burst:
                    break
            except (RedisError, OSError) as exc:
                if burst:
                    raise
                # Redis restarts (maintenance, failover) must not need a human to restart us.
                log.warning("worker lost Redis (%s); reconnecting in %.1f s", exc, pause)
            if time.monotonic() - started > 60:
                pause = RECONNECT_FIRST
            shutdown.wait(pause)
            pause = min(pause * 2, RECONNECT_MAX)
    finally:
        if ticker:
            ticker.stop()
    if shutdown.requested:
        log.info("worker stopped on request")
    return worked


def revive_embedded(runtime: Runtime) -> None:
    """Start the embedded Redis again if it died (no-op with a Redis server of the city's)."""
    if runtime.embedded and not runtime.embedded.alive():
        log.warning("embedded Redis is down; restarting it")
        runtime.embedded.ensure_running()


def _on_stop_signals(shutdown: Shutdown) -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        shutdown.request()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _start_watchdog(shutdown: Shutdown, current: list[ForkWorker]) -> None:
    """The last resort: end the process STOP_DEADLINE seconds after the stop request, whatever
    still blocks it (the job at hand, if any, is taken back by the next start's recovery)."""

    def watch() -> None:
        while shutdown.requested_at is None:
            time.sleep(0.2)
        left = shutdown.requested_at + STOP_DEADLINE - time.monotonic()
        if left > 0:
            time.sleep(left)
        for worker in current:
            if worker.horse_pid:
                with contextlib.suppress(OSError):
                    os.killpg(os.getpgid(worker.horse_pid), signal.SIGKILL)
        log.error("worker still busy %.0f s after the stop request; exiting now", STOP_DEADLINE)
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=watch, name="stop-watchdog", daemon=True).start()
