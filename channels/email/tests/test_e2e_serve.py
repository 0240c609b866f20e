"""`gateway serve` on embedded defaults with mail configured: it receives by SMTP on its own
port, reads the Dovecot mailbox (IDLE), and answers through the SMTP sink, with no other
command running."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from channels.email.tests.conftest import AUTHSERV_ID, GATEWAY_ADDRESS
from channels.email.tests.servers import DnsServer, DovecotServer, SmtpSink
from channels.email.tests.test_paths import mail
from tests.fixtures import free_port
from tests.test_e2e_serve import Gateway, base_env

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(
    tmp_path: Path,
    mailbox: DovecotServer,
    sink: SmtpSink,
    dns: DnsServer,
    fake_twilio: Any,  # the base set-up's SMS provider (tests/fixtures.py): not this channel's
) -> Iterator[Gateway]:
    env = base_env(tmp_path, fake_twilio)
    env.update({f"GATEWAY_{k.upper()}": str(v) for k, v in mailbox.settings_overrides().items()})
    env.update({f"GATEWAY_{k.upper()}": str(v) for k, v in sink.settings_overrides().items()})
    env.update(
        {
            "GATEWAY_EMAIL_ADDRESS": GATEWAY_ADDRESS,
            "GATEWAY_SMTP_RECEIVER_PORT": str(free_port()),
            "GATEWAY_IMAP_IDLE_SECONDS": "5",
            # Behind the city's mail server, whose Authentication-Results the test mail
            # carries (channels/email/tests/conftest.py).
            "GATEWAY_EMAIL_AUTHSERV_ID": AUTHSERV_ID,
            "GATEWAY_SMTP_RECEIVER_TRUSTED_RELAYS": "127.0.0.1",
            "GATEWAY_DNS_NAMESERVER": dns.nameserver,
        }
    )
    gateway = Gateway(env, tmp_path)
    gateway.start("serve")
    try:
        gateway.wait_healthy()
        yield gateway
    finally:
        gateway.stop()


def test_serve_receives_by_smtp_and_imap_and_replies(
    served: Gateway, mailbox: DovecotServer, sink: SmtpSink
):
    port = int(served.env["GATEWAY_SMTP_RECEIVER_PORT"])
    deadline = time.monotonic() + 20
    while True:  # the receiver starts with the app
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                client.sendmail(
                    "marie@example.org",
                    ["participez+parc@participez.ville.example"],
                    mail("Des jeux d'eau.", sender="marie@example.org"),
                )
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    uid = mailbox.append(mail("BUDGET un terrain de basket", sender="paul@example.org"))

    found = served.wait_for_contributions(2, timeout=60)
    assert sorted((c["channel"], c["campaign"], c["text"]) for c in found) == [
        ("email", "budget", "un terrain de basket"),
        ("email", "parc", "Des jeux d'eau."),
    ]
    assert all("@" not in str(c["contributor"]) for c in found)
    replies = sink.wait_for(2, timeout=30)
    assert {r["rcpt_tos"][0] for r in replies} >= {"marie@example.org", "paul@example.org"}
    assert all(r["message"]["In-Reply-To"] for r in replies)
    assert "$AgoraStored" in mailbox.flags(uid) and mailbox.count() == 1
