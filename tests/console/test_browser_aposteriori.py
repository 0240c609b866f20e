"""Reviewing contributions published at once (a posteriori) in a real browser (Debian's
Chromium through Playwright): from the « À relire » tab, the publish shortcut confirms one
and moves to the next still to review; the rejection button withdraws the other."""

from __future__ import annotations

from sqlalchemy import select

from gateway.models import OutboundMessage
from tests.console import seed
from tests.console.test_aposteriori import a_posteriori, auto_published
from tests.console.test_browser import page

__all__ = ["page"]  # the logged-in Chromium tab, a fixture used by name


def state(rt, cid: int) -> tuple[str, bool, str | None]:
    c = seed.get(rt, cid)
    return c.status, c.awaiting_review, c.decision_reason


async def test_review_from_the_tab_with_the_keyboard_and_a_rejection(rt, page):
    a_posteriori(rt)
    first = auto_published(rt, "Des bancs à l'ombre")
    second = auto_published(rt, "Un éclairage du chemin")
    await page.goto(page.base + "/moderation/queue")
    tab = page.locator("#status-counts [data-status=review] a")
    assert "2" in (await tab.text_content() or "")
    await tab.click()
    await page.wait_for_url("**/moderation/queue?status=review")
    await page.click(f"tr[data-contribution-id='{first}'] a.contribution-link")
    await page.wait_for_url(f"**/moderation/contributions/{first}?status=review")
    assert await page.locator("h1 .awaiting-review").is_visible()

    await page.keyboard.press("a")  # publish: here, the review's confirmation
    await page.wait_for_url(f"**/moderation/contributions/{second}?status=review")
    assert state(rt, first) == ("published", False, None)

    await page.fill("#reason", "Propos visant une personne")
    await page.click("#decision-form button[value=reject]")
    await page.wait_for_load_state()
    assert state(rt, second) == ("rejected", False, "Propos visant une personne")

    await page.goto(page.base + "/moderation/queue")
    assert await page.locator("#status-counts [data-status=review]").count() == 0
    with rt.sessions() as session:
        keys = session.scalars(
            select(OutboundMessage.message_key).where(
                OutboundMessage.contribution_id.in_([first, second])
            )
        ).all()
    assert keys == ["outcome.rejected"]  # nothing for the confirmed one
    assert page.console_errors == [] and page.dialogs == []
