"""The landline loop, played whole through the app's signed Twilio webhooks: a caller with only
a landline leaves a message, hears their reference, asks to be called back; the recording is
filed under that reference; a moderator publishes it; the gateway calls back within the
calling hours through Twilio's Calls API (the fake records the call); Twilio fetches what to
say (the reference and the outcome); unanswered, it is tried again; answered, it is done.
And a caller on a mobile is never offered a call back: the SMS tells them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from channels.twilio import callbacks as twilio_callbacks
from channels.twilio import voice
from channels.twilio.tests.fake_api import FakeTwilio
from channels.twilio.tests.test_voice_calls import (
    PARC_NUMBER,
    call_form,
    fixture,
    post_signed,
    said,
    spelled,
    twiml,
    verbs,
)
from gateway import callbacks
from gateway.i18n import translate
from gateway.models import Callback, Contribution, VoiceCall
from gateway.moderation import actions
from gateway.moderation.accounts import Actor
from gateway.webkeys import RUNTIME
from tests.helpers import drain

LANDLINE = "+33147000001"
CALL_SID = "CA" + "5" * 32
RECORDING_SID = "RE" + "5" * 32
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    now = [datetime(2026, 12, 8, 10, tzinfo=PARIS).astimezone(UTC)]
    monkeypatch.setattr(callbacks, "now_utc", lambda: now[0])
    return now


def callback_rows(runtime: Any) -> list[Callback]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Callback).order_by(Callback.id)))


async def twilio_requests(client: Any, url: str, form: dict[str, str]) -> Any:
    """Twilio requesting one of the URLs it was given (signed, against PUBLIC_URL)."""
    parts = urlsplit(url)
    return await post_signed(client, f"{parts.path}?{parts.query}", form)


async def test_a_landline_caller_is_called_back_with_the_outcome(
    client: Any,
    fake_twilio: FakeTwilio,
    speech_wav: bytes,
    clock: list[datetime],
):
    runtime = client.app[RUNTIME]
    incoming = call_form(PARC_NUMBER, CALL_SID, From=LANDLINE, Caller=LANDLINE)
    await twiml(await post_signed(client, voice.VOICE_PATH, incoming))
    recorded = fixture("record_action", To=PARC_NUMBER, CallSid=CALL_SID, From=LANDLINE)
    await twiml(await post_signed(client, voice.RECORDED_PATH, recorded))

    # The end of the call: the reference, and, to a landline, the offer of a call back.
    answer = fixture("gather_digits", To=PARC_NUMBER, CallSid=CALL_SID, From=LANDLINE, Digits="2")
    root = await twiml(await post_signed(client, voice.CONSENT_PATH, answer))
    gather = root[1]
    assert gather.attrib["action"] == f"{voice.REFERENCE_PATH}?saying=2&offer=1"
    assert translate("voice.callback_offer") in said(gather)
    heard = spelled(gather)
    assert heard.startswith("PARCVOIX")

    press_2 = fixture("gather_digits", To=PARC_NUMBER, CallSid=CALL_SID, From=LANDLINE, Digits="2")
    root = await twiml(
        await post_signed(client, f"{voice.REFERENCE_PATH}?saying=2&offer=1", press_2)
    )
    assert verbs(root) == ["Say", "Hangup"]
    assert root[0].text == translate("voice.callback_noted", start=9, end=20)
    with runtime.sessions() as session:
        call = session.scalar(select(VoiceCall).where(VoiceCall.call_sid == CALL_SID))
        assert call is not None and call.callback_consent is True

    # The recording arrives and is filed under the reference the caller heard.
    url = fake_twilio.add_recording(RECORDING_SID, speech_wav, "audio/wav")
    status = fixture(
        "recording_status_completed", CallSid=CALL_SID, RecordingSid=RECORDING_SID, RecordingUrl=url
    )
    await twiml(await post_signed(client, voice.RECORDING_PATH, status))
    await asyncio.to_thread(drain, runtime)
    with runtime.sessions() as session:
        (contribution,) = session.scalars(select(Contribution)).all()
    assert contribution.reference.replace("-", "") == heard
    assert contribution.callback_consent is True
    assert fake_twilio.messages == []  # a landline: no SMS receipt

    # The city publishes it: a call back, not an SMS.
    actions.decide(runtime, Actor(name="alice", role="moderator"), [contribution.id], "publish")
    (callback,) = callback_rows(runtime)
    assert callback.status == "queued"

    async def ring(outcome: str, expected: str) -> None:
        assert await asyncio.to_thread(callbacks.place, runtime, callback.id) == "calling"
        placed = fake_twilio.calls[-1]
        assert (placed["To"], placed["From"]) == (LANDLINE, PARC_NUMBER)
        if outcome == "completed":  # picked up: Twilio asks what to say
            picked = fixture("gather_digits", CallSid=placed["sid"], To=LANDLINE)
            root = await twiml(await twilio_requests(client, placed["Url"], picked))
            assert said(root)[0] == translate("voice.callback_intro")
            assert spelled(root) == heard
            assert contribution.reference in said(root)[2]  # the notice, said
            assert verbs(root)[-1] == "Hangup"
        ended = fixture("gather_digits", CallSid=placed["sid"], CallStatus=outcome)
        response = await twilio_requests(client, placed["StatusCallback"], ended)
        assert response.status == 200
        assert callback_rows(runtime)[0].status == expected

    await ring("no-answer", "queued")  # nobody home: tried again 30 minutes later
    clock[0] = callback_rows(runtime)[0].next_attempt_at or clock[0]
    await ring("completed", "done")
    (done,) = callback_rows(runtime)
    assert done.attempts == 2 and done.recipient_encrypted is None
    assert [s["event"] for s in done.log] == [
        "scheduled",
        "placed",
        "no-answer",
        "placed",
        "completed",
    ]
    assert fake_twilio.messages == []


async def test_a_mobile_caller_is_not_offered_a_call_back(client: Any):
    incoming = call_form(PARC_NUMBER, CALL_SID)  # the fixture's caller: a mobile
    await twiml(await post_signed(client, voice.VOICE_PATH, incoming))
    answer = fixture("gather_digits", To=PARC_NUMBER, CallSid=CALL_SID, Digits="1")
    root = await twiml(await post_signed(client, voice.CONSENT_PATH, answer))
    # Announcements by SMS are offered instead (tests/test_announcements_voice.py).
    assert root[1].attrib["action"] == f"{voice.REFERENCE_PATH}?saying=2&info=1"
    assert translate("voice.callback_offer") not in said(root)
    # 2 without the offer (a forged query cannot add it: Twilio signs the URL) is goodbye.
    press_2 = fixture("gather_digits", To=PARC_NUMBER, CallSid=CALL_SID, Digits="2")
    root = await twiml(await post_signed(client, f"{voice.REFERENCE_PATH}?saying=2", press_2))
    assert root[0].text == translate("voice.goodbye")
    with client.app[RUNTIME].sessions() as session:
        call = session.scalar(select(VoiceCall).where(VoiceCall.call_sid == CALL_SID))
        assert call is not None and call.callback_consent is None


async def test_a_forged_or_unknown_call_back_says_nothing(client: Any):
    form = fixture("gather_digits", CallSid="CA" + "9" * 32)
    response = await client.post(
        f"{twilio_callbacks.CALLBACK_PATH}?id=1", data=form, headers={"X-Twilio-Signature": "x"}
    )
    assert response.status == 403
    root = await twiml(await post_signed(client, f"{twilio_callbacks.CALLBACK_PATH}?id=999", form))
    assert verbs(root) == ["Hangup"]  # no such call back being placed: nothing said
    response = await post_signed(client, f"{twilio_callbacks.CALLBACK_STATUS_PATH}?id=999", form)
    assert response.status == 200
    response = await post_signed(client, twilio_callbacks.CALLBACK_PATH, form)
    assert response.status == 400  # no id
