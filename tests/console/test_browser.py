"""console.js in a real browser (Debian's Chromium through Playwright): the live board inserts
residents' text as text, keyboard shortcuts act on the queue and the contribution page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.models import Contribution
from tests.console import seed
from tests.console.conftest import chromium_tab

HOSTILE = '<img src=x onerror=alert(1)> "><svg onload=alert(1)> <script>alert(1)</script>'


@pytest.fixture
async def page(rt: Any, server: TestServer) -> AsyncIterator[Any]:
    async with chromium_tab(rt, server, "camille") as tab:
        yield tab


async def test_the_live_board_shows_new_and_changed_contributions_as_text(rt, page):
    await page.goto(page.base + "/moderation/live")
    await page.wait_for_selector("#live-status[data-state=open]")
    cid = seed.contribution(rt, HOSTILE, channel="voice", transcription_status="pending")
    item = page.locator(f"#live-list article.live-item[data-contribution-id='{cid}']")
    await item.wait_for(timeout=5000)
    assert await item.locator(".live-text").text_content() == HOSTILE
    assert await item.locator(".live-transcript").text_content() == "Transcription en cours"
    assert (
        await page.locator("#live-list img, #live-list script, #live-list svg[onload]").count() == 0
    )
    with rt.sessions.begin() as session:
        c = session.get(Contribution, cid)
        c.transcript, c.transcription_status = "Un abri bus rue Voltaire", "done"
    await page.wait_for_function(
        "id => document.querySelector(`article[data-contribution-id='${id}'] .live-transcript`)"
        ".textContent === 'Un abri bus rue Voltaire'",
        arg=cid,
        timeout=5000,
    )
    first = page.locator("#live-list article.live-item").first
    assert await first.get_attribute("data-contribution-id") == str(cid)  # newest on top
    assert page.dialogs == []


async def test_the_live_board_masks_personal_data_of_new_contributions(rt, page):
    await page.goto(page.base + "/moderation/live")
    await page.wait_for_selector("#live-status[data-state=open]")
    cid = seed.contribution(rt, "Je m'appelle Marie Dupont, au 06 12 34 56 78, pour les bancs")
    item = page.locator(f"#live-list article.live-item[data-contribution-id='{cid}']")
    await item.wait_for(timeout=5000)
    shown = await item.locator(".live-text").text_content()
    assert shown == "Je m'appelle [nom], au [téléphone], pour les bancs"
    masked = item.locator(".live-masked")
    assert await masked.is_visible()
    assert await masked.text_content() == "données personnelles masquées"
    with rt.sessions.begin() as session:
        c = session.get(Contribution, cid)
        c.public_text = "Pour les bancs"
    await item.locator(".live-public").wait_for(state="visible", timeout=5000)
    assert await masked.is_hidden()


async def test_queue_shortcuts_move_select_and_help(rt, page):
    for text in ("Des bancs", "Une fontaine", "Des arbres"):
        seed.contribution(rt, text)
    await page.goto(page.base + "/moderation/queue")
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    focused = page.locator("table#queue tbody tr.is-focused")
    assert await focused.get_attribute("data-reference") == "PARC-0002"
    await page.keyboard.press("x")
    assert await focused.locator("input.select-row").is_checked()
    assert await page.locator("#select-all").is_visible()
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "filter-q"
    await page.keyboard.type("jx")  # typing in a field is not a shortcut
    assert await page.locator("input.select-row:checked").count() == 1
    await page.locator("#filter-q").blur()
    await page.keyboard.press("?")
    assert await page.locator("dialog#shortcuts").get_attribute("open") is not None


async def test_contribution_shortcuts_publish_and_the_reason_is_asked_for(rt, page):
    first = seed.contribution(rt, "Des bancs")
    second = seed.contribution(rt, "Une fontaine")
    await page.goto(page.base + f"/moderation/contributions/{first}")
    await page.click("#decision-form button[value=reject]")
    assert await page.evaluate("document.activeElement.id") == "reason"
    assert seed.get(rt, first).status == "pending"  # stopped before sending
    assert await page.locator("#reason-error").is_visible()
    assert await page.evaluate("document.querySelector('#reason').validationMessage")
    await page.locator("#reason").blur()
    await page.keyboard.press("a")
    await page.wait_for_url(f"**/moderation/contributions/{second}")
    assert seed.get(rt, first).status == "published"
    assert "Contribution PARC-0001 publiée." in await page.locator(".flash").first.text_content()
    await page.goto(page.base + f"/moderation/contributions/{second}?status=all")
    await page.keyboard.press("k")
    await page.wait_for_url(f"**/moderation/contributions/{first}?status=all")
    assert page.console_errors == []


async def test_clicking_a_word_plays_the_recording_from_there(rt, page):
    words = [
        {"word": "le", "start": 0.2, "end": 0.4, "confidence": 0.9},
        {"word": "parc", "start": 1.5, "end": 2.0, "confidence": 0.3},
    ]
    cid = seed.contribution(
        rt,
        "le parc",
        channel="voice",
        transcript="le parc",
        transcription_status="done",
        transcript_detail={"words": words},
        audio=seed.WAV,
    )
    await page.goto(page.base + f"/moderation/contributions/{cid}")
    await page.wait_for_function(
        "document.querySelector('audio#contribution-audio').readyState >= 1"
    )
    await page.click("#transcript span.word.low-confidence")
    position = await page.evaluate("document.querySelector('audio#contribution-audio').currentTime")
    assert 1.5 <= position < 2.5


async def test_a_photo_is_shown_to_the_moderator_and_public_only_once_published(rt, page):
    from tests.images import png

    photo = png(64, 48)
    folder = rt.settings.data_path / "media" / "twilio"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1-0.png").write_bytes(photo)
    item = {"kind": "photo", "path": "media/twilio/1-0.png", "content_type": "image/png"}
    cid = seed.contribution(
        rt, "Le lavoir", status="published", attachments=[dict(item, size=len(photo))]
    )
    reference = seed.get(rt, cid).reference
    await page.goto(page.base + f"/moderation/contributions/{cid}")
    shown = page.locator("#attachments img").first
    await shown.wait_for()
    # Loaded by the browser from the authenticated route, under the console's CSP.
    await page.wait_for_function(
        "img => img.complete && img.naturalWidth === 64", arg=await shown.element_handle()
    )

    # Another browser context: a visitor without the moderator's session.
    public = await page.context.browser.new_page()
    await public.goto(page.base + "/campaigns/parc")
    assert await public.locator("figure.photo img").count() == 0
    await page.click("form.photo-publication button[type=submit]")
    await page.wait_for_url(f"**/moderation/contributions/{cid}*")
    assert "Photo publiée" in await page.locator(".flash").first.text_content()
    assert await page.locator(".photo-public").count() == 1

    await public.goto(page.base + "/campaigns/parc")
    img = public.locator("figure.photo img")
    assert await img.get_attribute("src") == f"/campaigns/parc/photos/{reference}-1"
    await public.wait_for_function(
        "img => img.complete && img.naturalWidth === 64", arg=await img.element_handle()
    )
    assert page.console_errors == []
