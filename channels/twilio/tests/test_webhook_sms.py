"""POST /webhooks/twilio/sms: what Twilio sends, what forgers send, and what survives."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis import Redis

from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.fixtures import RedisServer
from tests.helpers import drain, inbound, raw_binding, sender_binding, sign, sms_form

PATH = "/webhooks/twilio/sms"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any], settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(settings))


async def post_signed(
    client: TestClient[Any, Any], settings: Settings, form: dict[str, str], path: str = PATH
) -> Any:
    url = settings.public_url + path
    return await client.post(
        path, data=form, headers={"X-Twilio-Signature": sign(settings.twilio_auth_token, url, form)}
    )


async def test_signed_sms_is_stored_enqueued_and_answered_with_empty_twiml(client, settings):
    response = await post_signed(client, settings, sms_form("PARC Il faut plus de bancs"))
    assert response.status == 200
    assert response.content_type == "text/xml"
    assert await response.text() == EMPTY_TWIML
    runtime = client.app[RUNTIME]
    (message,) = inbound(runtime)
    assert message.text == "PARC Il faut plus de bancs"
    assert message.state == "received"
    assert runtime.queue("inbound").job_ids == [f"inbound-{message.id}"]


async def test_signature_uses_public_url_not_the_host_header(client, settings):
    form = sms_form("PARC bonjour")
    # Signed for the Host the request really reached: a proxy or an attacker picks it.
    forged = sign(settings.twilio_auth_token, f"http://{client.host}:{client.port}{PATH}", form)
    response = await client.post(PATH, data=form, headers={"X-Twilio-Signature": forged})
    assert response.status == 403
    assert inbound(client.app[RUNTIME]) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, {"X-Twilio-Signature": ""}],
    ids=["missing", "wrong", "empty"],
)
async def test_bad_signature_is_refused_and_nothing_stored(client, headers, caplog):
    caplog.set_level(logging.WARNING)
    response = await client.post(PATH, data=sms_form("PARC bonjour"), headers=headers)
    assert response.status == 403
    assert inbound(client.app[RUNTIME]) == []
    assert "signature" in caplog.text


async def test_signature_over_other_parameters_is_refused(client, settings):
    form = sms_form("PARC bonjour")
    signature = sign(settings.twilio_auth_token, settings.public_url + PATH, form)
    tampered = dict(form, Body="PARC autre chose")
    response = await client.post(PATH, data=tampered, headers={"X-Twilio-Signature": signature})
    assert response.status == 403
    assert inbound(client.app[RUNTIME]) == []


async def test_without_auth_token_every_webhook_is_refused(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings.with_overrides(twilio_auth_token="")))
    response = await client.post(
        PATH, data=sms_form("PARC bonjour"), headers={"X-Twilio-Signature": "x"}
    )
    assert response.status == 403


async def test_body_over_the_cap_is_refused_with_413_unread(client, settings):
    form = sms_form("x" * (settings.max_webhook_bytes + 10))
    response = await post_signed(client, settings, form)
    assert response.status == 413
    assert inbound(client.app[RUNTIME]) == []


async def test_chunked_body_over_the_cap_is_refused(client, settings):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"Body=" + b"x" * 1024 + b"&"

    response = await client.post(
        PATH, data=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 413


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"MessageSid": "SM1"}', "application/json"),
        (b"\xff\xfe=%%%", "application/x-www-form-urlencoded"),
    ],
    ids=["json", "undecodable"],
)
async def test_malformed_form_is_400(client, body, content_type):
    response = await client.post(PATH, data=body, headers={"Content-Type": content_type})
    assert response.status == 400
    assert inbound(client.app[RUNTIME]) == []


async def test_signed_form_without_message_sid_is_400(client, settings):
    form = sms_form("PARC bonjour")
    for key in ("MessageSid", "SmsSid", "SmsMessageSid"):
        del form[key]
    response = await post_signed(client, settings, form)
    assert response.status == 400
    assert inbound(client.app[RUNTIME]) == []


@pytest.mark.parametrize(
    "sid",
    [
        "SM1",
        "SM" + "0" * 31,
        "SM" + "0" * 33,
        "SM" + "z" * 32,
        "XX" + "0" * 32,
        "SM" + "0" * 32 + "\n",
        "../../" + "0" * 32,
    ],
    ids=["short", "31", "33", "not hex", "other type", "newline", "traversal"],
)
async def test_signed_form_with_a_malformed_message_sid_is_400_logged_and_not_stored(
    client, settings, caplog, sid
):
    # Signed, so from Twilio's account or whoever holds the token: a MessageSid of any other
    # shape than SM/MM and 32 hex digits is refused before it is stored anywhere.
    form = sms_form("PARC bonjour", sid=sid)
    with caplog.at_level(logging.WARNING):
        response = await post_signed(client, settings, form)
    assert response.status == 400
    assert "MessageSid" in caplog.text
    assert inbound(client.app[RUNTIME]) == []


async def test_a_message_with_media_has_an_mm_sid(client, settings):
    response = await post_signed(client, settings, sms_form("PARC photo", sid="MM" + "ab" * 16))
    assert response.status == 200
    assert inbound(client.app[RUNTIME])[0].provider_message_id == "MM" + "ab" * 16


@pytest.mark.parametrize(
    "body",
    [
        "",
        "Très bien 👍 à côté de l'école",
        "œuvre, ça, île, Noël, naïve — « guillemets »",
        "GSM only: Bonjour a tous, il faut des bancs !",
        "x" * 1600,
        "ligne 1\nligne 2\r\nligne 3\ttab",
        "\u202eRTL override \u0000 nul",
    ],
    ids=["empty", "emoji", "ucs2", "gsm", "1600", "newlines", "control"],
)
async def test_bodies_are_stored_exactly_as_sent(client, settings, body):
    response = await post_signed(client, settings, sms_form(body))
    assert response.status == 200
    runtime = client.app[RUNTIME]
    (message,) = inbound(runtime)
    # PostgreSQL text cannot hold NUL: it becomes U+FFFD in the text, exact in the raw payload.
    assert message.text == body.replace("\x00", "\ufffd")
    raw = json.loads(
        runtime.vault.decrypt_bytes(message.raw_encrypted or b"", raw_binding(message))
    )
    assert raw["Body"] == body


@pytest.mark.parametrize("sender", ["36179", "VINTED", "0612345678", "+33 6 12 34 56 78", ""])
async def test_sender_that_is_not_e164_is_stored_as_given(client, settings, sender):
    response = await post_signed(client, settings, sms_form("PARC test", sender=sender))
    assert response.status == 200
    runtime = client.app[RUNTIME]
    (message,) = inbound(runtime)
    assert message.sender_encrypted is not None
    assert runtime.vault.decrypt(message.sender_encrypted, sender_binding(message)) == sender
    drain(runtime)  # and processing it does not crash either
    assert inbound(runtime)[0].state == "processed"


async def test_duplicate_delivery_is_absorbed(client, settings):
    form = sms_form("PARC doublon")
    for _ in range(3):
        response = await post_signed(client, settings, form)
        assert response.status == 200
    runtime = client.app[RUNTIME]
    assert len(inbound(runtime)) == 1
    assert len(runtime.queue("inbound").job_ids) == 1


async def test_redis_down_still_stores_and_answers_then_sweeper_enqueues(
    client, settings, redis_server: RedisServer
):
    from workers.sweeper import sweep

    runtime = client.app[RUNTIME]
    redis_server.stop()
    try:
        response = await post_signed(client, settings, sms_form("PARC pendant la panne"))
        assert response.status == 200
        assert await response.text() == EMPTY_TWIML
        (message,) = inbound(runtime)
        assert message.state == "received"
        assert sweep(runtime).inbound == 0  # still down: nothing enqueued, nothing lost
    finally:
        redis_server.start()
    assert sweep(runtime).inbound == 1
    assert runtime.queue("inbound").job_ids == [f"inbound-{message.id}"]
    assert sweep(runtime).inbound == 0  # already pending: not enqueued twice


async def test_unknown_to_number_is_accepted(client, settings):
    response = await post_signed(client, settings, sms_form("PARC test", to="+33199999999"))
    assert response.status == 200
    assert inbound(client.app[RUNTIME])[0].recipient == "+33199999999"


async def test_raw_payload_and_sender_are_encrypted_at_rest(client, settings):
    await post_signed(client, settings, sms_form("PARC test", sender="+33698765432"))
    runtime = client.app[RUNTIME]
    (message,) = inbound(runtime)
    assert b"33698765432" not in (message.raw_encrypted or b"")
    assert b"33698765432" not in (message.sender_encrypted or b"")
    raw = runtime.vault.decrypt_bytes(message.raw_encrypted or b"", raw_binding(message))
    assert b"+33698765432" in raw


async def test_healthz_reports_database_and_redis(client, redis_server: RedisServer):
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json()) == {"database": "ok", "redis": "ok", "status": "ok"}
    redis_server.stop()
    try:
        client.app[RUNTIME].redis.connection_pool.disconnect()
        response = await client.get("/healthz")
        body = await response.json()
        assert response.status == 200
        assert body["status"] == "degraded"
    finally:
        redis_server.start()
    Redis.from_url(redis_server.url).ping()


async def test_ingest_reports_a_flood_so_the_in_process_worker_backs_off(settings):
    import asyncio

    from gateway.ingest import BatchingIngest
    from gateway.runtime import Runtime
    from tests.helpers import incoming_sms

    runtime = Runtime.open(settings, migrate=settings.database_url.startswith("sqlite"))
    ingest = BatchingIngest(runtime)
    await ingest.start()
    try:
        assert not ingest.busy()
        await asyncio.gather(
            *(ingest.accept(incoming_sms(f"PARC {i}", f"+3361111{i:04d}")) for i in range(150))
        )
        assert ingest.busy(threshold=100)  # 150 in well under a second
        assert not ingest.busy(threshold=1000)
        assert len(inbound(runtime)) == 150
    finally:
        await ingest.stop()
        runtime.close()
