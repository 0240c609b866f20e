"""The undelivered messages page in a real browser (Debian's Chromium through Playwright): an
admin clicks "Réessayer", the page says the message is queued again, and once a worker ran the
resident received it once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from channels.twilio.tests.fake_api import FakeTwilio
from tests.console.conftest import chromium_tab
from tests.deadletter_kit import undeliverable
from tests.helpers import drain

RESIDENT = "+33698765432"


@pytest.fixture
async def admin_page(rt: Any, server: TestServer) -> AsyncIterator[Any]:
    async with chromium_tab(rt, server, "dominique", "admin") as tab:
        yield tab


async def test_an_admin_retries_an_undelivered_message(rt, admin_page, fake_twilio: FakeTwilio):
    page = admin_page
    failed = undeliverable(rt, fake_twilio, RESIDENT)
    await page.goto(page.base + "/moderation/admin/accounts")
    await page.click("nav.subnav a[href='/moderation/admin/outbound']")
    await page.wait_for_url("**/moderation/admin/outbound")
    row = page.locator(f"tr#outbound-{failed}")
    assert "BUDGET-0001" in (await row.text_content() or "")
    assert RESIDENT not in await page.content()

    await row.locator("button[data-action=retry]").click()
    await page.wait_for_selector(f"text=Message {failed} remis en file d’envoi.")
    assert await page.locator(f"tr#outbound-{failed}").count() == 0
    drain(rt)
    assert [m["To"] for m in fake_twilio.messages] == [RESIDENT]
