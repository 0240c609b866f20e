"""Campaigns created and replaced through the API (POST /campaigns, PUT /campaigns/{slug}):
admin tokens only, the campaign file's rules, an admin event in the log for each change."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gateway.runtime import Runtime
from tests.api.client import Api, events
from tests.helpers import contributions, send_sms

QUAIS_NUMBER = "+33100000077"


def quais(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": "quais",
        "title": "Aménagement des quais",
        "question": "Que voulez-vous sur les quais de Seine ?",
        "keywords": ["QUAIS"],
        "status": "open",
        "phone_numbers": [QUAIS_NUMBER],
        "neighbourhoods": ["Rives", "Centre"],
        "voice": {"greeting": "Bienvenue sur la ligne des quais."},
    }
    return {**body, **changes}


async def test_an_admin_creates_a_campaign_that_residents_can_write_to(
    admin_api: Api, read_api: Api, runtime: Runtime
):
    created = await admin_api.post("/campaigns", quais())
    assert created.status == 201, created.text
    assert created.body["campaign"]["slug"] == "quais"
    assert created.body["campaign"]["reference_prefix"] == "QUAIS"
    assert [e["action"] for e in created.body["events"]] == ["campaign_create", "campaign_status"]
    listed = await read_api.get("/campaigns")
    assert "quais" in [c["slug"] for c in listed.body["items"]]
    # A resident's SMS with the new keyword is filed under it, at once.
    send_sms(runtime, "QUAIS des bancs au bord de l'eau", "+33611112222", QUAIS_NUMBER)
    (filed,) = contributions(runtime)
    assert filed.reference.startswith("QUAIS-")


async def test_an_existing_slug_is_a_conflict_and_changes_nothing(admin_api: Api, runtime: Runtime):
    refused = await admin_api.post("/campaigns", quais(slug="parc", keywords=["QUAIS"]))
    assert (refused.status, refused.error) == (409, "campaign.exists")
    assert refused.body["error"]["field"] == "slug"
    assert events(runtime) == []


async def test_a_keyword_of_another_campaign_is_refused_once_normalised(
    admin_api: Api, read_api: Api, runtime: Runtime, caplog: pytest.LogCaptureFixture
):
    # "Parc" with an accent and in lower case is the keyword PARC of the campaign parc.
    with caplog.at_level(logging.INFO, logger="gateway.moderation.campaigns"):
        refused = await admin_api.post("/campaigns", quais(keywords=["QUAIS", "pârc"]))
    assert (refused.status, refused.error) == (422, "campaign.keyword_taken")
    assert refused.body["error"]["field"] == "keywords"
    assert refused.body["error"]["params"] == {"keyword": "PÂRC", "other": "parc"}
    assert "campaign refused from api by api:ops: keyword_taken (keywords)" in caplog.text
    listed = await read_api.get("/campaigns")
    assert "quais" not in [c["slug"] for c in listed.body["items"]]
    assert events(runtime) == []


async def test_invalid_campaigns_name_the_field_at_fault(admin_api: Api):
    cases = [
        (quais(slug="Quais Seine"), "campaign.bad_slug", "slug"),
        (quais(title="  "), "campaign.title_required", "title"),
        (quais(phone_numbers=["01 00 00 00 77"]), "campaign.bad_phone", "phone_numbers"),
        (quais(language="de"), "campaign.bad_language", "language"),
        (quais(keywords=["LES QUAIS"]), "campaign.keyword_spaces", "keywords"),
        (quais(closes_at="31/03/2027"), "campaign.bad_closes_at", "closes_at"),
        (quais(voice={"audio": "file:///etc/passwd"}), "campaign.bad_audio_url", "voice.audio"),
    ]
    for body, code, field in cases:
        refused = await admin_api.post("/campaigns", body)
        assert (refused.status, refused.error, refused.body["error"].get("field")) == (
            422,
            code,
            field,
        ), body
    # The JSON's shape is checked before the rules: a wrong type or an unknown key is a 400.
    wrong = await admin_api.post("/campaigns", quais(keywords="QUAIS"))
    assert (wrong.status, wrong.error) == (400, "invalid_body")
    unknown = await admin_api.post("/campaigns", quais(moderation_mod="a_priori"))
    assert (unknown.status, unknown.error) == (400, "invalid_body")


async def test_only_admin_tokens_create_or_replace(api: Api, client, read_api: Api):
    anonymous = Api(client, None)
    assert (await anonymous.post("/campaigns", quais())).status == 401
    assert (await anonymous.put("/campaigns/parc", quais(slug="parc"))).status == 401
    for token in (api, read_api):
        assert (await token.post("/campaigns", quais())).status == 403
        assert (await token.put("/campaigns/parc", quais(slug="parc"))).status == 403
    listed = await read_api.get("/campaigns")
    assert "quais" not in [c["slug"] for c in listed.body["items"]]


async def test_put_replaces_a_campaign_wholly(admin_api: Api, runtime: Runtime):
    assert (await admin_api.post("/campaigns", quais())).status == 201
    replaced = await admin_api.put(
        "/campaigns/quais",
        {"slug": "quais", "title": "Les quais", "keywords": ["SEINE"], "status": "closed"},
    )
    assert replaced.status == 200, replaced.text
    campaign = replaced.body["campaign"]
    assert (campaign["title"], campaign["keywords"], campaign["status"]) == (
        "Les quais",
        ["SEINE"],
        "closed",
    )
    assert campaign["neighbourhoods"] == []  # left out: its default, not the old value
    edit, status = replaced.body["events"]
    assert edit["action"] == "campaign_edit" and status["action"] == "campaign_status"
    assert status["before"] == {"campaign": "quais", "status": "open"}
    # The same body again changes nothing and logs nothing.
    before = len(events(runtime))
    again = await admin_api.put(
        "/campaigns/quais",
        {"slug": "quais", "title": "Les quais", "keywords": ["SEINE"], "status": "closed"},
    )
    assert (again.status, again.body["events"]) == (200, [])
    assert len(events(runtime)) == before


async def test_put_refuses_an_unknown_campaign_a_new_slug_and_a_taken_keyword(admin_api: Api):
    missing = await admin_api.put("/campaigns/nope", quais(slug="nope"))
    assert missing.status == 404
    renamed = await admin_api.put("/campaigns/parc", quais())
    assert (renamed.status, renamed.error) == (422, "campaign.slug_fixed")
    taken = await admin_api.put(
        "/campaigns/budget", {"slug": "budget", "title": "Budget", "keywords": ["PARC"]}
    )
    assert (taken.status, taken.error) == (422, "campaign.keyword_taken")


async def test_an_admin_creates_an_a_posteriori_campaign_whose_contributions_go_public_at_once(
    admin_api: Api, runtime: Runtime
):
    refused = await admin_api.post("/campaigns", quais(moderation="later"))
    assert (refused.status, refused.error) == (422, "campaign.bad_moderation")
    assert refused.body["error"]["field"] == "moderation"
    created = await admin_api.post(
        "/campaigns", quais(moderation="a_posteriori", closes_at="2099-03-31")
    )
    assert created.status == 201, created.text
    assert created.body["campaign"]["moderation_mode"] == "a_posteriori"
    assert created.body["campaign"]["closes_at"].startswith("2099-03-31T")
    send_sms(runtime, "QUAIS des bancs, appelez le 06 11 22 33 44", "+33611112222", QUAIS_NUMBER)
    (filed,) = contributions(runtime)
    assert (filed.status, filed.awaiting_review) == ("published", True)
    assert "33 44" not in (filed.public_text or "")
    shown = await admin_api.get(f"/contributions/{filed.id}")
    assert (shown.body["status"], shown.body["awaiting_review"]) == ("published", True)
    # PUT replaces wholly: without the key the campaign is back to a priori.
    replaced = await admin_api.put("/campaigns/quais", quais())
    assert replaced.status == 200, replaced.text
    send_sms(runtime, "QUAIS un kiosque", "+33622223333", QUAIS_NUMBER)
    later = [c for c in contributions(runtime) if c.id != filed.id]
    assert [c.status for c in later] == ["pending"]
