"""An admin uploads the answering machine's greeting: decoded to check it, kept under the data
folder, served without login at an unguessable URL for the voice provider's <Play>, and what
callers hear instead of the text (gateway.greetings)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from gateway import calls, greetings
from gateway.bodycaps import GREETING, caps
from gateway.models import Campaign, ModerationEvent
from gateway.runtime import Runtime
from tests.conftest import require_tool
from tests.console.conftest import Browser

PAGE = "/moderation/admin/campaigns"


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    wav = tmp_path_factory.mktemp("greeting") / "accueil.wav"
    subprocess.run(
        [require_tool("espeak-ng"), "-v", "fr", "-w", str(wav), "Bienvenue sur la ligne du parc."],
        check=True,
    )
    return wav.read_bytes()


async def upload(browser: Browser, slug: str, data: bytes, name: str = "accueil.wav") -> Any:
    form = aiohttp.FormData()
    form.add_field("csrf_token", browser.csrf)
    form.add_field("greeting", data, filename=name, content_type="audio/wav")
    async with browser.client.post(
        f"{PAGE}/{slug}/greeting", data=form, allow_redirects=False
    ) as response:
        return response.status, response.headers.get("Location", "")


def parc(rt: Runtime) -> Campaign:
    with rt.sessions() as session:
        found = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert found is not None
        return found


def stored_files(rt: Runtime) -> list[Path]:
    folder = greetings.folder(rt.settings)
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def test_an_uploaded_greeting_is_served_and_played_to_callers(
    rt: Runtime, admin: Browser, anonymous: Browser, spoken: bytes
):
    status, location = await upload(admin, "parc", spoken)
    assert (status, location) == (303, f"{PAGE}/parc/edit")
    page = await admin.get(location)
    assert page.flashes() == [
        "Accueil du répondeur enregistré : il est joué aux personnes qui appellent."
    ]
    url = parc(rt).voice_greeting_audio
    prefix = "https://gateway.example.org/greetings/"
    assert url is not None and url.startswith(prefix) and url.endswith(".wav")
    assert len(url.removeprefix(prefix)) == 36  # 32 random characters, unguessable
    # Without login, as Twilio fetches it.
    async with anonymous.client.get(url.removeprefix("https://gateway.example.org")) as served:
        assert served.status == 200
        assert served.headers["Content-Type"] == "audio/wav"
        assert await served.read() == spoken
    assert calls.choice(parc(rt)).greeting_audio == url  # what the voice webhook <Play>s
    with rt.sessions() as session:
        (event,) = session.scalars(select(ModerationEvent))
    assert event.action == "campaign_edit" and event.after["voice"] == {"audio": url}
    # A new upload replaces the file; the old one is deleted.
    (first,) = stored_files(rt)
    await upload(admin, "parc", spoken)
    (second,) = stored_files(rt)
    assert first != second
    async with anonymous.client.get(f"/greetings/{first.name}") as gone:
        assert gone.status == 404


async def test_a_corrupt_or_oversized_file_is_refused_and_changes_nothing(
    rt: Runtime, admin: Browser, spoken: bytes
):
    before = parc(rt).voice_greeting_audio
    cases = [
        (
            b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 200,
            "Ce fichier n’est pas un enregistrement lisible.",
        ),
        (spoken[: len(spoken) // 50], "Ce fichier n’est pas un enregistrement lisible."),
        (b"", "Choisissez un fichier audio."),
        (spoken.ljust(greetings.MAX_BYTES + 10, b"\x00"), "Ce fichier est trop gros."),
    ]
    for data, message in cases:
        status, location = await upload(admin, "parc", data)
        assert status == 303
        assert (await admin.get(location)).flashes(error=True) == [message]
    # Beyond what the form may carry at all: refused before it is read.
    status, _ = await upload(admin, "parc", b"\x00" * (caps(rt.settings)[GREETING] + 1))
    assert status == 413
    assert parc(rt).voice_greeting_audio == before and stored_files(rt) == []


async def test_only_admins_upload(
    rt: Runtime, moderator: Browser, anonymous: Browser, spoken: bytes
):
    assert (await upload(moderator, "parc", spoken))[0] == 403
    form = aiohttp.FormData()
    form.add_field("greeting", spoken, filename="a.wav", content_type="audio/wav")
    async with anonymous.client.post(f"{PAGE}/parc/greeting", data=form) as response:
        assert response.status in (401, 403)
    assert parc(rt).voice_greeting_audio is None and stored_files(rt) == []
    async with anonymous.client.get("/greetings/../secret_key") as probe:
        assert probe.status == 404
