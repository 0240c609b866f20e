"""Calling back the callers who asked for it (gateway.callbacks): only those without SMS who
pressed the key, only within the calling hours, tried again when busy or unanswered, given up
after the last attempt, never after STOP or OUBLIER; each attempt logged for moderators.

The calls go through the installed voice plugin (Twilio) to its fake REST API, which records
them; the clock is fixed (gateway.callbacks.now_utc) to test the hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import callbacks, residents
from gateway.models import Callback, Contribution, Contributor, OutboundMessage
from gateway.moderation import actions
from gateway.moderation.accounts import Actor
from gateway.privacy import contributor_address, new_contributor_id
from gateway.references import next_reference
from gateway.runtime import Runtime
from gateway.settings import Settings

ALICE = Actor(name="alice", role="moderator")
LANDLINE = "+33147000001"
MOBILE = "+33612345678"
PARIS = ZoneInfo("Europe/Paris")


def paris(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The time the call backs see: set ``clock[0]``."""
    now = [paris(8, 10)]
    monkeypatch.setattr(callbacks, "now_utc", lambda: now[0])
    return now


def file_voice(runtime: Runtime, number: str, *, consent: bool | None) -> int:
    with runtime.sessions.begin() as session:
        address_hash = runtime.vault.lookup_hash("voice", number)
        contributor = Contributor(
            public_id=new_contributor_id(),
            channel="voice",
            address_hash=address_hash,
            address_encrypted=runtime.vault.encrypt(
                number, contributor_address("voice", address_hash)
            ),
        )
        session.add(contributor)
        session.flush()
        contribution = Contribution(
            reference=next_reference(session, "PARC"),
            contributor_id=contributor.id,
            channel="voice",
            text="il faut des bancs",
            transcription_status="done",
            callback_consent=consent,
            received_at=datetime.now(UTC),
        )
        session.add(contribution)
        session.flush()
        return contribution.id


def rows(runtime: Runtime) -> list[Callback]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Callback).order_by(Callback.id)))


def publish(runtime: Runtime, contribution_id: int) -> None:
    actions.decide(runtime, ALICE, [contribution_id], "publish")


# -- the calling hours ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (paris(8, 10), paris(8, 10)),  # within the hours: now
        (paris(8, 9), paris(8, 9)),  # the first minute
        (paris(8, 6, 30), paris(8, 9)),  # early morning: at nine
        (paris(8, 20), paris(9, 9)),  # 20:00 is past the hours: tomorrow at nine
        (paris(8, 23, 59), paris(9, 9)),
    ],
)
def test_the_next_moment_within_the_calling_hours(moment: datetime, expected: datetime):
    assert callbacks.next_window(Settings(), moment) == expected


def test_the_hours_are_a_setting_in_the_citys_time_zone():
    settings = Settings(voice_callback_hours="10-12", timezone="America/Guadeloupe")
    noon_in_paris = paris(8, 12)  # 07:00 in Guadeloupe
    assert callbacks.next_window(settings, noon_in_paris) == datetime(
        2026, 12, 8, 10, tzinfo=ZoneInfo("America/Guadeloupe")
    ).astimezone(UTC)


# -- who is called back --------------------------------------------------------------------------


def test_a_landline_caller_who_asked_is_called_back_and_nobody_else(
    runtime: Runtime, fake_twilio: FakeTwilio, clock: list[datetime]
):
    asked = file_voice(runtime, LANDLINE, consent=True)
    not_asked = file_voice(runtime, "+33147000002", consent=None)
    mobile = file_voice(runtime, MOBILE, consent=True)  # a mobile gets the SMS instead
    for contribution_id in (asked, not_asked, mobile):
        publish(runtime, contribution_id)
    (callback,) = rows(runtime)
    assert callback.contribution_id == asked
    assert callback.status == "queued" and callback.next_attempt_at == clock[0]
    assert LANDLINE.encode() not in (callback.recipient_encrypted or b"")
    with runtime.sessions() as session:
        failed = session.scalars(
            select(OutboundMessage).where(OutboundMessage.contribution_id == not_asked)
        ).all()
    assert [n.status for n in failed] == ["failed"]  # as before: visible, not sent

    assert callbacks.place(runtime, callback.id) == "calling"
    (call,) = fake_twilio.calls
    assert call["To"] == LANDLINE
    assert call["Url"].endswith(f"/webhooks/twilio/voice/callback?id={callback.id}")
    assert call["StatusCallback"].endswith(
        f"/webhooks/twilio/voice/callback-status?id={callback.id}"
    )
    assert callbacks.place(runtime, callback.id) == "calling"  # placed once, not twice
    assert len(fake_twilio.calls) == 1

    said = callbacks.script(runtime, callback.id)
    assert said is not None and said.recording is None  # nothing recorded: the text is said
    assert said.reference.startswith("PARC-") and said.reference in said.text
    assert said.language == "fr"
    assert callbacks.result(runtime, callback.id, "completed") == "done"
    (done,) = rows(runtime)
    assert done.recipient_encrypted is None  # the number goes once it is done
    assert [step["event"] for step in done.log] == ["scheduled", "placed", "completed"]
    assert callbacks.script(runtime, callback.id) is None  # not being placed any more


def test_busy_or_unanswered_is_tried_again_later_then_given_up(
    runtime: Runtime, fake_twilio: FakeTwilio, clock: list[datetime]
):
    publish(runtime, file_voice(runtime, LANDLINE, consent=True))
    (callback,) = rows(runtime)
    outcomes = ["busy", "no-answer", "no-answer"]  # VOICE_CALLBACK_ATTEMPTS = 3
    for attempt, outcome in enumerate(outcomes, start=1):
        assert callbacks.place(runtime, callback.id) == "calling"
        after = callbacks.result(runtime, callback.id, outcome)
        (row,) = rows(runtime)
        assert row.attempts == attempt
        if attempt < len(outcomes):
            assert after == "queued"
            assert row.next_attempt_at == clock[0] + timedelta(minutes=30)
            assert callbacks.place(runtime, callback.id) == "queued"  # not due yet
            clock[0] = row.next_attempt_at
        else:
            assert after == "given_up" and row.recipient_encrypted is None
    assert len(fake_twilio.calls) == 3
    events = [step["event"] for step in rows(runtime)[0].log]
    assert events == ["scheduled", "placed", "busy", "placed", "no-answer", "placed", "no-answer"]


def test_nobody_is_called_outside_the_calling_hours(
    runtime: Runtime, fake_twilio: FakeTwilio, clock: list[datetime]
):
    clock[0] = paris(8, 21, 30)  # a moderator deciding late
    publish(runtime, file_voice(runtime, LANDLINE, consent=True))
    (callback,) = rows(runtime)
    assert callback.next_attempt_at == paris(9, 9)
    clock[0] = paris(9, 8, 59)
    with runtime.sessions() as session:
        assert callbacks.due(session, clock[0]) == []
    assert callbacks.place(runtime, callback.id) == "queued"
    assert fake_twilio.calls == []
    # Busy at 19:50: the next try would be after the hours, so it waits for the morning.
    clock[0] = paris(9, 19, 50)
    with runtime.sessions() as session:
        assert callbacks.due(session, clock[0]) == [(callback.id, 0)]
    assert callbacks.place(runtime, callback.id) == "calling"
    assert callbacks.result(runtime, callback.id, "busy") == "queued"
    assert rows(runtime)[0].next_attempt_at == paris(10, 9)


def test_a_person_who_opted_out_or_was_forgotten_is_not_called(
    runtime: Runtime, fake_twilio: FakeTwilio, clock: list[datetime]
):
    first = file_voice(runtime, LANDLINE, consent=True)
    second = file_voice(runtime, "+33147000002", consent=True)
    publish(runtime, first)
    publish(runtime, second)
    opted, forgotten = rows(runtime)
    with runtime.sessions.begin() as session:
        residents.opt_out(session, runtime.vault.lookup_hash("voice", LANDLINE), clock[0])
    assert callbacks.place(runtime, opted.id) == "given_up"
    with runtime.sessions.begin() as session:
        residents.forget(
            session, runtime.settings.data_path, runtime.vault.lookup_hash("voice", "+33147000002")
        )
    remaining = [r.id for r in rows(runtime)]
    assert forgotten.id not in remaining and remaining == [opted.id]  # gone with the person
    assert fake_twilio.calls == []


def test_a_call_twilio_refuses_is_tried_again_or_given_up_by_its_error(
    runtime: Runtime, fake_twilio: FakeTwilio, clock: list[datetime]
):
    publish(runtime, file_voice(runtime, LANDLINE, consent=True))
    (callback,) = rows(runtime)
    fake_twilio.fail_next(503, 20503)
    assert callbacks.place(runtime, callback.id) == "queued"  # Twilio unavailable: later
    clock[0] = rows(runtime)[0].next_attempt_at or clock[0]
    fake_twilio.fail_next(400, 21211)
    assert callbacks.place(runtime, callback.id) == "failed"  # a number Twilio refuses
    (row,) = rows(runtime)
    assert row.error and "21211" in row.error and LANDLINE not in row.error
