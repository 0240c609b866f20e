"""Reading the queue, a contribution, a group, the log, campaigns and their figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.runtime import Runtime
from tests.api.client import Api, seed, sms, voice
from tests.helpers import CONTRACT_FIELDS

RESIDENT = "+33612345678"


def refs(reply: object) -> list[str]:
    return [item["reference"] for item in reply.body["items"]]  # type: ignore[attr-defined]


async def test_the_queue_lists_pending_contributions_one_by_one(api: Api, runtime: Runtime):
    first = seed(runtime, "Plus d'arbres près de l'école", neighbourhood="Centre")
    seed(runtime, "Plus d'arbres près de l'école")  # identical: same group, still listed
    seed(runtime, "Déjà publiée", status="published")
    reply = await api.get("/contributions")
    assert reply.status == 200
    body = reply.body
    assert refs(reply) == ["PARC-0001", "PARC-0002"]
    assert (body["total"], body["page"], body["pages"]) == (2, 1, 1)
    assert body["counts"] == {"pending": 2, "published": 1, "rejected": 0, "spam": 0, "all": 3}
    item = body["items"][0]
    assert CONTRACT_FIELDS <= set(item)
    assert item["id"] == first
    assert item["campaign"] == "parc"
    assert item["neighbourhood"] == "Centre"
    assert item["themes"] == [] and item["public_text"] is None
    assert item["decision_reason"] is None and item["moderated_at"] is None
    assert item["group_id"] == first and item["group_size"] == 2
    assert item["received_at"].endswith("Z")


async def test_grouped_lists_one_row_per_group_of_identical_texts(api: Api, runtime: Runtime):
    for _ in range(3):
        seed(runtime, "Non au parking sous le parc !")
    seed(runtime, "Un terrain de basket")
    reply = await api.get("/contributions", grouped="1")
    assert [i["group_matching"] for i in reply.body["items"]] == [3, 1]
    assert reply.body["total"] == 2 and reply.body["contributions"] == 4


async def test_status_filters(api: Api, runtime: Runtime):
    seed(runtime, "En attente")
    seed(runtime, "Publiée", status="published")
    seed(runtime, "Rejetée", status="rejected", decision_reason="Hors sujet")
    assert refs(await api.get("/contributions", status="all")) == [
        "PARC-0001",
        "PARC-0002",
        "PARC-0003",
    ]
    (rejected,) = (await api.get("/contributions", status="rejected")).body["items"]
    assert rejected["decision_reason"] == "Hors sujet"


async def test_pages_cover_the_queue_once_in_order(api: Api, runtime: Runtime):
    start = datetime(2025, 3, 12, 17, 0, tzinfo=UTC)
    for n in range(5):
        seed(runtime, f"Idée numéro {n}", received_at=start + timedelta(minutes=n))
    pages = [await api.get("/contributions", per_page="2", page=str(p)) for p in (1, 2, 3)]
    assert [p.body["pages"] for p in pages] == [3, 3, 3]
    assert [p.body["total"] for p in pages] == [5, 5, 5]
    listed = [ref for p in pages for ref in refs(p)]
    assert listed == [f"PARC-000{n}" for n in range(1, 6)]
    newest = await api.get("/contributions", per_page="2", sort="newest")
    assert refs(newest) == ["PARC-0005", "PARC-0004"]
    beyond = await api.get("/contributions", per_page="2", page="9")
    assert beyond.body["items"] == [] and beyond.body["total"] == 5


async def test_filters_narrow_the_queue(api: Api, runtime: Runtime):
    march = datetime(2025, 3, 12, 10, 0, tzinfo=UTC)
    seed(runtime, "Des bancs au Parc Nord", neighbourhood="Parc Nord", received_at=march)
    seed(runtime, "Une piste cyclable", campaign="velo", received_at=march + timedelta(days=2))
    voice(runtime, "il faut réparer la fontaine")
    seed(runtime, "Un budget pour la bibliothèque", campaign="budget", category="proposal")

    async def matching(**params: str) -> list[str]:
        return refs(await api.get("/contributions", **params))

    assert await matching(campaign="velo") == ["VELO-0001"]
    assert await matching(neighbourhood="Parc Nord") == ["PARC-0001"]
    assert await matching(channel="voice") == ["PARC-0002"]
    assert await matching(audio="1") == ["PARC-0002"]
    assert await matching(category="proposal") == ["BUDGET-0001"]
    assert await matching(q="FONTAINE reparer") == ["PARC-0002"]  # accent- and case-blind
    assert await matching(q="bibliotheque") == ["BUDGET-0001"]
    assert await matching(**{"from": "2025-03-13", "to": "2025-03-14"}) == ["VELO-0001"]
    assert await matching(to="2025-03-12") == ["PARC-0001"]


async def test_a_contribution_in_detail(api: Api, runtime: Runtime):
    contribution = sms(runtime, "Il faut plus de bancs", RESIDENT)
    await api.post(f"/contributions/{contribution.id}/decision", {"action": "publish"})
    reply = await api.get(f"/contributions/{contribution.id}")
    assert reply.status == 200
    detail = reply.body
    assert detail["reference"] == contribution.reference
    assert detail["status"] == "published"
    assert detail["contributor"].startswith("c-")
    assert detail["transcript_machine"] is None and detail["transcript_detail"] is None
    keys = [n["message_key"] for n in detail["notices"]]
    assert keys[0].startswith("receipt.") and keys[-1] == "outcome.published"
    assert all(
        set(n) == {"id", "message_key", "status", "created_at", "sent_at"}
        for n in detail["notices"]
    )
    (event,) = detail["events"]
    assert event["action"] == "publish" and event["actor"] == "api:dashboard"
    assert event["reference"] == contribution.reference


async def test_a_voice_contribution_shows_its_words_and_confidences(api: Api, runtime: Runtime):
    contribution_id = voice(runtime, "réparer la fontaine")
    detail = (await api.get(f"/contributions/{contribution_id}")).body
    assert detail["audio"] is True and detail["audio_duration"] == 4.5
    words = detail["transcript_detail"]["words"]
    assert [w["word"] for w in words] == ["réparer", "la", "fontaine"]
    assert [w["confidence"] for w in words] == [0.9, 0.8, 0.7]
    assert detail["transcript_detail"]["model"] == "vosk-model-small-fr"


async def test_an_unknown_contribution_is_not_found(api: Api):
    for path in ("/contributions/999", "/contributions/99999999999"):
        reply = await api.get(path)
        assert (reply.status, reply.error) == (404, "console.errors.not_found")


async def test_a_group_lists_its_members(api: Api, runtime: Runtime):
    ids = [seed(runtime, "Non au parking sous le parc !") for _ in range(3)]
    seed(runtime, "Autre chose")
    reply = await api.get(f"/groups/{ids[0]}")
    assert reply.status == 200
    assert [i["id"] for i in reply.body["items"]] == ids
    assert (reply.body["size"], reply.body["pending"]) == (3, 3)
    assert (await api.get("/groups/4242")).status == 404


async def test_the_log_lists_every_action_newest_first_with_filters(
    api: Api, admin_api: Api, runtime: Runtime
):
    a, b = seed(runtime, "Premier"), seed(runtime, "Second")
    await api.post(f"/contributions/{a}/decision", {"action": "publish"})
    await api.post(f"/contributions/{b}/decision", {"action": "spam"})
    await admin_api.put("/campaigns/velo/status", {"status": "open"})
    log = await api.get("/events")
    assert [e["action"] for e in log.body["items"]] == ["campaign_status", "spam", "publish"]
    assert log.body["total"] == 3
    only_b = await api.get("/events", contribution=str(b))
    assert [(e["contribution_id"], e["action"]) for e in only_b.body["items"]] == [(b, "spam")]
    by_admin = await api.get("/events", actor="api:ops")
    assert [e["action"] for e in by_admin.body["items"]] == ["campaign_status"]
    publishes = await api.get("/events", action="publish")
    assert [e["contribution_id"] for e in publishes.body["items"]] == [a]
    second_page = await api.get("/events", per_page="2", page="2")
    assert [e["action"] for e in second_page.body["items"]] == ["publish"]
    assert second_page.body["pages"] == 2


async def test_the_log_refuses_a_malformed_contribution_filter(api: Api):
    for value in ("PARC-0001", "-1", "0", "99999999999"):
        reply = await api.get("/events", contribution=value)
        assert (reply.status, reply.error) == (400, "invalid_parameter")


async def test_campaigns_are_listed_with_their_themes(api: Api):
    reply = await api.get("/campaigns")
    by_slug = {c["slug"]: c for c in reply.body["items"]}
    assert set(by_slug) == {"budget", "ecoles", "parc", "velo"}
    parc = by_slug["parc"]
    assert parc["status"] == "open" and parc["keywords"] == ["PARC"]
    assert parc["themes"] == ["Espaces verts", "Jeux et sport", "Sécurité"]
    assert "phone_numbers" not in parc


async def test_campaign_figures(api: Api, runtime: Runtime):
    now = datetime.now(UTC)
    seed(runtime, "Ancienne", received_at=now - timedelta(hours=3), neighbourhood="Centre")
    seed(runtime, "Récente", received_at=now - timedelta(hours=1), category="question")
    seed(runtime, "Publiée", status="published", received_at=now - timedelta(days=40))
    seed(runtime, "Ailleurs", campaign="budget")
    reply = await api.get("/campaigns/parc/stats")
    assert reply.status == 200
    stats = reply.body
    assert stats["per_status"] == {"pending": 2, "published": 1, "rejected": 0, "spam": 0}
    assert stats["waiting"] == 2
    assert 3 * 3600 - 60 < stats["oldest_waiting_seconds"] < 3 * 3600 + 60
    assert sum(day["count"] for day in stats["per_day"]) == 2  # the last 30 days only
    assert {"channel": "sms", "count": 3} in stats["per_channel"]
    assert {"category": None, "count": 2} in stats["per_category"]
    assert {"neighbourhood": "Centre", "count": 1} in stats["per_neighbourhood"]
    longer = await api.get("/campaigns/parc/stats", days="60")
    assert sum(day["count"] for day in longer.body["per_day"]) == 3


async def test_figures_of_an_unknown_campaign_or_with_bad_days(api: Api):
    assert (await api.get("/campaigns/nope/stats")).status == 404
    reply = await api.get("/campaigns/parc/stats", days="a month")
    assert (reply.status, reply.error) == (400, "invalid_parameter")


async def test_the_flood_mark_is_shown_and_filtered(api: Api, runtime: Runtime):
    seed(runtime, "Des bancs")
    seed(runtime, "Des bancs, encore", flood=True)
    flooded = (await api.get("/contributions", flood="1")).body["items"]
    assert [(c["reference"], c["flood"]) for c in flooded] == [("PARC-0002", True)]
    calm = (await api.get("/contributions", flood="0")).body["items"]
    assert [(c["reference"], c["flood"]) for c in calm] == [("PARC-0001", False)]
