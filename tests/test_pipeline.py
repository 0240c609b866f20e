"""From a stored message to contributions and replies, through real Redis, a real database
(SQLite and PostgreSQL) and a fake Twilio that speaks Twilio's JSON."""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import ingest, processing
from gateway.clock import now_utc
from gateway.exports import contribution_dict
from gateway.models import Base, Contribution, Contributor, InboundMessage, OutboundMessage
from gateway.privacy import outbound_recipient
from gateway.runtime import Runtime
from tests.helpers import (
    CONTRACT_FIELDS,
    contributions,
    count,
    drain,
    inbound,
    incoming_sms,
    runtime_with,
    send_sms,
)
from workers import outbound
from workers.sweeper import sweep

RESIDENT = "+33612345678"
PARC_NUMBER = "+33100000001"
UNKNOWN_NUMBER = "+33199999999"


def outbound_rows(runtime: Runtime) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def test_keyword_sms_is_filed_at_once_and_the_receipt_goes_through_twilio(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    replies = send_sms(runtime, "PARC Il faut plus de bancs", RESIDENT, PARC_NUMBER)
    (contribution,) = contributions(runtime)
    assert contribution.reference == "PARC-0001"
    assert contribution.text == "Il faut plus de bancs"
    assert contribution.kind == "individual"
    assert "PARC-0001" in replies[0]
    sent = fake_twilio.messages
    assert [m["Body"] for m in sent] == replies
    assert {m["To"] for m in sent} == {RESIDENT}
    assert {m["From"] for m in sent} == {PARC_NUMBER}  # answered from the number texted
    rows = outbound_rows(runtime)
    assert all(r.status == "sent" and r.provider == "twilio" for r in rows)
    assert [r.provider_message_id for r in rows] == [m["sid"] for m in sent]
    assert all(r.recipient_encrypted is None for r in rows)  # wiped once sent
    assert all(r.segments and r.segments >= 1 for r in rows)

    exported = contribution_dict(contribution)
    assert CONTRACT_FIELDS <= set(exported)
    assert exported["campaign"] == "parc"
    assert exported["channel"] == "sms"
    assert exported["status"] == "pending"
    assert exported["transcript"] is None
    assert exported["audio"] is False
    assert exported["received_at"].endswith("Z")
    assert exported["contributor"].startswith("c-")
    assert RESIDENT not in str(exported)


def test_neighbourhood_answer_is_recorded_on_the_filed_contribution(runtime: Runtime):
    send_sms(runtime, "PARC Des arbres", RESIDENT, PARC_NUMBER)
    replies = send_sms(runtime, "universite", RESIDENT, PARC_NUMBER)
    (contribution,) = contributions(runtime)
    assert contribution.neighbourhood == "Université"
    assert any("Université" in r for r in replies)


def test_menu_answer_files_the_kept_text_in_the_chosen_campaign(runtime: Runtime):
    (menu,) = [
        r
        for r in send_sms(runtime, "Des bancs svp", RESIDENT, UNKNOWN_NUMBER)
        if "1." in r or "1 " in r
    ][:1]
    assert contributions(runtime) == []
    first_line = next(line for line in menu.splitlines() if line.lstrip().startswith("1"))
    chosen = "budget" if "Budget" in first_line else "parc"
    send_sms(runtime, "1", RESIDENT, UNKNOWN_NUMBER)
    (contribution,) = contributions(runtime)
    assert contribution.text == "Des bancs svp"
    assert contribution.campaign is not None and contribution.campaign.slug == chosen


def test_messages_from_one_sender_are_handled_in_arrival_order_by_racing_workers(
    runtime: Runtime,
):
    stored = ingest.store(
        runtime,
        [
            incoming_sms("Des bancs svp", RESIDENT, UNKNOWN_NUMBER),
            incoming_sms("1", RESIDENT, UNKNOWN_NUMBER),
        ],
    )
    ids = [s.message_id for s in stored]
    assert None not in ids
    errors: list[BaseException] = []

    def work(message_id: int) -> None:
        try:
            processing.process_inbound(runtime, message_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    # The later message's job starts first, on another thread, as with two workers.
    threads = [threading.Thread(target=work, args=(i,)) for i in reversed(ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    (contribution,) = contributions(runtime)
    assert contribution.text == "Des bancs svp"  # "1" was the menu answer, not a contribution
    assert {m.state for m in inbound(runtime)} == {"processed"}


def test_processing_twice_changes_nothing(runtime: Runtime, fake_twilio: FakeTwilio):
    (stored,) = ingest.store(runtime, [incoming_sms("PARC Des bancs", RESIDENT, PARC_NUMBER)])
    assert stored.message_id is not None
    first = processing.process_inbound(runtime, stored.message_id)
    again = processing.process_inbound(runtime, stored.message_id)
    assert first and again == []
    outbound.send_in_order(runtime, first)
    assert outbound.send_in_order(runtime, first) == ["skipped"] * len(first)
    drain(runtime)  # the enqueued job runs too: still one message each
    assert count(runtime, Contribution) == 1
    assert len(fake_twilio.messages) == len(first)


def test_retryable_twilio_errors_are_retried_with_backoff_and_sent_once(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    fake_twilio.fail_next(429, 20429, times=1)
    send_sms(runtime, "BUDGET Un jardin partagé", RESIDENT, "+33100000002")
    (row, *_) = outbound_rows(runtime)
    assert row.status == "queued" and row.attempts == 1 and row.next_attempt_at is not None
    assert row.next_attempt_at > row.created_at  # a backoff was set
    with runtime.sessions.begin() as session:  # still within it, however slow this machine is
        session.execute(
            update(OutboundMessage).values(next_attempt_at=now_utc() + timedelta(hours=1))
        )
    sweep(runtime, only_due_outbound=True)
    drain(runtime)
    with runtime.sessions() as session:
        assert session.get(OutboundMessage, row.id).attempts == 1  # not due yet: not retried
    fake_twilio.fail_next(503, times=1)
    for attempt in (2, 3):
        with runtime.sessions.begin() as session:  # time passes: the retry is due
            session.execute(
                update(OutboundMessage).values(next_attempt_at=now_utc() - timedelta(seconds=1))
            )
        sweep(runtime, only_due_outbound=True)
        drain(runtime)
        with runtime.sessions() as session:
            row = session.get(OutboundMessage, row.id)
        assert row.attempts == attempt
    assert row.status == "sent"
    receipts = [m for m in fake_twilio.messages if "BUDGET-0001" in m["Body"]]
    assert len(receipts) == 1


def test_permanent_failure_stops_after_max_attempts(runtime: Runtime, fake_twilio: FakeTwilio):
    fake_twilio.fail_next(500, times=100)
    send_sms(runtime, "BUDGET Un jardin", RESIDENT, "+33100000002")
    for _ in range(runtime.settings.outbound_max_attempts + 2):
        with runtime.sessions.begin() as session:
            session.execute(
                update(OutboundMessage).values(next_attempt_at=now_utc() - timedelta(seconds=1))
            )
        sweep(runtime, only_due_outbound=True)
        drain(runtime)
    rows = outbound_rows(runtime)
    assert {r.status for r in rows} == {"failed"}
    assert {r.attempts for r in rows} == {runtime.settings.outbound_max_attempts}
    assert all(r.recipient_encrypted is None for r in rows)
    assert fake_twilio.messages == []


def test_twilio_21610_marks_the_resident_opted_out(runtime: Runtime, fake_twilio: FakeTwilio):
    fake_twilio.fail_next(400, 21610, times=10)
    send_sms(runtime, "BUDGET Un jardin", RESIDENT, "+33100000002")
    rows = outbound_rows(runtime)
    assert rows[0].status == "failed" and rows[0].attempts == 1
    with runtime.sessions() as session:
        (resident,) = session.scalars(select(Contributor))
    assert resident.opted_out


def test_stop_confirms_once_then_silence(runtime: Runtime, fake_twilio: FakeTwilio):
    send_sms(runtime, "PARC Des bancs", RESIDENT, PARC_NUMBER)
    confirmation = send_sms(runtime, "STOP", RESIDENT, PARC_NUMBER)
    assert len(confirmation) == 1
    sent_before = len(fake_twilio.messages)
    assert send_sms(runtime, "AIDE", RESIDENT, PARC_NUMBER) == []
    assert send_sms(runtime, "BUDGET Toujours là", RESIDENT, "+33100000002") == []
    assert len(fake_twilio.messages) == sent_before
    # An opted-out resident's unambiguous contribution is still heard, silently.
    assert [c.text for c in contributions(runtime)] == ["Des bancs", "Toujours là"]
    assert {m.state for m in inbound(runtime)} == {"processed"}


def test_oublier_erases_the_address_and_detaches_contributions(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    send_sms(runtime, "PARC Des bancs", RESIDENT, PARC_NUMBER)
    confirmation = send_sms(runtime, "OUBLIER", RESIDENT, PARC_NUMBER)
    assert len(confirmation) == 1
    assert fake_twilio.messages[-1]["Body"] == confirmation[0]
    assert fake_twilio.messages[-1]["To"] == RESIDENT
    (contribution,) = contributions(runtime)
    assert contribution.text == "Des bancs" and contribution.contributor_id is None
    assert count(runtime, Contributor) == 0
    for message in inbound(runtime):
        assert message.sender_encrypted is None and message.raw_encrypted is None
        assert message.sender_hash is None
    assert all(r.recipient_encrypted is None for r in outbound_rows(runtime))
    # Coming back later is a new, unknown resident, who gets the notice again.
    replies = send_sms(runtime, "PARC Revenu", RESIDENT, PARC_NUMBER)
    assert count(runtime, Contributor) == 1
    assert len(replies) >= 2


@pytest.mark.parametrize(("keyword", "campaign_status"), [("ECOLE", "closed"), ("VELO", "draft")])
def test_closed_and_draft_campaigns_get_a_polite_answer_not_a_contribution(
    runtime: Runtime, keyword: str, campaign_status: str
):
    replies = send_sms(runtime, f"{keyword} mon avis", RESIDENT, UNKNOWN_NUMBER)
    assert contributions(runtime) == []
    assert replies and any(r.strip() for r in replies)


def test_abandoned_conversation_is_filed_by_the_sweeper(settings, fake_twilio: FakeTwilio):
    rt = runtime_with(settings, conversation_expiry_minutes=0)
    try:
        send_sms(rt, "Des bancs svp", RESIDENT, UNKNOWN_NUMBER)  # menu, then silence
        assert contributions(rt) == []
        assert sweep(rt).expired == 1
        drain(rt)
        (contribution,) = contributions(rt)
        assert contribution.text == "Des bancs svp"
        assert contribution.campaign_id is None  # no campaign chosen: moderators sort it
        assert contribution.reference.startswith("AGORA-")
        assert contribution.filed_on_expiry
        assert any(contribution.reference in m["Body"] for m in fake_twilio.messages)
        assert sweep(rt).expired == 0
    finally:
        rt.close()


def test_a_passing_failure_is_recorded_and_retried_then_given_up(runtime: Runtime, monkeypatch):
    """The database or Redis failing for a moment: retried, and left to an operator after
    MAX_ATTEMPTS. (A failure a retry cannot fix is set aside at once: tests/test_quarantine.)"""
    from sqlalchemy.exc import OperationalError

    (stored,) = ingest.store(runtime, [incoming_sms("PARC boom", RESIDENT, PARC_NUMBER)])
    assert stored.message_id is not None

    def broken(*args, **kwargs):
        raise OperationalError("SELECT", {}, ConnectionRefusedError("database went away"))

    monkeypatch.setattr(processing.engine, "handle", broken)
    for _ in range(processing.MAX_ATTEMPTS):
        with pytest.raises(OperationalError):
            processing.process_inbound(runtime, stored.message_id)
    (message,) = inbound(runtime)
    assert message.state == "failed"
    assert message.attempts == processing.MAX_ATTEMPTS
    assert (message.error or "").startswith("OperationalError")


def test_no_address_in_clear_in_the_database_or_the_logs(runtime: Runtime, caplog):
    caplog.set_level(logging.DEBUG)
    number = "+33677889900"
    send_sms(runtime, "PARC Des bancs", number, PARC_NUMBER)
    send_sms(runtime, "SUIVI PARC-0001", number, PARC_NUMBER)
    send_sms(runtime, "STOP", number, PARC_NUMBER)
    digits = number[1:]
    with runtime.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        assert digits.encode() not in bytes(value), table.name
                    else:
                        assert digits not in str(value), table.name
    assert digits not in caplog.text
    if runtime.engine.dialect.name == "sqlite":  # the files themselves, journal included
        path = runtime.engine.url.database
        assert path is not None
        for suffix in ("", "-wal"):
            if os.path.exists(path + suffix):
                with open(path + suffix, "rb") as fh:
                    assert digits.encode() not in fh.read()


def test_sweeper_takes_back_a_stuck_send_and_twilio_is_asked_before_any_resend(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    send_sms(runtime, "PARC Des bancs", RESIDENT, PARC_NUMBER)
    sent = len(fake_twilio.messages)
    # A send claimed an hour ago whose worker vanished; Twilio had taken it.
    accepted = fake_twilio.twilio_client().messages.create(to=RESIDENT, from_=PARC_NUMBER, body="x")
    with runtime.sessions.begin() as session:
        row = OutboundMessage(
            decision_key="manual-1",
            channel="sms",
            sender=PARC_NUMBER,
            text="x",
            status="sending",
            attempts=1,
            claimed_at=now_utc() - timedelta(hours=1),
            created_at=now_utc() - timedelta(hours=1),
            recipient_encrypted=runtime.vault.encrypt(RESIDENT, outbound_recipient("manual-1")),
        )
        session.add(row)
    assert sweep(runtime).interrupted == 1
    sweep(runtime)  # queued again: the next sweep enqueues it
    drain(runtime)
    with runtime.sessions() as session:
        again = session.get(OutboundMessage, row.id)
    assert again is not None and again.status == "sent", again and again.error
    assert again.provider_message_id == accepted.sid
    assert len(fake_twilio.messages) == sent + 1  # the one taken before, not a second


def test_inbound_never_processed_is_picked_up_by_the_sweeper(runtime: Runtime):
    ingest.store(runtime, [incoming_sms("PARC Des bancs", RESIDENT, PARC_NUMBER)])
    runtime.redis.flushdb()  # Redis restarted without its data
    assert sweep(runtime).inbound == 1
    drain(runtime)
    assert count(runtime, Contribution) == 1
    with runtime.sessions() as session:
        assert session.scalar(select(InboundMessage.state)) == "processed"


def test_a_flood_from_one_resident_is_filed_but_replies_are_capped(
    settings, fake_twilio: FakeTwilio
):
    rt = runtime_with(settings, replies_per_hour=5)
    try:
        stored = ingest.store(
            rt, [incoming_sms(f"BUDGET idée {i}", RESIDENT, "+33100000002") for i in range(12)]
        )
        assert all(s.message_id for s in stored)
        drain(rt)
        assert len(contributions(rt)) == 12  # every message heard
        assert len(fake_twilio.messages) == 5  # but no more than 5 SMS an hour
        rows = outbound_rows(rt)
        withheld = [r for r in rows if r.status == "withheld"]
        assert withheld and all(r.recipient_encrypted is None for r in withheld)
        send_sms(rt, "STOP", RESIDENT, "+33100000002")  # the opt-out is still confirmed
        assert len(fake_twilio.messages) == 6
    finally:
        rt.close()


def test_a_job_popped_by_a_worker_that_died_is_not_taken_for_pending(runtime: Runtime):
    (stored,) = ingest.store(runtime, [incoming_sms("PARC Des bancs", RESIDENT, PARC_NUMBER)])
    runtime.redis.delete("rq:queue:inbound")  # popped, then the worker and Redis went away
    assert sweep(runtime).inbound == 1  # still "queued" in its hash, but in no queue
    drain(runtime)
    assert count(runtime, Contribution) == 1
    assert stored.message_id is not None
