"""Outbound pacing (gateway.pacing, workers.outbound): every reply waits its turn at its
provider's rate, shared by every worker through Redis, so that a burst of receipts never turns
into the provider's 429s. Against the fake Twilio metering its senders as Twilio meters a long
code (channels/twilio/tests/fake_api.py ``limit``); real Redis, SQLite and PostgreSQL.

Spacing is asserted as a lower bound on the fake's own arrival times (what the pacer
guarantees, less a fixed slack for a request's way to the fake), never as a speed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import announcements, pacing
from gateway.models import OutboundMessage
from gateway.settings import Settings, SettingsError
from tests.fixtures import free_port
from tests.helpers import runtime_with
from tests.pacing_kit import drain, queue_replies, spans, statuses
from workers import outbound

FROM = "+33100000009"  # the fixture's TWILIO_FROM_NUMBER
SLACK = 0.5  # seconds: a request's way from the worker to the fake, at worst, on a busy machine
ROOT = Path(__file__).resolve().parent.parent


def number(n: int) -> str:
    return f"+336100{n:05d}"


def refused(fake: FakeTwilio) -> list[dict[str, object]]:
    return [r for r in fake.requests if r["status"] == 429]


def test_a_burst_of_receipts_from_one_number_gets_no_429_and_each_goes_once(
    settings: Settings, fake_twilio: FakeTwilio
):
    """60 receipts to 60 residents from one long code at Twilio's own 1 segment a second."""
    fake_twilio.limit(segments_per_second=1.0)
    runtime = runtime_with(settings, outbound_pacing=True)
    try:
        residents = [number(n) for n in range(60)]
        ids = queue_replies(
            runtime,
            "sms",
            [(r, f"Merci, contribution PARC-{n:04d} recue.") for n, r in enumerate(residents)],
            FROM,
        )
        drain(runtime, ids, timeout=240)
        assert statuses(runtime, ids) == ["sent"] * 60
    finally:
        runtime.close()
    assert refused(fake_twilio) == []
    assert sorted(m["To"] for m in fake_twilio.messages) == sorted(residents)  # once each
    # One segment each, one a second: the 60th leaves 59 s after the first at the earliest.
    assert spans(fake_twilio.message_times) >= 59 - SLACK


def test_a_long_message_costs_its_segments(settings: Settings, fake_twilio: FakeTwilio):
    fake_twilio.limit(segments_per_second=4.0)
    runtime = runtime_with(settings, outbound_pacing=True, twilio_segments_per_second=4.0)
    long_text = "Votre contribution est bien arrivee et sera lue par un moderateur. " * 6
    try:
        ids = queue_replies(runtime, "sms", [(number(n), long_text) for n in range(6)], FROM)
        with runtime.sessions() as session:
            counted = session.scalars(
                select(OutboundMessage.segments).where(OutboundMessage.id.in_(ids))
            ).all()
        assert set(counted) == {3}
        drain(runtime, ids, timeout=60)
        assert statuses(runtime, ids) == ["sent"] * 6
    finally:
        runtime.close()
    # Paced by the message (one a quarter second), Twilio would have refused most of them.
    assert refused(fake_twilio) == []
    assert len(fake_twilio.messages) == 6
    assert spans(fake_twilio.message_times) >= 5 * 3 / 4 - SLACK


def _worker_settings(settings: Settings, **overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        name: getattr(settings, name)
        for name in (
            "data_dir",
            "database_url",
            "redis_url",
            "secret_key",
            "campaigns_dir",
            "public_url",
            "twilio_account_sid",
            "twilio_auth_token",
            "twilio_api_base",
            "twilio_from_number",
        )
    }
    values.update(overrides)
    return values


def test_two_worker_processes_share_one_bucket(settings: Settings, fake_twilio: FakeTwilio):
    """Each worker alone keeps to 4 segments a second; only a bucket they share keeps both
    together to it."""
    fake_twilio.limit(segments_per_second=4.0)
    runtime = runtime_with(settings, outbound_pacing=True, twilio_segments_per_second=4.0)
    try:
        ids = queue_replies(runtime, "sms", [(number(n), f"Merci {n}") for n in range(24)], FROM)
        config = json.dumps(
            _worker_settings(settings, outbound_pacing=True, twilio_segments_per_second=4.0)
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.pacing_kit", config, json.dumps(ids), "120"],
                cwd=ROOT,
                env=env,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for worker in workers:
            _, err = worker.communicate(timeout=180)
            assert worker.returncode == 0, err.decode(errors="replace")
        assert statuses(runtime, ids) == ["sent"] * 24
    finally:
        runtime.close()
    assert refused(fake_twilio) == []
    assert sorted(m["To"] for m in fake_twilio.messages) == sorted(number(n) for n in range(24))
    assert spans(fake_twilio.message_times) >= 23 / 4 - SLACK


def test_without_redis_each_process_still_paces(
    settings: Settings, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
):
    fake_twilio.limit(segments_per_second=4.0)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    runtime = runtime_with(
        settings, outbound_pacing=True, twilio_segments_per_second=4.0, redis_url=nowhere
    )
    try:
        ids = queue_replies(runtime, "sms", [(number(n), f"Merci {n}") for n in range(10)], FROM)
        with caplog.at_level(logging.WARNING, logger="gateway.pacing"):
            drain(runtime, ids, timeout=60)
        assert statuses(runtime, ids) == ["sent"] * 10
    finally:
        runtime.close()
    assert "Redis unavailable, this process paces alone" in caplog.text
    assert refused(fake_twilio) == []
    assert len(fake_twilio.messages) == 10
    assert spans(fake_twilio.message_times) >= 9 / 4 - SLACK


def test_a_decision_s_messages_keep_their_order_when_paced(
    settings: Settings, fake_twilio: FakeTwilio
):
    """A receipt, a question, a notice to one resident: when the first must wait its turn,
    the others wait behind it, even when a sweeper hands one of them to a worker first."""
    fake_twilio.limit(segments_per_second=1.0)
    runtime = runtime_with(settings, outbound_pacing=True)
    try:
        # The number is busy for the next 3 seconds (another worker's long message).
        busy = pacing.buckets(
            "twilio",
            pacing.Pace((pacing.Limit("sender", 1.0, "segment"),)),
            sender=FROM,
            recipient_hash="-",
            segments=3,
        )
        assert runtime.pacer.reserve(busy, max_wait=10).reserved
        resident = number(1)
        ids = queue_replies(runtime, "sms", [(resident, f"message {n}") for n in (1, 2, 3)], FROM)
        assert outbound.send_in_order(runtime, ids) == ["queued"] * 3
        with runtime.sessions.begin() as session:
            rows = [session.get(OutboundMessage, i) for i in ids]
            assert all(r is not None and r.attempts == 0 for r in rows)  # none was tried
            due = [r.next_attempt_at for r in rows if r is not None]
            assert due == sorted(due) and len(set(due)) == 3
            second = rows[1]
            assert second is not None
            second.next_attempt_at = None  # a sweeper hands the second one over first
        assert outbound.send(runtime, ids[1]) == "queued"
        assert fake_twilio.messages == []
        drain(runtime, ids, timeout=60)
    finally:
        runtime.close()
    assert [m["Body"] for m in fake_twilio.messages] == ["message 1", "message 2", "message 3"]
    assert refused(fake_twilio) == []


def test_redis_holds_no_address_and_forgets_the_turns(settings: Settings):
    runtime = runtime_with(settings, outbound_pacing=True)
    try:
        taken = pacing.buckets(
            "telegram",
            pacing.Pace((pacing.Limit("recipient", 1.0), pacing.Limit("account", 30.0))),
            sender=None,
            recipient_hash=runtime.vault.lookup_hash("telegram", "987654321"),
            segments=1,
        )
        assert runtime.pacer.reserve(taken).reserved
        keys = [k.decode() for k in Redis.from_url(settings.redis_url).keys("pace:*")]
    finally:
        runtime.close()
    assert len(keys) == 2 and not any("987654321" in k for k in keys)
    ttl = [Redis.from_url(settings.redis_url).pttl(k) for k in keys]
    assert all(0 < t <= 3000 for t in ttl)  # gone within seconds


def test_the_rates_come_from_the_plugins_and_their_settings(settings: Settings):
    assert announcements.rate(settings, "sms") == 1.0  # Twilio's long code
    raised = settings.with_overrides(twilio_segments_per_second=10.0)
    assert announcements.rate(raised, "sms") == 10.0  # a short code, a Messaging Service
    with pytest.raises(SettingsError, match=r"twilio_segments_per_second|TWILIO_SEGMENTS"):
        settings.with_overrides(twilio_segments_per_second=-1)


def test_a_second_turn_waits_for_the_first(settings: Settings):
    """The pacer's own arithmetic on Redis's clock: a turn further than allowed is not taken."""
    runtime = runtime_with(settings, outbound_pacing=True)
    try:
        taken = [pacing.Bucket("pace:test:sender:segment:x", interval=2.0, cost=1)]
        first = runtime.pacer.reserve(taken)
        second = runtime.pacer.reserve(taken, max_wait=0.5)
        third = runtime.pacer.reserve(taken, max_wait=5)
    finally:
        runtime.close()
    assert first.reserved and first.wait == 0
    assert not second.reserved and second.wait > 1.0  # 2 s, less the time between the calls
    assert third.reserved and third.wait > 1.0


def test_unpaced_the_fake_refuses_a_burst(settings: Settings, fake_twilio: FakeTwilio):
    """The meter the tests above pass is a real one: without pacing, three receipts from one
    number are refused with Twilio's 429 (and retried later, not lost)."""
    fake_twilio.limit(segments_per_second=1.0)
    runtime = runtime_with(settings, outbound_pacing=False)
    try:
        ids = queue_replies(runtime, "sms", [(number(n), f"Merci {n}") for n in range(3)], FROM)
        drain(runtime, ids, timeout=60)
        assert statuses(runtime, ids) == ["sent"] * 3
    finally:
        runtime.close()
    assert refused(fake_twilio) != []
    assert sorted(m["To"] for m in fake_twilio.messages) == [number(n) for n in range(3)]


def test_a_message_costs_its_segments_in_a_segment_rule_only():
    pace = pacing.Pace(
        (
            pacing.Limit("sender", 1.0, "segment"),
            pacing.Limit("account", 30.0),
            pacing.Limit("recipient", 0),  # 0: no such rule
        )
    )
    taken = pacing.buckets("x", pace, sender=FROM, recipient_hash="abc", segments=3)
    assert [(b.interval, b.cost) for b in taken] == [(1.0, 3), (1 / 30, 1)]
    assert not any(FROM.lstrip("+") in b.key for b in taken)
    assert pace.bulk_rate() == 1.0
    assert pacing.Pace((pacing.Limit("sender", 0), pacing.Limit("account", 30.0))).bulk_rate() == 30


def test_the_local_fallback_takes_turns_as_redis_does():
    clock = [100.0]
    local = pacing._Local(lambda: clock[0])
    taken = [pacing.Bucket("k", interval=0.5, cost=1)]
    assert local.reserve(taken, 1.0) == pacing.Turn(True, 0.0)
    assert local.reserve(taken, 1.0) == pacing.Turn(True, 0.5)
    assert local.reserve(taken, 1.0) == pacing.Turn(True, 1.0)
    assert local.reserve(taken, 1.0) == pacing.Turn(False, 1.5)  # too far: not taken
    clock[0] = 101.5
    assert local.reserve(taken, 1.0) == pacing.Turn(True, 0.0)


def test_a_message_being_sent_holds_the_next_to_that_person_a_lost_one_does_not(
    settings: Settings, fake_twilio: FakeTwilio
):
    runtime = runtime_with(settings, outbound_pacing=True, twilio_segments_per_second=100.0)
    now = datetime.now(UTC)
    try:
        rounds = ((7, now, "queued"), (8, now - timedelta(minutes=5), "sent"))
        for resident, claimed, expected in rounds:
            first, second = queue_replies(
                runtime, "sms", [(number(resident), "premier"), (number(resident), "second")], FROM
            )
            with runtime.sessions.begin() as session:
                row = session.get(OutboundMessage, first)
                assert row is not None
                row.status, row.claimed_at = "sending", claimed  # a worker has it (or had)
            assert outbound.send(runtime, second) == expected
    finally:
        runtime.close()
    # Only the lost one's follower went.
    assert [(m["To"], m["Body"]) for m in fake_twilio.messages] == [(number(8), "second")]
