"""Replies by SMTP: security and authentication, threading, what a resident cannot inject, and
how failures are retried or not."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.email.sender import EmailSender, build
from channels.email.tests.conftest import GATEWAY_ADDRESS
from channels.email.tests.servers import SmtpSink, self_signed_context
from gateway.messages import OutgoingText, SendError
from gateway.settings import Settings

RESIDENT = "marie.dupont@example.org"


def reply(text: str = "Merci ! Contribution enregistrée, réf. PARC-0001.", **thread: object):
    return OutgoingText(
        channel="email",
        recipient=RESIDENT,
        sender=None,
        text=text,
        thread=dict(thread) or None,
        key="receipt.default",
    )


def sender_for(settings: Settings, sink: SmtpSink, ca_file: str = "") -> EmailSender:
    return EmailSender(
        settings.with_overrides(email_address=GATEWAY_ADDRESS, **sink.settings_overrides(ca_file))
    )


def test_starttls_and_login_with_a_private_ca(settings: Settings, tmp_path: Path):
    context, ca_file = self_signed_context(tmp_path)
    with SmtpSink(auth=("agora", "s3cret-pass"), starttls=context, require_starttls=True) as sink:
        sender = sender_for(settings, sink, ca_file)
        message_id = sender.send(reply(subject="PARC des bancs", in_reply_to="abc@example.org"))
        (received,) = sink.wait_for(1)
    assert received["tls"] and received["login"] == "agora"
    mail = received["message"]
    assert mail["Message-ID"].strip() == f"<{message_id}>"  # a long id may be folded
    assert mail["Subject"] == "Re: PARC des bancs"
    assert mail["In-Reply-To"] == "<abc@example.org>"
    assert mail["From"].addresses[0].addr_spec == GATEWAY_ADDRESS


def test_an_untrusted_certificate_is_refused_and_retried_later(settings: Settings, tmp_path: Path):
    context, _ca_file = self_signed_context(tmp_path)
    with SmtpSink(starttls=context, require_starttls=True) as sink:
        with pytest.raises(SendError) as caught:
            sender_for(settings, sink).send(reply())
        assert sink.messages == []
    assert caught.value.retryable  # a certificate problem is the operator's to fix


def test_temporary_refusal_is_retried_and_permanent_is_not(settings: Settings):
    with SmtpSink() as sink:
        sender = sender_for(settings, sink)
        sink.fail_next(451, "Greylisted, try again later")
        with pytest.raises(SendError) as temporary:
            sender.send(reply())
        sink.fail_next(550, "Mailbox unavailable")
        with pytest.raises(SendError) as permanent:
            sender.send(reply())
        sender.send(reply())
        assert len(sink.wait_for(1)) == 1
    assert (temporary.value.retryable, temporary.value.code) == (True, 451)
    assert (permanent.value.retryable, permanent.value.code) == (False, 550)
    assert RESIDENT not in str(permanent.value)


def test_a_recipient_greylisted_at_rcpt_is_retried_and_an_unknown_one_is_not(
    settings: Settings,
):
    with SmtpSink() as sink:
        sender = sender_for(settings, sink)
        sink.refuse_next_recipient(450, "4.2.0 Greylisted, try again in 5 minutes")
        with pytest.raises(SendError) as greylisted:
            sender.send(reply())
        sink.refuse_next_recipient(550, "5.1.1 No such mailbox")
        with pytest.raises(SendError) as unknown:
            sender.send(reply())
        sender.send(reply())
        assert len(sink.wait_for(1)) == 1
    assert (greylisted.value.retryable, greylisted.value.code) == (True, 450)
    assert (unknown.value.retryable, unknown.value.code) == (False, 550)
    assert RESIDENT not in str(greylisted.value) and RESIDENT not in str(unknown.value)


def test_nothing_a_resident_wrote_can_add_a_header():
    mail = build(
        reply(
            subject="PARC des bancs\r\nBcc: victim@example.org",
            in_reply_to="abc@example.org>\r\nX-Injected: yes",
            references=["a@example.org", "b@example.org>\nBcc: x@example.org"],
        ),
        from_address=GATEWAY_ADDRESS,
        from_name="Ville\r\nBcc: evil@example.org",
    )
    raw = mail.as_bytes()
    headers = raw.split(b"\n\n", 1)[0]
    names = [line.split(b":")[0] for line in headers.splitlines() if not line[:1].isspace()]
    assert b"Bcc" not in names and b"X-Injected" not in names
    assert mail["Subject"] == "Re: PARC des bancs Bcc: victim@example.org"


def test_a_moderators_answer_is_not_marked_automatic_but_receipts_are():
    receipt = build(reply(), from_address=GATEWAY_ADDRESS, from_name="Agora")
    answer = build(
        reply("Réponse de l'équipe : les travaux commencent en mars."),
        from_address=GATEWAY_ADDRESS,
        from_name="Agora",
        message_key="outcome.answer",
    )
    assert receipt["Auto-Submitted"] == "auto-replied"
    assert answer["Auto-Submitted"] is None


def test_the_html_alternative_escapes_the_text():
    mail = build(
        reply("Merci <script>alert(1)</script> & à bientôt"),
        from_address=GATEWAY_ADDRESS,
        from_name="Agora",
    )
    html = mail.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert "<script>" not in content and "&lt;script&gt;" in content
    plain = mail.get_body(("plain",))
    assert plain is not None and "<script>" in plain.get_content()


def test_every_attempt_at_one_outbound_row_has_the_same_message_id():
    """After an interrupted send the email is sent again (workers.outbound): with its row's
    token, the copy is recognisably the same message; two rows never share one id; a token
    cannot inject anything into the header."""
    from dataclasses import replace

    first = build(
        replace(reply(), token="41.20261207204500"), from_address=GATEWAY_ADDRESS, from_name="A"
    )
    again = build(
        replace(reply(), token="41.20261207204500"), from_address=GATEWAY_ADDRESS, from_name="A"
    )
    other = build(
        replace(reply(), token="42.20261207204500"), from_address=GATEWAY_ADDRESS, from_name="A"
    )
    hostile = build(
        replace(reply(), token="43>\r\nBcc: x@example.org"),
        from_address=GATEWAY_ADDRESS,
        from_name="A",
    )
    untokened = [build(reply(), from_address=GATEWAY_ADDRESS, from_name="A") for _ in range(2)]
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"].startswith("<agora.out.41.20261207204500@")
    assert other["Message-ID"] != first["Message-ID"]
    assert untokened[0]["Message-ID"] != untokened[1]["Message-ID"]
    hostile_id = hostile["Message-ID"]
    assert hostile_id.startswith("<agora.out.43") and hostile_id.count(">") == 1
    assert not any(c in hostile_id for c in "\r\n: ")
    headers = hostile.as_bytes().split(b"\n\n", 1)[0]
    assert b"\nBcc" not in headers
