"""One crafted email never stops the mailbox, and a refused reply leaves no address behind.

The IMAP pass and the SMTP receiver with a message that cannot be stored as one (a plus
address longer than its column, which PostgreSQL refuses) and one that breaks the reader: each
is quarantined with its reason and acknowledged, and the mail behind it goes through. On SQLite
and PostgreSQL, with a real Dovecot and the gateway's own receiver.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from channels.email import imap
from channels.email.tests.conftest import Receiver
from channels.email.tests.servers import DovecotServer, SmtpSink
from channels.email.tests.test_paths import RESIDENT, mail
from gateway.models import OutboundMessage, QuarantinedMessage
from gateway.runtime import Runtime
from tests.helpers import contributions, drain, inbound

LONG_TAG = "participez+" + "x" * 200 + "@participez.ville.example"


def quarantined(runtime: Runtime) -> list[QuarantinedMessage]:
    with runtime.sessions() as session:
        return list(session.scalars(select(QuarantinedMessage).order_by(QuarantinedMessage.id)))


@pytest.fixture
def breaking_reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The mail reader fails on a message that says "casse-tout" (a parser bug, say)."""
    from channels.email import inbound as email_inbound

    real = email_inbound.parse

    def parse(raw: bytes, **kwargs: Any) -> Any:
        if b"casse-tout" in raw:
            raise RecursionError("maximum recursion depth exceeded")
        return real(raw, **kwargs)

    monkeypatch.setattr(email_inbound, "parse", parse)
    yield


def test_one_crafted_mail_never_stops_the_mailbox(
    mail_runtime: Runtime, mailbox: DovecotServer, breaking_reader: None
):
    uids = [
        mailbox.append(mail("BUDGET une fontaine")),
        mailbox.append(mail("PARC des bancs", to=LONG_TAG)),
        mailbox.append(mail("BUDGET casse-tout")),
        mailbox.append(mail("BUDGET un kiosque")),
    ]
    imap.run(mail_runtime, once=True)
    # Every message acknowledged: the next pass has nothing left to trip on.
    assert all(imap.KEYWORD in mailbox.flags(uid) for uid in uids)
    assert mailbox.count() == 4  # never deleted
    assert sorted(m.text for m in inbound(mail_runtime)) == [
        "BUDGET un kiosque",
        "BUDGET une fontaine",
    ]
    reasons = [q.reason for q in quarantined(mail_runtime)]
    assert reasons == ["recipient longer than 128 characters", "could not be read: RecursionError"]
    assert all(q.sender_hash for q in quarantined(mail_runtime))  # erasure finds them
    drain(mail_runtime)
    assert len(contributions(mail_runtime)) == 2
    imap.run(mail_runtime, once=True)
    assert len(quarantined(mail_runtime)) == 2  # not read again


def test_the_smtp_receiver_acknowledges_what_it_quarantines(
    mail_runtime: Runtime, receiver: Receiver, breaking_reader: None
):
    receiver.send(mail("PARC des bancs", to=LONG_TAG), to=LONG_TAG)
    receiver.send(mail("BUDGET casse-tout"))
    receiver.send(mail("BUDGET une fontaine"))
    assert [m.text for m in inbound(mail_runtime)] == ["BUDGET une fontaine"]
    assert len(quarantined(mail_runtime)) == 2


def test_a_refused_reply_keeps_no_address(
    mail_runtime: Runtime, mailbox: DovecotServer, sink: SmtpSink
):
    sink.fail_next(550, f"5.1.1 <{RESIDENT}>: Recipient address rejected: User unknown")
    mailbox.append(mail("BUDGET une fontaine"))
    imap.run(mail_runtime, once=True)
    drain(mail_runtime)
    with mail_runtime.sessions() as session:
        errors = [e for e in session.scalars(select(OutboundMessage.error)) if e]
    assert errors and all("550" in e for e in errors), errors
    assert not any(RESIDENT in e or "dupont" in e for e in errors), errors
