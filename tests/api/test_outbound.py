"""The dead-letter list through the API (admin tokens): list, retry, discard; on SQLite and
PostgreSQL, with the fake Twilio."""

from __future__ import annotations

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import residents
from gateway.runtime import Runtime
from tests.api.client import Api
from tests.deadletter_kit import undeliverable
from tests.helpers import drain

RESIDENT = "+33698765432"
FORMS = (RESIDENT, RESIDENT[1:], "0698765432", "698765432", "06 98 76 54 32")


async def test_admins_list_failed_messages_without_any_address(
    admin_api: Api, api: Api, read_api: Api, runtime: Runtime, fake_twilio: FakeTwilio
):
    failed = undeliverable(runtime, fake_twilio, RESIDENT)
    reply = await admin_api.get("/outbound/failed")
    assert reply.status == 200, reply.text
    ids = [item["id"] for item in reply.body["items"]]
    assert failed in ids and reply.body["total"] == len(ids)
    (item,) = [i for i in reply.body["items"] if i["id"] == failed]
    assert item["channel"] == "sms" and item["provider"] == "twilio"
    assert item["reference"] == "BUDGET-0001" and item["contributor"].startswith("c-")
    assert item["attempts"] == 1 and "21211" in item["reason"]
    assert item["created_at"].endswith("Z") and item["text"].startswith("Merci")
    for form in FORMS:
        assert form not in reply.text
    # Moderators and read tokens are refused: delivery problems are the admins'.
    for other in (api, read_api):
        refused = await other.get("/outbound/failed")
        assert refused.status == 403


async def test_retry_sends_once_and_a_second_retry_does_nothing(
    admin_api: Api, runtime: Runtime, fake_twilio: FakeTwilio
):
    failed = undeliverable(runtime, fake_twilio, RESIDENT)
    reply = await admin_api.post(f"/outbound/{failed}/retry", {})
    assert reply.status == 200, reply.text
    assert reply.body == {"id": failed, "status": "queued", "changed": True}
    again = await admin_api.post(f"/outbound/{failed}/retry", {})  # before the worker ran
    assert again.body == {"id": failed, "status": "queued", "changed": False}
    drain(runtime)
    assert [m["To"] for m in fake_twilio.messages] == [RESIDENT]
    after = await admin_api.post(f"/outbound/{failed}/retry", {})
    assert after.body == {"id": failed, "status": "sent", "changed": False}
    drain(runtime)
    assert len(fake_twilio.messages) == 1
    listed = await admin_api.get("/outbound/failed")
    assert failed not in [i["id"] for i in listed.body["items"]]
    log = await admin_api.get("/events", action="outbound_retry")
    (event,) = log.body["items"]
    assert event["actor"] == "api:ops"


async def test_retry_is_refused_after_an_opt_out_and_says_why(
    admin_api: Api, runtime: Runtime, fake_twilio: FakeTwilio
):
    failed = undeliverable(runtime, fake_twilio, RESIDENT)
    residents.opt_out_address(runtime, "sms", RESIDENT, actor="alice")
    reply = await admin_api.post(f"/outbound/{failed}/retry", {})
    assert reply.status == 409 and reply.error == "console.outbound.errors.opted_out"
    drain(runtime)
    assert fake_twilio.messages == []
    listed = await admin_api.get("/outbound/failed")
    assert failed in [i["id"] for i in listed.body["items"]]


async def test_discard_keeps_it_out_of_the_list_and_a_discarded_message_is_not_retried(
    admin_api: Api, runtime: Runtime, fake_twilio: FakeTwilio
):
    failed = undeliverable(runtime, fake_twilio, RESIDENT)
    reply = await admin_api.post(f"/outbound/{failed}/discard", {"reason": "numéro résilié"})
    assert reply.body == {"id": failed, "status": "discarded", "changed": True}
    again = await admin_api.post(f"/outbound/{failed}/discard", {})
    assert again.body == {"id": failed, "status": "discarded", "changed": False}
    refused = await admin_api.post(f"/outbound/{failed}/retry", {})
    assert refused.status == 409 and refused.error == "console.outbound.errors.not_failed"
    listed = await admin_api.get("/outbound/failed")
    assert failed not in [i["id"] for i in listed.body["items"]]
    log = await admin_api.get("/events", action="outbound_discard")
    (event,) = log.body["items"]
    assert event["reason"] == "numéro résilié"
    drain(runtime)
    assert fake_twilio.messages == []


async def test_bad_requests_get_a_clear_answer_and_change_nothing(
    admin_api: Api, runtime: Runtime, fake_twilio: FakeTwilio
):
    failed = undeliverable(runtime, fake_twilio, RESIDENT)
    missing = await admin_api.post("/outbound/424242/retry", {})
    assert missing.status == 404 and missing.error == "console.errors.not_found"
    assert (await admin_api.post("/outbound/abc/discard", {})).status == 404
    broken = await admin_api.call("POST", f"/outbound/{failed}/retry", raw=b"{not json")
    assert broken.status == 400 and broken.error == "invalid_json"
    unknown = await admin_api.post(f"/outbound/{failed}/discard", {"why": "x"})
    assert unknown.status == 400
    assert (
        await admin_api.post(f"/outbound/{failed}/discard", {"reason": "x" * 501})
    ).status == 400
    assert (await admin_api.get("/outbound/failed", page="x")).status == 400
    assert (await admin_api.call("GET", f"/outbound/{failed}/retry")).status == 405
    listed = await admin_api.get("/outbound/failed", per_page="1", page="1")
    assert listed.body["per_page"] == 1 and len(listed.body["items"]) == 1
    assert failed in [i["id"] for i in (await admin_api.get("/outbound/failed")).body["items"]]
