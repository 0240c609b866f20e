"""The Vonage sender against a fake Messages API on loopback: the request Vonage documents
(basic auth, the JSON body, numbers without +), its message_uuid, and each kind of failure
classified for the outbound job as Twilio's are (retry, give up, opt the resident out)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from channels.vonage.sender import VonageSender, classify
from channels.vonage.tests.fake_api import FakeVonage
from gateway.messages import OutgoingText, SendError

RESIDENT = "+33612345678"
CITY = "+33100000001"


@pytest.fixture
def fake() -> Iterator[FakeVonage]:
    with FakeVonage() as server:
        yield server


def sender_for(fake: FakeVonage, **options: float) -> VonageSender:
    return VonageSender(fake.api_key, fake.api_secret, fake.base_url, **options)


def reply(text: str = "Merci ! Votre idée est notée : PARC-0001.", **changes: str) -> OutgoingText:
    fields = {"recipient": RESIDENT, "sender": CITY, **changes}
    return OutgoingText(channel="sms", text=text, **fields)  # type: ignore[arg-type]


def failure(sender: VonageSender, message: OutgoingText | None = None) -> SendError:
    with pytest.raises(SendError) as raised:
        sender.send(message or reply())
    return raised.value


def test_a_reply_is_sent_as_vonage_documents_it(fake: FakeVonage):
    uuid = sender_for(fake).send(reply("Très bien 👍 à côté de l'école"))
    (sent,) = fake.messages
    assert sent == {
        "message_type": "text",
        "channel": "sms",
        "to": "33612345678",  # the + stripped on the way out
        "from": "33100000001",
        "text": "Très bien 👍 à côté de l'école",
        "message_uuid": uuid,
    }
    (request,) = fake.requests
    assert request["authorised"] and request["content_type"] == "application/json"


def test_the_name_is_the_providers():
    assert VonageSender("k", "s").name == "vonage"


def test_wrong_credentials_are_given_up_not_retried(fake: FakeVonage):
    error = failure(VonageSender(fake.api_key, "not-the-secret", fake.base_url))
    assert (error.retryable, error.recipient_opted_out, error.code) == (False, False, 401)
    assert fake.messages == [] and fake.requests[0]["authorised"] is False


def test_without_a_sender_number_nothing_is_sent(fake: FakeVonage):
    error = failure(sender_for(fake), reply(sender=""))
    assert not error.retryable and "GATEWAY_VONAGE_FROM_NUMBER" in str(error)
    assert fake.requests == []


def test_too_many_requests_is_retried_after_what_vonage_says(fake: FakeVonage):
    fake.fail_next(429, retry_after="7")
    error = failure(sender_for(fake))
    assert (error.retryable, error.retry_after, error.code) == (True, 7.0, 1000)
    assert "Throttled" in str(error)
    sender_for(fake).send(reply())  # and the next attempt goes through
    assert len(fake.messages) == 1


def test_retry_after_as_an_http_date(fake: FakeVonage):
    fake.fail_next(429, retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=60)))
    error = failure(sender_for(fake))
    assert error.retryable and error.retry_after is not None and 50 <= error.retry_after <= 61


def test_too_many_requests_without_retry_after_leaves_the_backoff_to_the_job(fake: FakeVonage):
    fake.fail_next(429)
    error = failure(sender_for(fake))
    assert error.retryable and error.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(fake: FakeVonage, status: int):
    fake.fail_next(status, retry_after="3" if status == 503 else None)
    error = failure(sender_for(fake))
    assert error.retryable and not error.recipient_opted_out
    assert error.retry_after == (3.0 if status == 503 else None)


@pytest.mark.parametrize("status", [400, 402, 403, 404, 422])
def test_client_errors_are_given_up(fake: FakeVonage, status: int):
    fake.fail_next(status)
    error = failure(sender_for(fake))
    assert not error.retryable and not error.recipient_opted_out


def test_a_request_vonage_finds_invalid_is_given_up_with_its_reason(fake: FakeVonage):
    error = failure(sender_for(fake), reply(text=""))  # an SMS needs a text
    assert not error.retryable and error.code == 1020
    assert "Invalid params" in str(error)


def test_a_recipient_who_opted_out_is_reported_as_such(fake: FakeVonage):
    fake.opt_out("33612345678")
    error = failure(sender_for(fake))
    assert (error.retryable, error.recipient_opted_out, error.code) == (False, True, 1240)
    assert fake.messages == []


def test_an_error_never_carries_the_residents_number_in_either_spelling():
    problem = {
        "type": "https://developer.vonage.com/api-errors/messages#1020",
        "title": "Invalid params",
        "detail": "The `to` 33612345678 (+33612345678) is invalid",
    }
    error = classify(422, problem, None, reply(), "33612345678")
    assert "33612345678" not in str(error) and "<private>" in str(error)


def test_vonage_unreachable_is_retried():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    error = failure(VonageSender("k", "s", f"http://127.0.0.1:{port}"))
    assert error.retryable and "unreachable" in str(error)


def test_a_read_timeout_is_not_retried_since_vonage_may_have_sent_it(fake: FakeVonage):
    fake.delay_next(1.5)
    error = failure(sender_for(fake, timeout=0.3))
    assert not error.retryable and "in time" in str(error)


def test_an_acceptance_without_message_uuid_is_not_sent_again(fake: FakeVonage):
    fake.fail_next(202, problem={})
    error = failure(sender_for(fake))
    assert not error.retryable


def test_the_api_base_setting_is_where_requests_go_whatever_the_environment(
    fake: FakeVonage, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    sender_for(fake).send(reply())
    assert len(fake.messages) == 1
