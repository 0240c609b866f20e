"""Secrets and files (issue 12, item 10), as an attacker and an operator would try them: weak
and example keys, where the key lives, ciphertexts moved between rows, files readable by other
users, mail in clear to another machine, provider ids shaped to reach a path or a URL."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, text

from channels.email.inbound import to_incoming
from channels.email.parsing import parse as parse_email
from channels.telegram import updates
from channels.telegram.bot import MediaError, MediaFetcher
from channels.telegram.tests import updates as tg
from channels.telegram.tests.fake_api import FakeTelegram
from channels.twilio import recordings as twilio_recordings
from channels.twilio import voice
from channels.twilio.tests.fake_api import FakeTwilio
from gateway import files, recordings
from gateway.models import Contributor, InboundMessage, OutboundMessage, VoiceCall
from gateway.privacy import (
    MARKER3,
    AddressVault,
    Unreadable,
    _derive,
    contributor_address,
    inbound_raw,
    inbound_sender,
    outbound_recipient,
    voice_caller,
)
from gateway.rewrap import BOUND_USER_VERSION, rewrap
from gateway.runtime import Runtime
from gateway.settings import Settings, SettingsError, secret_key_weakness
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.conftest import REPO, TEST_CAMPAIGNS, free_port
from tests.helpers import send_sms, sign
from workers import outbound

GATEWAY = [sys.executable, "-m", "gateway.cli"]
ALICE, BOB = "+33611111111", "+33622222222"
MAKE_A_KEY = "secrets.token_urlsafe(48)"


def good_key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The umask of a typical login shell (022), whatever an earlier in-process run of the
    `gateway` command left: privacy must not depend on the caller's umask."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def gateway_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_CAMPAIGNS_DIR": str(TEST_CAMPAIGNS),
            "GATEWAY_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update({f"GATEWAY_{k.upper()}": v for k, v in settings.items()})
    return env


def run_gateway(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAY, *args],
        env=gateway_env(tmp_path, **settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def open_paths(*roots: Path) -> list[str]:
    """Every file or folder under ``roots`` (included) that the group or others may access."""
    found = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            if path.lstat().st_mode & 0o077:
                found.append(f"{path} {stat.filemode(path.lstat().st_mode)}")
    return found


# -- the secret key ---------------------------------------------------------------------------

WEAK_KEYS = {
    "short": "Xk9#mQ2$vL7p",
    "published example": "change-me-long-random-string",
    "placeholder": "please-change-me-to-something-random-4821",
    "one character": "a" * 48,
    "repeated unit": "Ab3$" * 12,
    "repeated word": "passwordpasswordpassword12345678",
    "little variety": "a" * 31 + "0123456789",
}


@pytest.mark.parametrize("key", WEAK_KEYS.values(), ids=WEAK_KEYS.keys())
def test_weak_or_example_keys_are_refused_in_one_line_saying_how_to_make_one(
    tmp_path: Path, key: str
):
    settings = Settings(data_dir=str(tmp_path / "data"), secret_key=key)
    with pytest.raises(SettingsError) as refused:
        Runtime.open(settings)
    message = str(refused.value)
    assert "\n" not in message and MAKE_A_KEY in message and "GATEWAY_SECRET_KEY" in message
    assert key not in message
    assert not (tmp_path / "data").exists()  # refused before anything is written


@pytest.mark.parametrize(
    "make",
    [
        good_key,
        lambda: secrets.token_urlsafe(24),  # 32 characters
        lambda: secrets.token_hex(16),  # 32 hex digits: 128 bits, the least a key may have
        lambda: "test-secret-key-" + uuid.uuid4().hex,  # the test suite's own keys
    ],
    ids=["token_urlsafe(48)", "token_urlsafe(24)", "token_hex(16)", "test suite"],
)
def test_every_random_key_passes(make: Any):
    weak = [w for w in (secret_key_weakness(make()) for _ in range(3000)) if w]
    assert weak == []


def test_a_random_key_with_a_run_of_one_digit_passes():
    """Six identical digits in a row happen in one random hex key in 40,000: not a pattern
    (the check counted a 4-gram's overlapping occurrences, and refused such keys)."""
    key = "3f9c" + "aaaaaa" + "07e1b2d48c5f6a9e3d7b0c12"
    assert secret_key_weakness(key) is None
    assert secret_key_weakness("passwordpasswordpassword12345678") == "a repeated pattern"


def test_a_weak_key_in_a_key_file_is_refused_naming_the_file(tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_text("change-me-long-random-string\n")
    with pytest.raises(SettingsError, match=str(key_file)):
        Settings(data_dir=str(tmp_path), secret_key_file=str(key_file)).ensure_secret_key()


@pytest.mark.parametrize("command", ["campaigns list", "serve"])
def test_the_gateway_command_refuses_a_weak_key_with_one_line_and_starts_nothing(
    tmp_path: Path, command: str
):
    args = command.split() + (["--port", str(free_port())] if command == "serve" else [])
    result = run_gateway(tmp_path, *args, secret_key="change-me-long-random-string")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: the secret key from GATEWAY_SECRET_KEY is too weak")
    assert MAKE_A_KEY in line
    assert not (tmp_path / "data").exists()


def test_a_fresh_install_keeps_its_key_beside_the_data_folder_never_in_it(
    tmp_path: Path, lax_umask: None
):
    settings = Settings(data_dir=str(tmp_path / "data"))
    runtime = Runtime.open(settings)
    try:
        secret = runtime.settings.secret_key
    finally:
        runtime.close()
    key_file = tmp_path / "secrets" / "data.key"
    assert key_file.read_text().strip() == secret
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    # A backup of the data folder does not carry the key that decrypts it.
    stored = [p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert stored and not any(secret.encode() in content for content in stored)
    assert settings.ensure_secret_key().secret_key == secret  # read again, never regenerated
    # Another data folder on the machine (a staging copy, another test) has its own key.
    assert Settings(data_dir=str(tmp_path / "staging")).ensure_secret_key().secret_key != secret


def test_a_key_an_older_version_left_in_the_data_folder_is_used_then_moved_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    data = tmp_path / "data"
    data.mkdir()
    old_key = good_key()
    (data / "secret_key").write_text(old_key)
    settings = Settings(data_dir=str(data))
    with caplog.at_level(logging.WARNING, "gateway.settings"):
        assert settings.ensure_secret_key().secret_key == old_key
    assert "gateway secrets move-key" in caplog.text and old_key not in caplog.text
    assert not (tmp_path / "secrets").exists()  # no second key made beside the old one

    moved = run_gateway(tmp_path, "secrets", "move-key")
    assert moved.returncode == 0, moved.stderr
    assert not (data / "secret_key").exists()
    assert (tmp_path / "secrets" / "data.key").read_text().strip() == old_key
    assert settings.ensure_secret_key().secret_key == old_key
    checked = run_gateway(tmp_path, "secrets", "check")
    assert checked.returncode == 0, checked.stderr
    assert "secrets/data.key" in checked.stdout and "strong enough" in checked.stdout
    assert old_key not in checked.stdout + checked.stderr


def test_a_new_key_is_never_made_beside_an_old_one(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret_key").write_text(good_key())
    elsewhere = tmp_path / "etc" / "agora.key"
    with pytest.raises(SettingsError, match="move-key"):
        Settings(data_dir=str(data), secret_key_file=str(elsewhere)).ensure_secret_key()
    assert not elsewhere.exists()
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "data.key").write_text(good_key())
    with pytest.raises(SettingsError, match="two different secret keys"):
        Settings(data_dir=str(data)).ensure_secret_key()


# -- ciphertexts bound to their rows ----------------------------------------------------------


def test_a_ciphertext_moved_to_another_row_column_or_key_does_not_decrypt():
    vault = AddressVault(good_key())
    here = inbound_sender("sms", "SM" + "1" * 32)
    token = vault.encrypt(ALICE, here)
    assert ALICE.encode() not in token
    assert vault.decrypt(token, here) == ALICE
    elsewhere = [
        inbound_sender("sms", "SM" + "2" * 32),  # another message
        inbound_sender("telegram", "SM" + "1" * 32),  # another channel
        inbound_raw("sms", "SM" + "1" * 32),  # another column of the same row
        contributor_address("sms", vault.lookup_hash("sms", ALICE)),
        outbound_recipient("conv1-r0"),
        voice_caller("CA" + "1" * 32),
    ]
    for binding in elsewhere:
        with pytest.raises(Unreadable):
            vault.decrypt(token, binding)
        assert vault.decrypt_or_none(token, binding) is None
    with pytest.raises(Unreadable):
        AddressVault(good_key()).decrypt(token, here)


def test_an_address_copied_onto_another_residents_row_reaches_nobody(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    send_sms(runtime, "PARC des bancs", ALICE)
    send_sms(runtime, "PARC des arbres", BOB)
    to_alice = len([m for m in fake_twilio.messages if m["To"] == ALICE])
    # Someone who can write to the database, without the key, puts Alice's encrypted number
    # on Bob's row, so that what is meant for Bob reaches Alice.
    with runtime.sessions.begin() as session:
        people = session.scalars(select(Contributor).where(Contributor.channel == "sms"))
        rows = {c.address_hash: c for c in people}
        alice = rows[runtime.vault.lookup_hash("sms", ALICE)]
        bob = rows[runtime.vault.lookup_hash("sms", BOB)]
        bob.address_encrypted = alice.address_encrypted
    send_sms(runtime, "PARC encore une idée", BOB)  # the reply to Bob is decided, not sent
    assert len([m for m in fake_twilio.messages if m["To"] == ALICE]) == to_alice
    with runtime.sessions() as session:
        last = session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
        assert last is not None and last.state == "processed"  # handled, not crashed
        replies = list(
            session.scalars(
                select(OutboundMessage).where(OutboundMessage.inbound_message_id == last.id)
            )
        )
    assert replies and all(r.status == "failed" and r.recipient_encrypted is None for r in replies)


def test_a_reply_whose_address_was_copied_from_another_reply_is_not_sent(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    with runtime.sessions.begin() as session:
        mine = OutboundMessage(
            decision_key="manual-alice",
            channel="sms",
            sender="+33100000009",
            text="Pour Alice",
            status="queued",
            recipient_encrypted=runtime.vault.encrypt(ALICE, outbound_recipient("manual-alice")),
        )
        session.add(mine)
        session.flush()
        forged = OutboundMessage(
            decision_key="manual-forged",
            channel="sms",
            sender="+33100000009",
            text="Pour qui ?",
            status="queued",
            recipient_encrypted=mine.recipient_encrypted,
        )
        session.add(forged)
        session.flush()
        mine_id, forged_id = mine.id, forged.id
    assert outbound.send(runtime, forged_id) == "failed"
    assert outbound.send(runtime, mine_id) == "sent"
    assert [(m["To"], m["Body"]) for m in fake_twilio.messages] == [(ALICE, "Pour Alice")]
    with runtime.sessions() as session:
        row = session.get(OutboundMessage, forged_id)
        assert row is not None and row.recipient_encrypted is None
        assert "does not decrypt" in (row.error or "") and ALICE not in (row.error or "")


def test_a_caller_copied_from_another_call_is_an_unknown_caller(runtime: Runtime):
    first, second = "CA" + "1" * 32, "CA" + "2" * 32
    with runtime.sessions.begin() as session:
        call = VoiceCall(
            call_sid=first, caller_encrypted=runtime.vault.encrypt(ALICE, voice_caller(first))
        )
        session.add(call)
        session.flush()
        session.add(VoiceCall(call_sid=second, caller_encrypted=call.caller_encrypted))
    assert voice.caller_of(runtime, first)[0] == ALICE
    assert voice.caller_of(runtime, second)[0] == ""


def legacy(secret_key: str, value: bytes) -> bytes:
    """A value as versions before row binding wrote it: nonce + AES-GCM, no associated data."""
    nonce = os.urandom(12)
    return nonce + AESGCM(_derive(secret_key, b"address-encryption")).encrypt(nonce, value, None)


def add_legacy_rows(runtime: Runtime, contributors: int = 3) -> dict[str, str]:
    """One old value in every encrypted column (several contributors: several batches)."""
    key = runtime.settings.secret_key
    numbers = {}
    with runtime.sessions.begin() as session:
        for i in range(contributors):
            number = f"+3361234560{i}"
            session.add(
                Contributor(
                    public_id=f"c-old{i}",
                    channel="sms",
                    address_hash=runtime.vault.lookup_hash("sms", number),
                    address_encrypted=legacy(key, number.encode()),
                )
            )
            numbers[runtime.vault.lookup_hash("sms", number)] = number
        session.add(
            InboundMessage(
                channel="sms",
                provider_message_id="SM" + "a" * 32,
                sender_hash=runtime.vault.lookup_hash("sms", ALICE),
                sender_encrypted=legacy(key, ALICE.encode()),
                raw_encrypted=legacy(key, json.dumps({"From": ALICE}).encode()),
                state="processed",
            )
        )
        session.add(
            OutboundMessage(
                decision_key="old-1",
                channel="sms",
                text="x",
                status="queued",
                recipient_encrypted=legacy(key, BOB.encode()),
            )
        )
        session.add(VoiceCall(call_sid="CA" + "a" * 32, caller_encrypted=legacy(key, BOB.encode())))
    return numbers


def all_values(runtime: Runtime) -> list[tuple[bytes, Any]]:
    """Every encrypted value with its binding."""
    with runtime.sessions() as session:
        values: list[tuple[bytes, Any]] = []
        for c in session.scalars(select(Contributor).order_by(Contributor.id)):
            values.append((c.address_encrypted, contributor_address(c.channel, c.address_hash)))
        for m in session.scalars(select(InboundMessage).order_by(InboundMessage.id)):
            values.append((m.sender_encrypted, inbound_sender(m.channel, m.provider_message_id)))
            values.append((m.raw_encrypted, inbound_raw(m.channel, m.provider_message_id)))
        for o in session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)):
            values.append((o.recipient_encrypted, outbound_recipient(o.decision_key)))
        for v in session.scalars(select(VoiceCall).order_by(VoiceCall.id)):
            values.append((v.caller_encrypted, voice_caller(v.call_sid)))
    return [(bytes(t), b) for t, b in values if t is not None]


def test_old_values_are_read_then_bound_to_their_rows_in_batches_once(runtime: Runtime):
    numbers = add_legacy_rows(runtime)
    vault = runtime.vault
    with runtime.sessions() as session:
        for c in session.scalars(select(Contributor)):  # still read, through the old format
            binding = contributor_address(c.channel, c.address_hash)
            assert vault.decrypt(c.address_encrypted or b"", binding) == numbers[c.address_hash]
    before = all_values(runtime)
    dry = rewrap(runtime.engine, vault, batch=2, dry_run=True)
    assert dry.total == 7 and all_values(runtime) == before  # counted, not changed
    done = rewrap(runtime.engine, vault, batch=2)
    assert done.total == 7 and sum(done.unreadable.values()) == 0
    after = all_values(runtime)
    assert [vault.decrypt_bytes(t, b) for t, b in after] == [
        vault.decrypt_bytes(t, b) for t, b in before
    ]
    for token, binding in after:
        assert token.startswith(MARKER3)
        with pytest.raises(Unreadable):  # bound now: no longer readable without the binding
            vault.decrypt_legacy(token, binding)
    assert rewrap(runtime.engine, vault).total == 0  # idempotent


def test_a_value_under_another_key_is_counted_and_left_alone(runtime: Runtime):
    with runtime.sessions.begin() as session:
        session.add(
            VoiceCall(call_sid="CA" + "b" * 32, caller_encrypted=legacy(good_key(), ALICE.encode()))
        )
    report = rewrap(runtime.engine, runtime.vault)
    assert report.total == 0 and report.unreadable["voice_calls.caller_encrypted"] == 1
    assert voice.caller_of(runtime, "CA" + "b" * 32)[0] == ""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_binds_old_values_by_itself_the_first_time_it_is_opened(
    runtime: Runtime, settings: Settings
):
    add_legacy_rows(runtime, contributors=1)
    with runtime.engine.begin() as connection:  # as a database from an earlier version
        connection.execute(text("PRAGMA user_version = 0"))
    second = Runtime.open(settings)
    try:
        assert all(t.startswith(MARKER3) for t, _ in all_values(second))
        with second.engine.connect() as connection:
            version = connection.execute(text("PRAGMA user_version")).scalar()
        assert version == BOUND_USER_VERSION
    finally:
        second.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_rewrap_is_an_upgrade_step(
    runtime: Runtime, settings: Settings, tmp_path: Path
):
    add_legacy_rows(runtime)
    env = {"database_url": settings.database_url, "secret_key": settings.secret_key}
    dry = run_gateway(tmp_path, "secrets", "rewrap", "--dry-run", **env)
    assert dry.returncode == 0, dry.stderr
    assert "7 value(s) to bind" in dry.stdout
    assert "contributors.address_encrypted: 3 to bind" in dry.stdout
    done = run_gateway(tmp_path, "secrets", "rewrap", "--batch", "2", **env)
    assert done.returncode == 0, done.stderr
    assert "7 value(s) bound" in done.stdout
    assert all(t.startswith(MARKER3) for t, _ in all_values(runtime))
    again = run_gateway(tmp_path, "secrets", "rewrap", **env)
    assert "0 value(s) bound" in again.stdout


# -- files ------------------------------------------------------------------------------------


def test_everything_the_gateway_writes_in_its_data_folder_is_private(
    tmp_path: Path, lax_umask: None, fake_twilio: FakeTwilio
):
    data = tmp_path / "data"
    with FakeTelegram() as telegram:
        settings = Settings(
            data_dir=str(data),  # SQLite and the embedded Redis in it
            secret_key=good_key(),
            campaigns_dir=str(TEST_CAMPAIGNS),
            twilio_account_sid=fake_twilio.account_sid,
            twilio_auth_token=fake_twilio.auth_token,
            twilio_api_base=fake_twilio.base_url,
            telegram_bot_token=telegram.token,
            telegram_api_base=telegram.base_url,
            email_address="participez@ville.example",
        )
        runtime = Runtime.open(settings)
        try:
            assert runtime.embedded is not None
            runtime.embedded.ensure_running()
            runtime.queue("default").enqueue("builtins.len", "un message")  # in the AOF
            sid = "RE" + "3" * 32
            url = fake_twilio.add_recording(sid, b"RIFF....WAVEfmt ", "audio/wav")
            recording, _ = twilio_recordings.fetch_recording(
                runtime, url, sid, audio_folder(runtime)
            )
            photo = data / "media" / "telegram" / "1-0.jpg"
            fetcher = MediaFetcher(telegram.token, telegram.base_url)
            try:
                fetcher.fetch(telegram.add_file(b"\xff\xd8\xff\xe0 a photo"), photo)
            finally:
                fetcher.close()
            raw = (REPO / "channels" / "email" / "tests" / "corpus" / "photo.eml").read_bytes()
            mail = to_incoming(
                parse_email(raw), raw, data_path=data, own_address=settings.email_address
            )
            with runtime.sessions.begin() as session:  # and the database's WAL is written to
                session.add(VoiceCall(call_sid="CA" + "3" * 32))
        finally:
            runtime.close()
    attachment = data / mail.attachments[0]["path"]
    written = [data / "gateway.sqlite3", recording, photo, attachment, data / "redis"]
    assert all(p.exists() for p in written)
    assert any((data / "redis").rglob("*.aof")) or any((data / "redis").rglob("appendonly*"))
    assert open_paths(data) == []


def test_a_data_folder_made_by_an_older_version_is_made_private_once(
    tmp_path: Path, lax_umask: None, caplog: pytest.LogCaptureFixture
):
    data = tmp_path / "data"
    (data / "audio" / "2024" / "05").mkdir(parents=True)
    (data / "redis").mkdir()
    (data / "audio" / "2024" / "05" / ("RE" + "4" * 32 + ".wav")).write_bytes(b"RIFF")
    (data / "redis" / "appendonly.aof").write_bytes(b"*1\r\n")
    os.chmod(data, 0o755)  # noqa: S103 - the mode an older version left
    assert open_paths(data)  # as an older version left it: 0755 folders, 0644 files
    settings = Settings(data_dir=str(data), secret_key=good_key())
    with caplog.at_level(logging.WARNING, "gateway.files"):
        Runtime.open(settings).close()
        assert open_paths(data) == []
        assert "made private" in caplog.text
        caplog.clear()
        Runtime.open(settings).close()
    assert "made private" not in caplog.text  # once


def test_gateway_serve_runs_with_a_private_umask(tmp_path: Path):
    port = free_port()
    process = subprocess.Popen(
        [*GATEWAY, "serve", "--port", str(port)],
        env=gateway_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        umask=0o022,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.stderr.read() if process.stderr else "") from None
                time.sleep(0.2)
        umask = next(
            line.split()[1]
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
            if line.startswith("Umask:")
        )
        assert umask == "0077"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert open_paths(tmp_path / "data", tmp_path / "secrets") == []


def test_settings_and_keys_are_ignored_by_git():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("gateway.env", "secrets/data.key", "data/gateway.sqlite3"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert ignored.returncode == 0, path


# -- mail in clear ----------------------------------------------------------------------------

NO_FILE = {"GATEWAY_SETTINGS_FILE": os.devnull}


@pytest.mark.parametrize("kind", ["imap", "smtp"])
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", "localhost."]
)
def test_mail_in_clear_to_this_machine_is_allowed(kind: str, host: str):
    Settings(**{f"{kind}_host": host, f"{kind}_security": "none"})


@pytest.mark.parametrize("kind", ["imap", "smtp"])
@pytest.mark.parametrize(
    "host",
    ["mail.example.org", "10.0.0.5", "192.168.1.2", "0.0.0.0", "::", "localhost.example.org"],  # noqa: S104
)
def test_mail_in_clear_to_another_machine_is_refused(kind: str, host: str):
    with pytest.raises(SettingsError, match="loopback") as refused:
        Settings(**{f"{kind}_host": host, f"{kind}_security": "none"})
    assert f"GATEWAY_{kind.upper()}_SECURITY=none" in str(refused.value)


def test_mail_settings_are_checked_when_loaded_and_changed():
    with pytest.raises(SettingsError, match="loopback"):
        Settings.load(
            {**NO_FILE, "GATEWAY_SMTP_HOST": "smtp.example", "GATEWAY_SMTP_SECURITY": "none"}
        )
    with pytest.raises(SettingsError, match="must be one of"):
        Settings.load({**NO_FILE, "GATEWAY_IMAP_SECURITY": "ssl"})
    local = Settings(imap_host="127.0.0.1", imap_security="none")
    with pytest.raises(SettingsError, match="loopback"):
        local.with_overrides(imap_host="imap.ville.example")


def test_the_gateway_command_says_why_mail_in_clear_is_refused(tmp_path: Path):
    result = run_gateway(
        tmp_path, "campaigns", "list", imap_host="imap.ville.example", imap_security="none"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "IMAP_SECURITY=none" in result.stderr and "loopback" in result.stderr


# -- provider ids -----------------------------------------------------------------------------

BAD_SIDS = {
    "traversal": "../../../../etc/cron.d/x",
    "short": "RE1",
    "not hex": "RE" + "g" * 32,
    "too long": "RE" + "0" * 33,
    "newline": "RE" + "0" * 32 + "\n",
    "query": "RE" + "0" * 28 + "?a=b",
}


@pytest.fixture
async def voice_client(aiohttp_client: Any, settings: Settings) -> Any:
    return await aiohttp_client(create_app(settings))


async def post_twilio(client: Any, settings: Settings, path: str, form: dict[str, str]) -> Any:
    signature = sign(settings.twilio_auth_token, settings.public_url + path, form)
    return await client.post(path, data=form, headers={"X-Twilio-Signature": signature})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("sid", BAD_SIDS.values(), ids=BAD_SIDS.keys())
async def test_a_recording_callback_with_a_malformed_sid_is_refused_and_nothing_stored(
    voice_client: Any, settings: Settings, sid: str, caplog: pytest.LogCaptureFixture
):
    form = {
        "AccountSid": settings.twilio_account_sid,
        "CallSid": "CA" + "1" * 32,
        "RecordingSid": sid,
        "RecordingUrl": f"{settings.twilio_api_base}/2010-04-01/Accounts/"
        f"{settings.twilio_account_sid}/Recordings/{sid}",
        "RecordingStatus": "completed",
    }
    with caplog.at_level(logging.WARNING):
        response = await post_twilio(voice_client, settings, voice.RECORDING_PATH, form)
    assert response.status == 400
    assert "RecordingSid" in caplog.text
    with voice_client.app[RUNTIME].sessions() as session:
        assert session.scalars(select(InboundMessage)).all() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("call_sid", ["", "CA1", "../x", "CA" + "0" * 32 + "/"])
async def test_a_call_with_a_malformed_callsid_is_refused(
    voice_client: Any, settings: Settings, call_sid: str
):
    form = {"AccountSid": settings.twilio_account_sid, "CallSid": call_sid, "From": ALICE}
    form["To"] = "+33100000001"
    response = await post_twilio(voice_client, settings, voice.VOICE_PATH, form)
    assert response.status == 400


def audio_folder(runtime: Runtime) -> Path:
    """Where gateway.recordings has the voice plugin store a recording."""
    return files.private_dir(recordings.audio_dir(runtime) / "2026" / "03")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_recordings_are_fetched_and_deleted_only_by_a_well_formed_sid_of_this_account(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    sid, other = "RE" + "5" * 32, "RE" + "6" * 32
    url = fake_twilio.add_recording(sid, b"RIFF....WAVEfmt ", "audio/wav")
    for bad in BAD_SIDS.values():
        with pytest.raises(recordings.RecordingRefused):
            twilio_recordings.fetch_recording(runtime, url, bad, audio_folder(runtime))
        twilio_recordings.delete_from_twilio(runtime, bad)
    with pytest.raises(recordings.RecordingRefused):  # the URL names another recording
        twilio_recordings.fetch_recording(runtime, url, other, audio_folder(runtime))
    other_account = url.replace(fake_twilio.account_sid, "AC" + "9" * 32)
    with pytest.raises(recordings.RecordingRefused):
        twilio_recordings.fetch_recording(runtime, other_account, sid, audio_folder(runtime))
    assert fake_twilio.requests == []
    path, _ = twilio_recordings.fetch_recording(runtime, url, sid, audio_folder(runtime))
    assert path.name == f"{sid}.wav"


def test_a_twilio_account_sid_of_another_shape_is_refused():
    with pytest.raises(SettingsError, match="TWILIO_ACCOUNT_SID"):
        Settings(twilio_account_sid="AC../../x")
    Settings(twilio_account_sid="AC" + "0" * 32)


def test_a_telegram_file_id_of_another_shape_is_not_kept_for_fetching():
    update = tg.photo(424242, [("../../etc/passwd", 90, 90, 100)], caption="Le banc cassé")
    parsed = updates.parse(update)
    assert parsed.message is not None and parsed.message.attachments == []
    assert parsed.message.text == "Le banc cassé"
    assert any("malformed file_id" in note for note in parsed.notes)


@pytest.mark.parametrize(
    "file_path",
    [
        "../../../etc/passwd",
        "/etc/passwd",
        "voice/../../x.oga",
        "voice//x.oga",
        "voice/.x.oga",
        "https://elsewhere.example/x.oga",
        "voice/x.oga?token=1",
        "voice/x.oga#",
    ],
)
def test_a_file_path_from_getfile_that_leaves_the_file_host_is_refused(
    tmp_path: Path, file_path: str
):
    with FakeTelegram() as telegram:
        fetcher = MediaFetcher(telegram.token, telegram.base_url)
        try:
            file_id = telegram.add_file(b"OggS a voice note", file_path=file_path)
            with pytest.raises(MediaError) as refused:
                fetcher.fetch(file_id, tmp_path / "x.ogg")
            assert refused.value.permanent
            with pytest.raises(MediaError):
                fetcher.fetch("../" + file_id, tmp_path / "x.ogg")
        finally:
            fetcher.close()
        assert telegram.downloads == []
    assert not (tmp_path / "x.ogg").exists()
