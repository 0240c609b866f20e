"""Inbound flood limits (gateway.floods) end to end: stored messages, the worker, the outbox
and the fake Twilio API, on SQLite and PostgreSQL (the ``settings`` fixture)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import floods, ingest
from gateway.clock import now_utc
from gateway.i18n import translate_for
from gateway.models import Campaign, Contribution, InboundMessage, OutboundMessage
from gateway.runtime import Runtime
from tests.helpers import contributions, drain, incoming_sms, runtime_with
from workers.sweeper import sweep

FLOODER = "+33611111111"
NEIGHBOUR = "+33622222222"
BUDGET_NUMBER = "+33100000002"
NOTICE_FR = translate_for("sms", floods.NOTICE, "fr")


def texts_to(fake: FakeTwilio, number: str) -> list[str]:
    return [m["Body"] for m in fake.messages if m["To"] == number]


def flood_marks(rt: Runtime) -> dict[str, bool]:
    return {c.text: c.flood for c in contributions(rt)}


def test_a_flooding_sender_is_kept_marked_told_once_and_others_are_unaffected(
    settings, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="gateway")
    rt = runtime_with(settings, flood_per_sender_per_minute=5, replies_per_hour=100)
    try:
        burst = [incoming_sms(f"BUDGET idée {i}", FLOODER, BUDGET_NUMBER) for i in range(12)]
        burst.insert(6, incoming_sms("BUDGET un banc", NEIGHBOUR, BUDGET_NUMBER))
        stored = ingest.store(rt, burst)
        assert all(s.message_id for s in stored)
        drain(rt)

        marks = flood_marks(rt)
        assert len(marks) == 13  # every message filed, none lost
        assert [marks[f"idée {i}"] for i in range(12)] == [False] * 5 + [True] * 7
        assert marks["un banc"] is False

        to_flooder = texts_to(fake_twilio, FLOODER)
        assert to_flooder.count(NOTICE_FR) == 1  # told once, then silence
        receipts = [t for t in to_flooder if "réf." in t]
        assert len(receipts) == 5  # within the limit, answered as usual; then none
        assert to_flooder[-1] == NOTICE_FR
        to_neighbour = texts_to(fake_twilio, NEIGHBOUR)
        assert [t for t in to_neighbour if "réf." in t] and NOTICE_FR not in to_neighbour
        with rt.sessions() as session:
            withheld = session.scalars(
                select(OutboundMessage).where(OutboundMessage.status == "withheld")
            ).all()
            assert len(withheld) == 7
            assert all(r.recipient_encrypted is None for r in withheld)
            assert {r.error for r in withheld} == {"flood limit (5 messages a minute)"}
            assert all(m.state == "processed" for m in session.scalars(select(InboundMessage)))
        # Logged, without the number (a hash's prefix names the sender).
        flood_lines = [r.getMessage() for r in caplog.records if "flood from" in r.getMessage()]
        assert len(flood_lines) == 7
        assert not [r for r in caplog.records if "611111111" in r.getMessage()]

        # Still flooding a little later: no second notice within the hour.
        ingest.store(rt, [incoming_sms("BUDGET encore", FLOODER, BUDGET_NUMBER)])
        drain(rt)
        assert texts_to(fake_twilio, FLOODER).count(NOTICE_FR) == 1
        assert flood_marks(rt)["encore"] is True
    finally:
        rt.close()


def test_the_window_passes_and_the_sender_is_answered_again(settings, fake_twilio: FakeTwilio):
    rt = runtime_with(settings, flood_per_sender_per_minute=2, replies_per_hour=100)
    try:
        ingest.store(
            rt, [incoming_sms(f"BUDGET idée {i}", FLOODER, BUDGET_NUMBER) for i in range(4)]
        )
        drain(rt)
        later = dataclasses.replace(
            incoming_sms("BUDGET plus tard", FLOODER, BUDGET_NUMBER),
            received_at=now_utc() + timedelta(minutes=2),
        )
        ingest.store(rt, [later])
        drain(rt)
        marks = flood_marks(rt)
        assert [marks[f"idée {i}"] for i in range(4)] == [False, False, True, True]
        assert marks["plus tard"] is False
        last = texts_to(fake_twilio, FLOODER)[-1]
        assert "réf." in last and last != NOTICE_FR
    finally:
        rt.close()


def test_stop_is_confirmed_even_during_a_flood(settings, fake_twilio: FakeTwilio):
    rt = runtime_with(settings, flood_per_sender_per_minute=2, replies_per_hour=100)
    try:
        messages = [incoming_sms(f"BUDGET idée {i}", FLOODER, BUDGET_NUMBER) for i in range(4)]
        ingest.store(rt, [*messages, incoming_sms("STOP", FLOODER, BUDGET_NUMBER)])
        drain(rt)
        stop = translate_for("sms", "stop.confirmed", "fr")
        assert texts_to(fake_twilio, FLOODER)[-1] == stop
    finally:
        rt.close()


def test_a_flooded_contribution_is_not_published_at_once_a_posteriori(
    settings, fake_twilio: FakeTwilio
):
    rt = runtime_with(settings, flood_per_sender_per_minute=2, replies_per_hour=100)
    try:
        with rt.sessions.begin() as session:
            session.execute(
                update(Campaign)
                .where(Campaign.slug == "budget")
                .values(moderation_mode="a_posteriori")
            )
        ingest.store(
            rt, [incoming_sms(f"BUDGET idée {i}", FLOODER, BUDGET_NUMBER) for i in range(3)]
        )
        drain(rt)
        by_text = {c.text: c for c in contributions(rt)}
        assert [by_text[f"idée {i}"].status for i in range(3)] == [
            "published",
            "published",
            "pending",
        ]
        assert by_text["idée 2"].flood is True
    finally:
        rt.close()


def test_past_the_global_limit_replies_are_paced_not_dropped(settings, fake_twilio: FakeTwilio):
    rt = runtime_with(settings, flood_global_per_minute=3, replies_per_hour=100)
    senders = [f"+3361000000{i}" for i in range(5)]
    try:
        stored = ingest.store(
            rt, [incoming_sms("BUDGET un banc", s, BUDGET_NUMBER) for s in senders]
        )
        drain(rt)
        assert len(contributions(rt)) == 5  # all filed at once
        assert not any(c.flood for c in contributions(rt))  # no one sender flooded
        answered = {m["To"] for m in fake_twilio.messages}
        assert answered == set(senders[:3])  # within the limit: at once
        with rt.sessions() as session:
            waiting = session.scalars(
                select(OutboundMessage).where(OutboundMessage.status == "queued")
            ).all()
            # the 4th and 5th messages' replies (a receipt, a first-contact notice): later
            assert {r.inbound_message_id for r in waiting} == {s.message_id for s in stored[3:]}
            assert all(r.next_attempt_at is not None for r in waiting)
            assert all(r.next_attempt_at > r.created_at for r in waiting)  # type: ignore[operator]
        # A minute later (the rows' time moved instead of the clock), the sweeper sends them.
        with rt.sessions.begin() as session:
            session.execute(
                update(OutboundMessage)
                .where(OutboundMessage.status == "queued")
                .values(next_attempt_at=now_utc() - timedelta(seconds=1))
            )
        sweep(rt)
        drain(rt)
        assert {m["To"] for m in fake_twilio.messages} == set(senders)
    finally:
        rt.close()


def test_the_count_is_the_sender_s_own_and_stable_on_a_retry(runtime: Runtime):
    base = now_utc()
    ingest.store(
        runtime,
        [
            *[
                dataclasses.replace(
                    incoming_sms(f"BUDGET {i}", FLOODER, BUDGET_NUMBER),
                    received_at=base + timedelta(seconds=i),
                )
                for i in range(3)
            ],
            dataclasses.replace(
                incoming_sms("BUDGET x", NEIGHBOUR, BUDGET_NUMBER),
                received_at=base + timedelta(seconds=1),
            ),
        ],
    )
    with runtime.sessions() as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.received_at)).all()
        last = next(r for r in rows if r.text == "BUDGET 2")
        neighbour = next(r for r in rows if r.text == "BUDGET x")
        pressure = floods.measure(session, runtime.settings, last)
        assert (pressure.sender_count, pressure.global_count) == (3, 4)
        assert floods.measure(session, runtime.settings, last) == pressure
        assert floods.measure(session, runtime.settings, neighbour).sender_count == 1
        first = next(r for r in rows if r.text == "BUDGET 0")
        assert floods.measure(session, runtime.settings, first).sender_count == 1


def test_contribution_flood_defaults_to_false(runtime: Runtime):
    with runtime.sessions.begin() as session:
        session.add(Contribution(reference="X-1", channel="sms", text="t"))
    with runtime.sessions() as session:
        assert session.scalar(select(Contribution.flood)) is False
