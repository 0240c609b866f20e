"""One bad message never holds up the others: what the database refuses is quarantined with its
reason at ingest, what fails for good when processed is set aside, and the messages behind
both go through. On SQLite and PostgreSQL (the database that enforces column sizes)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from sqlalchemy import select

from gateway import conversation, ingest
from gateway.cli import main as cli
from gateway.messages import IncomingMessage
from gateway.models import QuarantinedMessage
from gateway.privacy import quarantine_payload
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.helpers import cli_env, contributions, drain, inbound, incoming_sms, sign, sms_form


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any], settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(settings))


def quarantined(runtime: Runtime) -> list[QuarantinedMessage]:
    with runtime.sessions() as session:
        return list(session.scalars(select(QuarantinedMessage).order_by(QuarantinedMessage.id)))


def payload(runtime: Runtime, item: QuarantinedMessage) -> dict[str, Any]:
    assert item.payload_encrypted is not None
    clear = runtime.vault.decrypt_bytes(
        item.payload_encrypted, quarantine_payload(item.channel, item.provider_key)
    )
    return dict(json.loads(clear))


async def test_an_sms_with_an_overlong_field_is_quarantined_and_the_next_goes_through(
    client: TestClient[Any, Any], settings: Settings
):
    runtime = client.app[RUNTIME]
    path = "/webhooks/twilio/sms"
    crafted = sms_form("PARC bonjour", sender="+33612345601", to="+" + "3" * 200)
    fine = sms_form("PARC Des bancs", sender="+33612345602")
    for form in (crafted, fine):
        signature = sign(settings.twilio_auth_token, settings.public_url + path, form)
        response = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
        # Answered like a stored message: Twilio retrying it would change nothing.
        assert response.status == 200
    (stored,) = inbound(runtime)
    assert stored.text == "PARC Des bancs"
    (item,) = quarantined(runtime)
    assert item.channel == "sms" and item.reason == "recipient longer than 128 characters"
    kept = payload(runtime, item)  # kept whole, for an operator to look at
    assert kept["recipient"] == crafted["To"] and kept["text"] == "PARC bonjour"
    assert item.sender_hash == runtime.vault.lookup_hash("sms", "+33612345601")
    drain(runtime)
    (filed,) = contributions(runtime)
    assert filed.text == "Des bancs"


@pytest.mark.postgres
def test_postgresql_refusing_one_row_of_a_batch_quarantines_it_and_stores_the_others(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
):
    """The check before the database is the first net; the database's own refusal is the
    second. Without the first, PostgreSQL refuses a 200-character recipient (varchar 128)."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce column sizes")
    monkeypatch.setattr(ingest, "_LIMITS", {})
    batch = [
        incoming_sms("PARC un", "+33612345611"),
        incoming_sms("PARC deux", "+33612345612", to="+" + "4" * 200),
        incoming_sms("PARC trois", "+33612345613"),
    ]
    results = ingest.store(runtime, batch)
    assert [r.quarantined for r in results] == [False, True, False]
    assert [r.message_id is not None for r in results] == [True, False, True]
    assert sorted(m.text for m in inbound(runtime)) == ["PARC trois", "PARC un"]
    (item,) = quarantined(runtime)
    assert item.reason.startswith("refused by the database: StringDataRightTruncation")
    assert "4444" not in item.reason  # the reason names no value
    drain(runtime)
    assert sorted(c.text for c in contributions(runtime)) == ["trois", "un"]


def test_a_database_outage_is_not_a_quarantine(runtime: Runtime, monkeypatch: pytest.MonkeyPatch):
    """A database that cannot be reached refuses every message alike: the provider must be
    asked to retry (an error), and nothing is set aside or answered as stored."""
    from sqlalchemy.exc import OperationalError

    def down(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(ingest, "_insert_ignoring_duplicates", down)
    with pytest.raises(OperationalError):
        ingest.store(runtime, [incoming_sms("PARC un"), incoming_sms("PARC deux")])
    monkeypatch.undo()
    assert quarantined(runtime) == [] and inbound(runtime) == []


def test_a_lone_surrogate_is_stored_replaced_not_refused(runtime: Runtime):
    """JSON lets a chat app send half an emoji ("\\ud83d"); no text column can hold it. The
    text is stored with the replacement character and the raw payload exactly."""
    message = IncomingMessage(
        channel="telegram",
        provider_message_id="90001",
        sender="424242",
        recipient=None,
        text="PARC des arbres \ud83d",
        received_at=datetime.now(UTC),
        raw={"update_id": 90001, "message": {"text": "PARC des arbres \ud83d"}},
    )
    (result,) = ingest.store(runtime, [message])
    assert result.message_id is not None and not result.quarantined
    (stored,) = inbound(runtime)
    assert stored.text == "PARC des arbres \ufffd"
    from tests.helpers import raw_binding

    assert stored.raw_encrypted is not None
    raw = json.loads(runtime.vault.decrypt_bytes(stored.raw_encrypted, raw_binding(stored)))
    assert raw["message"]["text"] == "PARC des arbres \ud83d"


def test_a_message_that_fails_for_good_is_set_aside_and_the_next_one_goes_through(
    runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    real = conversation.handle

    def fragile(state: Any, message: Any, context: Any) -> Any:
        if "boom" in message.text:
            raise KeyError("a bug this message triggers")
        return real(state, message, context)

    monkeypatch.setattr(conversation, "handle", fragile)
    sender = "+33612345621"
    ingest.store(runtime, [incoming_sms("PARC boom", sender), incoming_sms("PARC suite", sender)])
    drain(runtime)
    first, second = inbound(runtime)
    assert first.state == "quarantined" and first.error == "KeyError: 'a bug this message triggers'"
    assert first.attempts == 1  # not retried: it would fail the same way
    assert second.state == "processed"
    assert [c.text for c in contributions(runtime)] == ["suite"]

    # Once the cause is fixed, an operator sends it through again.
    monkeypatch.setattr(conversation, "handle", real)
    env = cli_env(settings)
    listed = CliRunner().invoke(cli, ["quarantine", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert f"m{first.id}" in listed.output and "KeyError" in listed.output
    assert "boom" not in listed.output  # reasons, never content
    retried = CliRunner().invoke(cli, ["quarantine", "retry", f"m{first.id}"], env=env)
    assert retried.exit_code == 0, retried.output
    drain(runtime)
    assert sorted(c.text for c in contributions(runtime)) == ["boom", "suite"]


def test_a_passing_failure_is_retried_not_set_aside(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
):
    from redis.exceptions import ConnectionError as RedisConnectionError

    calls = {"n": 0}
    real = conversation.handle

    def flaky(state: Any, message: Any, context: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RedisConnectionError("Redis went away")
        return real(state, message, context)

    monkeypatch.setattr(conversation, "handle", flaky)
    ingest.store(runtime, [incoming_sms("PARC encore", "+33612345631")])
    drain(runtime)
    (message,) = inbound(runtime)
    assert message.state == "received" and message.error is not None  # for the sweeper
    from gateway.processing import process_inbound

    process_inbound(runtime, message.id)
    (message,) = inbound(runtime)
    assert message.state == "processed"
