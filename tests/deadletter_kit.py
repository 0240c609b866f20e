"""Messages that could not be delivered, made the way production makes them: Twilio (the fake,
which answers as Twilio does) refuses the receipt; shared by the dead-letter tests of the
core, the API and the console."""

from __future__ import annotations

from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.models import OutboundMessage
from gateway.runtime import Runtime
from tests.helpers import send_sms

BUDGET_NUMBER = "+33100000002"
INVALID_NUMBER = 21211  # Twilio: "The 'To' number is not a valid phone number": not retried


def undeliverable(
    runtime: Runtime, fake_twilio: FakeTwilio, sender: str, text: str = "BUDGET Un jardin"
) -> int:
    """One resident's SMS whose replies Twilio refuses for good; returns the receipt's id
    (failed, in the dead-letter list). Twilio then works again."""
    fake_twilio.fail_next(400, INVALID_NUMBER, times=10)
    send_sms(runtime, text, sender, BUDGET_NUMBER)
    fake_twilio.reset()
    with runtime.sessions() as session:
        failed = session.scalars(
            select(OutboundMessage).where(
                OutboundMessage.status == "failed", OutboundMessage.contribution_id.is_not(None)
            )
        ).all()
    return failed[-1].id
