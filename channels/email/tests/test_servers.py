"""The mail servers the email tests run against: a private dovecot and the SMTP sink."""

from __future__ import annotations

import imaplib
import re
import shutil
import smtplib
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from channels.email.tests.servers import DovecotServer, SmtpSink, self_signed_context

KEYWORD = "$AgoraStored"


def _message(subject: str = "Bonjour", to: str = "participez@ville.example") -> bytes:
    message = EmailMessage()
    message["From"] = "Habitante <habitante@example.org>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    message.set_content("Il manque un banc place de la Mairie.\n")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def _numbers(data: list[Any]) -> list[int]:
    """The UIDs of an imaplib UID SEARCH answer."""
    return [int(n) for n in (data[0] or b"").split()]


def _pgrep(pattern: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


# -- dovecot ---------------------------------------------------------------------------------------
def test_dovecot_starts_fast_on_its_own_config_and_stops_without_leftovers() -> None:
    server = DovecotServer()
    began = time.monotonic()
    server.start()
    try:
        assert time.monotonic() - began < 2.0
        config = server.config_path
        text = config.read_text()
        assert "/etc/" not in text
        assert "!include" not in text
        assert f"port = {server.port}" in text
        assert server.url == f"imap://127.0.0.1:{server.port}"
        assert [line.split()[0] for line in _pgrep(str(config))] == [str(server.pid)]
        with server.client():  # a logged-in session: an imap process too
            assert len(_pgrep(server.instance_name)) >= 4  # master, log, config, auth, ...
        directory = server.directory
        assert directory is not None
    finally:
        server.stop()
    assert _pgrep(str(config)) == []
    assert _pgrep(directory.name) == []
    assert not directory.exists()
    server.stop()  # twice is harmless


def test_login_capabilities_and_bad_password(dovecot: DovecotServer) -> None:
    with dovecot.client() as imap:
        status, data = imap.capability()  # imaplib keeps the pre-login list
        assert status == "OK"
        capabilities = data[0].upper().split()
        for capability in (b"IDLE", b"UIDPLUS", b"IMAP4REV1"):
            assert capability in capabilities
    began = time.monotonic()
    for _ in range(2):
        imap = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=5)
        try:
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                imap.login(dovecot.user, "not-the-password")
        finally:
            imap.shutdown()
    with dovecot.client():
        pass
    # No auth penalty: with it, the second failure and the login would wait 4 s each.
    assert time.monotonic() - began < 3


def test_append_returns_the_uid(dovecot: DovecotServer) -> None:
    assert dovecot.count() == 0
    first = dovecot.append(_message("un"))
    second = dovecot.append(_message("deux"), flags="\\Seen")
    assert (first, second) == (1, 2)
    assert dovecot.uids() == [1, 2]
    assert dovecot.count() == 2
    assert "\\Seen" not in dovecot.flags(first)
    assert "\\Seen" in dovecot.flags(second)
    # Another mailbox is created on the way (TRYCREATE), with a name that needs quoting.
    assert dovecot.append(_message("trois"), mailbox="Mairie annexe") == 1
    assert dovecot.count("Mairie annexe") == 1


def test_a_keyword_is_stored_and_searched(dovecot: DovecotServer) -> None:
    uids = [dovecot.append(_message(f"message {n}")) for n in range(3)]
    with dovecot.client() as imap:
        status, data = imap.select("INBOX")
        assert status == "OK"
        permanent = imap.untagged_responses.get("PERMANENTFLAGS", [b""])[0]
        assert b"\\*" in permanent  # new keywords allowed
        status, data = imap.uid("SEARCH", "UNKEYWORD", KEYWORD)
        assert _numbers(data) == uids
        status, _ = imap.uid("STORE", str(uids[0]), "+FLAGS.SILENT", f"({KEYWORD} \\Seen)")
        assert status == "OK"
        status, data = imap.uid("SEARCH", "UNKEYWORD", KEYWORD)
        assert _numbers(data) == uids[1:]
    # Another connection sees it: it was stored, not just kept by the session.
    assert dovecot.flags(uids[0]) >= {KEYWORD, "\\Seen"}
    assert dovecot.uids(criteria=f"KEYWORD {KEYWORD}") == [uids[0]]
    assert dovecot.append(_message("déjà"), flags=KEYWORD) == 4
    assert KEYWORD in dovecot.flags(4)


def test_idle_reports_a_message_appended_by_another_connection(dovecot: DovecotServer) -> None:
    dovecot.append(_message("avant"))
    with dovecot.client(timeout=5) as imap:
        assert "IDLE" in imap.capabilities
        status, data = imap.select("INBOX")
        assert (status, data) == ("OK", [b"1"])
        imap.send(b"I1 IDLE\r\n")
        assert imap.readline().startswith(b"+ ")  # "+ idling"
        dovecot.append(_message("pendant"))
        lines = []
        while True:  # a socket timeout (5 s) fails the test
            line = imap.readline()
            lines.append(line)
            if re.fullmatch(rb"\* 2 EXISTS\r\n", line):
                break
        imap.send(b"DONE\r\n")
        while not line.startswith(b"I1 "):
            line = imap.readline()
            lines.append(line)
        assert line.startswith(b"I1 OK"), lines
        # imaplib carries on after the hand-made exchange.
        status, data = imap.uid("SEARCH", "ALL")
        assert (status, data) == ("OK", [b"1 2"])


def test_restart_keeps_port_and_mail(dovecot: DovecotServer) -> None:
    uid = dovecot.append(_message(), flags=KEYWORD)
    port = dovecot.port
    dovecot.stop(cleanup=False)
    with pytest.raises(OSError):
        imaplib.IMAP4(dovecot.host, port, timeout=1)
    dovecot.start()
    assert dovecot.port == port
    assert dovecot.flags(uid) >= {KEYWORD}


def test_a_missing_dovecot_is_a_skip_or_a_ci_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    server = DovecotServer()
    with pytest.raises((pytest.skip.Exception, pytest.fail.Exception), match="dovecot-imapd"):
        server.start()
    assert server.process is None and server.directory is None


# -- SMTP sink -------------------------------------------------------------------------------------
def test_sink_records_a_plain_message(sink: SmtpSink) -> None:
    raw = _message("Réponse")
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        client.sendmail("participez@ville.example", ["habitante@example.org"], raw)
    (got,) = sink.wait_for(1)
    assert got["mail_from"] == "participez@ville.example"
    assert got["rcpt_tos"] == ["habitante@example.org"]
    assert got["data"] == raw
    assert got["message"]["Subject"] == "Réponse"
    assert got["message"].get_content() == "Il manque un banc place de la Mairie.\n"
    assert (got["tls"], got["login"]) == (False, None)
    sink.reset()
    assert sink.messages == []


def test_wait_for_says_what_it_has(sink: SmtpSink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        client.sendmail("a@example.org", ["b@example.org"], _message("seul"))
    with pytest.raises(AssertionError, match=r"got 1 message\(s\), not 2.*seul"):
        sink.wait_for(2, timeout=0.2)


def test_sink_with_auth() -> None:
    with SmtpSink(auth=("gateway", "s3cret")) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("a@example.org", ["b@example.org"], _message())
            assert refused.value.smtp_code == 530
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("gateway", "wrong")
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.login("gateway", "s3cret")
            client.sendmail("a@example.org", ["b@example.org"], _message())
        (got,) = sink.wait_for(1)
        assert got["login"] == "gateway"
        assert sink.settings_overrides()["smtp_user"] == "gateway"


def test_sink_with_starttls(tmp_path: Path) -> None:
    server_context, ca_file = self_signed_context(tmp_path)
    with SmtpSink(auth=("gateway", "s3cret"), starttls=server_context) as sink:
        client_context = ssl.create_default_context(cafile=ca_file)
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=client_context)
            client.login("gateway", "s3cret")
            client.sendmail("a@example.org", ["b@example.org"], _message("chiffré"))
        (got,) = sink.wait_for(1)
        assert (got["tls"], got["login"]) == (True, "gateway")
        # A client that does not trust the test CA refuses the certificate.
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            with pytest.raises(ssl.SSLCertVerificationError):
                client.starttls(context=ssl.create_default_context())


@pytest.mark.parametrize("code", [451, 550])
def test_fail_next_answers_data_with_an_error(sink: SmtpSink, code: int) -> None:
    sink.fail_next(code, "Pas maintenant")
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            client.sendmail("a@example.org", ["b@example.org"], _message("refusé"))
        assert isinstance(failed.value, smtplib.SMTPResponseException)
        assert failed.value.smtp_code == code
        assert b"Pas maintenant" in failed.value.smtp_error
        # Only the next message: the retry goes through.
        client.sendmail("a@example.org", ["b@example.org"], _message("accepté"))
    (got,) = sink.wait_for(1)
    assert got["message"]["Subject"] == "accepté"
    assert [m["message"]["Subject"] for m in sink.rejected] == ["refusé"]
