"""A crash in the middle of the work: `gateway serve` is killed with SIGKILL while 300
residents text it, then started again at once, on both set-ups. Every message acknowledged
before the crash must be filed, once, and its receipt queued within a minute of the restart,
and sent once.

On embedded defaults (SQLite, embedded Redis, its worker thread) the process is killed while
its worker holds a sender's lock (in the middle of a message): what the dead process left (its
lock, its running job) is recognised as dead at start-up, not after a timeout. With PostgreSQL,
Debian's Redis and a separate `gateway worker`, the web process is killed (the worker's own
crashes are tests/faults/test_worker_*.py's). Twice each: Redis survives the crash (the usual
case: it is a daemon of its own), or dies with it (power loss: the embedded one restarts from its
append-only file; Debian's, run here without persistence, restarts empty, and the sweeper
enqueues again what was stored and not processed)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from redis import Redis
from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.models import Contribution, InboundMessage, OutboundMessage
from tests.faults.serve_kit import Stack
from tests.helpers import sms_form
from tests.processes import Gateway

pytestmark = pytest.mark.e2e

RESIDENTS = 300
KILL_AFTER = 150  # acknowledged messages
WITHIN = 60.0  # seconds after the restart: the requirement, on embedded defaults
# With a separate worker, which did not crash, what the killed web process acknowledged is a
# backlog that worker works through at its own pace (one job at a time, slower on a busy CI
# machine): there the test waits longer and asserts no time, only that each is filed once.
PATIENCE = 300.0
INTERRUPTED = "interrupted while sending"


def number(i: int) -> str:
    return f"+3364{i:07d}"


def text(i: int) -> str:
    return f"idée {i} pour le parc"


def filed(engine: Engine) -> tuple[Counter[str], dict[str, list[tuple[str, str | None]]]]:
    """(how many contributions carry each text, the receipt rows of each text's contribution)."""
    with engine.connect() as connection:
        contributions = connection.execute(select(Contribution.id, Contribution.text)).all()
        receipts = connection.execute(
            select(
                OutboundMessage.contribution_id, OutboundMessage.status, OutboundMessage.error
            ).where(OutboundMessage.message_key == "receipt.default")
        ).all()
    texts = Counter(str(c.text) for c in contributions)
    by_id = {c.id: str(c.text) for c in contributions}
    rows: dict[str, list[tuple[str, str | None]]] = {}
    for r in receipts:
        if r.contribution_id in by_id:
            rows.setdefault(by_id[r.contribution_id], []).append((r.status, r.error))
    return texts, rows


class Residents:
    """Posts one signed SMS per resident, about forty a second (a busy evening after a radio
    show, slow enough that the worker is busy rather than paused for a flood)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.acknowledged: set[int] = set()
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def post(self, i: int) -> None:
        if self.stop.is_set():
            return
        form = sms_form(f"PARC {text(i)}", sender=number(i), to="+33100000001")
        with contextlib.suppress(requests.RequestException):
            if self.gateway.post_sms(form).status_code == 200 and not self.stop.is_set():
                with self._lock:
                    self.acknowledged.add(i)

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)


def frozen(pid: int) -> bool:
    """Stop the process (SIGSTOP) and wait until it is stopped."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return True
        time.sleep(0.001)
    return False


def mid_message(redis: Redis, engine: Engine) -> bool:
    """Whether a resident's lock is held while that resident's message is not filed yet: the
    worker is in the middle of it. (The lock is named after the resident's look-up hash, or a
    digest of it: gateway.locks.sender_lock.)"""
    held = [k.decode() for k in redis.scan_iter(match="gateway:lock:*", count=1000)]
    if not held:
        return False
    with engine.connect() as connection:
        waiting = connection.scalars(
            select(InboundMessage.sender_hash).where(InboundMessage.state == "received")
        ).all()
    for sender_hash in filter(None, waiting):
        digest = hashlib.sha256(sender_hash.encode()).hexdigest()[:32]
        if any(key.endswith((sender_hash, digest)) for key in held):
            return True
    return False


def crash_mid_message(
    residents: Residents, pid: int, redis: Redis, engine: Engine, seconds: float
) -> bool:
    """Within ``seconds``, once enough messages are acknowledged, freeze the process at a
    moment its worker is in the middle of a message and return True (the caller kills it:
    a crash at exactly that moment); otherwise let it run on and return False."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if residents.count() >= KILL_AFTER:
            assert frozen(pid)
            with contextlib.suppress(Exception):  # the database busy: look again
                if mid_message(redis, engine):
                    return True
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.003)
    return False


@pytest.mark.parametrize("redis_dies", [False, True], ids=["redis-survives", "redis-dies-too"])
def test_after_a_crash_every_acknowledged_message_is_filed_within_a_minute(
    stack: Stack, redis_dies: bool
):
    gateway = stack.gateway
    # The defaults, as the report ran them (no faster sweeper).
    gateway.env.pop("GATEWAY_SWEEP_GRACE_SECONDS")
    gateway.env.pop("GATEWAY_SWEEP_INTERVAL_SECONDS")
    fake = stack.fake
    try:
        stack.start()
        assert stack.serve is not None
        serve = stack.serve
        redis = stack.redis_client()
        engine = stack.engine
        residents = Residents(gateway)
        with ThreadPoolExecutor(max_workers=8) as pool:
            # Crash once KILL_AFTER are acknowledged; on embedded defaults at a moment the
            # worker holds a sender's lock (in the middle of a message), as a crash at a random
            # moment mostly does once the worker is busy; residents keep texting meanwhile.
            deadline = None
            crashed = False
            for i in range(RESIDENTS):
                pool.submit(residents.post, i)
                if not stack.embedded:
                    crashed = residents.count() >= KILL_AFTER
                    if crashed:
                        break
                    time.sleep(0.025)
                elif crashed := crash_mid_message(residents, serve.pid, redis, engine, 0.025):
                    break
            until = time.monotonic() + 60
            while not crashed and not stack.embedded and time.monotonic() < until:
                crashed = residents.count() >= KILL_AFTER  # the last posts being answered
                time.sleep(0.01)
            while not crashed and residents.count() >= KILL_AFTER and stack.embedded:
                deadline = deadline or time.monotonic() + 60
                if time.monotonic() > deadline:
                    break
                crashed = crash_mid_message(residents, serve.pid, redis, engine, 0.1)
            residents.stop.set()  # what is answered from now on does not count
            os.kill(serve.pid, signal.SIGKILL)
            if redis_dies and stack.embedded:
                os.kill(stack.embedded_redis_pid(), signal.SIGKILL)
            elif redis_dies:
                assert stack.redis is not None and stack.redis.process is not None
                stack.redis.process.kill()
                stack.redis.process.wait(10)
                stack.redis.start()  # as systemd restarts it: empty
            serve.wait(10)
        redis.close()
        acknowledged = sorted(residents.acknowledged)
        assert crashed, "the worker was never caught in the middle of a message"
        assert len(acknowledged) >= KILL_AFTER

        restarted = time.monotonic()
        stack.serve = gateway.start("serve")
        expected = {text(i) for i in acknowledged}
        timings: dict[str, float] = {}
        late: set[str] = set(expected)
        patience = WITHIN + 120 if stack.embedded else PATIENCE
        while time.monotonic() - restarted < patience:
            with contextlib.suppress(Exception):  # the database being migrated or locked
                texts, receipts = filed(engine)
                late = {t for t in expected if not (texts[t] and receipts.get(t))}
                if not late:
                    timings["all filed with a receipt queued"] = time.monotonic() - restarted
                    break
            time.sleep(0.5)
        last = timings.get("all filed with a receipt queued")
        print(
            f"\n{len(acknowledged)} acknowledged before the crash; after the restart, "
            + (f"the last filed with its receipt queued at {last:.1f} s" if last else "never")
        )
        assert last is not None and (last <= WITHIN or not stack.embedded), (
            f"{len(late)} acknowledged message(s) not filed with a receipt within {WITHIN} s "
            f"(after {patience:.0f} s: {len(late)} still waiting):\n" + gateway.logs()
        )

        # The receipts go out, once each; a send the crash interrupted is checked with
        # Twilio before it is sent again (workers.outbound): none is failed, none is doubled.
        sent: Counter[str] = Counter()
        deadline = time.monotonic() + (120 if stack.embedded else PATIENCE)
        while time.monotonic() < deadline:
            sent = Counter(m["To"] for m in fake.messages if "PARC-" in m["Body"])
            _, receipts = filed(engine)
            pending = [t for t in expected if receipts[t][0][0] in ("queued", "sending")]
            if not pending:
                break
            time.sleep(0.5)
        timings["all receipts sent or marked"] = time.monotonic() - restarted
        time.sleep(3)  # a doubled job would show now
        texts, receipts = filed(engine)
        sent = Counter(m["To"] for m in fake.messages if "PARC-" in m["Body"])
        print(f"receipts settled at {timings['all receipts sent or marked']:.1f} s")
        doubled = {t: n for t, n in texts.items() if n > 1}
        assert not doubled, f"contributions filed twice: {doubled}"
        assert all(len(receipts[t]) == 1 for t in expected), "a receipt queued twice"
        assert max(sent.values(), default=0) == 1, "a receipt sent twice"
        interrupted = [t for t in expected if receipts[t][0][0] == "failed"]
        assert all(INTERRUPTED in (receipts[t][0][1] or "") for t in interrupted)
        assert not interrupted, interrupted  # Twilio can be asked: nothing left unknown
        for i in acknowledged:
            if text(i) not in interrupted:
                assert receipts[text(i)][0][0] == "sent" and sent[number(i)] == 1, text(i)
        print(f"receipts sent: {sum(sent.values())}; interrupted by the crash: {len(interrupted)}")
    finally:
        stack.stop()  # (also kills an embedded Redis server a killed process left)
