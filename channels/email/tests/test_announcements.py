"""Announcements by email: INFO in a mail (received by the gateway's SMTP receiver, its sender
verified) asks for them; a campaign that opens is announced to the SMTP sink, once; a mail
whose sender could not be verified asks nothing (the address may be someone else's)."""

from __future__ import annotations

from sqlalchemy import select

from channels.email.tests.conftest import Receiver
from channels.email.tests.servers import SmtpSink
from channels.email.tests.test_paths import RESIDENT, mail
from gateway import announcements
from gateway.models import Contributor, OutboundMessage
from gateway.moderation import campaigns as campaign_admin
from gateway.moderation.accounts import Actor
from gateway.runtime import Runtime
from tests.helpers import drain
from workers import outbound

ADMIN = Actor(name="admin", role="admin")


def opted_in(runtime: Runtime) -> list[bool]:
    with runtime.sessions() as session:
        return [c.announcements for c in session.scalars(select(Contributor))]


def test_info_by_email_opts_in_and_the_opening_is_mailed_once(
    receiver: Receiver, mail_runtime: Runtime, sink: SmtpSink, monkeypatch
):
    # Whatever the hour the test runs at: the hours themselves are tested with SMS.
    monkeypatch.setattr(announcements, "hours", lambda settings: (0, 24))
    receiver.send(mail("INFO", subject="INFO"), sender=RESIDENT)
    drain(mail_runtime)
    confirmed = sink.wait_for(1)[0]["message"].get_body(("plain",)).get_content()
    assert "INFO STOP" in confirmed
    assert opted_in(mail_runtime) == [True]
    for status in ("open", "closed", "open"):
        campaign_admin.set_campaign_status(mail_runtime, ADMIN, "velo", status)
    with mail_runtime.sessions() as session:
        (row,) = session.scalars(
            select(OutboundMessage).where(OutboundMessage.message_key == announcements.OPENED)
        ).all()
    assert row.channel == "email"
    assert outbound.send(mail_runtime, row.id) == "sent"
    announced = sink.wait_for(2)[-1]
    assert announced["rcpt_tos"] == [RESIDENT]
    text = announced["message"].get_body(("plain",)).get_content()
    assert "Plan vélo" in text and "VELO" in text


def test_an_unverified_sender_cannot_ask_for_announcements(
    receiver: Receiver, mail_runtime: Runtime, sink: SmtpSink
):
    receiver.send(mail("INFO", subject="INFO", authentication="fail"), sender=RESIDENT)
    drain(mail_runtime)
    assert opted_in(mail_runtime) in ([], [False])
    with mail_runtime.sessions() as session:
        assert session.scalars(select(OutboundMessage)).all() == []
