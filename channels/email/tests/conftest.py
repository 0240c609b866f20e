"""Email tests: a private Dovecot (Debian's dovecot-imapd) on loopback, the gateway's own SMTP
receiver, an SMTP sink for the replies and a name server for DKIM, SPF and DMARC records
(channels/email/tests/servers.py).

The gateway is set up as the city's would be behind its mail server ``mx.participez.ville.
example``: that server's Authentication-Results are believed (``EMAIL_AUTHSERV_ID``), also when
it relays to the SMTP receiver from loopback (``SMTP_RECEIVER_TRUSTED_RELAYS``); test mail
carries such a header (``authenticated``) as mail that server accepted would. DNS goes to the
test's own name server only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.email.tests.servers import DnsServer, DovecotServer, SmtpSink
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.helpers import runtime_with

GATEWAY_ADDRESS = "participez@participez.ville.example"
CORPUS = Path(__file__).parent / "corpus"
AUTHSERV_ID = "mx.participez.ville.example"  # the city's receiving mail server


def authenticated(domain: str, result: str = "pass", authserv_id: str = AUTHSERV_ID) -> str:
    """The Authentication-Results value the city's server writes for mail from ``domain``."""
    return (
        f"{authserv_id}; dkim={result} header.d={domain} header.s=mail; "
        f"spf={result} smtp.mailfrom={domain}; dmarc={result} (p=none) header.from={domain}"
    )


@pytest.fixture(scope="session")
def dns_session() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def dns(dns_session: DnsServer) -> DnsServer:
    """The test name server, with no records yet."""
    dns_session.reset()
    return dns_session


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> DovecotServer:
    """The Dovecot mailbox, emptied for this test."""
    if dovecot.count():
        with dovecot.client() as conn:
            conn.select("INBOX")
            conn.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
            conn.expunge()
    return dovecot


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(
    settings: Settings, mailbox: DovecotServer, sink: SmtpSink, dns: DnsServer
) -> Settings:
    return settings.with_overrides(
        email_address=GATEWAY_ADDRESS,
        email_authserv_id=AUTHSERV_ID,
        smtp_receiver_trusted_relays="127.0.0.1",
        dns_nameserver=dns.nameserver,
        **mailbox.settings_overrides(),
        **sink.settings_overrides(),
    )


@pytest.fixture
def mail_runtime(mail_settings: Settings) -> Iterator[Runtime]:
    rt = runtime_with(mail_settings)
    yield rt
    rt.close()


class Receiver:
    """The gateway's SMTP receiver on a free loopback port, in a thread with its own loop (so
    that tests stay synchronous, as a mail server talking to it is)."""

    def __init__(self, runtime: Runtime) -> None:
        import asyncio
        import threading

        from channels.email import smtp_receiver
        from tests.conftest import free_port

        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                smtp_receiver.start(runtime, "127.0.0.1", self.port)
            )
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, name="smtp-receiver", daemon=True)
        self.thread.start()
        assert started.wait(10), "the SMTP receiver did not start"

    def send(self, raw: bytes, *, to: str = GATEWAY_ADDRESS, sender: str = "x@example.org") -> None:
        import smtplib

        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.sendmail(sender, [to], raw)

    def stop(self) -> None:
        import asyncio

        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def receiver(mail_runtime: Runtime) -> Iterator[Receiver]:
    running = Receiver(mail_runtime)
    yield running
    running.stop()
