"""Vonage's webhook payloads as the gateway reads them: each documented inbound SMS (the
fixtures) normalised as expected, numbers in + E.164, and what is not an inbound SMS refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channels.vonage import sms

FIXTURES = sorted((Path(__file__).resolve().parent.parent / "fixtures").glob("*.json"))
NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def payload(fixture: dict[str, Any]) -> Any:
    """The JSON Vonage posts (the one fixture format: ``request.json``)."""
    return fixture["request"]["json"]


def inbound(**changes: Any) -> dict[str, Any]:
    body = dict(payload(load(FIXTURES[0])))
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def test_there_are_fixtures_and_each_says_where_it_comes_from():
    assert len(FIXTURES) >= 5
    for path in FIXTURES:
        fixture = load(path)
        assert {"description", "source", "request", "expected"} <= set(fixture), path.name
        assert "vonage.com" in fixture["source"], path.name
        request = fixture["request"]
        assert request["path"] == "/webhooks/vonage/inbound", path.name
        assert request["content_type"] == "application/json", path.name
        assert isinstance(request.get("json"), dict), path.name


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_each_documented_payload_is_normalised_as_expected(path: Path):
    fixture = load(path)
    message = sms.parse(payload(fixture), NOW)
    expected = fixture["expected"]
    assert (message.channel, message.provider) == ("sms", "vonage")
    assert message.provider_message_id == expected["provider_message_id"]
    assert message.sender == expected["sender"]
    assert message.recipient == expected["recipient"]
    assert message.text == expected["text"]
    assert message.attachments == expected["attachments"]
    assert message.received_at == NOW
    assert message.raw == payload(fixture)  # kept whole, for audits


@pytest.mark.parametrize(
    ("vonage", "gateway"),
    [
        ("33612345678", "+33612345678"),
        ("+33612345678", "+33612345678"),  # tolerated if Vonage ever sends the +
        ("447700900001", "+447700900001"),
        (" 33612345678 ", "+33612345678"),
        ("36179", "36179"),  # a short code is no E.164 number
        ("VILLE", "VILLE"),  # an alphanumeric sender id
        ("0612345678", "0612345678"),  # a national number is not made international
    ],
)
def test_numbers_come_in_as_plus_e164(vonage: str, gateway: str):
    assert sms.to_e164(vonage) == gateway


@pytest.mark.parametrize(
    ("gateway", "vonage"),
    [("+33612345678", "33612345678"), ("33612345678", "33612345678"), ("VILLE", "VILLE")],
)
def test_numbers_go_out_without_the_plus(gateway: str, vonage: str):
    assert sms.from_e164(gateway) == vonage


@pytest.mark.parametrize("missing", ["message_uuid", "from", "channel"])
def test_a_payload_missing_a_required_field_is_refused(missing: str):
    with pytest.raises(sms.InvalidPayload):
        sms.parse(inbound(**{missing: None}), NOW)


def test_without_text_or_to_the_message_is_still_taken():
    message = sms.parse(inbound(text=None, to=None), NOW)
    assert (message.text, message.recipient) == ("", None)


@pytest.mark.parametrize(
    "changes",
    [
        {"message_uuid": ""},
        {"message_uuid": 42},
        {"message_uuid": "../../etc/passwd"},
        {"message_uuid": "x" * 200},
        {"from": 33612345678},
        {"text": ["PARC"]},
        {"to": {"number": "33100000001"}},
    ],
    ids=repr,
)
def test_malformed_fields_are_refused(changes: dict[str, Any]):
    with pytest.raises(sms.InvalidPayload):
        sms.parse(inbound(**changes), NOW)


@pytest.mark.parametrize("payload", [[], "PARC", 42, None], ids=repr)
def test_a_body_that_is_not_an_object_is_refused(payload: Any):
    with pytest.raises(sms.InvalidPayload):
        sms.parse(payload, NOW)


@pytest.mark.parametrize("channel", ["whatsapp", "mms", "rcs", "viber_service", "messenger"])
def test_another_channel_of_the_messages_api_is_not_an_sms(channel: str):
    with pytest.raises(sms.NotAnSms):
        sms.parse(inbound(channel=channel), NOW)


def test_a_non_text_sms_is_refused():
    with pytest.raises(sms.NotAnSms):
        sms.parse(inbound(message_type="image", image={"url": "https://example.com/a.jpg"}), NOW)


# -- status callbacks ---------------------------------------------------------------------------
# vonage-dotnet-sdk Vonage.Test/Messages/Webhooks/Data/ShouldDeserializeStatus-response.json,
# the example of https://developer.vonage.com/en/api/messages (Message status, sms).
DOCUMENTED_STATUS = {
    "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
    "to": "447700900000",
    "from": "447700900001",
    "timestamp": "2025-02-03T12:14:25Z",
    "status": "submitted",
    "error": {
        "type": "https://developer.vonage.com/api-errors/messages#1000",
        "title": "1000",
        "detail": "Throttled - You have exceeded the submission capacity allowed on this "
        "account. Please wait and retry",
        "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
    },
    "client_ref": "abc123",
    "usage": {"currency": "EUR", "price": "0.0333"},
    "channel": "sms",
    "destination": {"network_code": "12345"},
    "sms": {"count_total": "2"},
}


def test_the_documented_status_is_read():
    status = sms.parse_status(DOCUMENTED_STATUS)
    assert status == sms.Status(
        message_uuid="aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
        status="submitted",
        to="+447700900000",
        error_code=1000,
        error_title="1000",
        error_detail=DOCUMENTED_STATUS["error"]["detail"],
    )
    assert not status.failed and not status.opted_out


@pytest.mark.parametrize("value", ["submitted", "delivered", "rejected", "undeliverable", "read"])
def test_every_documented_status_is_known(value: str):
    assert sms.parse_status({**DOCUMENTED_STATUS, "status": value}).status == value


def test_a_rejection_for_an_opted_out_recipient_is_recognised():
    rejected = {
        **DOCUMENTED_STATUS,
        "status": "rejected",
        "error": {
            "type": "https://developer.vonage.com/api-errors/messages#1240",
            "title": "Illegal Number",
            "detail": "the user has already sent a STOP opt-out message",
        },
    }
    status = sms.parse_status(rejected)
    assert status.failed and status.opted_out and status.error_code == 1240


def test_an_undeliverable_status_without_error_is_a_failure_not_an_opt_out():
    status = sms.parse_status({**DOCUMENTED_STATUS, "status": "undeliverable", "error": None})
    assert status.failed and not status.opted_out and status.error_code is None


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"type": "https://developer.vonage.com/api-errors/messages#1240"}, 1240),
        ({"type": "https://developer.nexmo.com/api-errors/messages#1020 "}, 1020),
        ({"type": "https://developer.vonage.com/api-errors#throttled", "title": 1000}, 1000),
        ({"title": "1300"}, 1300),
        ({"type": "https://developer.vonage.com/api-errors#unauthorized"}, None),
        ({"title": True}, None),
        ({}, None),
    ],
)
def test_error_codes_are_read_from_the_problem(error: dict[str, Any], code: int | None):
    assert sms.error_code(error) == code


@pytest.mark.parametrize(
    "changes",
    [{"status": "exploded"}, {"status": None}, {"message_uuid": None}, {"error": "1240"}],
    ids=repr,
)
def test_a_malformed_status_is_refused(changes: dict[str, Any]):
    payload = {k: v for k, v in {**DOCUMENTED_STATUS, **changes}.items() if v is not None}
    with pytest.raises(sms.InvalidPayload):
        sms.parse_status(payload)
