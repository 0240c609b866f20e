"""The answer every webhook gives when storage is unavailable (gateway.outages): 503 with
Retry-After, logged once per incident and once when it ends, never with personal data. The
fault suite (tests/faults/) checks it against real `gateway serve` processes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.exc import OperationalError

from gateway import ingest, outages
from gateway.settings import Settings
from gateway.web import create_app
from tests.helpers import sign, sms_form

RESIDENT = "+33612345678"


@pytest.fixture(autouse=True)
def fresh_incident(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outages, "_incident", outages._Incident())


def down_error() -> OperationalError:
    return OperationalError("INSERT", {"sender": RESIDENT}, Exception(f"down for {RESIDENT}"))


def test_the_answer_is_503_with_retry_after():
    answer = outages.storage_unavailable("twilio sms webhook", down_error())
    assert answer.status == 503
    assert answer.headers["Retry-After"] == str(outages.RETRY_AFTER_SECONDS)
    assert 1 <= outages.RETRY_AFTER_SECONDS <= 15  # within Twilio's 15 s, retries included


def test_an_incident_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    clock = [1000.0]
    monkeypatch.setattr(outages.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO, logger="gateway.outages")
    for _ in range(50):
        outages.storage_unavailable("twilio sms webhook", down_error())
        clock[0] += 0.1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "OperationalError" in errors[0].getMessage()
    outages.recovered()
    outages.recovered()  # no incident open: nothing more
    ended = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(ended) == 1 and "50 delivery(ies) refused" in ended[0]
    outages.storage_unavailable("telegram webhook", down_error())  # a new incident
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2
    assert RESIDENT not in caplog.text


def test_refusals_far_apart_are_two_incidents(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    clock = [1000.0]
    monkeypatch.setattr(outages.time, "monotonic", lambda: clock[0])
    outages.storage_unavailable("vonage inbound webhook", down_error())
    clock[0] += outages.INCIDENT_GAP_SECONDS + 1
    outages.storage_unavailable("vonage inbound webhook", down_error())
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2
    assert "1 delivery(ies) refused in the previous incident" in caplog.text


async def test_every_channel_answers_503_with_retry_after_and_the_incident_is_logged_once(
    aiohttp_client: Callable[[web.Application], Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    """Through the real app: Twilio's SMS webhook and Telegram's, with the database refusing
    every write; then the database back. (Vonage's: channels/vonage/tests/test_webhooks.py.)"""
    from channels.telegram.tests import updates as tu
    from channels.telegram.tests.fake_api import FakeTelegram
    from channels.telegram.webhook import PATH, SECRET_HEADER

    real_store = ingest.store

    def down(*args: Any, **kwargs: Any) -> Any:
        raise down_error()

    caplog.set_level(logging.INFO)
    with FakeTelegram() as telegram:
        secret = "webhook-secret-for-tests_0123456789"
        settings = settings.with_overrides(
            telegram_bot_token=telegram.token,
            telegram_webhook_secret=secret,
            telegram_api_base=telegram.base_url,
        )
        client = await aiohttp_client(create_app(settings))
        monkeypatch.setattr(ingest, "store", down)

        async def sms(body: str) -> Any:
            form = sms_form(body, sender=RESIDENT)
            url = settings.public_url + "/webhooks/twilio/sms"
            signature = sign(settings.twilio_auth_token, url, form)
            return await client.post(
                "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
            )

        refused = [
            await sms("PARC une idée"),
            await sms("PARC une autre"),
            await client.post(
                PATH, json=tu.text(5151, "PARC une idée"), headers={SECRET_HEADER: secret}
            ),
        ]
        for response in refused:
            assert response.status == 503
            assert response.headers["Retry-After"] == str(outages.RETRY_AFTER_SECONDS)
        starts = [r for r in caplog.records if r.getMessage().startswith("storage unavailable")]
        assert len(starts) == 1, "logged once per incident, not per request"
        monkeypatch.setattr(ingest, "store", real_store)
        assert (await sms("PARC de retour")).status == 200
        ends = [
            r.getMessage() for r in caplog.records if "storage available again" in r.getMessage()
        ]
        assert len(ends) == 1 and "3 delivery(ies) refused" in ends[0]
        assert RESIDENT not in caplog.text
