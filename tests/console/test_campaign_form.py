"""Campaigns created and edited in the console (admins only): the campaign file's rules with
French messages, CSRF like every form, the same admin events as the API; and the download of
every campaign as a campaign file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from gateway.models import Campaign, ModerationEvent
from gateway.runtime import Runtime
from tests.console.conftest import Browser, chromium_tab

PAGE = "/moderation/admin/campaigns"
QUAIS = {
    "slug": "quais",
    "title": "Aménagement des quais",
    "question": "Que voulez-vous sur les quais ?",
    "keywords": "QUAIS, seine",
    "status": "open",
    "closes_at": "2027-03-31",
    "phone_numbers": "+33100000077",
    "neighbourhoods": "Rives\nCentre",
    "language": "fr",
    "voice_sms_receipt": "1",
    "rejected_text": "shown",
}


def campaign(rt: Runtime, slug: str) -> Campaign | None:
    with rt.sessions() as session:
        return session.scalar(select(Campaign).where(Campaign.slug == slug))


def actions(rt: Runtime) -> list[str]:
    with rt.sessions() as session:
        return list(session.scalars(select(ModerationEvent.action).order_by(ModerationEvent.id)))


async def test_an_admin_creates_then_edits_a_campaign(rt: Runtime, admin: Browser):
    form = await admin.get(PAGE + "/new")
    assert form.status == 200 and form.dom.select("form#campaign-form")
    created = await admin.post(PAGE, QUAIS, follow=True)
    assert created.status == 200
    assert created.flashes() == ["Consultation quais créée."]
    quais = campaign(rt, "quais")
    assert quais is not None
    assert (quais.keywords, quais.status, quais.neighbourhoods) == (
        ["QUAIS", "SEINE"],
        "open",
        ["Rives", "Centre"],
    )
    assert quais.source == "console" and quais.voice_sms_receipt is True
    assert created.dom.select("tr[data-campaign=quais] .closes-at")

    edit = await admin.get(PAGE + "/quais/edit")
    assert edit.dom.one("#campaign-closes_at").get("value") == "2027-03-31"  # as typed
    assert edit.dom.one("#campaign-keywords").get("value") == "QUAIS, SEINE"
    saved = await admin.post(
        PAGE + "/quais", {**QUAIS, "title": "Les quais", "status": "closed"}, follow=True
    )
    assert saved.flashes() == ["Consultation quais enregistrée."]
    quais = campaign(rt, "quais")
    assert quais is not None and (quais.title, quais.status) == ("Les quais", "closed")
    assert quais.voice_sms_receipt is True
    await admin.post(PAGE + "/quais", {**QUAIS, "title": "Les quais", "status": "closed"})
    assert actions(rt) == [
        "campaign_create",
        "campaign_status",
        "campaign_edit",
        "campaign_status",
    ]
    # An unticked checkbox is false (a form sends nothing for it), not "unchanged".
    await admin.post(
        PAGE + "/quais",
        {k: v for k, v in QUAIS.items() if k != "voice_sms_receipt"} | {"status": "closed"},
    )
    quais = campaign(rt, "quais")
    assert quais is not None and quais.voice_sms_receipt is False


async def test_refusals_are_in_french_and_keep_what_was_typed(rt: Runtime, admin: Browser):
    taken = await admin.post(PAGE, {**QUAIS, "keywords": "QUAIS, Parc"})
    assert taken.status == 422
    assert taken.flashes(error=True) == [
        "Le mot-clé « PARC » appartient déjà à la consultation parc."
    ]
    assert taken.dom.one("#campaign-keywords").get("value") == "QUAIS, Parc"
    assert taken.dom.one("#campaign-title").get("value") == "Aménagement des quais"
    assert taken.dom.select("[data-field=keywords].field--invalid")
    bad_number = await admin.post(PAGE, {**QUAIS, "phone_numbers": "01 00 00 00 77"})
    assert bad_number.flashes(error=True) == [
        "Le numéro « 01 00 00 00 77 » doit être au format international : +33100000001."
    ]
    bad_date = await admin.post(PAGE, {**QUAIS, "closes_at": "31/03/2027"})
    assert bad_date.status == 422 and "AAAA-MM-JJ" in bad_date.flashes(error=True)[0]
    exists = await admin.post(PAGE, {**QUAIS, "slug": "parc", "keywords": "QUAIS"})
    assert exists.status == 409
    assert exists.flashes(error=True) == ["Une consultation parc existe déjà."]
    assert campaign(rt, "quais") is None and actions(rt) == []
    assert (await admin.get(PAGE + "/nope/edit")).status == 404
    assert (await admin.post(PAGE + "/nope", {**QUAIS, "slug": "nope"})).status == 404


async def test_moderators_and_forged_forms_change_nothing(
    rt: Runtime, admin: Browser, moderator: Browser
):
    assert (await moderator.get(PAGE + "/new")).status == 403
    assert (await moderator.post(PAGE, QUAIS)).status == 403
    assert (await moderator.post(PAGE + "/parc", {**QUAIS, "slug": "parc"})).status == 403
    assert (await moderator.get(PAGE + "/export.yaml")).status == 403
    assert (await admin.post(PAGE, QUAIS, csrf="")).status == 403
    assert (await admin.post(PAGE, QUAIS, csrf="forged")).status == 403
    assert campaign(rt, "quais") is None and actions(rt) == []


async def test_the_download_is_what_campaigns_load_reads(rt: Runtime, admin: Browser):
    await admin.post(PAGE, QUAIS)
    page = await admin.get(PAGE + "/export.yaml")
    assert page.status == 200
    assert "attachment" in page.headers["Content-Disposition"]
    documents = list(yaml.safe_load_all(page.text))
    assert [d["slug"] for d in documents] == ["budget", "ecoles", "parc", "quais", "velo"]
    quais = next(d for d in documents if d["slug"] == "quais")
    assert quais["closes_at"] == "2027-04-01T00:00:00+02:00"


@pytest.fixture
async def tab(rt: Runtime, server: TestServer) -> AsyncIterator[Any]:
    async with chromium_tab(rt, server, "alex", "admin") as tab:
        yield tab


async def test_an_admin_creates_and_edits_a_campaign_in_chromium(rt: Runtime, tab: Any):
    await tab.goto(tab.base + PAGE)
    await tab.click("a#new-campaign")
    await tab.wait_for_url("**/campaigns/new")
    await tab.fill("#campaign-slug", "quais")
    await tab.fill("#campaign-title", "Aménagement des quais")
    await tab.fill("#campaign-question", "Que voulez-vous sur les quais ?")
    await tab.fill("#campaign-keywords", "QUAIS, PARC")
    await tab.select_option("#campaign-status", "open")
    await tab.fill("#campaign-neighbourhoods", "Rives\nCentre")
    await tab.click("form#campaign-form button[type=submit]")
    # Refused in French, what was typed kept.
    alert = tab.locator(".flash.error[role=alert]")
    assert "appartient déjà à la consultation parc" in await alert.inner_text()
    assert await tab.input_value("#campaign-title") == "Aménagement des quais"
    await tab.fill("#campaign-keywords", "QUAIS")
    await tab.click("form#campaign-form button[type=submit]")
    await tab.wait_for_url("**/moderation/admin/campaigns")
    assert "Consultation quais créée." in await tab.locator(".flash[role=status]").inner_text()
    await tab.click("tr[data-campaign=quais] a.edit-campaign")
    await tab.wait_for_url("**/campaigns/quais/edit")
    assert await tab.get_attribute("#campaign-slug", "readonly") is not None
    await tab.fill("#campaign-closes_at", "2027-03-31")
    await tab.click("form#campaign-form button[type=submit]")
    await tab.wait_for_url("**/moderation/admin/campaigns")
    assert await tab.locator("tr[data-campaign=quais] .closes-at").count() == 1
    quais = campaign(rt, "quais")
    assert quais is not None and quais.closes_at is not None
    assert (quais.status, quais.neighbourhoods) == ("open", ["Rives", "Centre"])
