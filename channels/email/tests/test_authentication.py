"""Email senders are believed only when the From domain vouched for the mail (DMARC alignment).

A forged ``From:`` must not make the city's relay write to someone (receipts, menus, notices)
nor act in their name (``OUBLIER``, ``STOP``). Through both inbound paths, with real servers
(Dovecot, the gateway's SMTP receiver, an SMTP sink for what is sent, a name server serving
the test domains' DKIM keys, SPF and DMARC records, DKIM signatures made by dkimpy), each case
checks what a resident or a moderator would see: the mail that went out, whether the
resident's earlier contributions and address are still there, and the flag in the console.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from channels.email import authentication, imap
from channels.email.authentication import SmtpPeer, from_authentication_results, verify
from channels.email.tests.conftest import AUTHSERV_ID, Receiver, authenticated
from channels.email.tests.servers import DnsServer, DovecotServer, SmtpSink
from channels.email.tests.test_paths import mail
from gateway.models import Contribution, Contributor, OutboundMessage
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.helpers import contributions, drain, runtime_with

DOMAIN = "quartier.example"  # the resident's mail provider: DKIM, SPF and DMARC published
RESIDENT = f"marie@{DOMAIN}"
OTHER = "relais.example"  # a domain the forger controls: SPF allows the test's 127.0.0.1
SELECTOR = "agora2025"


@dataclass(frozen=True)
class Keys:
    resident: bytes  # PEM private keys, for signing
    other: bytes


def _key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


@pytest.fixture(scope="module")
def keys_and_records() -> tuple[Keys, dict[str, list[str]]]:
    resident, resident_public = _key()
    other, other_public = _key()
    records = {
        f"{SELECTOR}._domainkey.{DOMAIN}": [f"v=DKIM1; k=rsa; p={resident_public}"],
        DOMAIN: ["v=spf1 ip4:192.0.2.10 -all"],  # the provider's servers, not the forger's
        f"_dmarc.{DOMAIN}": [f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}"],
        f"{SELECTOR}._domainkey.{OTHER}": [f"v=DKIM1; k=rsa; p={other_public}"],
        OTHER: ["v=spf1 ip4:127.0.0.1 -all"],
    }
    return Keys(resident, other), records


@pytest.fixture
def keys(dns: DnsServer, keys_and_records: tuple[Keys, dict[str, list[str]]]) -> Keys:
    """The keys, with the test domains' records served by the test name server."""
    found, records = keys_and_records
    for name, values in records.items():
        for value in values:
            dns.txt(name, value)
    return found


def signed(raw: bytes, domain: str, key: bytes, **options: Any) -> bytes:
    """``raw`` with a DKIM-Signature by ``domain``, as its outgoing server would add."""
    headers = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version"]
    return (
        dkim.sign(raw, SELECTOR.encode(), domain.encode(), key, include_headers=headers, **options)
        + raw
    )


def with_results(raw: bytes, *values: str) -> bytes:
    """``raw`` with Authentication-Results headers on top, the first value topmost."""
    return b"".join(f"Authentication-Results: {v}\r\n".encode() for v in values) + raw


# --- what a user checks ------------------------------------------------------------------------


def answers_to(sink: SmtpSink, address: str) -> list[str]:
    """The plain text of every mail the gateway sent to ``address``."""
    found = []
    for sent in sink.messages:
        if address in sent["rcpt_tos"]:
            body = sent["message"].get_body(("plain",))
            found.append(body.get_content() if body is not None else "")
    return found


def filed(runtime: Runtime) -> list[tuple[str, bool | None, bool]]:
    """(text, sender_verified, still the resident's) for every contribution."""
    return [
        (c.text, c.sender_verified, c.contributor_id is not None) for c in contributions(runtime)
    ]


def resident_row(runtime: Runtime) -> Contributor | None:
    hashed = runtime.vault.lookup_hash("email", RESIDENT)
    with runtime.sessions() as session:
        return session.scalar(select(Contributor).where(Contributor.address_hash == hashed))


def outbound_for_unverified(runtime: Runtime) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        unverified = select(Contribution.inbound_message_id).where(
            Contribution.sender_verified.is_(False)
        )
        return list(
            session.scalars(
                select(OutboundMessage).where(OutboundMessage.inbound_message_id.in_(unverified))
            )
        )


# --- IMAP: the city's server's Authentication-Results --------------------------------------------

IMAP_CASES = {
    # name: (Authentication-Results values, topmost first; believed?)
    "the city's server says dmarc=pass": ([authenticated(DOMAIN)], True),
    "the city's server says dmarc=fail": ([authenticated(DOMAIN, "fail")], False),
    "a forged pass under another authserv-id": (
        [authenticated(DOMAIN, "pass", "mx.attacker.example")],
        False,
    ),
    "no Authentication-Results at all": ([], False),
    "a forged pass under the city's id, below the city's own fail": (
        [authenticated(DOMAIN, "fail"), authenticated(DOMAIN, "pass")],
        False,
    ),
    "dmarc=pass for another domain than the From's": ([authenticated(OTHER)], False),
}


@pytest.mark.parametrize("case", sorted(IMAP_CASES))
def test_imap_forget_is_honoured_only_for_a_verified_sender(
    case: str, mail_runtime: Runtime, mailbox: DovecotServer, sink: SmtpSink
):
    values, believed = IMAP_CASES[case]
    mailbox.append(mail("BUDGET un jardin partagé", sender=RESIDENT))
    imap.run(mail_runtime, once=True)
    drain(mail_runtime)
    assert len(sink.wait_for(2)) == 2  # her own mail, verified: the receipt and the notice

    mailbox.append(with_results(mail("OUBLIER", sender=RESIDENT, authentication=None), *values))
    imap.run(mail_runtime, once=True)
    drain(mail_runtime)

    if believed:
        sink.wait_for(3)
        (confirmation,) = answers_to(sink, RESIDENT)[2:]
        assert "effac" in confirmation
        assert resident_row(mail_runtime) is None
        assert filed(mail_runtime) == [("un jardin partagé", True, False)]
        return
    assert len(sink.messages) == 2  # nothing more went to her address
    row = resident_row(mail_runtime)
    assert row is not None and row.address_encrypted is not None and not row.opted_out
    assert filed(mail_runtime) == [
        ("un jardin partagé", True, True),  # untouched, still hers
        ("OUBLIER", False, True),  # filed for moderators, flagged
    ]
    assert outbound_for_unverified(mail_runtime) == []


def test_without_an_authserv_id_imap_mail_is_filed_and_never_answered(
    mail_settings: Settings, mailbox: DovecotServer, sink: SmtpSink
):
    runtime = runtime_with(mail_settings, email_authserv_id="")
    try:
        mailbox.append(mail("BUDGET un jardin", sender=RESIDENT))
        mailbox.append(mail("STOP", sender=RESIDENT))
        imap.run(runtime, once=True)
        drain(runtime)
        assert filed(runtime) == [("un jardin", False, True), ("STOP", False, True)]
        row = resident_row(runtime)
        assert row is not None and not row.opted_out and row.notice_sent_at is None
        assert sink.messages == []
    finally:
        runtime.close()


# --- the SMTP receiver's own check ----------------------------------------------------------------


@pytest.fixture
def checking(mail_settings: Settings) -> Iterator[tuple[Runtime, Receiver]]:
    """The SMTP receiver facing the outside world: no relay trusted, it checks DKIM, SPF and
    DMARC itself (the test's client connects from 127.0.0.1)."""
    runtime = runtime_with(mail_settings, smtp_receiver_trusted_relays="")
    receiver = Receiver(runtime)
    try:
        yield runtime, receiver
    finally:
        receiver.stop()
        runtime.close()


SmtpCase = Callable[[Keys], tuple[bytes, str]]  # keys -> (raw message, MAIL FROM)

SMTP_CASES: dict[str, tuple[SmtpCase, bool]] = {
    "DKIM-signed by the From domain (its SPF fails: DKIM alone aligns)": (
        lambda k: (
            signed(mail("OUBLIER", sender=RESIDENT, authentication=None), DOMAIN, k.resident),
            RESIDENT,
        ),
        True,
    ),
    "forged From, no DKIM, SPF fails": (
        lambda k: (mail("OUBLIER", sender=RESIDENT, authentication=None), RESIDENT),
        False,
    ),
    "SPF and DKIM pass for the forger's own domain, not aligned with the From": (
        lambda k: (
            signed(mail("OUBLIER", sender=RESIDENT, authentication=None), OTHER, k.other),
            f"bounce@{OTHER}",
        ),
        False,
    ),
    "a forged pass under the city's authserv-id, from a peer not trusted": (
        lambda k: (mail("OUBLIER", sender=RESIDENT, authentication="pass"), RESIDENT),
        False,
    ),
    "signed by the From domain, then altered on the way": (
        lambda k: (
            signed(
                mail("OUBLIER", sender=RESIDENT, authentication=None), DOMAIN, k.resident
            ).replace(b"OUBLIER", b"OUBLIEZ"),
            RESIDENT,
        ),
        False,
    ),
}


@pytest.mark.parametrize("case", sorted(SMTP_CASES))
def test_smtp_receiver_honours_forget_only_for_an_aligned_sender(
    case: str, keys: Keys, checking: tuple[Runtime, Receiver], sink: SmtpSink
):
    runtime, receiver = checking
    make, believed = SMTP_CASES[case]
    first = signed(
        mail("BUDGET des bancs à l'ombre", sender=RESIDENT, authentication=None),
        DOMAIN,
        keys.resident,
    )
    receiver.send(first, sender=RESIDENT)
    drain(runtime)
    assert len(sink.wait_for(2)) == 2  # her own mail, verified: the receipt and the notice

    raw, mail_from = make(keys)
    receiver.send(raw, sender=mail_from)
    drain(runtime)

    if believed:
        sink.wait_for(3)
        (confirmation,) = answers_to(sink, RESIDENT)[2:]
        assert "effac" in confirmation
        assert resident_row(runtime) is None
        assert filed(runtime) == [("des bancs à l'ombre", True, False)]
        return
    assert len(sink.messages) == 2
    row = resident_row(runtime)
    assert row is not None and row.address_encrypted is not None
    text = "OUBLIEZ" if "altered" in case else "OUBLIER"
    assert filed(runtime) == [("des bancs à l'ombre", True, True), (text, False, True)]
    assert outbound_for_unverified(runtime) == []


def test_an_unverified_first_mail_gets_no_receipt_nor_notice_and_stop_is_not_obeyed(
    keys: Keys, checking: tuple[Runtime, Receiver], sink: SmtpSink
):
    runtime, receiver = checking
    receiver.send(mail("BUDGET une ludothèque", sender=RESIDENT, authentication=None))
    receiver.send(mail("STOP", sender=RESIDENT, authentication=None))
    drain(runtime)
    assert sink.messages == []
    row = resident_row(runtime)
    assert row is not None and not row.opted_out and row.notice_sent_at is None
    assert filed(runtime) == [("une ludothèque", False, True), ("STOP", False, True)]
    assert [c.campaign.slug if c.campaign else None for c in contributions(runtime)] == [
        "budget",
        None,
    ]
    # Her own, signed mail afterwards is answered as a first contact: nothing was used up.
    receiver.send(
        signed(
            mail("BUDGET un kiosque", sender=RESIDENT, authentication=None), DOMAIN, keys.resident
        ),
        sender=RESIDENT,
    )
    drain(runtime)
    assert len(sink.wait_for(2)) == 2  # the receipt and the first-contact notice


def test_the_receiver_trusts_a_relays_results_only_from_that_relay(
    mail_settings: Settings, keys: Keys, sink: SmtpSink
):
    relayed = mail("BUDGET un banc", sender=RESIDENT, authentication="pass")
    runtime = runtime_with(mail_settings, smtp_receiver_trusted_relays="127.0.0.0/8")
    receiver = Receiver(runtime)
    try:
        receiver.send(relayed, sender=RESIDENT)
        drain(runtime)
        assert filed(runtime) == [("un banc", True, True)]
        assert len(sink.wait_for(2)) == 2
    finally:
        receiver.stop()
        runtime.close()


def test_moderators_decisions_on_unverified_mail_notify_nobody(
    mail_runtime: Runtime, mailbox: DovecotServer, sink: SmtpSink
):
    from gateway.moderation.accounts import Actor
    from gateway.moderation.actions import ActionError, decide, reply

    mailbox.append(mail("BUDGET un jardin", sender=RESIDENT))
    mailbox.append(mail("BUDGET des arbres rue Hoche", sender=RESIDENT, authentication="fail"))
    imap.run(mail_runtime, once=True)
    drain(mail_runtime)
    verified, unverified = contributions(mail_runtime)
    assert unverified.sender_verified is False
    sent = len(sink.wait_for(2))  # the receipt and the notice, for her own mail only

    camille = Actor(name="camille", role="moderator")
    decide(mail_runtime, camille, [unverified.id], "publish")
    with pytest.raises(ActionError) as refused:
        reply(mail_runtime, camille, unverified.id, "Merci, pouvez-vous préciser ?")
    assert refused.value.key == "console.notice.unverified"
    drain(mail_runtime)
    assert len(sink.messages) == sent and outbound_for_unverified(mail_runtime) == []

    decide(mail_runtime, camille, [verified.id], "publish")  # her own: she is told
    drain(mail_runtime)
    assert len(sink.wait_for(sent + 1)) == sent + 1


# --- moderators see the flag ----------------------------------------------------------------


async def test_moderators_see_the_unverified_sender_in_the_queue_and_on_the_page(
    mail_runtime: Runtime,
    mailbox: DovecotServer,
    sink: SmtpSink,
    aiohttp_server: Any,
    aiohttp_client: Any,
):
    from gateway.web import create_app
    from tests.console.conftest import Browser, add_account

    mailbox.append(mail("BUDGET un jardin", sender=RESIDENT))
    mailbox.append(mail("Des arbres rue Hoche", sender=RESIDENT, authentication=None))
    imap.run(mail_runtime, once=True)
    drain(mail_runtime)
    verified, unverified = contributions(mail_runtime)

    server = await aiohttp_server(create_app(mail_runtime.settings))
    add_account(mail_runtime, "camille")
    import aiohttp

    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
    browser = Browser(await aiohttp_client(server, cookie_jar=jar))
    assert (await browser.login("camille")).status == 303

    queue = (await browser.get("/moderation/queue")).dom
    flagged = {
        row.get("data-reference")
        for row in queue.select("tr[data-reference]")
        if row.select(".sender-unverified")
    }
    assert flagged == {unverified.reference}
    page = (await browser.get(f"/moderation/contributions/{unverified.id}")).dom
    assert "expéditeur non vérifié" in page.one("#sender-unverified").text
    other = (await browser.get(f"/moderation/contributions/{verified.id}")).dom
    assert other.select("#sender-unverified") == []


# --- the verdict itself: real-shaped headers and DNS ------------------------------------------

REAL_RESULTS = {
    # Gmail: header.i only, comments with addresses
    "gmail": (
        "mx.google.com; dkim=pass header.i=@quartier.example header.s=s1 header.b=AbCd; "
        "spf=pass (google.com: domain of marie@quartier.example designates 192.0.2.10 as "
        "permitted sender) smtp.mailfrom=marie@quartier.example; dmarc=pass (p=REJECT "
        "sp=REJECT dis=NONE) header.from=quartier.example",
        "mx.google.com",
        True,
    ),
    "OpenDMARC, pass": (
        "mx.ville.fr; dmarc=pass (p=none dis=none) header.from=quartier.example",
        "mx.ville.fr",
        True,
    ),
    "OpenDMARC, fail": (
        "mx.ville.fr; dmarc=fail (p=reject dis=none) header.from=quartier.example",
        "mx.ville.fr",
        False,
    ),
    "OpenDKIM alone, a subdomain's aligned signature": (
        'mx.ville.fr; dkim=pass (2048-bit key) header.d=mail.quartier.example header.b="x"',
        "mx.ville.fr",
        True,
    ),
    "OpenDKIM alone, a third party's signature": (
        'mx.ville.fr; dkim=pass (2048-bit key) header.d=relais.example header.b="x"',
        "mx.ville.fr",
        False,
    ),
    "SPF alone, aligned": (
        "mx.ville.fr; spf=pass smtp.mailfrom=bounce@quartier.example",
        "mx.ville.fr",
        True,
    ),
    "SPF softfail": (
        "mx.ville.fr; spf=softfail smtp.mailfrom=marie@quartier.example",
        "mx.ville.fr",
        False,
    ),
    "Microsoft 365 style properties, with an authserv-id": (
        "mx.ville.fr; spf=pass (sender IP is 192.0.2.10) smtp.mailfrom=quartier.example; "
        "dkim=pass (signature was verified) header.d=quartier.example;dmarc=pass action=none "
        "header.from=quartier.example;compauth=pass reason=100",
        "mx.ville.fr",
        True,
    ),
    "a look-alike authserv-id": (
        "mx.ville.fr.attacker.example; dmarc=pass header.from=quartier.example",
        "mx.ville.fr",
        False,
    ),
    "the authserv-id as a prefix of another": ("mx.ville.frx; dmarc=pass", "mx.ville.fr", False),
    "unreadable": ("mx.ville.fr; dmarc=pass header.from=((((", "mx.ville.fr", False),
    "none": ("mx.ville.fr; none", "mx.ville.fr", False),
}


@pytest.mark.parametrize("name", sorted(REAL_RESULTS))
def test_authentication_results_as_real_servers_write_them(name: str):
    value, authserv_id, believed = REAL_RESULTS[name]
    assert from_authentication_results([value], authserv_id, DOMAIN).verified is believed


def test_a_pathological_header_is_read_quickly():
    import time

    from tests.helpers import best_time

    values = [f"{AUTHSERV_ID}; dmarc=pass " + "(" * 4000, f"{AUTHSERV_ID}; " + "a=b; " * 1500]

    # This thread's CPU time, best of up to three runs (tests.helpers.best_time): with one test
    # worker per core, the wall clock of one run was seen at 3.9 s.
    def read() -> None:
        assert not from_authentication_results(values, AUTHSERV_ID, DOMAIN).verified

    elapsed = best_time(read, 1.0, clock=time.thread_time)
    assert elapsed < 1.0, f"{elapsed:.2f} s of CPU"


PEER = SmtpPeer(ip="127.0.0.1", helo="client.example", mail_from=RESIDENT)


def test_strict_alignment_when_the_domain_asks_for_it(
    mail_settings: Settings, keys: Keys, dns: DnsServer
):
    """adkim=s: a signature by the parent domain does not vouch for a subdomain's From."""
    settings = mail_settings.with_overrides(smtp_receiver_trusted_relays="")
    sub = f"ecole.{DOMAIN}"
    raw = signed(mail("x", sender=f"marie@{sub}", authentication=None), DOMAIN, keys.resident)
    assert verify(settings, raw, f"marie@{sub}", PEER).verified  # relaxed: same organization
    dns.txt(f"_dmarc.{sub}", "v=DMARC1; p=reject; adkim=s")
    assert not verify(settings, raw, f"marie@{sub}", PEER).verified


def test_a_signature_over_part_of_the_body_does_not_count(mail_settings: Settings, keys: Keys):
    settings = mail_settings.with_overrides(smtp_receiver_trusted_relays="")
    raw = signed(
        mail("BUDGET x", sender=RESIDENT, authentication=None), DOMAIN, keys.resident, length=True
    )
    verdict = verify(settings, raw, RESIDENT, PEER)
    assert not verdict.verified and "dkim=pass" not in verdict.detail


def test_two_from_headers_are_never_verified(mail_settings: Settings, keys: Keys):
    settings = mail_settings.with_overrides(smtp_receiver_trusted_relays="")
    raw = signed(mail("x", sender=RESIDENT, authentication=None), DOMAIN, keys.resident)
    raw = b"From: someone@" + OTHER.encode() + b"\r\n" + raw
    assert not verify(settings, raw, RESIDENT, PEER).verified
    assert not verify(settings, raw, RESIDENT, None).verified


def test_dns_down_fails_the_check_within_its_timeout(
    mail_settings: Settings, keys: Keys, monkeypatch: pytest.MonkeyPatch
):
    import time

    from tests.fixtures import free_port

    monkeypatch.setattr(authentication, "DNS_TIMEOUT", 0.3)
    settings = mail_settings.with_overrides(
        smtp_receiver_trusted_relays="", dns_nameserver=f"127.0.0.1:{free_port()}"
    )
    raw = signed(mail("x", sender=RESIDENT, authentication=None), DOMAIN, keys.resident)
    started = time.monotonic()
    verdict = verify(settings, raw, RESIDENT, PEER)
    assert not verdict.verified and "temperror" in verdict.detail
    assert time.monotonic() - started < 5


def test_the_verdict_never_names_the_sender(mail_settings: Settings, keys: Keys):
    settings = mail_settings.with_overrides(smtp_receiver_trusted_relays="")
    for raw in (
        signed(mail("x", sender=RESIDENT, authentication=None), DOMAIN, keys.resident),
        mail("x", sender=RESIDENT, authentication="fail"),
    ):
        for peer in (PEER, None):
            verdict = verify(settings, raw, RESIDENT, peer)
            assert "marie" not in repr(verdict) and DOMAIN not in repr(verdict)


def test_spf_alone_passes_when_aligned_and_is_reported_when_not(
    mail_settings: Settings, keys: Keys
):
    settings = mail_settings.with_overrides(smtp_receiver_trusted_relays="")
    peer = SmtpPeer(ip="127.0.0.1", helo="mail.relais.example", mail_from=f"bounce@{OTHER}")
    own = mail("x", sender=f"paul@{OTHER}", authentication=None)  # no signature at all
    verdict = verify(settings, own, f"paul@{OTHER}", peer)
    assert verdict.verified and "spf=pass aligned" in verdict.detail
    forged = signed(mail("x", sender=RESIDENT, authentication=None), OTHER, keys.other)
    verdict = verify(settings, forged, RESIDENT, peer)
    assert not verdict.verified
    assert "dkim=pass;" in verdict.detail + ";" and "spf=pass" in verdict.detail
    assert "aligned" not in verdict.detail
