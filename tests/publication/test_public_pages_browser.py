"""The public campaign page in Debian's Chromium: what a resident sees without logging in,
filtered with the keyboard alone, readable (WCAG AA contrast), with no script allowed to run
and nothing personal anywhere on the page."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.settings import Settings
from gateway.web import create_app
from tests.conftest import unavailable
from tests.publication.test_public_pages import PRIVATE, world  # noqa: F401 - a fixture
from tests.publication.test_report_browser import _COLOURS, _contrast

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def served(settings: Settings, world: dict[str, Any]) -> Iterator[str]:  # noqa: F811
    """The real app on a loopback port, in a thread of its own."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(settings))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_public_page_in_chromium(served: str, world: dict[str, Any]) -> None:  # noqa: F811
    if not CHROMIUM.exists():
        unavailable("Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    refs = world["refs"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
            page.goto(f"{served}/campaigns/parc")
            expect(page.locator("h1")).to_have_text("Rénovation du quartier du Parc")
            articles = page.locator("article[data-reference]")
            expect(articles).to_have_count(6)
            rejected = page.locator(f"article[id='{refs['rejected']}']")
            expect(rejected).to_contain_text("Non retenue par la modération")
            expect(rejected).to_contain_text("Hors sujet")
            answered = page.locator(f"article[id='{refs['sms']}']")
            expect(answered).to_contain_text("Des bancs seront posés en avril.")
            # The XSS payload a resident sent is text on the page; nothing ran (no dialog).
            expect(page.locator(f"article[id='{refs['email']}'] blockquote")).to_contain_text(
                "<script>"
            )
            html = page.content()
            assert [value for value in PRIVATE if value in html] == []

            # Keyboard only: tab to the state filter, choose "non retenue", submit.
            page.locator("#filter-state").focus()
            page.keyboard.press("End")  # the last option: rejected by moderation
            page.keyboard.press("Tab")  # to the Filter button
            page.keyboard.press("Enter")
            page.wait_for_url("**state=rejected**")
            expect(articles).to_have_count(1)
            expect(articles.first).to_have_attribute("data-reference", refs["rejected"])

            # Every text readable on its background.
            page.goto(f"{served}/campaigns/parc")
            low = [
                (tag, text, round(_contrast(fg, bg), 2))
                for tag, text, fg, bg in page.evaluate(_COLOURS)
                if _contrast(fg, bg) < 4.5
            ]
            assert low == []
            # Printable: the filters and downloads are not printed, the contributions are.
            page.emulate_media(media="print")
            assert not page.locator("#filters").is_visible()
            assert page.locator("article[data-reference]").first.is_visible()
            assert problems == [], problems
        finally:
            browser.close()
