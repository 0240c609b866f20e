"""The city's answer, end to end: a state and a reasoned text on a published contribution, the
resident told on their own channel each time the state changes (quoting the reference), and
SUIVI returning the latest answer. SMS and voice here (a fake Twilio receives the SMS);
Telegram and email next to their channels' tests."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.models import ModerationEvent, OutboundMessage
from gateway.moderation import actions, answers
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from tests.api.client import Api
from tests.api.conftest import make_token
from tests.helpers import drain, send_sms
from tests.moderation.test_actions import file_sms, file_voice, reload

ALICE = Actor(name="alice", role="moderator")
MAIRIE = Actor(name="service-voirie", role="answerer")
PARC = "+33100000001"


def answer_notices(runtime: Runtime, contribution_id: int) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboundMessage)
                .where(
                    OutboundMessage.contribution_id == contribution_id,
                    OutboundMessage.message_key.like("answer.%"),
                )
                .order_by(OutboundMessage.id)
            )
        )


def test_an_answer_by_sms_reaches_the_resident_and_suivi_returns_it(
    runtime: Runtime, fake_twilio: FakeTwilio
) -> None:
    resident = "+33611111111"
    c = file_sms(runtime, "Des bancs près de l'aire de jeux", resident)
    actions.decide(runtime, ALICE, [c.id], "publish")
    drain(runtime)
    done = answers.answer(
        runtime, MAIRIE, [c.id], "accepted", "Six bancs seront posés en avril près des jeux."
    )
    assert done.changed == [c.id] and len(done.outbound) == 1
    drain(runtime)
    last = fake_twilio.messages[-1]
    assert last["To"] == resident and last["From"] == PARC
    assert c.reference in last["Body"] and "accepté" in last["Body"]
    assert "Six bancs seront posés en avril" in last["Body"]
    # The public page's address, where the whole answer is.
    assert f"https://gateway.example.org/campaigns/parc#{c.reference}" in last["Body"]

    replies = send_sms(runtime, f"SUIVI {c.reference}", resident, PARC)
    joined = "\n".join(replies)
    assert "acceptée" in joined and "Six bancs seront posés en avril près des jeux." in joined
    listing = "\n".join(send_sms(runtime, "SUIVI", resident, PARC))
    assert f"{c.reference} : Réponse de la ville : acceptée" in listing


def test_each_state_change_is_told_once_and_a_corrected_text_is_not_resent(
    runtime: Runtime, fake_twilio: FakeTwilio
) -> None:
    c = file_sms(runtime, "Un terrain de basket", "+33611111112")
    actions.decide(runtime, ALICE, [c.id], "publish")
    answers.answer(runtime, ALICE, [c.id], "evaluating", "")
    answers.answer(runtime, ALICE, [c.id], "evaluating", "")  # a double click
    answers.answer(runtime, ALICE, [c.id], "accepted", "Le terrain sera construit en 2027.")
    answers.answer(runtime, ALICE, [c.id], "accepted", "Le terrain sera construit en 2028.")
    answers.answer(runtime, ALICE, [c.id], "done", "Le terrain est ouvert depuis mai.")
    keys = [n.message_key for n in answer_notices(runtime, c.id)]
    assert keys == ["answer.notice.evaluating", "answer.notice.accepted", "answer.notice.done"]
    after = reload(runtime, c.id)
    assert (after.answer_state, after.answer_text) == ("done", "Le terrain est ouvert depuis mai.")
    with runtime.sessions() as session:
        logged = [
            (e.action, (e.after or {}).get("answer_state"))
            for e in session.scalars(
                select(ModerationEvent)
                .where(ModerationEvent.contribution_id == c.id)
                .order_by(ModerationEvent.id)
            )
        ]
    # The text correction is logged although not sent.
    assert logged == [
        ("publish", None),
        ("answer", "evaluating"),
        ("answer", "accepted"),
        ("answer", "accepted"),
        ("answer", "done"),
    ]


@pytest.mark.parametrize(
    ("state", "text", "key"),
    [
        ("adopted", "Oui", "console.errors.bad_answer_state"),
        ("accepted", "   ", "console.errors.answer_text_required"),
        ("rejected", "", "console.errors.answer_text_required"),
        ("accepted", "x" * (answers.MAX_ANSWER + 1), "console.errors.too_long"),
    ],
)
def test_bad_answers_are_refused_and_change_nothing(
    runtime: Runtime, state: str, text: str, key: str
) -> None:
    c = file_sms(runtime, "Des fontaines", "+33611111113")
    actions.decide(runtime, ALICE, [c.id], "publish")
    with pytest.raises(ActionError) as refused:
        answers.answer(runtime, ALICE, [c.id], state, text)
    assert refused.value.key == key
    assert reload(runtime, c.id).answer_state is None
    assert answer_notices(runtime, c.id) == []


def test_only_published_contributions_are_answered(runtime: Runtime) -> None:
    pending = file_sms(runtime, "Des toilettes publiques", "+33611111114")
    with pytest.raises(ActionError) as refused:
        answers.answer(runtime, ALICE, [pending.id], "accepted", "Oui.")
    assert (
        refused.value.status == 409 and refused.value.key == "console.errors.answer_not_published"
    )
    actions.decide(runtime, ALICE, [pending.id], "reject", reason="Hors sujet")
    with pytest.raises(ActionError):
        answers.answer(runtime, ALICE, [pending.id], "accepted", "Oui.")


def test_a_group_answer_tells_every_published_member(
    runtime: Runtime, fake_twilio: FakeTwilio
) -> None:
    tract = "Non au parking sous le parc, gardez les arbres"
    members = [file_sms(runtime, tract, n) for n in ("+33622222221", "+33622222222")]
    group_id = reload(runtime, members[0].id).group_id
    assert group_id is not None and reload(runtime, members[1].id).group_id == group_id
    actions.decide_group(runtime, ALICE, group_id, "publish")
    done = answers.answer_group(runtime, ALICE, group_id, "rejected", "Le parking est abandonné.")
    assert sorted(done.changed) == sorted(m.id for m in members)
    drain(runtime)
    told = {m["To"] for m in fake_twilio.messages if "abandonné" in m["Body"]}
    assert told == {"+33622222221", "+33622222222"}


def test_an_opted_out_resident_is_not_told_but_the_answer_is_public(
    runtime: Runtime, fake_twilio: FakeTwilio
) -> None:
    resident = "+33611111115"
    c = file_sms(runtime, "Plus d'éclairage rue Hoche", resident)
    actions.decide(runtime, ALICE, [c.id], "publish")
    send_sms(runtime, "STOP", resident, PARC)
    drain(runtime)
    before = len(fake_twilio.messages)
    done = answers.answer(runtime, ALICE, [c.id], "accepted", "Deux lampadaires seront ajoutés.")
    drain(runtime)
    assert done.outbound == [] and len(fake_twilio.messages) == before
    assert reload(runtime, c.id).answer_state == "accepted"


def test_a_caller_is_told_by_sms_and_can_follow_by_sms(
    runtime: Runtime, fake_twilio: FakeTwilio
) -> None:
    caller = "+33633333333"
    cid = file_voice(runtime, caller, "il faudrait réparer la fontaine")
    actions.decide(runtime, ALICE, [cid], "publish")
    answers.answer(runtime, ALICE, [cid], "done", "La fontaine a été réparée le 3 juin.")
    drain(runtime)
    reference = reload(runtime, cid).reference
    last = fake_twilio.messages[-1]
    assert last["To"] == caller and reference in last["Body"] and "réparée" in last["Body"]
    # The same person texts SUIVI: the voice contribution's answer comes back.
    joined = "\n".join(send_sms(runtime, f"SUIVI {reference}", caller, PARC))
    assert "réalisée" in joined and "La fontaine a été réparée le 3 juin." in joined


def test_an_english_speaker_gets_the_english_answer(
    runtime: Runtime, fake_twilio: FakeTwilio
) -> None:
    resident = "+33611111116"
    c = file_sms(runtime, "More bike racks", resident)
    send_sms(runtime, "ENGLISH", resident, PARC)
    actions.decide(runtime, ALICE, [c.id], "publish")
    answers.answer(
        runtime,
        ALICE,
        [c.id],
        "accepted",
        "Vingt arceaux seront posés.",
        text_en="Twenty bike racks will be installed.",
    )
    drain(runtime)
    body = fake_twilio.messages[-1]["Body"]
    assert "Twenty bike racks will be installed." in body and c.reference in body


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, runtime: Runtime) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))


async def test_an_answer_token_answers_and_cannot_moderate(
    client: TestClient[Any, Any], runtime: Runtime
) -> None:
    c = file_sms(runtime, "Des jardins partagés", "+33611111117")
    pending = file_sms(runtime, "Des composteurs", "+33611111118")
    actions.decide(runtime, ALICE, [c.id], "publish")
    api = Api(client, make_token(runtime, "voirie", scope="answer"))
    reply = await api.call(
        "POST", f"/contributions/{c.id}/answer", {"state": "accepted", "text": "Oui, en 2027."}
    )
    assert reply.status == 200, reply.text
    assert reply.body["changed"] == [c.id] and reply.body["notices_queued"] == 1
    refused = await api.call("POST", f"/contributions/{pending.id}/decision", {"action": "publish"})
    assert refused.status == 403
    not_published = await api.call(
        "POST", f"/contributions/{pending.id}/answer", {"state": "accepted", "text": "Oui."}
    )
    assert not_published.status == 409
    bad = await api.call("POST", f"/contributions/{c.id}/answer", {"state": "maybe"})
    assert bad.status == 400
    assert reload(runtime, pending.id).status == "pending"
