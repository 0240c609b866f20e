"""The console's agent entry (/moderation/collect): the form (CSRF, one-time key, refusals in
French, the scan kept for moderators only), the templates, the spreadsheet upload, and the
agent role that sees nothing else."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from openpyxl import load_workbook
from sqlalchemy import func, select

from gateway.models import Contribution
from gateway.runtime import Runtime
from tests.console.conftest import add_account

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200
FORM = {
    "campaign": "parc",
    "text": "Un composteur collectif rue des Tilleuls",
    "channel": "paper",
    "collected_on": "2026-03-12",
    "place": "marché du Parc",
    "neighbourhood": "",
    "kind": "individual",
    "group_description": "",
    "contact": "",
}


def count(rt: Runtime) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count(Contribution.id))) or 0)


def multipart(browser: Any, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]):
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    data.add_field("csrf_token", browser.csrf)
    for name, (filename, content, content_type) in files.items():
        data.add_field(name, content, filename=filename, content_type=content_type)
    return data


async def post_form(browser: Any, path: str, fields: dict[str, str], files=None):
    data = multipart(browser, fields, files or {})
    async with browser.client.post(path, data=data, allow_redirects=False) as response:
        return await browser._page(response)


async def agent(rt: Runtime, new_browser: Any) -> Any:
    add_account(rt, "sam", role="agent")
    browser = await new_browser()
    page = await browser.login("sam")
    assert page.status == 303
    await browser.get("/moderation/collect")  # the session's CSRF token
    return browser


async def test_an_agent_sees_the_entry_page_only(rt, new_browser):
    browser = await agent(rt, new_browser)
    home = await browser.get("/moderation/queue")
    assert (home.status, home.location) == (302, "/moderation/collect")
    page = await browser.get("/moderation/collect")
    assert page.status == 200
    nav = [a.text for a in page.dom.select("#main-nav a")]
    assert nav == ["Saisie agent"]
    for path in ("/moderation/live", "/moderation/answers", "/moderation/admin/accounts"):
        refused = await browser.get(path)
        assert refused.status == 403, path
    publish = await browser.post("/moderation/contributions/1/decision", {"action": "publish"})
    assert publish.status == 403


async def test_the_form_files_once_and_says_the_reference(rt, new_browser):
    browser = await agent(rt, new_browser)
    page = await browser.get("/moderation/collect")
    key = page.dom.one("form#collect-form input[name=form_key]").get("value")
    fields = {**FORM, "form_key": key or ""}
    first = await post_form(browser, "/moderation/collect", fields)
    assert first.status == 303
    shown = await browser.get(first.location)
    (flashed,) = shown.flashes()
    assert "Sans contact" in flashed and "PARC-" in flashed
    again = await post_form(browser, "/moderation/collect", fields)  # a double click
    assert "déjà enregistrée" in (await browser.get(again.location)).flashes()[0]
    assert count(rt) == 1
    with rt.sessions() as session:
        c = session.scalars(select(Contribution)).one()
        assert (c.channel, c.collected_by, c.collected_place) == ("paper", "sam", "marché du Parc")


async def test_refusals_are_in_french_by_field_and_nothing_is_filed(rt, new_browser):
    browser = await agent(rt, new_browser)
    bad = {**FORM, "text": " ", "collected_on": "2999-01-01", "contact": "01 40 00 00 00"}
    page = await post_form(browser, "/moderation/collect", bad)
    assert page.status == 422
    problems = {n.get("data-problem"): n.text for n in page.dom.select("[data-problem]")}
    assert problems == {
        "text": "Le texte est vide.",
        "collected_on": "La date de recueil est dans le futur.",
        "contact": "Ce numéro ne peut pas recevoir de SMS (fixe ?) : "
        "donnez un portable ou un e-mail.",
    }
    # What the agent typed is kept for them to correct.
    assert page.dom.one("#collect-place").get("value") == "marché du Parc"
    assert count(rt) == 0


async def test_without_the_csrf_token_nothing_is_filed(rt, new_browser):
    browser = await agent(rt, new_browser)
    data = aiohttp.FormData()
    for name, value in FORM.items():
        data.add_field(name, value)
    async with browser.client.post("/moderation/collect", data=data) as response:
        assert response.status == 403
    assert count(rt) == 0


async def test_a_scan_is_kept_for_moderators_and_a_disguised_file_refused(
    rt, new_browser, moderator
):
    browser = await agent(rt, new_browser)
    fake = await post_form(
        browser,
        "/moderation/collect",
        FORM,
        {"scan": ("scan.jpg", b"<svg onload=alert(1)>", "image/jpeg")},
    )
    assert fake.status == 422 and count(rt) == 0
    page = await post_form(
        browser, "/moderation/collect", FORM, {"scan": ("feuille 3.jpg", JPEG, "image/jpeg")}
    )
    assert page.status == 303
    with rt.sessions() as session:
        c = session.scalars(select(Contribution)).one()
        (scan,) = c.attachments
    assert scan["kind"] == "scan" and scan["content_type"] == "image/jpeg"
    shown = await moderator.get(f"/moderation/contributions/{c.id}")
    line = " ".join(shown.dom.one("#provenance").text.split())
    assert line.startswith("Recueillie par un agent (sur papier), marché du Parc, le 12 mars 2026")
    assert "saisie par sam" in line
    image = await moderator.get(f"/moderation/contributions/{c.id}/attachments/0")
    assert image.status == 200 and image.headers["Content-Type"] == "image/jpeg"
    # Never public, never to an agent (who sees the entry page only).
    assert (await browser.get(f"/moderation/contributions/{c.id}/attachments/0")).status == 403


async def test_templates_download_with_french_headers(rt, new_browser):
    browser = await agent(rt, new_browser)
    async with browser.client.get("/moderation/collect/template.xlsx") as response:
        assert response.status == 200
        book = load_workbook(io.BytesIO(await response.read()))
    header = [c.value for c in next(book.worksheets[0].iter_rows())]
    assert header[:4] == ["consultation", "texte", "mode", "date"]
    csv_page = await browser.get("/moderation/collect/template.csv")
    assert csv_page.status == 200 and "consultation;texte;mode" in csv_page.text


async def test_an_upload_reports_bad_rows_by_line(rt, new_browser):
    browser = await agent(rt, new_browser)
    rows = "consultation;texte;mode\nparc;des arbres;rue\nparc;;papier\nparc;des bancs;réunion\n"
    page = await post_form(
        browser,
        "/moderation/collect/import",
        {},
        {"sheet": ("stand.csv", rows.encode(), "text/csv")},
    )
    assert page.status == 200
    report = page.dom.one("#import-report")
    assert (report.get("data-filed"), report.get("data-problems")) == ("2", "1")
    (problem,) = page.dom.select("#report-problems li")
    assert problem.text == "Ligne 3 : texte — Le texte est vide."
    refused = await post_form(
        browser,
        "/moderation/collect/import",
        {},
        {"sheet": ("vieux.xls", b"\xd0\xcf\x11\xe0", "application/vnd.ms-excel")},
    )
    assert refused.status == 422 and "ni un CSV ni un XLSX" in refused.text
    assert count(rt) == 2


async def test_moderators_enter_contributions_too(rt, moderator):
    page = await moderator.get("/moderation/queue")
    assert "/moderation/collect" in [a.get("href") for a in page.dom.select("#main-nav a")]
    form = await moderator.get("/moderation/collect")
    assert form.status == 200


async def test_the_public_page_and_open_data_say_an_agent_never_who(rt, new_browser, anonymous):
    from gateway.moderation import actions
    from gateway.moderation.accounts import Actor

    browser = await agent(rt, new_browser)
    fields = {**FORM, "contact": "06 98 76 54 32"}
    assert (await post_form(browser, "/moderation/collect", fields)).status == 303
    with rt.sessions() as session:
        cid = session.scalars(select(Contribution.id)).one()
    actions.decide(rt, Actor(name="camille", role="moderator"), [cid], "publish")
    page = await anonymous.get("/campaigns/parc")
    assert page.status == 200
    assert "Recueilli par un agent, marché du Parc, 12 mars" in page.text
    opendata = await anonymous.get("/campaigns/parc/contributions.csv")
    assert "recueilli par un agent, marché du Parc, 12 mars" in opendata.text
    for shown in (page.text, opendata.text):
        assert "sam" not in shown.split() and "98 76" not in shown and "987654" not in shown
