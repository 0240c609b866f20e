"""Stopping a worker, as systemd or Docker stop it: SIGTERM (or SIGINT), then at most ten
seconds before the process is gone, whatever it was doing: waiting for work, running a job
(finished if it can be within the grace period, otherwise stopped and queued again, never lost
or marked failed), or waiting for Redis to come back. `gateway worker` as a subprocess on a
real Redis server that the tests stop and start, and `gateway serve`'s own worker thread."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from channels.twilio.tests.fake_api import FakeTwilio
from tests.conftest import RedisServer
from tests.test_e2e_serve import Gateway, base_env
from workers.runner import STOP_GRACE

pytestmark = pytest.mark.e2e

# What an operator can count on (docs/operations.md).
STOP_WITHIN = 10.0


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of this test's own: the tests stop it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gateway(
    tmp_path: Path, fake_twilio: FakeTwilio, redis_server: RedisServer
) -> Iterator[Gateway]:
    env = base_env(tmp_path, fake_twilio)
    env["GATEWAY_REDIS_URL"] = redis_server.url
    gw = Gateway(env, tmp_path)
    yield gw
    for process in gw.processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def redis_of(server: RedisServer) -> Redis:
    return Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=5)


def wait_until(condition: object, timeout: float, what: str, gateway: Gateway) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # Redis restarting, a file not written yet
            if callable(condition) and condition():
                return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{gateway.logs()}")


def idle_worker(redis: Redis) -> bool:
    states = [redis.hget(key, "state") for key in redis.smembers("rq:workers")]
    return b"idle" in states


def stop(process: subprocess.Popen[bytes], gateway: Gateway, sig: int = signal.SIGTERM) -> float:
    """Signal the process; returns the seconds it took to exit (asserting it did, cleanly)."""
    started = time.monotonic()
    process.send_signal(sig)
    try:
        code = process.wait(STOP_WITHIN + 20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the worker ignored the signal:\n" + gateway.logs()) from None
    took = time.monotonic() - started
    print(f"stopped in {took:.1f} s")
    assert code == 0, gateway.logs()
    assert took < STOP_WITHIN, f"{took:.1f} s to stop:\n{gateway.logs()}"
    return took


def start_worker(gateway: Gateway, redis: Redis) -> subprocess.Popen[bytes]:
    process = gateway.start("worker")
    wait_until(lambda: idle_worker(redis), 60, "the worker to wait for jobs", gateway)
    return process


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_idle_worker_stops_at_once(gateway: Gateway, redis_server: RedisServer, sig: int):
    redis = redis_of(redis_server)
    worker = start_worker(gateway, redis)
    assert stop(worker, gateway, sig) < 5
    assert redis.smembers("rq:workers") == set()  # unregistered on the way out


def test_a_job_that_finishes_within_the_grace_period_is_finished(
    gateway: Gateway, redis_server: RedisServer, tmp_path: Path
):
    redis = redis_of(redis_server)
    worker = start_worker(gateway, redis)
    log = tmp_path / "job.log"
    job = Queue("default", connection=redis).enqueue(
        "tests.fakes.jobs.sleep", str(log), 2.0, job_id="short"
    )
    wait_until(lambda: "started" in log.read_text(), 30, "the job to start", gateway)
    stop(worker, gateway)
    assert log.read_text().splitlines() == ["started", "finished"]
    assert job.get_status(refresh=True) == "finished"


def test_a_long_job_is_stopped_and_queued_again_then_redone(
    gateway: Gateway, redis_server: RedisServer, tmp_path: Path
):
    redis = redis_of(redis_server)
    worker = start_worker(gateway, redis)
    log = tmp_path / "job.log"
    queue = Queue("default", connection=redis)
    job = queue.enqueue("tests.fakes.jobs.slow_the_first_time", str(log), 120.0, job_id="long")
    wait_until(lambda: "started 1" in log.read_text(), 30, "the job to start", gateway)
    took = stop(worker, gateway)
    assert took >= STOP_GRACE - 0.5  # the job was given its chance first
    assert log.read_text().splitlines() == ["started 1"]  # stopped mid-way
    # Back at the front of its queue, not failed, not lost.
    assert job.get_status(refresh=True) == "queued"
    assert queue.job_ids == ["long"]
    assert queue.failed_job_registry.count == 0
    assert queue.started_job_registry.count == 0
    # The next worker does it.
    worker = start_worker(gateway, redis)
    wait_until(lambda: job.get_status(refresh=True) == "finished", 60, "the job redone", gateway)
    assert log.read_text().splitlines() == ["started 1", "started 2", "finished 2"]
    stop(worker, gateway)


def test_a_second_signal_stops_the_job_at_once(
    gateway: Gateway, redis_server: RedisServer, tmp_path: Path
):
    redis = redis_of(redis_server)
    worker = start_worker(gateway, redis)
    log = tmp_path / "job.log"
    queue = Queue("default", connection=redis)
    queue.enqueue("tests.fakes.jobs.slow_the_first_time", str(log), 120.0, job_id="long")
    wait_until(lambda: "started 1" in log.read_text(), 30, "the job to start", gateway)
    started = time.monotonic()
    worker.send_signal(signal.SIGINT)
    time.sleep(1.5)
    worker.send_signal(signal.SIGINT)  # Ctrl+C twice: a cold shutdown
    assert worker.wait(STOP_WITHIN + 20) == 0, gateway.logs()
    assert time.monotonic() - started < STOP_GRACE, gateway.logs()
    assert queue.job_ids == ["long"]


def test_a_worker_waiting_for_redis_stops_at_once(gateway: Gateway, redis_server: RedisServer):
    redis = redis_of(redis_server)
    worker = start_worker(gateway, redis)
    redis_server.stop()
    time.sleep(4)  # several reconnection attempts, the pauses between them growing
    assert worker.poll() is None, gateway.logs()  # a Redis outage does not end the worker
    stop(worker, gateway)


def test_a_worker_stops_at_once_after_redis_came_back(gateway: Gateway, redis_server: RedisServer):
    """The case of the end-to-end test that failed on a fresh clone: Redis restarted without
    its data, then a stop. The worker must be known to Redis again (or its running job would
    be taken for abandoned), and stop at once: RQ's command thread, whose connection the
    restart broke, used to hold the process up to a minute (rq/rq#1613)."""
    redis = redis_of(redis_server)
    worker = start_worker(gateway, redis)
    for _ in range(3):
        redis_server.stop()
        time.sleep(1.5)
        redis_server.start()
        wait_until(lambda: idle_worker(redis), 60, "the worker back on Redis", gateway)
    stop(worker, gateway)


def test_gateway_serve_hands_a_long_job_back_when_stopped(tmp_path: Path, fake_twilio: FakeTwilio):
    """The worker thread of `gateway serve` (embedded Redis): a job it cannot finish in time is
    queued again before the process exits."""
    gateway = Gateway(base_env(tmp_path, fake_twilio), tmp_path)
    serve = gateway.start("serve")
    socket_path = tmp_path / "data" / "redis" / "redis.sock"
    try:
        gateway.wait_healthy()
        redis = Redis(unix_socket_path=str(socket_path), socket_timeout=5)
        log = tmp_path / "job.log"
        queue = Queue("default", connection=redis)
        job = queue.enqueue("tests.fakes.jobs.slow_the_first_time", str(log), 120.0, job_id="long")
        wait_until(lambda: "started 1" in log.read_text(), 30, "the job to start", gateway)
        stop(serve, gateway)
        # This test's connection kept the embedded Redis running ("last one out").
        assert Job.fetch("long", connection=redis).get_status() == "queued"
        assert queue.job_ids == ["long"]
        assert queue.failed_job_registry.count == 0
        assert queue.started_job_registry.count == 0
        serve = gateway.start("serve")
        gateway.wait_healthy()
        wait_until(
            lambda: job.get_status(refresh=True) == "finished", 60, "the job redone", gateway
        )
        assert log.read_text().splitlines() == ["started 1", "started 2", "finished 2"]
        stop(serve, gateway)
    finally:
        for process in gateway.processes:
            if process.poll() is None:
                process.kill()
        pid_file = tmp_path / "data" / "redis" / "redis.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
