"""Nothing personal where nobody looks: logs, tracebacks, stored errors, Redis job data.

One mixed scenario with a failure on every channel, logged as ``gateway serve`` logs
(gateway.logs.configure), then everything it left is searched: the log output, every error
column of the database, every key of Redis (RQ keeps failed jobs' tracebacks there for a
week). What must not appear: a resident's number (in any of the ways it is written), their
email address, a chat id, the bot's token, the words of their message. What must stay
readable for an operator: ids, IP addresses and ports, timestamps.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select

from channels.telegram.tests import updates as tu
from channels.telegram.tests.fake_api import FakeTelegram
from channels.twilio.tests.fake_api import FakeTwilio
from gateway import conversation, ingest, logs
from gateway.models import InboundMessage, OutboundMessage, QuarantinedMessage
from gateway.privacy import redact
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.helpers import drain, incoming_sms, sign, sms_form
from tests.privacy_scan import in_redis, phone_forms

NUMBER = "+33612345678"
OTHER = "+33698765432"
CHAT = 515151515
WORDS = "près du lavoir de la rue Haute"
SECRET = "webhook-secret-for-tests_0123456789"


@pytest.fixture
def production_log() -> Iterator[io.StringIO]:
    """The gateway's own logging set-up (as `gateway serve` has it), into a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure("DEBUG")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved
        logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any],
    settings: Settings,
    fake_telegram: FakeTelegram,
) -> AsyncIterator[TestClient[Any, Any]]:
    tg = settings.with_overrides(
        telegram_bot_token=fake_telegram.token,
        telegram_webhook_secret=SECRET,
        telegram_api_base=fake_telegram.base_url,
    )
    yield await aiohttp_client(create_app(tg))


def stored_errors(runtime: Runtime) -> list[str]:
    """Every error the database keeps, where moderators and operators read them."""
    with runtime.sessions() as session:
        texts = [e for e in session.scalars(select(InboundMessage.error)) if e]
        texts += [e for e in session.scalars(select(OutboundMessage.error)) if e]
        texts += list(session.scalars(select(QuarantinedMessage.reason)))
        for attachments in session.scalars(select(InboundMessage.attachments)):
            texts += [str(a.get("error")) for a in attachments or [] if isinstance(a, dict)]
    return texts


async def test_failures_on_every_channel_leave_nothing_personal_behind(
    client: TestClient[Any, Any],
    settings: Settings,
    fake_twilio: FakeTwilio,
    fake_telegram: FakeTelegram,
    production_log: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
):
    runtime = client.app[RUNTIME]
    token = fake_telegram.token

    # SMS: Twilio refuses the receipt, quoting the number (error 21211, as Twilio words it).
    fake_twilio.fail_next(
        400, 21211, f"The 'To' number {NUMBER} is not a valid phone number.", times=3
    )
    form = sms_form(f"PARC Un banc {WORDS}", sender=NUMBER)
    path = "/webhooks/twilio/sms"
    signature = sign(settings.twilio_auth_token, settings.public_url + path, form)
    response = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 200
    await asyncio.to_thread(drain, runtime)

    # Telegram: the file host cannot be reached; the HTTP library's error quotes the file URL,
    # which carries the bot's token.
    file_id = fake_telegram.add_file(
        b"\xff\xd8\xff\xe0 not really a jpeg", file_path="photos/f.jpg"
    )

    def unreachable(url: str, **_kwargs: Any) -> Any:
        raise requests.ConnectionError(
            f"HTTPConnectionPool(host='127.0.0.1', port=38915): Max retries exceeded with "
            f"url: {url} (Caused by NewConnectionError('connection refused'))"
        )

    monkeypatch.setattr("gateway.downloads.requests.get", unreachable)  # the guarded download
    update = tu.photo(CHAT, [(file_id, 90, 90, 30)], caption=f"PARC {WORDS}")
    response = await client.post(
        "/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
    )
    assert response.status == 200
    await asyncio.to_thread(drain, runtime)
    monkeypatch.undo()

    # A bug a message triggers, whose exception quotes what it was given (set aside), and a
    # passing failure quoting it too (retried by RQ: its traceback is kept in Redis).
    real = conversation.handle

    def buggy(state: Any, message: Any, context: Any) -> Any:
        if "bug" in message.text:
            raise ValueError(f"cannot read {message.text!r} from {OTHER}")
        if "panne" in message.text:
            raise RedisConnectionError(f"lost Redis while answering {OTHER}: {message.text}")
        return real(state, message, context)

    monkeypatch.setattr(conversation, "handle", buggy)
    ingest.store(runtime, [incoming_sms(f"PARC bug {WORDS}", OTHER)])
    ingest.store(runtime, [incoming_sms(f"PARC panne {WORDS}", "+33698765433")])
    await asyncio.to_thread(drain, runtime)
    monkeypatch.undo()

    # The database refusing a row (PostgreSQL: a recipient over its column's size).
    if runtime.engine.dialect.name == "postgresql":
        monkeypatch.setattr(ingest, "_LIMITS", {})
        ingest.store(runtime, [incoming_sms(f"PARC {WORDS}", OTHER, to="+" + "5" * 200)])
        monkeypatch.undo()

    # What the scenario did happen: failures on every path.
    errors = stored_errors(runtime)
    assert any("21211" in e for e in errors), errors
    assert any("download failed" in e or "ConnectionError" in e for e in errors), errors
    assert any(e.startswith("ValueError") for e in errors), errors
    log_text = production_log.getvalue()
    assert "Traceback" in log_text  # tracebacks are logged, redacted
    failed_jobs = in_redis(runtime.redis, ["ConnectionError"])
    assert failed_jobs, "a failed job's traceback is kept in Redis"

    needles = [
        *phone_forms(NUMBER),
        *phone_forms(OTHER),
        str(CHAT),
        token,
        token.split(":", 1)[1],
        WORDS,
        "lavoir",
    ]
    found_in_log = [n for n in needles if n in log_text]
    assert found_in_log == [], [
        line for line in log_text.splitlines() if any(n in line for n in found_in_log)
    ]
    found_in_errors = [e for e in errors if any(n in e for n in needles)]
    assert found_in_errors == []
    assert in_redis(runtime.redis, needles) == []
    # And what an operator needs stays readable.
    assert "127.0.0.1:38915" in redact("peer 127.0.0.1:38915 closed")
    # The file URL of the failed download is in the traceback, its token masked.
    assert "/file/bot<bot-token>/photos/f.jpg" in log_text


def test_redaction_keeps_ids_addresses_and_times_readable():
    line = (
        "2026-12-07 03:14:17,123 INFO gateway: message 123456789 from 10.0.0.12:51234 "
        "worker gateway-1234-9f8e7d6c update 987654321 took 1234.5 ms"
    )
    assert redact(line) == line
    assert redact(f"to {NUMBER} or 06 12 34 56 78 or 0033612345678") == (
        "to <phone> or <phone> or <phone>"
    )
    assert redact("recipient refused {'marie.dupont@example.org': (550, b'no')}") == (
        "recipient refused {'<email>': (550, b'no')}"
    )
    assert redact("for 424242424 at 424242424", "424242424") == "for <private> at <private>"
