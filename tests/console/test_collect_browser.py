"""Agent entry in a real browser (Debian's Chromium through Playwright): an agent logs in, fills
the form with a resident's phone number (the fake Twilio receives the receipt SMS), then
uploads a day's CSV of 200 rows, three of them bad: the three are reported by line number and
the 197 others are filed, none lost."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from gateway.models import Contribution
from tests.console.conftest import chromium_tab
from tests.helpers import drain

BAD_LINES = {27: "texte", 118: "mode", 164: "quartier"}


@pytest.fixture
async def page(rt: Any, server: TestServer) -> AsyncIterator[Any]:
    async with chromium_tab(rt, server, "sam", "agent", lands_on="collect") as tab:
        yield tab


def day_of_the_stand(path: Path) -> Path:
    """200 rows as an agent types them in a spreadsheet; lines 27, 118 and 164 are wrong."""
    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date()
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["consultation", "texte", "mode", "date", "lieu", "quartier", "contact"])
    for line in range(2, 202):
        row = ["parc", f"Idée n° {line} : plus d'ombre", "rue", today.isoformat(), "marché du Parc"]
        row += ["Parc Sud" if line % 2 else "", ""]
        if line == 27:
            row[1] = ""
        elif line == 118:
            row[2] = "fax"
        elif line == 164:
            row[5] = "Atlantide"
        writer.writerow(row)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


async def test_an_agent_enters_one_contribution_then_a_days_spreadsheet(
    rt, page, fake_twilio, tmp_path
):
    # One contribution, with the resident's mobile for follow-up.
    await page.select_option("#collect-campaign", "parc")
    await page.fill("#collect-text", "Des fontaines à eau dans le parc")
    await page.check("input[name=channel][value=street]")
    await page.fill("#collect-place", "marché du Parc")
    await page.fill("#collect-neighbourhood", "Parc Nord")
    await page.fill("#collect-contact", "06 55 44 33 22")
    await page.click("form#collect-form button[type=submit]")
    flash = page.locator(".flash[role=status]")
    await flash.wait_for()
    text = await flash.text_content() or ""
    assert "L’accusé de réception part au contact donné" in text
    reference = text.split("Contribution ", 1)[1].split(" ", 1)[0]
    assert reference.startswith("PARC-")
    await asyncio.to_thread(drain, rt)
    (receipt,) = await asyncio.to_thread(fake_twilio.wait_for_messages, 1)
    assert receipt["To"] == "+33655443322" and reference in receipt["Body"]
    # The number is not on the page after filing.
    assert "55 44 33" not in await page.content()

    # A day's stand from a spreadsheet.
    await page.set_input_files("#import-sheet", str(day_of_the_stand(tmp_path / "stand.csv")))
    await page.click("form#import-form button[type=submit]")
    report = page.locator("#import-report")
    await report.wait_for()
    assert await report.get_attribute("data-filed") == "197"
    assert await report.get_attribute("data-problems") == "3"
    problems = page.locator("#report-problems li")
    lines = {
        int(await problems.nth(i).get_attribute("data-line") or 0): await problems.nth(
            i
        ).text_content()
        for i in range(await problems.count())
    }
    assert set(lines) == set(BAD_LINES)
    for line, field in BAD_LINES.items():
        assert (lines[line] or "").startswith(f"Ligne {line} : {field} — ")
    assert "197 contribution(s) enregistrée(s)." in (
        await page.locator("#report-filed").text_content() or ""
    )
    with rt.sessions() as session:
        texts = set(session.scalars(select(Contribution.text)).all())
    expected = {f"Idée n° {n} : plus d'ombre" for n in range(2, 202) if n not in BAD_LINES}
    assert texts - {"Des fontaines à eau dans le parc"} == expected
    assert len(texts) == 198  # the form's one and the 197 rows
    assert page.dialogs == []
