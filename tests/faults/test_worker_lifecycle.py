"""Stopping a worker, as systemd or Docker stop it: SIGTERM (or SIGINT), then at most ten
seconds before the process is gone, whatever it was doing: waiting for work, running a job
(finished if it can be within the grace period, otherwise stopped and queued again, never lost
or marked failed, then done once), in the middle of a send (checked with the provider before
it is sent again: one reply), or waiting for Redis to come back; and a worker whose Redis went
away reconnects by itself and goes on working. `gateway worker` processes on both set-ups
(worker_kit), and `gateway serve`'s own worker thread."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from channels.twilio.tests.fake_api import FakeTwilio
from tests.faults.worker_kit import STOP_WITHIN, Rig, rig, sms  # noqa: F401 - rig: a fixture
from tests.test_e2e_serve import Gateway, base_env
from workers.runner import STOP_GRACE

pytestmark = pytest.mark.e2e

RESIDENT = "+33612340021"


def log_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_idle_worker_stops_at_once(rig: Rig, sig: int):  # noqa: F811
    worker = rig.start_worker()
    started = time.monotonic()
    worker.send_signal(sig)
    assert worker.wait(STOP_WITHIN + 20) == 0, rig.logs()
    assert time.monotonic() - started < STOP_WITHIN, rig.logs()  # the contract: 10 s
    assert rig.worker_names() == set()  # unregistered on the way out


def test_a_job_that_finishes_within_the_grace_period_is_finished(
    rig: Rig,  # noqa: F811
    tmp_path: Path,
):
    worker = rig.start_worker()
    log = tmp_path / "job.log"
    job = Queue("default", connection=rig.redis).enqueue(
        "tests.fakes.jobs.sleep", str(log), 2.0, job_id="short"
    )
    rig.wait_until(lambda: "started" in log_of(log), 30, "the job to start")
    rig.terminate(worker)
    assert log_of(log) == ["started", "finished"]
    assert job.get_status(refresh=True) == "finished"


def test_a_long_job_is_stopped_and_queued_again_then_redone_once(
    rig: Rig,  # noqa: F811
    tmp_path: Path,
):
    worker = rig.start_worker()
    log = tmp_path / "job.log"
    queue = Queue("default", connection=rig.redis)
    job = queue.enqueue("tests.fakes.jobs.slow_the_first_time", str(log), 120.0, job_id="long")
    rig.wait_until(lambda: "started 1" in log_of(log), 30, "the job to start")
    took = rig.terminate(worker)
    assert took >= STOP_GRACE - 0.5  # the job was given its chance first
    assert log_of(log) == ["started 1"]  # stopped mid-way
    # Back at the front of its queue, not failed, not lost.
    assert job.get_status(refresh=True) == "queued"
    assert queue.job_ids == ["long"]
    assert queue.failed_job_registry.count == 0
    assert queue.started_job_registry.count == 0
    worker = rig.start_worker()  # the next worker does it, once
    rig.wait_until(lambda: job.get_status(refresh=True) == "finished", 60, "the job redone")
    time.sleep(1)
    assert log_of(log) == ["started 1", "started 2", "finished 2"]
    rig.terminate(worker)


def test_a_send_outlasting_the_grace_period_is_stopped_then_sent_once(rig: Rig):  # noqa: F811
    """SIGTERM while Twilio holds its answer to a send it took: the send is stopped after the
    grace period, the worker exits within 10 s, and the next worker asks Twilio before sending
    again: the resident has one copy."""
    worker = rig.start_worker()
    rig.fake.hold_next(accept=True, seconds=120)
    sms(rig, RESIDENT, "PARC Des bancs")
    rig.fake.wait_for_held(1, timeout=60)
    took = rig.terminate(worker)
    assert took >= STOP_GRACE - 0.5
    assert len(rig.fake.messages) == 1
    # Stopped mid-send: queued again, to be checked with Twilio; not failed, not "sending".
    assert [r.status for r in rig.outbound()].count("sending") == 0, rig.outbound()
    assert all(r.status == "queued" for r in rig.outbound()), rig.outbound()
    rig.start_worker()
    rig.wait_until(rig.settled, 60, "every reply sent")
    time.sleep(3)
    rig.assert_each_reply_sent_once([RESIDENT])


def test_a_second_signal_stops_the_job_at_once(rig: Rig, tmp_path: Path):  # noqa: F811
    worker = rig.start_worker()
    log = tmp_path / "job.log"
    queue = Queue("default", connection=rig.redis)
    queue.enqueue("tests.fakes.jobs.slow_the_first_time", str(log), 120.0, job_id="long")
    rig.wait_until(lambda: "started 1" in log_of(log), 30, "the job to start")
    started = time.monotonic()
    worker.send_signal(signal.SIGINT)
    time.sleep(1.5)
    worker.send_signal(signal.SIGINT)  # Ctrl+C twice: a cold shutdown
    assert worker.wait(STOP_WITHIN + 20) == 0, rig.logs()
    assert time.monotonic() - started < STOP_GRACE, rig.logs()
    assert queue.job_ids == ["long"]


def test_a_worker_whose_redis_is_down_stays_up_and_stops_at_once(rig: Rig):  # noqa: F811
    worker = rig.start_worker()
    rig.stop_redis()
    time.sleep(4)  # several reconnection attempts, the pauses between them growing
    assert worker.poll() is None, rig.logs()  # a Redis outage does not end the worker
    rig.terminate(worker)


def test_a_worker_reconnects_by_itself_works_on_and_still_stops_promptly(rig: Rig):  # noqa: F811
    """Redis goes away three times under a running worker and comes back (Debian's server
    restarted without its data; the embedded one SIGKILLed and started again by the gateway).
    Nobody touches the worker: it is registered again, a resident's message is answered once,
    and SIGTERM stops it within 10 s. (The case of rq/rq#1613: RQ's command thread, whose
    connection the restart broke, used to hold the process up to a minute.)"""
    worker = rig.start_worker()
    for _ in range(3):
        rig.stop_redis()
        time.sleep(1.5)
        rig.start_redis()
        rig.wait_until(rig.idle, 60, "the worker back on Redis")
    assert worker.poll() is None, rig.logs()
    sms(rig, RESIDENT, "PARC Des arbres")
    rig.wait_until(lambda: rig.outbound() and rig.settled(), 60, "the reply sent")
    time.sleep(2)
    rig.assert_each_reply_sent_once([RESIDENT])
    rig.terminate(worker)


def test_gateway_serve_hands_a_long_job_back_when_stopped(tmp_path: Path, fake_twilio: FakeTwilio):
    """The worker thread of `gateway serve` (embedded Redis): a job it cannot finish in time is
    queued again before the process exits."""
    gateway = Gateway(base_env(tmp_path, fake_twilio), tmp_path)
    serve = gateway.start("serve")
    socket_path = tmp_path / "data" / "redis" / "redis.sock"

    def stop(process: object) -> None:
        started = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(STOP_WITHIN + 20) == 0, gateway.logs()
        assert time.monotonic() - started < STOP_WITHIN, gateway.logs()

    def wait(condition: object, what: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if callable(condition) and condition():
                    return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{gateway.logs()}")

    try:
        gateway.wait_healthy()
        redis = Redis(unix_socket_path=str(socket_path), socket_timeout=5)
        log = tmp_path / "job.log"
        queue = Queue("default", connection=redis)
        job = queue.enqueue("tests.fakes.jobs.slow_the_first_time", str(log), 120.0, job_id="long")
        wait(lambda: "started 1" in log_of(log), "the job to start")
        stop(serve)
        # This test's connection kept the embedded Redis running ("last one out").
        assert Job.fetch("long", connection=redis).get_status() == "queued"
        assert queue.job_ids == ["long"]
        assert queue.failed_job_registry.count == 0
        assert queue.started_job_registry.count == 0
        serve = gateway.start("serve")
        gateway.wait_healthy()
        wait(lambda: job.get_status(refresh=True) == "finished", "the job redone")
        assert log_of(log) == ["started 1", "started 2", "finished 2"]
        stop(serve)
    finally:
        for process in gateway.processes:
            if process.poll() is None:
                process.kill()
        pid_file = tmp_path / "data" / "redis" / "redis.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
