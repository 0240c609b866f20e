"""Announcements on the phone: after their reference, a caller whose number can receive an SMS
is offered 3 to be told of new campaigns by SMS (gateway.announcements); a landline caller is
not (announcements are texts), and a forged or unknown call records nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from channels.twilio import voice
from channels.twilio.tests.test_voice_calls import PARC_NUMBER, call_form, fixture, said, twiml
from channels.twilio.tests.test_voice_calls import post_signed as signed
from gateway import announcements
from gateway.i18n import translate
from gateway.models import Contributor, OutboundMessage
from gateway.moderation import campaigns as campaign_admin
from gateway.moderation.accounts import Actor
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

MOBILE = "+33612345678"  # the fixture's caller
LANDLINE = "+33147000001"
CALL_SID = "CA" + "3" * 32


async def end_of_call(client: Any, caller: str) -> Any:
    """A call made, its message recorded, consent given: the TwiML that says the reference."""
    await twiml(
        await signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER, CALL_SID, From=caller))
    )
    recorded = fixture("record_action", To=PARC_NUMBER, CallSid=CALL_SID, From=caller)
    await twiml(await signed(client, voice.RECORDED_PATH, recorded))
    answer = fixture("gather_digits", To=PARC_NUMBER, CallSid=CALL_SID, From=caller, Digits="1")
    return await twiml(await signed(client, voice.CONSENT_PATH, answer))


def opted_in(runtime: Runtime, number: str) -> list[bool]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(Contributor.announcements).where(
                    Contributor.address_hash == runtime.vault.lookup_hash("voice", number)
                )
            )
        )


async def test_a_mobile_caller_presses_3_and_is_announced_the_next_campaign_by_sms(client: Any):
    runtime = client.app[RUNTIME]
    root = await end_of_call(client, MOBILE)
    action = root[1].attrib["action"]
    assert action == f"{voice.REFERENCE_PATH}?saying=2&info=1"
    assert translate("voice.announcements_offer") in said(root)
    assert opted_in(runtime, MOBILE) == []  # nothing before the key is pressed
    press_3 = fixture("gather_digits", To=PARC_NUMBER, CallSid=CALL_SID, From=MOBILE, Digits="3")
    root = await twiml(await signed(client, action, press_3))
    assert said(root) == [translate("voice.announcements_noted")]
    assert root[-1].tag == "Hangup"
    assert opted_in(runtime, MOBILE) == [True]
    # The caller's next campaign comes by SMS, on the number they called from.
    admin = Actor(name="a", role="admin")
    campaign_admin.set_campaign_status(runtime, admin, "radio", "closed")
    campaign_admin.set_campaign_status(runtime, admin, "radio", "open")
    with runtime.sessions() as session:
        (row,) = session.scalars(
            select(OutboundMessage).where(OutboundMessage.message_key == announcements.OPENED)
        ).all()
        assert row.channel == "sms" and row.recipient_encrypted is not None
        assert MOBILE.encode() not in row.recipient_encrypted


async def test_a_landline_caller_is_not_offered_announcements_and_3_records_nothing(client: Any):
    runtime = client.app[RUNTIME]
    root = await end_of_call(client, LANDLINE)
    action = root[1].attrib["action"]
    assert "info=1" not in action and "offer=1" in action  # the call back instead
    assert translate("voice.announcements_offer") not in said(root)
    press_3 = fixture("gather_digits", To=PARC_NUMBER, CallSid=CALL_SID, From=LANDLINE, Digits="3")
    root = await twiml(await signed(client, action, press_3))
    assert said(root) == [translate("voice.goodbye")]
    assert opted_in(runtime, LANDLINE) in ([], [False])


async def test_an_unknown_call_pressing_3_records_nothing(client: Any):
    runtime = client.app[RUNTIME]
    press_3 = fixture("gather_digits", To=PARC_NUMBER, CallSid="CA" + "4" * 32, Digits="3")
    root = await twiml(await signed(client, f"{voice.REFERENCE_PATH}?saying=2&info=1", press_3))
    assert said(root) == [translate("voice.goodbye")]
    with runtime.sessions() as session:
        assert session.scalars(select(Contributor)).all() == []


async def test_a_forged_press_is_refused(client: Any):
    form = fixture("gather_digits", To=PARC_NUMBER, CallSid=CALL_SID, Digits="3")
    response = await client.post(
        f"{voice.REFERENCE_PATH}?saying=2&info=1", data=form, headers={"X-Twilio-Signature": "x"}
    )
    assert response.status == 403
