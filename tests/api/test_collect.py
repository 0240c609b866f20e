"""POST /api/v1/contributions: a contribution an agent collected, from a tablet or the city's
own tool. 201 with the contract's fields, 422 naming every field at fault, idempotency by
Idempotency-Key, the collect scope (an agent's token does nothing else), hostile text filed
inert, the contact never shown back nor logged."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from gateway.models import Contribution, Contributor
from gateway.runtime import Runtime
from tests.api.client import Api
from tests.api.conftest import make_token
from tests.helpers import CONTRACT_FIELDS, drain

BODY = {
    "campaign": "parc",
    "text": "Des toilettes publiques près de l'aire de jeux",
    "channel": "street",
    "collected_on": "2026-03-12",
    "place": "marché du Parc",
    "neighbourhood": "Parc Nord",
}


def count(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count(Contribution.id))) or 0)


async def test_an_agent_token_files_a_contribution_with_the_contract_fields(
    client: TestClient[Any, Any], runtime: Runtime
):
    agent = Api(client, make_token(runtime, "tablet-1", scope="collect"))
    reply = await agent.post("/contributions", BODY)
    assert reply.status == 201, reply.text
    item = reply.body["contribution"]
    assert CONTRACT_FIELDS <= set(item)
    assert (item["channel"], item["status"], item["campaign"]) == ("street", "pending", "parc")
    assert item["reference"].startswith("PARC-") and item["contributor"] is None
    assert reply.body["created"] is True and reply.body["receipt"] is None
    with runtime.sessions() as session:
        c = session.get(Contribution, item["id"])
        assert c.collected_by == "api:tablet-1" and c.collected_place == "marché du Parc"


async def test_a_contact_gets_the_receipt_and_is_never_shown_back(
    api: Api, runtime: Runtime, fake_twilio, caplog
):
    caplog.set_level(logging.DEBUG)
    reply = await api.post("/contributions", {**BODY, "contact": "07 98 76 54 32"})
    assert reply.status == 201 and reply.body["receipt"] == "queued"
    assert "98 76" not in reply.text and "987654" not in reply.text
    drain(runtime)
    (sms,) = fake_twilio.messages
    assert sms["To"] == "+33798765432"
    assert reply.body["contribution"]["reference"] in sms["Body"]
    assert reply.body["contribution"]["contributor"]  # a pseudonymous id
    assert "987654" not in caplog.text and "98 76 54" not in caplog.text


async def test_bad_values_get_a_422_naming_every_field(api: Api, runtime: Runtime):
    body = {
        **BODY,
        "campaign": "nope",
        "text": " ",
        "channel": "sms",
        "neighbourhood": "x",
        "contact": "+33 1 40 00",
    }
    reply = await api.post("/contributions", body)
    assert reply.status == 422
    assert reply.error == "invalid_contribution"
    fields = reply.body["error"]["params"]["fields"]
    assert set(fields) == {"campaign", "text", "channel", "contact"}
    assert fields["channel"] == "console.collect.errors.channel_unknown"
    assert "+33 1 40 00" not in reply.text
    assert count(runtime) == 0


async def test_a_malformed_body_is_a_400(api: Api, runtime: Runtime):
    assert (await api.post("/contributions", {**BODY, "colour": "blue"})).status == 400
    assert (await api.call("POST", "/contributions", raw=b"{not json")).status == 400
    assert (await api.post("/contributions", {"text": "x"})).status == 400  # no campaign
    assert count(runtime) == 0


async def test_a_retry_with_the_same_key_files_once(api: Api, runtime: Runtime):
    headers = {"Idempotency-Key": "tablet-1/2026-03-12/17"}
    first = await api.call("POST", "/contributions", BODY, headers=headers)
    again = await api.call("POST", "/contributions", BODY, headers=headers)
    assert (first.status, again.status) == (201, 200)
    assert again.body["created"] is False
    assert again.body["contribution"]["id"] == first.body["contribution"]["id"]
    other = await api.call("POST", "/contributions", BODY, headers={"Idempotency-Key": "other"})
    assert other.status == 201
    assert count(runtime) == 2
    # Without a key, two posts are two contributions (two residents may say the same).
    assert (await api.post("/contributions", BODY)).status == 201
    assert count(runtime) == 3
    too_long = await api.call(
        "POST", "/contributions", BODY, headers={"Idempotency-Key": "k" * 201}
    )
    assert too_long.status == 400 and count(runtime) == 3


async def test_keys_of_two_clients_do_not_meet(client: TestClient[Any, Any], runtime: Runtime):
    one = Api(client, make_token(runtime, "tablet-1", scope="collect"))
    two = Api(client, make_token(runtime, "tablet-2", scope="collect"))
    headers = {"Idempotency-Key": "1"}
    assert (await one.call("POST", "/contributions", BODY, headers=headers)).status == 201
    assert (await two.call("POST", "/contributions", BODY, headers=headers)).status == 201
    assert count(runtime) == 2


async def test_without_a_token_401_and_with_a_read_or_answer_token_403(
    client: TestClient[Any, Any], runtime: Runtime
):
    assert (await Api(client, None).post("/contributions", BODY)).status == 401
    assert (await Api(client, "agora_unknown").post("/contributions", BODY)).status == 401
    for scope in ("read", "answer"):
        reply = await Api(client, make_token(runtime, scope, scope=scope)).post(
            "/contributions", BODY
        )
        assert (reply.status, reply.error) == (403, "insufficient_scope")
        assert 'scope="collect"' in reply.headers["WWW-Authenticate"]
    assert count(runtime) == 0


async def test_a_collect_token_does_nothing_else(client: TestClient[Any, Any], runtime: Runtime):
    agent = Api(client, make_token(runtime, "tablet-1", scope="collect"))
    filed = (await agent.post("/contributions", BODY)).body["contribution"]
    assert (await agent.get("/contributions")).status == 403
    assert (await agent.get(f"/contributions/{filed['id']}")).status == 403
    assert (await agent.get("/campaigns")).status == 403
    decision = await agent.post(f"/contributions/{filed['id']}/decision", {"action": "publish"})
    assert decision.status == 403


async def test_hostile_text_is_filed_as_text(api: Api, runtime: Runtime):
    hostile = '<script>alert(1)</script> =HYPERLINK("http://x") \'; DROP TABLE contributions; --'
    reply = await api.post("/contributions", {**BODY, "text": hostile, "place": "<b>ici</b>"})
    assert reply.status == 201
    with runtime.sessions() as session:
        c = session.get(Contribution, reply.body["contribution"]["id"])
        assert c.text == hostile and c.collected_place == "<b>ici</b>"
        assert session.scalar(select(func.count(Contributor.id))) == 0
