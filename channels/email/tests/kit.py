"""The email plugin's kit for the registry-driven harness (tests/channel_kit.py,
tests/test_channel_contract.py).

Mail has no webhook signature, and its entry point cannot refuse a message on it: the
gateway's SMTP receiver takes every mail for its address. What stands for the signature is the
verdict on the sender: here the Authentication-Results of the city's mail server
(``EMAIL_AUTHSERV_ID``, relaying from loopback, a trusted relay), which ``sign`` adds as that
server would (``pass``), or forges (``fail``), or leaves out (the receiver then checks DKIM,
SPF and DMARC itself, against the test's own name server, which has no records: no pass). An
unverified sender's mail is filed for moderators, flagged, and never answered
(``FiledUnverified``): that is what the harness checks for a forged or missing signature.
Replies go to an SMTP sink (channels/email/tests/servers.py), threaded on the resident's mail.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from channels.email.tests.conftest import AUTHSERV_ID, GATEWAY_ADDRESS, Receiver, authenticated
from channels.email.tests.servers import DnsServer, SmtpSink
from gateway.settings import Settings
from tests.channel_kit import (
    ChannelKit,
    FiledUnverified,
    Fixture,
    Gateway,
    Request,
    Signing,
    load_fixtures,
)


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _header(raw: bytes, name: str) -> str:
    return str(BytesHeaderParser().parsebytes(raw).get(name) or "")


class EmailBench:
    def __init__(self, sink: SmtpSink, settings: Settings) -> None:
        self.sink = sink
        self.settings = settings
        self.receiver: Receiver | None = None

    def sign(self, request: Request, signing: Signing) -> Request:
        raw = _crlf(request.body)
        if signing is not Signing.MISSING:
            domain = parseaddr(_header(raw, "From"))[1].rpartition("@")[2]
            verdict = authenticated(domain, "pass" if signing is Signing.VALID else "fail")
            raw = f"Authentication-Results: {verdict}\r\n".encode() + raw
        return Request(request.content_type, raw, envelope=request.envelope)

    async def deliver(self, gateway: Gateway, request: Request) -> int:
        if self.receiver is None:  # the gateway's SMTP receiver, on the app's runtime
            self.receiver = await asyncio.to_thread(Receiver, gateway.runtime)
        return await asyncio.to_thread(self._send, self.receiver.port, request)

    @staticmethod
    def _send(port: int, request: Request) -> int:
        envelope = request.envelope or {}
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            code, _ = client.ehlo("mx.participez.ville.example")
            code, _ = client.mail(envelope.get("mail_from", ""))
            if code >= 300:
                return int(code)
            for rcpt in envelope.get("rcpt_to", [GATEWAY_ADDRESS]):
                code, _ = client.rcpt(rcpt)
                if code >= 300:
                    return int(code)
            code, _ = client.data(request.body)
            return int(code)

    def replies(self) -> list[Any]:
        return list(self.sink.messages)

    def check_reply(self, fixture: Fixture) -> None:
        original = _header(fixture.request.body, "Message-ID").strip()
        resident = parseaddr(_header(fixture.request.body, "From"))[1].lower()
        sent = self.sink.wait_for(1)
        assert all(s["rcpt_tos"] == [resident] for s in sent)
        # The receipt answers the resident's mail: same thread (In-Reply-To, References).
        threaded = [s["message"] for s in sent if s["message"]["In-Reply-To"] == original]
        assert threaded, f"no reply threaded on {original}: {[s['message'] for s in sent]}"
        assert all(original in m["References"] for m in threaded)
        assert all(m["Subject"].startswith("Re: ") for m in threaded)

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()


@contextmanager
def open_bench(base: Settings) -> Iterator[EmailBench]:
    sink = SmtpSink()
    sink.start()
    try:
        with DnsServer() as dns:
            bench = EmailBench(
                sink,
                base.with_overrides(
                    email_address=GATEWAY_ADDRESS,
                    email_authserv_id=AUTHSERV_ID,
                    smtp_receiver_trusted_relays="127.0.0.1",
                    dns_nameserver=dns.nameserver,
                    **sink.settings_overrides(),
                ),
            )
            try:
                yield bench
            finally:
                bench.close()
    finally:
        sink.stop()


def writes(fixture: Fixture, text: str, n: int) -> Request:
    """A new plain-text mail from the fixture's sender: ``text`` as its subject and body."""
    original = BytesParser(policy=policy.default).parsebytes(_crlf(fixture.request.body))
    mail = EmailMessage()
    mail["From"] = original["From"]
    mail["To"] = original["To"]
    mail["Date"] = original["Date"]
    mail["Message-ID"] = f"<kit-{n}@example.net>"
    mail["Subject"] = text
    mail.set_content(text)
    body = mail.as_bytes(policy=policy.SMTP)
    return Request(fixture.request.content_type, body, envelope=fixture.request.envelope)


def reply_text(sent: Any) -> str:
    message = sent["message"]
    part = message.get_body(preferencelist=("plain",)) if message.is_multipart() else message
    return str(part.get_content()).strip()


KIT = ChannelKit(
    plugin="email",
    fixtures=load_fixtures(Path(__file__).resolve().parent.parent / "fixtures"),
    refusal=FiledUnverified(),
    contribution="alternative",  # subject BUDGET ...: filed at once
    question="plain",  # subject PARC ...: filed, and the receipt threaded on the mail
    open=open_bench,
    writes=writes,
    reply_text=reply_text,
)
