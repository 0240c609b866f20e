"""The synthesis form in a real browser (Debian's Chromium through Playwright): an admin
publishes a campaign's synthesis from its announcements page, the resident who asked is
counted as told, and the public page shows the link; a refused link keeps what was typed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway import announcements
from gateway.models import Contributor
from tests.console import seed
from tests.console.conftest import chromium_tab

URL = "https://ville.example/parc/synthese.pdf"


@pytest.fixture
async def admin_page(rt: Any, server: TestServer) -> AsyncIterator[Any]:
    async with chromium_tab(rt, server, "dominique", "admin") as tab:
        yield tab


async def test_an_admin_publishes_a_synthesis_from_the_campaigns_page(rt, admin_page):
    page = admin_page
    with rt.sessions.begin() as session:
        person = session.get(Contributor, seed.contributor(rt, "+33612340001"))
        announcements.subscribe(session, person, True, datetime.now(UTC))
    await page.goto(page.base + "/moderation/admin/campaigns")
    await page.click("tr[data-campaign=parc] a.synthesis-link")
    await page.wait_for_url("**/moderation/admin/campaigns/parc/synthesis")

    await page.fill("#synthesis-url", "javascript:alert(1)")
    await page.fill("#synthesis-summary", "Trois priorités : des bancs, de l'ombre.")
    await page.click("#synthesis-form button[type=submit]")
    await page.wait_for_selector(".flash.error[role=alert]")
    assert (
        await page.input_value("#synthesis-summary") == "Trois priorités : des bancs, de l'ombre."
    )

    await page.fill("#synthesis-url", URL)
    await page.click("#synthesis-form button[type=submit]")
    await page.wait_for_selector("text=Synthèse publiée.")
    told = page.locator("#announced dd[data-kind=synthesis]")
    assert await told.get_attribute("data-queued") == "1"
    assert "+33612340001" not in await page.content()

    await page.goto(page.base + "/campaigns/parc")
    link = page.locator("#synthesis-link")
    assert await link.get_attribute("href") == URL
    assert "Trois priorités" in (await page.locator("#synthesis").text_content() or "")
