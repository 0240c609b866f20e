"""Announcements through the API: opening a campaign (PUT /campaigns/{slug}/status) and
publishing its synthesis (POST /campaigns/{slug}/synthesis) announce them to the residents who
sent INFO, once; what is refused changes nothing; the synthesis is on the public page."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway import announcements
from gateway.models import Campaign, OutboundMessage
from gateway.runtime import Runtime
from tests.api.client import Api, events
from tests.console.dom import parse
from tests.helpers import send_sms

RESIDENT = "+33612345678"
SYNTHESIS = {"url": "https://ville.example/parc/synthese.pdf", "summary": "Trois priorités."}


def announced(runtime: Runtime, key: str) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        return list(
            session.scalars(select(OutboundMessage).where(OutboundMessage.message_key == key))
        )


def campaign(runtime: Runtime, slug: str) -> Campaign:
    with runtime.sessions() as session:
        found = session.scalar(select(Campaign).where(Campaign.slug == slug))
        assert found is not None
        return found


async def test_opening_a_campaign_through_the_api_announces_it_once(
    admin_api: Api, runtime: Runtime
):
    send_sms(runtime, "INFO", RESIDENT)
    send_sms(runtime, "INFO", "+33622222222")
    send_sms(runtime, "STOP INFO", "+33622222222")  # asked, then stopped them
    send_sms(runtime, "PARC des bancs", "+33633333333")  # never asked
    opened = await admin_api.put("/campaigns/velo/status", {"status": "open"})
    assert opened.status == 200
    (event,) = opened.body["events"]
    assert event["after"] == {"campaign": "velo", "status": "open", "announced": 1}
    (row,) = announced(runtime, announcements.OPENED)
    assert row.text.startswith("Nouvelle consultation : Plan vélo.")
    assert "VELO" in row.text
    await admin_api.put("/campaigns/velo/status", {"status": "closed"})
    again = await admin_api.put("/campaigns/velo/status", {"status": "open"})
    assert again.body["events"][0]["after"]["announced"] == 0
    assert len(announced(runtime, announcements.OPENED)) == 1


async def test_publishing_a_synthesis_announces_it_and_a_correction_does_not(
    admin_api: Api, runtime: Runtime
):
    send_sms(runtime, "PARC des bancs", RESIDENT)
    send_sms(runtime, "1", RESIDENT)  # Parc Nord
    send_sms(runtime, "INFO", RESIDENT)
    reply = await admin_api.post("/campaigns/parc/synthesis", SYNTHESIS)
    assert reply.status == 200
    (event,) = reply.body["events"]
    assert event["action"] == "campaign_synthesis"
    assert event["after"]["announced"] == 1 and event["after"]["url"] == SYNTHESIS["url"]
    (row,) = announced(runtime, announcements.SYNTHESIS)
    assert SYNTHESIS["url"] in row.text and "Trois priorités." in row.text
    assert RESIDENT not in reply.text  # the answer carries counts, never an address
    # The same again: nothing; corrected: the page changes, nobody is told twice.
    same = await admin_api.post("/campaigns/parc/synthesis", SYNTHESIS)
    assert (same.status, same.body["events"]) == (200, [])
    corrected = await admin_api.post(
        "/campaigns/parc/synthesis", {"url": "https://ville.example/v2.pdf"}
    )
    assert corrected.body["events"][0]["after"]["announced"] == 0
    assert len(announced(runtime, announcements.SYNTHESIS)) == 1
    assert campaign(runtime, "parc").synthesis_url == "https://ville.example/v2.pdf"


async def test_a_bad_synthesis_is_refused_and_changes_nothing(
    api: Api, admin_api: Api, runtime: Runtime
):
    bad = await admin_api.post("/campaigns/parc/synthesis", {"url": "javascript:alert(1)"})
    assert (bad.status, bad.error) == (400, "console.errors.bad_synthesis_url")
    assert (await admin_api.post("/campaigns/parc/synthesis", {})).error == "invalid_body"
    unknown = await admin_api.post("/campaigns/parc/synthesis", {**SYNTHESIS, "link": "x"})
    assert unknown.error == "invalid_body"
    long = await admin_api.post("/campaigns/parc/synthesis", {**SYNTHESIS, "summary": "x" * 301})
    assert long.status == 400
    assert (await admin_api.post("/campaigns/nope/synthesis", SYNTHESIS)).status == 404
    assert (await api.post("/campaigns/parc/synthesis", SYNTHESIS)).status == 403  # moderator
    assert campaign(runtime, "parc").synthesis_url is None
    assert events(runtime) == []


async def test_the_synthesis_is_on_the_public_page(
    client: TestClient[Any, Any], admin_api: Api, runtime: Runtime
):
    page = parse(await (await client.get("/campaigns/parc")).text())
    assert page.select("#synthesis") == []
    hostile = {"url": SYNTHESIS["url"], "summary": "<script>alert(1)</script> Des bancs."}
    assert (await admin_api.post("/campaigns/parc/synthesis", hostile)).status == 200
    body = await (await client.get("/campaigns/parc")).text()
    assert "<script>alert(1)</script>" not in body
    (section,) = parse(body).select("#synthesis")
    assert "Des bancs." in section.text and "Publiée le" in section.text
    (link,) = section.select("#synthesis-link")
    assert link.attrs["href"] == SYNTHESIS["url"]
    english = parse(await (await client.get("/campaigns/parc?lang=en")).text())
    assert "Read the synthesis" in english.select("#synthesis")[0].text
