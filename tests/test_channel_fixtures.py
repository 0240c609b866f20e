"""The shared harness that runs every channel's table of real provider payloads
(``channels/<provider>/fixtures/*.json``): each payload is normalised as expected, and, posted
as a signed webhook to the running app, is stored exactly so.

A new channel adds its folder of fixtures and one line to ``CHANNELS``; nothing else moves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channels.twilio import sms as twilio_sms
from gateway.messages import IncomingMessage
from gateway.privacy import inbound_sender
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.helpers import inbound, sign

ROOT = Path(__file__).resolve().parent.parent / "channels"


def _post_twilio(settings: Any, form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    path = "/webhooks/twilio/sms"
    signature = sign(settings.twilio_auth_token, settings.public_url + path, form)
    return path, {"data": form, "headers": {"X-Twilio-Signature": signature}}


# provider folder -> (parse a fixture's payload, build a signed webhook request for it)
CHANNELS: dict[str, tuple[Callable[[dict[str, str]], IncomingMessage], Any]] = {
    "twilio": (lambda form: twilio_sms.parse(form, datetime.now(UTC)), _post_twilio),
}

FIXTURES = sorted(ROOT.glob("*/fixtures/*.json"))


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_every_channel_with_fixtures_is_in_the_harness():
    assert FIXTURES, "no fixtures found"
    assert {p.parent.parent.name for p in FIXTURES} <= set(CHANNELS)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_payload_is_normalised_as_expected(path: Path):
    fixture = load(path)
    parse, _ = CHANNELS[path.parent.parent.name]
    message = parse(fixture["form"])
    expected = fixture["expected"]
    assert message.provider_message_id == expected["provider_message_id"]
    assert message.sender == expected["sender"]
    assert message.recipient == expected["recipient"]
    assert message.text == expected["text"]
    assert message.attachments == expected["attachments"]
    assert message.raw == fixture["form"]  # kept whole, for audits


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
async def test_signed_webhook_stores_the_payload_exactly(aiohttp_client, settings, path: Path):
    fixture = load(path)
    _, request_for = CHANNELS[path.parent.parent.name]
    client = await aiohttp_client(create_app(settings))
    url, kwargs = request_for(settings, fixture["form"])
    for _ in range(2):  # the provider's retry is absorbed
        response = await client.post(url, **kwargs)
        assert response.status == 200
    runtime = client.app[RUNTIME]
    (message,) = inbound(runtime)
    expected = fixture["expected"]
    assert message.provider_message_id == expected["provider_message_id"]
    assert message.text == expected["text"]
    assert message.recipient == expected["recipient"]
    assert message.attachments == expected["attachments"]
    binding = inbound_sender(message.channel, message.provider_message_id)
    assert runtime.vault.decrypt(message.sender_encrypted or b"", binding) == expected["sender"]
