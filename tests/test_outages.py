"""The answer every webhook gives when storage is unavailable (gateway.outages): 503 with
Retry-After, logged once per incident and once when it ends, never with personal data. The
fault suite (tests/faults/) checks it against real `gateway serve` processes."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from gateway import outages

RESIDENT = "+33612345678"


@pytest.fixture(autouse=True)
def fresh_incident(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outages, "_incident", outages._Incident())


def down() -> OperationalError:
    return OperationalError("INSERT", {"sender": RESIDENT}, Exception(f"down for {RESIDENT}"))


def test_the_answer_is_503_with_retry_after():
    answer = outages.storage_unavailable("twilio sms webhook", down())
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
        outages.storage_unavailable("twilio sms webhook", down())
        clock[0] += 0.1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "OperationalError" in errors[0].getMessage()
    outages.recovered()
    outages.recovered()  # no incident open: nothing more
    ended = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(ended) == 1 and "50 delivery(ies) refused" in ended[0]
    outages.storage_unavailable("telegram webhook", down())  # a new incident
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2
    assert RESIDENT not in caplog.text


def test_refusals_far_apart_are_two_incidents(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    clock = [1000.0]
    monkeypatch.setattr(outages.time, "monotonic", lambda: clock[0])
    outages.storage_unavailable("vonage inbound webhook", down())
    clock[0] += outages.INCIDENT_GAP_SECONDS + 1
    outages.storage_unavailable("vonage inbound webhook", down())
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2
    assert "1 delivery(ies) refused in the previous incident" in caplog.text
