"""Backups and restores as an operator makes them: `gateway backup` while a real `gateway serve`
(SQLite, embedded Redis, its worker) takes a burst of texts after voice messages, then
`gateway restore` onto an empty folder and a new `gateway serve` on it: every recording, byte
for byte, and every message acknowledged before the backup, filed once. Then what restore
refuses: a non-empty folder, a damaged, truncated or hostile archive, another key."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import backup
from gateway.models import Contribution, InboundMessage
from gateway.settings import Settings
from tests.conftest import TEST_CAMPAIGNS, require_tool
from tests.helpers import sms_form
from tests.test_e2e_serve import Gateway, base_env

pytestmark = pytest.mark.e2e

CALLERS = [f"+3361200{i:04d}" for i in range(3)]


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as f:
        yield f


@pytest.fixture(scope="module")
def phone_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("speech")
    raw, phone = folder / "raw.wav", folder / "phone.wav"
    subprocess.run(
        [
            require_tool("espeak-ng"),
            "-v",
            "fr",
            "-w",
            str(raw),
            "bonjour, je voudrais des bancs et de l ombre dans le parc du centre, merci beaucoup",
        ],
        check=True,
    )
    subprocess.run(
        [require_tool("sox"), str(raw), "-r", "8000", "-c", "1", "-e", "u-law", str(phone)],
        check=True,
    )
    return phone.read_bytes()


def leave_message(gateway: Gateway, fake: FakeTwilio, n: int, caller: str, audio: bytes) -> None:
    call = {
        "AccountSid": fake.account_sid,
        "CallSid": f"CA{n:032d}",
        "From": caller,
        "To": "+33100000001",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    response = gateway.post_signed("/webhooks/twilio/voice", call)
    assert response.status_code == 200
    assert ET.fromstring(response.text).find("Record") is not None  # noqa: S314 - ours
    url = fake.add_recording(f"RE{n:032d}", audio, "audio/wav")
    callback = {
        "AccountSid": fake.account_sid,
        "CallSid": call["CallSid"],
        "RecordingSid": f"RE{n:032d}",
        "RecordingUrl": url,
        "RecordingStatus": "completed",
        "RecordingDuration": "2",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
    }
    assert gateway.post_signed("/webhooks/twilio/recording", callback).status_code == 200


def sqlite_rows(data: Path) -> tuple[list[Contribution], list[InboundMessage]]:
    engine = create_engine(f"sqlite:///{data / 'gateway.sqlite3'}")
    try:
        with engine.connect() as connection:
            contributions = list(connection.execute(select(Contribution)).all())
            inbound = list(connection.execute(select(InboundMessage)).all())
    finally:
        engine.dispose()
    return contributions, inbound  # type: ignore[return-value]


def test_a_backup_taken_during_a_burst_restores_every_recording_and_message(
    tmp_path: Path, fake: FakeTwilio, phone_wav: bytes
) -> None:
    env = base_env(tmp_path, fake)
    env["GATEWAY_SECRET_KEY_FILE"] = str(tmp_path / "keys" / "agora.key")
    gateway = Gateway(env, tmp_path)
    gateway.start("serve")
    archive = tmp_path / "backups" / "agora.tar.gz"
    acknowledged_before: set[str] = set()
    try:
        gateway.wait_healthy()
        for n, caller in enumerate(CALLERS):
            leave_message(gateway, fake, n, caller, phone_wav)
        gateway.wait_for_contributions(len(CALLERS))

        acknowledged: list[str] = []
        backup_started, backup_done = threading.Event(), threading.Event()

        def burst() -> None:
            # Until well after the backup: it must run in the middle of the burst.
            after = 0
            for i in range(2000):
                number = f"+3361300{i:04d}"
                form = sms_form(f"PARC idée {i}", sender=number, to="+33100000001")
                response = gateway.post_sms(form)
                assert response.status_code == 200, response.text
                if not backup_started.is_set():
                    acknowledged_before.add(form["MessageSid"])
                acknowledged.append(form["MessageSid"])
                after += backup_done.is_set()
                if after >= 40:
                    return

        sender = threading.Thread(target=burst)
        sender.start()
        while len(acknowledged) < 60:
            time.sleep(0.05)
        backup_started.set()
        printed = gateway.cli("backup", "--output", str(archive))
        during = len(acknowledged)
        backup_done.set()
        sender.join()
        assert "database included" in printed and "key included" in printed
        assert during < len(acknowledged), "the backup did not run during the burst"
        assert archive.stat().st_mode & 0o077 == 0  # it holds the key: the owner's only
    finally:
        gateway.stop()

    original = tmp_path / "data"
    restored_dir = tmp_path / "r"
    restored_env = base_env(restored_dir.parent, fake) | {
        "GATEWAY_DATA_DIR": str(restored_dir / "data"),
        "GATEWAY_SECRET_KEY_FILE": str(restored_dir / "keys" / "agora.key"),
    }
    restored_dir.mkdir()
    again = Gateway(restored_env, restored_dir)
    printed = again.cli("restore", str(archive))
    assert "database restored" in printed and "key in place" in printed
    key = (restored_dir / "keys" / "agora.key").read_bytes()
    assert key == (tmp_path / "keys" / "agora.key").read_bytes()

    # Every recording the snapshot names is there, byte for byte.
    contributions, inbound = sqlite_rows(restored_dir / "data")
    voices = [c for c in contributions if c.channel == "voice"]
    assert len(voices) == len(CALLERS)
    for voice in voices:
        copy = restored_dir / "data" / voice.audio_path
        assert copy.read_bytes() == (original / voice.audio_path).read_bytes()
    stored = {m.provider_message_id for m in inbound}
    assert acknowledged_before <= stored, "a message acknowledged before the backup is missing"

    # The restored gateway finishes what the snapshot left waiting (its queues were in the
    # old Redis): every message acknowledged before the backup becomes one contribution.
    again.processes.clear()
    again.start("serve")
    try:
        again.wait_healthy()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            contributions, inbound = sqlite_rows(restored_dir / "data")
            linked = {c.inbound_message_id for c in contributions}
            filed = {m.provider_message_id for m in inbound if m.id in linked}
            if acknowledged_before <= filed:
                break
            time.sleep(1)
        assert acknowledged_before <= filed, again.logs()
        texts = [c.text for c in contributions if c.channel == "sms"]
        assert len(texts) == len(set(texts)), "a message was filed twice"
        # The key came with it: the addresses decrypt (a reply goes to the right number).
        assert "unreadable" not in again.logs().lower()
    finally:
        again.stop()


# -- what restore refuses --------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    """An embedded installation with a key file, and something in its data folder."""
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        secret_key_file=str(tmp_path / "keys" / "agora.key"),
        campaigns_dir=str(TEST_CAMPAIGNS),
    ).ensure_secret_key()
    from gateway.runtime import Runtime

    runtime = Runtime.open(settings, migrate=True)
    runtime.close()
    audio = settings.data_path / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    (audio / "one.wav").write_bytes(b"RIFF" + bytes(range(256)) * 40)
    (settings.data_path / "media").mkdir(exist_ok=True)
    (settings.data_path / "media" / "photo.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 1000)
    return settings


def elsewhere(tmp_path: Path, name: str = "other") -> Settings:
    return Settings(
        data_dir=str(tmp_path / name / "data"),
        secret_key_file=str(tmp_path / name / "keys" / "agora.key"),
    )


def rewrite(archive: Path, target: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """A copy of ``archive`` whose members went through ``change(name, bytes)``, which returns
    (name, bytes) or None to drop the member; the manifest is kept as it was."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            changed = (
                change(member.name, data)
                if member.name != "manifest.json"
                else (
                    member.name,
                    data,
                )
            )
            if changed is None:
                continue
            info = tarfile.TarInfo(changed[0])
            info.size = len(changed[1])
            out.addfile(info, io.BytesIO(changed[1]))
    return target


def test_a_round_trip_keeps_every_byte(local: Settings, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    summary = backup.backup(local, archive)
    assert summary.database == "sqlite" and summary.files == 2 and summary.key
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names == {
        "manifest.json",
        "database.sqlite3",
        "data/audio/one.wav",
        "data/media/photo.jpg",
        "key/secret.key",
    }
    assert manifest["database"] == "sqlite" and manifest["revision"]
    target = elsewhere(tmp_path)
    restored = backup.restore(target, archive)
    assert restored.files == 2 and restored.key
    for name in ("audio/one.wav", "media/photo.jpg"):
        assert (target.data_path / name).read_bytes() == (local.data_path / name).read_bytes()
        assert (target.data_path / name).stat().st_mode & 0o077 == 0
    assert target.secret_key_path.read_bytes() == local.secret_key_path.read_bytes()
    engine = create_engine(target.effective_database_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    engine.dispose()
    # Without the key: the archive alone decrypts nothing.
    bare = backup.backup(local, tmp_path / "bare.tar.gz", with_key=False)
    assert not bare.key
    with tarfile.open(tmp_path / "bare.tar.gz") as tar:
        assert "key/secret.key" not in tar.getnames()


@pytest.mark.parametrize(
    "damage",
    ["flipped", "truncated", "dropped", "traversal", "stranger", "symlink", "not-a-tar"],
)
def test_restore_refuses_a_bad_archive_and_writes_nothing(
    local: Settings, tmp_path: Path, damage: str
) -> None:
    archive = tmp_path / "b.tar.gz"
    backup.backup(local, archive)
    bad = tmp_path / f"{damage}.tar.gz"
    if damage == "flipped":
        rewrite(
            archive,
            bad,
            lambda n, d: (n, d[:-1] + bytes([d[-1] ^ 1])) if "one.wav" in n else (n, d),
        )
    elif damage == "dropped":
        rewrite(archive, bad, lambda n, d: None if "photo" in n else (n, d))
    elif damage == "traversal":
        rewrite(archive, bad, lambda n, d: ("data/../../evil.sh", d) if "photo" in n else (n, d))
    elif damage == "stranger":
        rewrite(archive, bad, lambda n, d: ("etc/cron.d/x", d) if "photo" in n else (n, d))
    elif damage == "truncated":
        bad.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    elif damage == "not-a-tar":
        bad.write_bytes(b"hello, this is not an archive")
    elif damage == "symlink":
        with tarfile.open(archive) as source, tarfile.open(bad, "w:gz") as out:
            for member in source.getmembers():
                if "photo" in member.name:
                    link = tarfile.TarInfo(member.name)
                    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
                    out.addfile(link)
                else:
                    out.addfile(member, source.extractfile(member))
    target = elsewhere(tmp_path)
    with pytest.raises(backup.BackupError) as refused:
        backup.restore(target, bad)
    assert str(refused.value)
    assert not target.data_path.exists() or not any(target.data_path.iterdir())
    assert not target.secret_key_path.exists()
    assert not (tmp_path / "evil.sh").exists()


def test_restore_refuses_a_folder_in_use_and_another_key(local: Settings, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    backup.backup(local, archive)
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(local, archive)
    target = elsewhere(tmp_path)
    target.secret_key_path.parent.mkdir(parents=True)
    target.secret_key_path.write_text("another key\n")
    with pytest.raises(backup.BackupError, match="different key file"):
        backup.restore(target, archive)
    assert target.secret_key_path.read_text() == "another key\n"
    assert not target.data_path.exists()
    with pytest.raises(backup.BackupError, match="outside the data folder"):
        backup.backup(local, local.data_path / "inside.tar.gz")


def test_on_postgresql_the_archive_holds_the_files_and_the_key(
    local: Settings, tmp_path: Path, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("the PostgreSQL variant")
    from gateway import db

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    engine.dispose()
    for stray in local.data_path.glob("gateway.sqlite3*"):  # the embedded set-up's database
        stray.unlink()
    settings = local.with_overrides(database_url=database_url)
    archive = tmp_path / "pg.tar.gz"
    summary = backup.backup(settings, archive)
    assert summary.database == "postgresql" and summary.files == 2 and summary.key
    with tarfile.open(archive) as tar:
        assert "database.sqlite3" not in tar.getnames()
    target = elsewhere(tmp_path).with_overrides(database_url=database_url)
    restored = backup.restore(target, archive)
    assert restored.database == "postgresql" and restored.files == 2
    assert (target.data_path / "audio" / "one.wav").is_file()


def test_the_commands(local: Settings, tmp_path: Path) -> None:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATA_DIR": str(local.data_path),
            "GATEWAY_SECRET_KEY_FILE": str(local.secret_key_path),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
    )
    gateway = [sys.executable, "-m", "gateway.cli"]
    archive = tmp_path / "cli.tar.gz"
    made = subprocess.run(
        [*gateway, "backup", "--output", str(archive)], env=env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert made.stderr == ""  # a quiet command
    refused = subprocess.run(
        [*gateway, "restore", str(archive)], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert (
        refused.stderr.startswith("Error: the data folder ")
        and len(refused.stderr.splitlines()) == 1
    )
