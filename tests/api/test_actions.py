"""Moderation actions through the API: decisions (one, many, a group), classification,
transcript, public version, answers; what is refused and what is then left unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.models import Contribution
from gateway.runtime import Runtime
from gateway.webkeys import SETTINGS
from tests.api.client import Api, events, notices, seed, sms, stored, voice
from tests.helpers import drain

RESIDENT = "+33612345678"
NEIGHBOURS = ("+33611111111", "+33622222222", "+33633333333")


def decision(contribution: int | Contribution) -> str:
    cid = contribution if isinstance(contribution, int) else contribution.id
    return f"/contributions/{cid}/decision"


# -- one decision ---------------------------------------------------------------------------


async def test_publish_queues_the_residents_notice(
    api: Api, runtime: Runtime, fake_twilio: FakeTwilio
):
    contribution = sms(runtime, "Il faut plus de bancs, appelez le 06 12 34 56 78", RESIDENT)
    reply = await api.post(decision(contribution), {"action": "publish"})
    assert reply.status == 200
    body = reply.body
    assert body["changed"] == [contribution.id]
    assert body["notices_queued"] == 1
    (event,) = body["events"]
    assert (event["action"], event["actor"]) == ("publish", "api:dashboard")
    assert event["before"]["status"] == "pending" and event["after"]["status"] == "published"
    published = body["contribution"]
    assert published["status"] == "published" and published["moderated_at"].endswith("Z")
    # Published without a public version: the suggested redactions are applied.
    assert published["public_text"] is not None and "06 12 34 56 78" not in published["public_text"]

    (notice,) = notices(runtime, "outcome.published")
    assert notice.contribution_id == contribution.id
    assert notice.status == "queued"
    drain(runtime)
    last = fake_twilio.messages[-1]
    assert last["To"] == RESIDENT and contribution.reference in last["Body"]
    assert stored(runtime, contribution.id).moderated_by == "api:dashboard"


async def test_reject_without_a_reason_is_refused_and_changes_nothing(api: Api, runtime: Runtime):
    contribution = sms(runtime, "Hors sujet", RESIDENT)
    before = len(notices(runtime))
    for body in ({"action": "reject"}, {"action": "reject", "reason": "   "}):
        reply = await api.post(decision(contribution), body)
        assert (reply.status, reply.error) == (400, "console.errors.reason_required")
    assert stored(runtime, contribution.id).status == "pending"
    assert events(runtime) == []
    assert len(notices(runtime)) == before


async def test_reject_with_a_reason_tells_the_resident_why(api: Api, runtime: Runtime):
    contribution = sms(runtime, "Hors sujet", RESIDENT)
    reply = await api.post(
        decision(contribution), {"action": "reject", "reason": "Sans rapport avec le parc"}
    )
    assert reply.status == 200
    assert reply.body["contribution"]["status"] == "rejected"
    assert reply.body["contribution"]["decision_reason"] == "Sans rapport avec le parc"
    (notice,) = notices(runtime, "outcome.rejected")
    assert "Sans rapport avec le parc" in notice.text


async def test_a_repeated_decision_changes_and_sends_nothing(api: Api, runtime: Runtime):
    contribution = sms(runtime, "Des arbres", RESIDENT)
    first = await api.post(decision(contribution), {"action": "publish"})
    again = await api.post(decision(contribution), {"action": "publish"})
    assert first.body["changed"] == [contribution.id]
    assert again.status == 200
    assert (again.body["changed"], again.body["events"], again.body["notices_queued"]) == (
        [],
        [],
        0,
    )
    assert again.body["contribution"]["status"] == "published"
    assert len(notices(runtime, "outcome.published")) == 1
    assert len(events(runtime)) == 1


async def test_spam_and_reopen_tell_the_resident_nothing(api: Api, runtime: Runtime):
    contribution = sms(runtime, "Gagnez un iPhone", RESIDENT)
    before = len(notices(runtime))
    spam = await api.post(decision(contribution), {"action": "spam"})
    assert (spam.body["contribution"]["status"], spam.body["notices_queued"]) == ("spam", 0)
    reopen = await api.post(decision(contribution), {"action": "reopen"})
    assert reopen.body["contribution"]["status"] == "pending"
    assert len(notices(runtime)) == before
    assert [e.action for e in events(runtime)] == ["spam", "reopen"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'["publish"]', "invalid_body"),
        (b'"publish"', "invalid_body"),
        (b"{}", "invalid_body"),
        (b'{"action": 1}', "invalid_body"),
        (b'{"action": "publish", "reason": 42}', "invalid_body"),
        (b'{"action": "publish", "why": "x"}', "invalid_body"),
        (b'{"action": "delete"}', "console.errors.bad_decision"),
    ],
)
async def test_malformed_decisions_are_refused(api: Api, runtime: Runtime, raw: bytes, code: str):
    contribution_id = seed(runtime, "Des bancs")
    reply = await api.post(decision(contribution_id), raw=raw)
    assert (reply.status, reply.error) == (400, code)
    assert stored(runtime, contribution_id).status == "pending"


async def test_a_field_at_fault_is_named(api: Api, runtime: Runtime):
    contribution_id = seed(runtime, "Des bancs")
    reply = await api.post(decision(contribution_id), {"action": "publish", "reason": ["x"]})
    assert reply.body["error"]["field"] == "reason"


async def test_a_decision_on_an_unknown_contribution_is_not_found(api: Api):
    reply = await api.post(decision(4242), {"action": "publish"})
    assert (reply.status, reply.error) == (404, "console.errors.not_found")


async def test_a_body_over_the_size_limit_is_refused(api: Api, runtime: Runtime):
    contribution_id = seed(runtime, "Des bancs")
    reason = "x" * (api.client.app[SETTINGS].max_webhook_bytes + 1)
    reply = await api.post(decision(contribution_id), {"action": "reject", "reason": reason})
    assert (reply.status, reply.error) == (413, "payload_too_large")
    assert stored(runtime, contribution_id).status == "pending"


# -- many decisions -------------------------------------------------------------------------


async def test_bulk_publish_notifies_each_resident(api: Api, runtime: Runtime):
    ids = [sms(runtime, f"Idée {n}", number).id for n, number in enumerate(NEIGHBOURS)]
    reply = await api.post("/decisions", {"ids": ids, "action": "publish"})
    assert reply.status == 200
    assert sorted(reply.body["changed"]) == sorted(ids)
    assert reply.body["notices_queued"] == 3
    assert [c["status"] for c in reply.body["contributions"]] == ["published"] * 3
    published = notices(runtime, "outcome.published")
    assert {n.contribution_id for n in published} == set(ids)
    assert len({n.contributor_id for n in published}) == 3


async def test_bulk_with_an_unknown_id_changes_nothing(api: Api, runtime: Runtime):
    ids = [seed(runtime, "Un"), seed(runtime, "Deux")]
    reply = await api.post("/decisions", {"ids": [*ids, 4242], "action": "spam"})
    assert (reply.status, reply.error) == (404, "console.errors.not_found")
    assert [stored(runtime, i).status for i in ids] == ["pending", "pending"]
    assert events(runtime) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"action": "publish"}, "invalid_body"),
        ({"ids": "1,2", "action": "publish"}, "invalid_body"),
        ({"ids": ["1"], "action": "publish"}, "invalid_body"),
        ({"ids": [True], "action": "publish"}, "invalid_body"),
        ({"ids": [1.0], "action": "publish"}, "invalid_body"),
        ({"ids": [0], "action": "publish"}, "invalid_body"),
        ({"ids": list(range(1, 300)), "action": "publish"}, "invalid_body"),
        ({"ids": [], "action": "publish"}, "console.errors.nothing_selected"),
        ({"ids": [1], "action": "reject"}, "console.errors.reason_required"),
    ],
)
async def test_malformed_bulk_decisions_are_refused(
    api: Api, runtime: Runtime, body: dict[str, Any], code: str
):
    seed(runtime, "Un")
    reply = await api.post("/decisions", body)
    assert (reply.status, reply.error) == (400, code)
    assert events(runtime) == []


# -- a group of identical texts -------------------------------------------------------------


async def test_a_group_decision_notifies_every_sender(
    api: Api, runtime: Runtime, fake_twilio: FakeTwilio
):
    tract = "Non au parking sous le parc, oui aux jardins partagés !"
    members = [sms(runtime, tract, number) for number in NEIGHBOURS]
    group_id = members[0].group_id
    assert group_id is not None and {m.group_id for m in members} == {group_id}
    other = sms(runtime, "Un terrain de basket", RESIDENT)

    reply = await api.post(f"/groups/{group_id}/decision", {"action": "publish"})
    assert reply.status == 200
    assert sorted(reply.body["changed"]) == sorted(m.id for m in members)
    assert reply.body["notices_queued"] == 3
    assert len(reply.body["events"]) == 3
    assert {c["status"] for c in reply.body["contributions"]} == {"published"}
    assert stored(runtime, other.id).status == "pending"

    sent_before = len(fake_twilio.messages)
    drain(runtime)
    told = {m["To"]: m["Body"] for m in fake_twilio.messages[sent_before:]}
    assert sorted(told) == sorted(NEIGHBOURS)
    for number, member in zip(NEIGHBOURS, members, strict=True):
        assert member.reference in told[number]  # each resident, about their own message

    again = await api.post(f"/groups/{group_id}/decision", {"action": "publish"})
    assert (again.status, again.error) == (409, "console.errors.group_empty")


async def test_a_group_decision_on_an_unknown_group_or_without_reason(api: Api, runtime: Runtime):
    assert (await api.post("/groups/4242/decision", {"action": "publish"})).status == 404
    group = seed(runtime, "Un tract")
    reply = await api.post(f"/groups/{group}/decision", {"action": "reject"})
    assert (reply.status, reply.error) == (400, "console.errors.reason_required")
    assert stored(runtime, group).status == "pending"


# -- classification -------------------------------------------------------------------------


async def test_classification_sets_what_is_given_and_leaves_the_rest(api: Api, runtime: Runtime):
    contribution_id = seed(runtime, "Des jeux pour enfants")
    path = f"/contributions/{contribution_id}/classification"
    reply = await api.post(
        path,
        {
            "category": "proposal",
            "themes": ["Jeux et sport", "Espaces verts"],
            "tags": ["enfants", "Enfants", " aire  de jeux "],
            "neighbourhood": "Parc Sud",
            "kind": "collective",
        },
    )
    assert reply.status == 200
    item = reply.body["contribution"]
    assert item["category"] == "proposal"
    assert item["themes"] == ["Espaces verts", "Jeux et sport"]  # the campaign's order
    assert item["tags"] == ["enfants", "aire de jeux"]
    assert (item["neighbourhood"], item["kind"]) == ("Parc Sud", "collective")
    (event,) = reply.body["events"]
    assert event["action"] == "classify" and event["before"]["category"] is None

    retag = await api.post(path, {"tags": ["bancs"]})
    assert retag.body["contribution"]["tags"] == ["bancs"]
    assert retag.body["contribution"]["category"] == "proposal"
    assert retag.body["contribution"]["themes"] == ["Espaces verts", "Jeux et sport"]

    cleared = await api.post(path, {"category": None, "neighbourhood": None})
    assert cleared.body["contribution"]["category"] is None
    assert cleared.body["contribution"]["neighbourhood"] is None

    unchanged = await api.post(path, {})
    assert unchanged.status == 200 and unchanged.body["changed"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"tags": "bancs"}, "invalid_body"),
        ({"tags": ["bancs", 3]}, "invalid_body"),
        ({"themes": "Sécurité"}, "invalid_body"),
        ({"category": 1}, "invalid_body"),
        ({"kind": None}, "invalid_body"),
        ({"kind": ""}, "invalid_body"),
        ({"neighborhood": "Centre"}, "invalid_body"),
        ({"category": "complaint"}, "console.errors.bad_category"),
        ({"kind": "anonymous"}, "console.errors.bad_kind"),
        ({"themes": ["Transports"]}, "console.errors.bad_theme"),
        ({"tags": [f"t{n}" for n in range(30)]}, "console.errors.too_many_tags"),
    ],
)
async def test_bad_classifications_are_refused(
    api: Api, runtime: Runtime, body: dict[str, Any], code: str
):
    contribution_id = seed(runtime, "Des jeux", category="question", tags=["jeux"])
    reply = await api.post(f"/contributions/{contribution_id}/classification", body)
    assert (reply.status, reply.error) == (400, code)
    kept = stored(runtime, contribution_id)
    assert (kept.category, kept.tags, kept.kind) == ("question", ["jeux"], "individual")


# -- transcript, public version, answers ----------------------------------------------------


async def test_a_moderator_corrects_a_transcript(api: Api, runtime: Runtime):
    contribution_id = voice(runtime, "il faut réparé la fontaine")
    path = f"/contributions/{contribution_id}/transcript"
    reply = await api.put(path, {"transcript": "Il faut réparer la fontaine."})
    assert reply.status == 200
    item = reply.body["contribution"]
    assert item["transcript"] == item["text"] == "Il faut réparer la fontaine."
    detail = (await api.get(f"/contributions/{contribution_id}")).body
    assert detail["transcript_machine"] == "il faut réparé la fontaine"
    assert [e["action"] for e in detail["events"]] == ["correct_transcript"]


async def test_a_written_contribution_has_no_transcript_to_correct(api: Api, runtime: Runtime):
    contribution_id = seed(runtime, "Des bancs")
    path = f"/contributions/{contribution_id}/transcript"
    reply = await api.put(path, {"transcript": "Autre chose"})
    assert (reply.status, reply.error) == (409, "console.errors.no_transcript")
    missing = await api.put(path, {"text": "Autre chose"})
    assert (missing.status, missing.error) == (400, "invalid_body")
    assert stored(runtime, contribution_id).text == "Des bancs"


async def test_the_public_version_is_what_gets_published(api: Api, runtime: Runtime):
    contribution_id = seed(runtime, "Je suis Marie Dupont, des bancs svp")
    path = f"/contributions/{contribution_id}/public-text"
    assert (await api.put(path, {"public_text": "   "})).error == "console.errors.public_text_empty"
    assert (await api.put(path, {"public_text": None})).error == "invalid_body"
    reply = await api.put(path, {"public_text": "Des bancs svp"})
    assert reply.status == 200 and reply.body["contribution"]["public_text"] == "Des bancs svp"
    published = await api.post(decision(contribution_id), {"action": "publish"})
    assert published.body["contribution"]["public_text"] == "Des bancs svp"
    assert published.body["contribution"]["text"] == "Je suis Marie Dupont, des bancs svp"


async def test_an_answer_goes_to_the_resident(api: Api, runtime: Runtime, fake_twilio: FakeTwilio):
    contribution = sms(runtime, "Où sera le parc ?", RESIDENT)
    reply = await api.post(
        f"/contributions/{contribution.id}/replies", {"text": "Rue des Pâquerettes."}
    )
    assert reply.status == 201
    assert reply.body["notices_queued"] == 1
    assert reply.body["events"][0]["after"] == {"text": "Rue des Pâquerettes.", "notice": "queued"}
    (notice,) = notices(runtime, "outcome.answer")
    assert notice.contribution_id == contribution.id
    drain(runtime)
    last = fake_twilio.messages[-1]
    assert last["To"] == RESIDENT and "Rue des Pâquerettes." in last["Body"]


async def test_an_answer_nobody_can_receive_is_refused(api: Api, runtime: Runtime):
    contribution_id = seed(runtime, "Sans auteur connu")  # no contributor: forgotten
    path = f"/contributions/{contribution_id}/replies"
    reply = await api.post(path, {"text": "Merci !"})
    assert (reply.status, reply.error) == (409, "console.notice.forgotten")
    assert events(runtime) == []  # the attempt is rolled back with its log entry
    assert (await api.post(path, {"text": "  "})).error == "console.errors.reply_empty"
    assert (await api.post(path, {"text": 3})).error == "invalid_body"
    too_long = await api.post(path, {"text": "x" * 601})
    assert (too_long.error, too_long.body["error"]["params"]) == (
        "console.errors.too_long",
        {"limit": 600},
    )


# -- campaigns ------------------------------------------------------------------------------


async def test_campaign_status_changes_are_checked(admin_api: Api, runtime: Runtime):
    bad = await admin_api.put("/campaigns/parc/status", {"status": "archived"})
    assert (bad.status, bad.error) == (400, "console.errors.bad_status")
    assert (await admin_api.put("/campaigns/nope/status", {"status": "open"})).status == 404
    assert (await admin_api.put("/campaigns/parc/status", {})).error == "invalid_body"
    same = await admin_api.put("/campaigns/parc/status", {"status": "open"})
    assert (same.status, same.body["events"]) == (200, [])
    assert events(runtime) == []


async def test_an_admin_token_erases_a_resident_by_their_address(client, runtime: Runtime):
    """For a resident who asks by post: the same erasure as their OUBLIER, on SMS and calls;
    the answer gives counts, never the address."""
    from sqlalchemy import select

    from gateway.models import Contributor
    from tests.api.conftest import make_token

    headers = {"Authorization": f"Bearer {make_token(runtime, 'mairie', scope='admin')}"}
    sms(runtime, "Des bancs", "+33612121212")
    sms(runtime, "Des arbres", "+33613131313")
    body = {"channel": "voice", "address": "+33 6 12 12 12 12"}
    response = await client.post("/api/v1/residents/forget", json=body, headers=headers)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["known"] is True and answer["erased"]["contributions_detached"] == 1
    assert "612" not in await response.text()
    with runtime.sessions() as session:
        left = list(session.scalars(select(Contributor)))
        detached = [c.contributor_id for c in session.scalars(select(Contribution))]
    assert len(left) == 1 and detached.count(None) == 1
    bad = await client.post(
        "/api/v1/residents/forget", json={"channel": "fax", "address": "x"}, headers=headers
    )
    assert bad.status == 400
    unknown = await client.post("/api/v1/residents/forget", json=body, headers=headers)
    assert (await unknown.json())["known"] is False
