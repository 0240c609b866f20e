"""Vonage's webhooks on the gateway's own app: every documented payload, signed as Vonage
signs it, is stored exactly once; what is not provably Vonage's is refused before it is read;
a status is logged and an opt-out reported by Vonage opts the person out. No log line carries a
phone number. On SQLite and PostgreSQL, with a real Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from channels.vonage.signature import MAX_AGE
from channels.vonage.tests.fake_api import FakeVonage
from channels.vonage.tests.helpers import inbound_sms, signed
from gateway import ingest, outages, residents
from gateway.models import OutboundMessage
from gateway.privacy import inbound_sender
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.helpers import drain, inbound

FIXTURES = sorted((Path(__file__).resolve().parent.parent / "fixtures").glob("*.json"))
INBOUND = "/webhooks/vonage/inbound"
STATUS = "/webhooks/vonage/status"
RESIDENT = "33612345678"  # as Vonage writes it


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any], settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(settings))


def secret(fake: FakeVonage) -> str:
    return fake.signature_secret


def no_number_in(caplog: pytest.LogCaptureFixture, *numbers: str) -> None:
    text = "\n".join(r.getMessage() for r in caplog.records)
    for number in numbers:
        assert number.lstrip("+") not in text


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
async def test_each_documented_payload_is_stored_exactly_once(
    client: TestClient[Any, Any], fake_vonage: FakeVonage, path: Path
):
    fixture = json.loads(path.read_text(encoding="utf-8"))
    request = fixture["request"]
    assert request["path"] == INBOUND
    for _ in range(2):  # Vonage's retry of the same message is absorbed
        response = await client.post(INBOUND, **signed(request["json"], secret(fake_vonage)))
        assert response.status == 200, await response.text()
    runtime = client.app[RUNTIME]
    (message,) = inbound(runtime)
    expected = fixture["expected"]
    assert (message.channel, message.provider_message_id) == (
        "sms",
        expected["provider_message_id"],
    )
    assert message.text == expected["text"]
    assert message.recipient == expected["recipient"]
    assert message.attachments == expected["attachments"]
    binding = inbound_sender(message.channel, message.provider_message_id)
    assert runtime.vault.decrypt(message.sender_encrypted or b"", binding) == expected["sender"]


async def refused(client: TestClient[Any, Any], status: int, **request: Any) -> None:
    response = await client.post(INBOUND, **request)
    assert response.status == status, await response.text()
    assert inbound(client.app[RUNTIME]) == []


async def test_an_unsigned_request_is_refused_and_logged_without_numbers(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    body = json.dumps(inbound_sms("PARC Un banc", sender=RESIDENT)).encode()
    await refused(client, 401, data=body, headers={"Content-Type": "application/json"})
    assert any("vonage webhook refused: no Authorization" in r.getMessage() for r in caplog.records)
    no_number_in(caplog, RESIDENT)


async def test_a_token_signed_with_another_secret_is_refused(client: TestClient[Any, Any]):
    await refused(client, 401, **signed(inbound_sms("PARC Un banc"), "x" * 40))


async def test_a_stale_token_is_refused(client: TestClient[Any, Any], fake_vonage: FakeVonage):
    old = time.time() - MAX_AGE - 60
    await refused(client, 401, **signed(inbound_sms("PARC"), secret(fake_vonage), issued_at=old))


async def test_a_body_changed_after_signing_is_refused(
    client: TestClient[Any, Any], fake_vonage: FakeVonage, caplog: pytest.LogCaptureFixture
):
    request = signed(inbound_sms("PARC Un banc", sender=RESIDENT), secret(fake_vonage))
    request["data"] = request["data"].replace(b"Un banc", b"Deux bancs")
    await refused(client, 401, **request)
    assert any("payload_hash" in r.getMessage() for r in caplog.records)
    no_number_in(caplog, RESIDENT)


async def test_an_unsigned_alg_none_token_is_refused(
    client: TestClient[Any, Any], fake_vonage: FakeVonage
):
    await refused(client, 401, **signed(inbound_sms("PARC"), "", algorithm="none"))


async def test_without_the_signature_secret_every_webhook_is_refused(
    aiohttp_client: Callable[[web.Application], Any], settings: Settings, fake_vonage: FakeVonage
):
    # Vonage fully unconfigured (the secret alone cannot go: half a configuration is refused).
    bare = settings.with_overrides(
        vonage_api_key="", vonage_api_secret="", vonage_signature_secret=""
    )
    client = await aiohttp_client(create_app(bare))
    for path in (INBOUND, STATUS):
        response = await client.post(path, **signed(inbound_sms("PARC"), secret(fake_vonage)))
        assert response.status == 401


async def test_an_oversized_body_is_refused_before_anything_else(
    client: TestClient[Any, Any], settings: Settings, fake_vonage: FakeVonage
):
    payload = inbound_sms("PARC " + "é" * settings.max_webhook_bytes)
    await refused(client, 413, **signed(payload, secret(fake_vonage)))
    await refused(client, 413, data=b"x" * (settings.max_webhook_bytes + 1))


async def test_a_signed_body_that_is_not_json_is_refused(
    client: TestClient[Any, Any], fake_vonage: FakeVonage
):
    await refused(client, 400, **signed(b"channel=sms&text=PARC", secret(fake_vonage)))


@pytest.mark.parametrize(
    "payload",
    [
        {**inbound_sms("PARC"), "channel": "whatsapp"},
        {**inbound_sms("PARC"), "message_type": "image"},
        {**inbound_sms("PARC"), "message_uuid": None},
        [inbound_sms("PARC")],
    ],
    ids=["whatsapp", "image", "no-id", "a-list"],
)
async def test_a_signed_payload_that_is_not_an_inbound_sms_is_refused(
    client: TestClient[Any, Any], fake_vonage: FakeVonage, payload: Any
):
    await refused(client, 400, **signed(payload, secret(fake_vonage)))


async def test_database_down_asks_vonage_to_try_again(
    client: TestClient[Any, Any], fake_vonage: FakeVonage, monkeypatch: pytest.MonkeyPatch
):
    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(ingest, "store", down)
    response = await client.post(INBOUND, **signed(inbound_sms("PARC"), secret(fake_vonage)))
    assert response.status == 503
    assert response.headers["Retry-After"] == str(outages.RETRY_AFTER_SECONDS)


# -- status callbacks ----------------------------------------------------------------------------


async def post_status(client: TestClient[Any, Any], fake: FakeVonage, payload: Any) -> int:
    response = await client.post(STATUS, **signed(payload, secret(fake)))
    return response.status


async def test_a_delivery_status_is_logged_and_answered(
    client: TestClient[Any, Any], fake_vonage: FakeVonage, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    message = {"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "to": RESIDENT}
    message["from"] = "33100000001"
    for status in ("submitted", "delivered"):
        callback = fake_vonage.status_callback(message, status)
        assert await post_status(client, fake_vonage, callback) == 200
    undeliverable = fake_vonage.status_callback(message, "undeliverable", error_code=1330)
    assert await post_status(client, fake_vonage, undeliverable) == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "channels.vonage.webhooks"]
    assert "vonage: message aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab delivered" in lines
    assert any("undeliverable (error 1330" in line for line in lines)
    no_number_in(caplog, RESIDENT)


async def test_a_reply_vonage_could_not_deliver_is_marked_failed_for_moderators(
    client: TestClient[Any, Any], fake_vonage: FakeVonage
):
    runtime = client.app[RUNTIME]
    first = inbound_sms("PARC Des arbres", sender=RESIDENT)
    assert (await client.post(INBOUND, **signed(first, secret(fake_vonage)))).status == 200
    await asyncio.to_thread(drain, runtime)
    with runtime.sessions() as session:
        rows = list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))
    assert rows and all(r.status == "sent" and r.provider == "vonage" for r in rows)
    lost, kept = rows[0], rows[1:]
    message = {"message_uuid": lost.provider_message_id, "to": RESIDENT, "from": "33100000001"}
    delivered = fake_vonage.status_callback(message, "delivered")
    assert await post_status(client, fake_vonage, delivered) == 200
    undeliverable = fake_vonage.status_callback(message, "undeliverable", error_code=1330)
    assert await post_status(client, fake_vonage, undeliverable) == 200
    with runtime.sessions() as session:
        after = {r.id: r for r in session.scalars(select(OutboundMessage))}
    assert after[lost.id].status == "failed"
    assert after[lost.id].error == "not delivered: Vonage undeliverable, error 1330"
    assert all(after[r.id].status == "sent" for r in kept)  # the others are untouched
    # A status for a message that is not ours changes nothing.
    other = {**message, "message_uuid": "00000000-0000-4000-8000-000000000000"}
    stray = fake_vonage.status_callback(other, "rejected", error_code=1330)
    assert await post_status(client, fake_vonage, stray) == 200


async def test_an_unsigned_or_malformed_status_is_refused(
    client: TestClient[Any, Any], fake_vonage: FakeVonage
):
    response = await client.post(STATUS, json={"message_uuid": "x", "status": "delivered"})
    assert response.status == 401
    assert await post_status(client, fake_vonage, {"status": "delivered"}) == 400
    assert await post_status(client, fake_vonage, {"message_uuid": "a", "status": "lost"}) == 400


async def test_a_rejection_because_the_resident_opted_out_opts_them_out_here(
    client: TestClient[Any, Any], fake_vonage: FakeVonage, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    runtime = client.app[RUNTIME]
    first = inbound_sms("PARC Des arbres", sender=RESIDENT)
    assert (await client.post(INBOUND, **signed(first, secret(fake_vonage)))).status == 200
    await asyncio.to_thread(drain, runtime)
    address = runtime.vault.lookup_hash("sms", "+" + RESIDENT)
    with runtime.sessions() as session:
        assert residents.rows_of(session, address) and not residents.is_opted_out(session, address)
    sent = {"message_uuid": "5b7e4c1a-0d2f-4e8b-9a6c-3f1e2d4c5b6a", "to": RESIDENT}
    sent["from"] = "33100000001"
    rejected = fake_vonage.status_callback(sent, "rejected", error_code=1240)
    assert await post_status(client, fake_vonage, rejected) == 200
    with runtime.sessions() as session:
        assert residents.is_opted_out(session, address)
    no_number_in(caplog, RESIDENT)


async def test_an_opt_out_status_while_the_database_is_down_is_asked_again(
    client: TestClient[Any, Any], fake_vonage: FakeVonage, monkeypatch: pytest.MonkeyPatch
):
    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("UPDATE", {}, Exception("database is down"))

    monkeypatch.setattr(residents, "opt_out", down)
    sent = {"message_uuid": "5b7e4c1a-0d2f-4e8b-9a6c-3f1e2d4c5b6a", "to": RESIDENT, "from": "1"}
    rejected = fake_vonage.status_callback(sent, "rejected", error_code=1240)
    assert await post_status(client, fake_vonage, rejected) == 503
