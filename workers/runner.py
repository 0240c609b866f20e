"""Worker start-up: the standalone ``gateway worker`` process and the thread inside ``serve``."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError
from rq import SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.timeouts import TimerDeathPenalty

from gateway.queues import QUEUES, process_tag
from gateway.runtime import Runtime
from workers import context
from workers.sweeper import sweep

log = logging.getLogger(__name__)


class ThreadWorker(SimpleWorker):
    """An RQ worker that runs inside another process's thread (``gateway serve``).

    RQ installs signal handlers and times jobs out with SIGALRM, both of which only work in
    the main thread; this one leaves signals to the host process, times jobs out with a timer,
    and polls every second so that it stops promptly when asked.
    """

    death_penalty_class = TimerDeathPenalty
    # Set by `gateway serve`: true while webhooks flood in; the worker waits, because it shares
    # the interpreter (and its lock) with the web server, and answering providers comes first.
    should_pause: Callable[[], bool] | None = None

    def _install_signal_handlers(self) -> None:
        pass

    @property
    def dequeue_timeout(self) -> int:
        return 1

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> Any:
        # RQ's loop only checks for a stop request between jobs; come back every second so that
        # `gateway serve` stops promptly.
        while True:
            if self._stop_requested:
                raise StopRequested()
            if self.should_pause is not None and self.should_pause():
                time.sleep(0.1)
                continue
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time=timeout)
            if result is not None:
                return result

    def stop(self) -> None:
        self._stop_requested = True


class Ticker(threading.Thread):
    """Runs the sweeper: due outbound retries every ``fast`` seconds, a full sweep every
    ``sweep_interval_seconds``."""

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
            try:
                if callable(self.on_tick):
                    self.on_tick()
                sweep(self.runtime, only_due_outbound=tick % self.full_every != 0)
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
        self._stopping = threading.Event()
        self._worker: ThreadWorker | None = None

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._worker = ThreadWorker(
                    [self.runtime.queue(q) for q in self.queues],
                    connection=self.runtime.redis,
                    name=f"{process_tag()}-{uuid.uuid4().hex[:8]}",
                )
                self._worker.should_pause = self.should_pause
                if self._stopping.is_set():
                    break
                self._worker.work(with_scheduler=False, logging_level="WARNING")
            except (RedisError, OSError) as exc:
                log.warning("in-process worker lost Redis (%s); retrying", exc)
            except Exception:
                log.exception("in-process worker failed; restarting it")
            self._stopping.wait(1)

    def stop(self) -> None:
        self._stopping.set()
        if self._worker is not None:
            self._worker.stop()


def start_thread_worker(
    runtime: Runtime,
    queues: Sequence[str] = QUEUES,
    should_pause: Callable[[], bool] | None = None,
) -> InProcessWorker:
    context.set_runtime(runtime)
    worker = InProcessWorker(runtime, queues, should_pause)
    worker.start()
    return worker


def run_worker(runtime: Runtime, queues: Sequence[str], burst: bool) -> bool:
    """``gateway worker``: sweep once, then work; a sweeper thread runs beside a long-lived
    worker. RQ's forking Worker runs each job in a child process, so a crash in a job (a
    decoder on a corrupt file) never takes the worker down, and what the parent loaded (the
    speech model) is shared with every child."""
    context.set_runtime(runtime)
    sweep(runtime)
    ticker = None
    if not burst:
        ticker = Ticker(runtime)
        ticker.start()
    try:
        while True:
            worker = Worker([runtime.queue(q) for q in queues], connection=runtime.redis)
            try:
                return bool(worker.work(burst=burst, with_scheduler=False, logging_level="INFO"))
            except (RedisError, OSError) as exc:
                if burst:
                    raise
                # Redis restarts (maintenance, failover) must not need a human to restart us.
                log.warning("worker lost Redis (%s); reconnecting in 2 s", exc)
                time.sleep(2)
    finally:
        if ticker:
            ticker.stop()
