"""Redis stopped in the middle of a burst, then started again, on both set-ups: every webhook
is answered 200 (stored; the sweeper enqueues it once Redis is back) or, where a webhook could
not store it, 503 with Retry-After (delivered again here, as the provider would); afterwards
every message is processed once and every receipt sent once, by the same worker processes,
which reconnect by themselves. (A worker's prompt exit on SIGTERM while Redis is down is
tests/faults/test_worker_*.py's.)"""

from __future__ import annotations

import time

import pytest

from tests.faults.serve_kit import Deliveries, Stack, exactly_once, residents_messages

pytestmark = pytest.mark.e2e

MESSAGES = 150
STOP_AT, START_AT = 40, 100  # Redis is down while these messages arrive


def test_redis_stopped_during_a_burst_then_restarted(stack: Stack):
    stack.start()
    processes = [p for p in (stack.serve, stack.worker) if p is not None]
    deliveries = Deliveries(stack)
    messages = residents_messages(MESSAGES, "sans redis")
    down: list[float] = []

    def outage(i: int) -> None:
        if i == STOP_AT:
            time.sleep(0.5)  # the first messages are being processed
            stack.stop_redis()
            down.append(time.monotonic())
        elif i == START_AT:
            time.sleep(max(0.0, down[0] + 5 - time.monotonic()))  # down at least 5 s
            stack.start_redis()

    deliveries.burst(messages, during=outage, pace=0.02)
    unexpected = deliveries.unexpected()
    assert not unexpected, f"answers a provider cannot act on: {unexpected}\n" + (
        stack.gateway.logs()
    )
    refused = [m for m in messages if not deliveries.acknowledged(m)]
    deliveries.redeliver(messages)
    print(f"\nanswers: {dict(deliveries.counts())}; delivered again: {len(refused)}")
    exactly_once(stack, messages)
    # The same processes did it all: none was restarted to reconnect.
    assert all(p.poll() is None for p in processes), stack.gateway.logs()
    assert len(stack.gateway.processes) == len(processes)
