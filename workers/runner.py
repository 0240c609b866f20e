"""Worker start-up: the standalone ``gateway worker`` process and the thread inside ``serve``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from rq import SimpleWorker, Worker
from rq.timeouts import TimerDeathPenalty

from gateway.queues import QUEUES
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

    def _install_signal_handlers(self) -> None:
        pass

    @property
    def dequeue_timeout(self) -> int:
        return 1

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


def start_thread_worker(
    runtime: Runtime, queues: Sequence[str] = QUEUES
) -> tuple[ThreadWorker, threading.Thread]:
    context.set_runtime(runtime)
    worker = ThreadWorker([runtime.queue(q) for q in queues], connection=runtime.redis, name=None)
    thread = threading.Thread(target=_work_forever, args=(worker,), name="rq-worker", daemon=True)
    thread.start()
    return worker, thread


def _work_forever(worker: ThreadWorker) -> None:
    import time

    from redis.exceptions import RedisError

    # The worker exits its loop when Redis goes away; come back when it does.
    while not worker._stop_requested:
        try:
            worker.work(with_scheduler=False, logging_level="WARNING")
        except (RedisError, OSError) as exc:
            log.warning("in-process worker lost Redis (%s); retrying", exc)
        if not worker._stop_requested:
            time.sleep(1)


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
    worker = Worker([runtime.queue(q) for q in queues], connection=runtime.redis)
    try:
        return bool(worker.work(burst=burst, with_scheduler=False, logging_level="INFO"))
    finally:
        if ticker:
            ticker.stop()
