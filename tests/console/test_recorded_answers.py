"""The city's recorded answer in the console: uploaded on the answer form (with the answer, or
on its own), shown with a player that really plays it (Debian's Chromium through Playwright),
removed with its box; what is not a usable recording refused with the catalogue's message and
nothing lost. On SQLite and PostgreSQL, the real app."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import FormData

from gateway import recorded_answers
from gateway.runtime import Runtime
from tests.console import seed
from tests.console.conftest import Browser
from tests.console.test_browser import page  # noqa: F401  (the logged-in Chromium tab)
from tests.speech import silence, spoken

SPOKEN = "Bonjour, ici la mairie. Des bancs seront posés au printemps dans le parc."


def files_of(rt: Runtime) -> list[Path]:
    folder = recorded_answers.folder(rt.settings.data_path)
    return sorted(folder.iterdir()) if folder.is_dir() else []


def answer_form(browser: Browser, cid: int, **fields: Any) -> FormData:
    form = FormData()
    form.add_field("csrf_token", browser.csrf)
    form.add_field("back", f"/moderation/contributions/{cid}")
    for name, value in fields.items():
        if isinstance(value, bytes):
            form.add_field(name, value, filename=f"{name}.wav", content_type="audio/wav")
        else:
            form.add_field(name, value)
    return form


async def test_the_answer_and_its_recording_in_one_form_then_refused_then_removed(
    rt: Runtime, moderator: Browser
):
    cid = seed.published(rt, "Des bancs au parc", "Des bancs au parc")
    form = answer_form(
        moderator,
        cid,
        state="accepted",
        text="Des bancs seront posés au printemps.",
        text_en="",
        recording=spoken(SPOKEN),
    )
    response = await moderator.client.post(
        f"/moderation/answers/{cid}", data=form, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    found = seed.get(rt, cid)
    assert found.answer_state == "accepted" and found.answer_audio
    token = found.answer_audio
    page_ = await moderator.get(f"/moderation/contributions/{cid}")
    player = page_.dom.one(f"audio#answer-audio-{cid}-fr")
    assert player.get("src") == f"/audio/answers/{token}.mp3"

    # Silence is refused with the catalogue's words; the recording there stays.
    form = answer_form(
        moderator,
        cid,
        state="accepted",
        text="Des bancs seront posés au printemps.",
        recording=silence(3),
    )
    response = await moderator.client.post(
        f"/moderation/answers/{cid}", data=form, allow_redirects=True
    )
    text = await response.text()
    assert "On n’entend aucune voix dans cet enregistrement." in text
    assert seed.get(rt, cid).answer_audio == token
    assert [p.name for p in files_of(rt)] == [f"{token}.mp3"]

    # The box removes it, and its file.
    form = answer_form(
        moderator,
        cid,
        state="accepted",
        text="Des bancs seront posés au printemps.",
        remove_recording="1",
    )
    response = await moderator.client.post(
        f"/moderation/answers/{cid}", data=form, allow_redirects=False
    )
    assert response.status == 303
    assert seed.get(rt, cid).answer_audio is None and files_of(rt) == []
    page_ = await moderator.get(f"/moderation/contributions/{cid}")
    assert not page_.dom.select(f"audio#answer-audio-{cid}-fr")


async def test_a_recording_without_an_answer_is_refused(rt: Runtime, moderator: Browser):
    cid = seed.published(rt, "Des arbres", "Des arbres")
    # "Being studied" with no text is an answer; a pending contribution has none to record.
    pending = seed.contribution(rt, "Un banc", status="pending")
    form = answer_form(moderator, pending, state="evaluating", text="", recording=spoken(SPOKEN))
    response = await moderator.client.post(
        f"/moderation/answers/{pending}", data=form, allow_redirects=True
    )
    assert "n’est pas publiée" in await response.text()
    assert files_of(rt) == []
    form = answer_form(moderator, cid, state="evaluating", text="", recording=spoken(SPOKEN))
    response = await moderator.client.post(
        f"/moderation/answers/{cid}", data=form, allow_redirects=False
    )
    assert response.status == 303
    assert seed.get(rt, cid).answer_audio


async def test_chromium_uploads_the_recording_and_plays_it(
    rt: Runtime,
    page: Any,  # noqa: F811
    tmp_path: Path,
):
    cid = seed.published(rt, "Des bancs au parc", "Des bancs au parc")
    audio = tmp_path / "reponse.wav"
    audio.write_bytes(spoken(SPOKEN))
    await page.goto(page.base + f"/moderation/contributions/{cid}")
    await page.select_option(f"#answer-state-{cid}", "accepted")
    await page.fill(f"#answer-text-{cid}", "Des bancs seront posés au printemps.")
    await page.set_input_files(f"#answer-recording-{cid}", str(audio))
    await page.click(f"#save-answer-{cid}")
    await page.wait_for_selector(f"audio#answer-audio-{cid}-fr")
    # The browser loads it from the URL the phone plays: a real MP3 of the whole sentence.
    await page.eval_on_selector(f"audio#answer-audio-{cid}-fr", "a => a.load()")
    ready = 0
    for _ in range(600):  # the console's CSP forbids wait_for_function's eval: poll instead
        ready = await page.evaluate(
            f"document.querySelector('audio#answer-audio-{cid}-fr').readyState"
        )
        if ready >= 1:
            break
        await asyncio.sleep(0.1)
    assert ready >= 1
    length = await page.eval_on_selector(f"audio#answer-audio-{cid}-fr", "a => a.duration")
    assert 3 < length < 8
    assert page.console_errors == []
    assert seed.get(rt, cid).answer_audio
