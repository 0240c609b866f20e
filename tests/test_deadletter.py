"""Messages that could not be delivered: the dead-letter list, retry and discard
(gateway.moderation.deadletter), through real Redis, SQLite and PostgreSQL, and the fake
Twilio that speaks Twilio's JSON. A poison message (one whose send fails every time) stops
after its retries, shows in the list, and holds up nothing behind it."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import residents, retention
from gateway.clock import now_utc
from gateway.messages import OutgoingText, SendError
from gateway.models import ModerationEvent, OutboundMessage
from gateway.moderation import deadletter
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError
from gateway.runtime import Runtime
from tests.helpers import drain, send_sms
from workers.sweeper import sweep

POISONED = "+33612345678"
OTHER = "+33698765432"
BUDGET = "+33100000002"
ADMIN = Actor(name="alice", role="admin", scope="admin")


def rows(runtime: Runtime) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def rows_to(runtime: Runtime, fake_twilio: FakeTwilio, number: str) -> list[dict[str, Any]]:
    return [m for m in fake_twilio.messages if m["To"] == number]


def time_passes(runtime: Runtime) -> None:
    """Every retry is due now; the sweeper enqueues them and a worker runs them."""
    with runtime.sessions.begin() as session:
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.status == "queued")
            .values(next_attempt_at=now_utc() - timedelta(seconds=1))
        )
    sweep(runtime, only_due_outbound=True)
    drain(runtime)


def events(runtime: Runtime, action: str) -> list[ModerationEvent]:
    with runtime.sessions() as session:
        return list(
            session.scalars(select(ModerationEvent).where(ModerationEvent.action == action))
        )


class Poison:
    """A sender that fails every time for one recipient (as a provider that keeps answering
    500 for one number would) and sends the others through the real one."""

    def __init__(self, real: Any, error: Exception) -> None:
        self.real, self.error, self.name = real, error, real.name
        self.tried = 0

    def send(self, message: OutgoingText) -> str:
        if message.recipient == POISONED:
            self.tried += 1
            raise self.error
        return str(self.real.send(message))


@pytest.fixture
def poisoned(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Poison:
    real = runtime.sender("sms", "twilio")
    poison = Poison(real, SendError(f"Twilio 500 error 20500 for {POISONED}", retryable=True))
    monkeypatch.setattr(runtime, "sender", lambda channel, provider=None: poison)
    return poison


def failed_for_good(runtime: Runtime, fake_twilio: FakeTwilio, text: str = "BUDGET Un jardin"):
    """A receipt that Twilio refuses every time, retried until it gives up."""
    fake_twilio.fail_next(500, times=100)
    send_sms(runtime, text, POISONED, BUDGET)
    for _ in range(runtime.settings.outbound_max_attempts + 1):
        time_passes(runtime)
    fake_twilio.reset()  # Twilio works again
    failed = [r for r in rows(runtime) if r.status == "failed"]
    assert failed and all(r.attempts == runtime.settings.outbound_max_attempts for r in failed)
    (receipt,) = [r for r in failed if r.contribution_id is not None]
    return receipt


def test_a_poison_message_stops_after_its_retries_is_listed_and_blocks_nothing_behind_it(
    runtime: Runtime, fake_twilio: FakeTwilio, poisoned: Poison
):
    send_sms(runtime, "BUDGET Un jardin partagé", POISONED, BUDGET)
    # Another resident writes while the poison message is still being retried.
    send_sms(runtime, "BUDGET Une piste cyclable", OTHER, BUDGET)
    poison_rows = [r for r in rows(runtime) if r.contributor_id == rows(runtime)[0].contributor_id]
    assert rows_to(runtime, fake_twilio, OTHER)  # not held up by the poison
    for _ in range(runtime.settings.outbound_max_attempts + 2):
        time_passes(runtime)
    # It stopped: each of the poisoned resident's messages was tried the maximum, no more.
    assert poisoned.tried == runtime.settings.outbound_max_attempts * len(poison_rows)
    poison_ids = {r.id for r in poison_rows}
    for row in rows(runtime):
        if row.id in poison_ids:
            assert row.status == "failed"
            assert row.attempts == runtime.settings.outbound_max_attempts
            assert row.recipient_encrypted is None
        else:
            assert row.status == "sent"
    # Later messages to other residents still go out.
    send_sms(runtime, "BUDGET Des bancs", "+33655555555", BUDGET)
    assert rows_to(runtime, fake_twilio, "+33655555555")
    with runtime.sessions() as session:
        listed = deadletter.failed_messages(session)
        assert deadletter.failed_count(session) == len(poison_rows)
    assert {m.id for m in listed} == poison_ids
    (item,) = [m for m in listed if m.reference]
    assert item.channel == "sms" and item.provider == "twilio"
    assert (
        item.reference == "BUDGET-0001" and item.contributor and item.contributor.startswith("c-")
    )
    assert item.attempts == runtime.settings.outbound_max_attempts
    assert item.reason and "20500" in item.reason
    assert POISONED not in repr(item) and "612345678" not in repr(item)  # never the address


def test_an_adapter_that_raises_fails_the_message_at_once_into_the_list(
    runtime: Runtime, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
):
    real = runtime.sender("sms", "twilio")
    poison = Poison(real, RuntimeError(f"bug formatting {POISONED}"))
    monkeypatch.setattr(runtime, "sender", lambda channel, provider=None: poison)
    send_sms(runtime, "BUDGET Un jardin", POISONED, BUDGET)
    send_sms(runtime, "BUDGET Un potager", OTHER, BUDGET)
    with runtime.sessions() as session:
        listed = deadletter.failed_messages(session)
    assert listed and {m.contributor for m in listed} == {listed[0].contributor}
    for item in listed:
        assert item.attempts == 1 and item.reason and "bug formatting" in item.reason
        assert POISONED not in item.reason
    assert rows_to(runtime, fake_twilio, OTHER)


def test_twilio_429_waits_the_retry_after_it_gives(runtime: Runtime, fake_twilio: FakeTwilio):
    fake_twilio.fail_next(429, retry_after=120)
    send_sms(runtime, "BUDGET Un jardin", POISONED, BUDGET)
    first = rows(runtime)[0]
    assert first.status == "queued" and first.attempts == 1
    assert first.next_attempt_at is not None
    # The exponential backoff alone would be 2 s: the 120 s Twilio asked for are honoured.
    assert first.next_attempt_at - first.created_at > timedelta(seconds=100)
    assert "429" in (first.error or "")


def test_twilio_429_without_retry_after_backs_off(runtime: Runtime, fake_twilio: FakeTwilio):
    fake_twilio.fail_next(429)
    send_sms(runtime, "BUDGET Un jardin", POISONED, BUDGET)
    first = rows(runtime)[0]
    assert first.status == "queued" and first.next_attempt_at is not None
    assert first.next_attempt_at > first.created_at
    time_passes(runtime)
    assert rows(runtime)[0].status == "sent"
    assert len(rows_to(runtime, fake_twilio, POISONED)) == len(rows(runtime))


def test_retry_sends_a_failed_message_once_with_attempts_reset_and_logged(
    runtime: Runtime, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
):
    row = failed_for_good(runtime, fake_twilio)
    assert rows_to(runtime, fake_twilio, POISONED) == []
    with caplog.at_level(logging.DEBUG):
        outcome = deadletter.retry(runtime, row.id, ADMIN)
        assert outcome == deadletter.Outcome(row.id, "queued", changed=True)
        drain(runtime)
    sent = rows_to(runtime, fake_twilio, POISONED)
    assert [m["Body"] for m in sent] == [row.text]
    with runtime.sessions() as session:
        again = session.get(OutboundMessage, row.id)
        assert again is not None
        assert again.status == "sent" and again.attempts == 1 and again.recipient_encrypted is None
        assert row.id not in {m.id for m in deadletter.failed_messages(session)}
    # A second click, or the API call retried: nothing is sent twice.
    assert deadletter.retry(runtime, row.id, ADMIN) == deadletter.Outcome(row.id, "sent", False)
    drain(runtime)
    assert len(rows_to(runtime, fake_twilio, POISONED)) == 1
    (event,) = events(runtime, "outbound_retry")
    assert event.actor == "alice" and event.contribution_id is not None
    assert event.before and event.before["status"] == "failed" and "20500" in event.before["reason"]
    assert event.after == {"outbound": row.id, "status": "queued", "attempts": 0}
    assert POISONED not in caplog.text and "612345678" not in caplog.text


def test_a_retry_of_a_message_already_requeued_does_nothing_twice(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    row = failed_for_good(runtime, fake_twilio)
    first = deadletter.retry(runtime, row.id, ADMIN)  # queued, not yet sent (no worker ran)
    second = deadletter.retry(runtime, row.id, ADMIN)
    assert first.changed and not second.changed and second.status == "queued"
    drain(runtime)
    assert len(rows_to(runtime, fake_twilio, POISONED)) == 1
    assert len(events(runtime, "outbound_retry")) == 1


def test_retry_is_refused_for_a_resident_who_opted_out_since(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    row = failed_for_good(runtime, fake_twilio)
    residents.opt_out_address(runtime, "sms", POISONED, actor="alice")
    with pytest.raises(ActionError) as refused:
        deadletter.retry(runtime, row.id, ADMIN)
    assert refused.value.status == 409 and refused.value.key == "console.outbound.errors.opted_out"
    drain(runtime)
    assert rows_to(runtime, fake_twilio, POISONED) == []
    with runtime.sessions() as session:
        assert session.get(OutboundMessage, row.id).status == "failed"  # type: ignore[union-attr]
    assert events(runtime, "outbound_retry") == []


def test_a_forgotten_residents_failed_messages_leave_the_list_and_cannot_be_retried(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    row = failed_for_good(runtime, fake_twilio)
    residents.forget_address(runtime, "sms", POISONED, actor="alice")
    with runtime.sessions() as session:
        assert deadletter.failed_messages(session) == []
    with pytest.raises(ActionError) as refused:
        deadletter.retry(runtime, row.id, ADMIN)
    assert refused.value.status == 404
    drain(runtime)
    assert rows_to(runtime, fake_twilio, POISONED) == []


def test_retry_is_refused_when_the_contributor_row_is_forgotten_but_the_message_kept(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    """Defence in depth: a contributor marked forgotten (address wiped) is never written to."""
    from gateway.models import Contributor

    row = failed_for_good(runtime, fake_twilio)
    with runtime.sessions.begin() as session:
        contributor = session.get(Contributor, row.contributor_id)
        assert contributor is not None
        contributor.address_encrypted, contributor.forgotten_at = None, now_utc()
    with pytest.raises(ActionError) as refused:
        deadletter.retry(runtime, row.id, ADMIN)
    assert refused.value.status == 409 and refused.value.key == "console.outbound.errors.forgotten"


def test_discard_keeps_the_message_for_the_record_and_sends_nothing(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    row = failed_for_good(runtime, fake_twilio)
    assert deadletter.discard(runtime, row.id, ADMIN, "numéro résilié") == deadletter.Outcome(
        row.id, "discarded", True
    )
    assert deadletter.discard(runtime, row.id, ADMIN).changed is False
    with runtime.sessions() as session:
        kept = session.get(OutboundMessage, row.id)
        assert kept is not None and kept.status == "discarded" and kept.text == row.text
        assert row.id not in {m.id for m in deadletter.failed_messages(session)}
    (event,) = events(runtime, "outbound_discard")
    assert event.reason == "numéro résilié" and event.actor == "alice"
    with pytest.raises(ActionError) as refused:  # a discarded message is not retried
        deadletter.retry(runtime, row.id, ADMIN)
    assert refused.value.status == 409
    time_passes(runtime)
    assert rows_to(runtime, fake_twilio, POISONED) == []


def test_a_sent_message_cannot_be_discarded_and_an_unknown_one_is_not_found(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    send_sms(runtime, "BUDGET Un jardin", OTHER, BUDGET)
    sent = rows(runtime)[0]
    with pytest.raises(ActionError) as refused:
        deadletter.discard(runtime, sent.id, ADMIN)
    assert refused.value.status == 409
    with pytest.raises(ActionError) as missing:
        deadletter.retry(runtime, 999999, ADMIN)
    assert missing.value.status == 404
    assert rows(runtime)[0].status == "sent"


def test_a_failed_message_the_retention_purge_wiped_cannot_be_retried(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    row = failed_for_good(runtime, fake_twilio)
    later = now_utc() + timedelta(days=runtime.settings.raw_payload_retention_days + 1)
    with runtime.sessions.begin() as session:
        retention.purge(
            session,
            runtime.settings.data_path,
            later,
            days_after_close=runtime.settings.retention_days_after_close,
            raw_days=runtime.settings.raw_payload_retention_days,
        )
    with pytest.raises(ActionError) as refused:
        deadletter.retry(runtime, row.id, ADMIN)
    assert refused.value.status == 409 and refused.value.key == "console.outbound.errors.purged"
    drain(runtime)
    assert rows_to(runtime, fake_twilio, POISONED) == []
    assert events(runtime, "outbound_retry") == []
