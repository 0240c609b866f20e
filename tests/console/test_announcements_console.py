"""Announcements in the console (admins only): the residents page counts who asked (people,
never an address); a campaign's page counts who was told and publishes its synthesis, which the
residents who asked are told of once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from gateway import announcements
from gateway.models import Campaign, Contributor, OutboundMessage
from gateway.runtime import Runtime
from tests.console import seed
from tests.console.conftest import Browser

PATH = "/moderation/admin/campaigns/parc/synthesis"
NUMBER = "+33612340001"
URL = "https://ville.example/parc/synthese.pdf"


def opt_in(rt: Runtime, person: int) -> None:
    with rt.sessions.begin() as session:
        found = session.get(Contributor, person)
        assert found is not None
        announcements.subscribe(session, found, True, datetime.now(UTC))


async def test_the_residents_page_counts_the_people_who_asked(rt: Runtime, admin: Browser):
    opt_in(rt, seed.contributor(rt, NUMBER))
    opt_in(rt, seed.contributor(rt, NUMBER, "voice"))  # the same person by phone
    opt_in(rt, seed.contributor(rt, "+33612340002"))
    seed.contributor(rt, "+33612340003")  # never asked
    page = await admin.get("/moderation/admin/residents")
    assert page.dom.one("#announcements-opted-in").get("data-count") == "2"
    assert NUMBER not in page.text


async def test_an_admin_publishes_the_synthesis_and_sees_who_was_told(rt: Runtime, admin: Browser):
    campaigns = await admin.get("/moderation/admin/campaigns")
    link = campaigns.dom.one("tr[data-campaign=parc] a.synthesis-link")
    assert link.get("href") == PATH
    opt_in(rt, seed.contributor(rt, NUMBER))
    seed.contribution(rt, "Des bancs", person=seed.contributor(rt, "+33612340002"))  # not asked
    page = await admin.get(PATH)
    assert page.status == 200
    told = page.dom.one("#announced dd[data-kind=synthesis]")
    assert (told.get("data-sent"), told.get("data-queued")) == ("0", "0")

    published = await admin.post(PATH, {"url": URL, "summary": "Trois priorités."})
    assert published.status == 303
    shown = await admin.get(published.location)
    assert shown.flashes() == ["Synthèse publiée."]
    assert shown.dom.one("#announced dd[data-kind=synthesis]").get("data-queued") == "1"
    assert shown.dom.one("#synthesis-url").get("value") == URL
    assert NUMBER not in shown.text
    with rt.sessions() as session:
        (row,) = session.scalars(
            select(OutboundMessage).where(OutboundMessage.message_key == announcements.SYNTHESIS)
        ).all()
        assert URL in row.text
    again = await admin.post(PATH, {"url": URL, "summary": "Trois priorités."})
    assert (await admin.get(again.location)).flashes() == ["Rien n’a changé."]


async def test_a_bad_synthesis_is_refused_and_kept_in_the_form(rt: Runtime, admin: Browser):
    page = await admin.post(PATH, {"url": "javascript:alert(1)", "summary": "Un résumé"})
    assert page.status == 400
    assert page.flashes(error=True) == [
        "La synthèse doit être un lien http(s) de 500 caractères au plus."
    ]
    assert page.dom.one("#synthesis-summary").text == "Un résumé"
    with rt.sessions() as session:
        assert session.scalar(select(Campaign.synthesis_url).where(Campaign.slug == "parc")) is None
    assert (await admin.get("/moderation/admin/campaigns/nope/synthesis")).status == 404
    assert (
        await admin.post("/moderation/admin/campaigns/nope/synthesis", {"url": URL})
    ).status == 404


async def test_moderators_cannot_see_or_publish_it(rt: Runtime, moderator: Browser):
    assert (await moderator.get(PATH)).status == 403
    assert (await moderator.post(PATH, {"url": URL})).status == 403
    assert (await moderator.get("/moderation/admin/residents")).status == 403
    with rt.sessions() as session:
        assert session.scalar(select(Campaign.synthesis_url).where(Campaign.slug == "parc")) is None
