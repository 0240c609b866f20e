"""The database unavailable in the middle of a burst: webhooks answer 200 (stored) or 503 with
Retry-After (nothing stored: the provider retries), never anything else; the refused ones are
delivered again, as the provider would, and each message is then filed once, with one receipt,
and nothing is half-written (an inbound row without its processing, a receipt left queued).

PostgreSQL: a cluster of the test's own, stopped and started again (never the machine's shared
cluster). SQLite: "locked", another connection holding an exclusive transaction on the database
file longer than a webhook waits for it (gateway.ingest.WRITE_WAIT_SECONDS, under Twilio's 15 s)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import ingest
from tests.faults.serve_kit import (
    POSTGRESQL,
    SQLITE,
    Deliveries,
    PrivateCluster,
    Stack,
    exactly_once,
    residents_messages,
)
from tests.fixtures import RedisServer

pytestmark = pytest.mark.e2e

MESSAGES = 120
WAIT = float(ingest.WRITE_WAIT_SECONDS)


def check(stack: Stack, deliveries: Deliveries, messages: list) -> None:  # type: ignore[type-arg]
    unexpected = deliveries.unexpected()
    assert not unexpected, f"answers a provider cannot act on: {unexpected}\n" + (
        stack.gateway.logs()
    )
    counts = deliveries.counts()
    assert counts["503+Retry-After"], f"the outage was never seen: {counts}"
    deliveries.redeliver(messages)
    print(f"\nanswers: {dict(deliveries.counts())}")
    exactly_once(stack, messages)
    # One incident, logged when it started and when it ended, not once per refused webhook.
    served = "".join(
        f.read_text(errors="replace") for f in stack.gateway.workdir.glob("serve-*.log")
    )
    assert served.count("storage unavailable (") == 1, served[-4000:]
    assert served.count("storage available again") == 1, served[-4000:]
    assert "could not store" not in served


@pytest.mark.postgres
def test_postgresql_stopped_during_a_burst_then_started_again(
    tmp_path: Path,
    fake: FakeTwilio,
    private_cluster: PrivateCluster,
    debian_redis: RedisServer,
):
    stack = Stack(POSTGRESQL, tmp_path, fake, database_url=private_cluster.url, redis=debian_redis)
    try:
        stack.start()
        processes = [stack.serve, stack.worker]
        deliveries = Deliveries(stack, timeout=60)
        messages = residents_messages(MESSAGES, "base arrêtée")
        stopped: list[float] = []

        def outage(i: int) -> None:
            if i == 40:
                private_cluster.stop()
                stopped.append(time.monotonic())
            elif i == 80:
                time.sleep(max(0.0, stopped[0] + 5 - time.monotonic()))  # down at least 5 s
                private_cluster.start()

        deliveries.burst(messages, during=outage, pace=0.02)
        check(stack, deliveries, messages)
        assert all(p is not None and p.poll() is None for p in processes), stack.gateway.logs()
    finally:
        stack.stop()


def test_sqlite_locked_longer_than_a_webhook_waits(tmp_path: Path, fake: FakeTwilio):
    stack = Stack(SQLITE, tmp_path, fake)
    try:
        stack.start()
        deliveries = Deliveries(stack, timeout=60)
        messages = residents_messages(MESSAGES, "base verrouillée")
        locked = threading.Event()
        release = threading.Event()

        def hold() -> None:
            # Another program (a backup, a careless sqlite3 shell) takes the database.
            connection = sqlite3.connect(stack.data / "gateway.sqlite3", timeout=60)
            connection.isolation_level = None
            connection.execute("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(120)
            connection.execute("ROLLBACK")
            connection.close()

        holder = threading.Thread(target=hold)

        def outage(i: int) -> None:
            if i == 40:
                holder.start()
                assert locked.wait(60)
                threading.Timer(WAIT * 4, release.set).start()  # several batches refused

        deliveries.burst(messages, during=outage, pace=0.02)
        release.set()
        holder.join(60)
        check(stack, deliveries, messages)
        assert stack.serve is not None and stack.serve.poll() is None
    finally:
        stack.stop()
