"""A running ``gateway serve`` (embedded defaults: SQLite, embedded Redis, in-process worker)
with both SMS providers configured, Twilio first in the registry: an SMS Vonage signs and posts
to /webhooks/vonage/inbound becomes a contribution, and its receipt goes back through Vonage,
from the number the resident texted, to the fake Messages API in this process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from channels.vonage.tests.fake_api import FakeVonage
from channels.vonage.tests.helpers import inbound_sms, signed
from tests.test_e2e_serve import Gateway, base_env

pytestmark = pytest.mark.e2e
RESIDENT = "33687654321"  # as Vonage writes it
CITY = "33100000001"  # the parc campaign's number


@pytest.fixture
def served(
    tmp_path: Path,
    fake_twilio: Any,  # the base set-up's SMS provider (tests/fixtures.py): not this channel's
) -> Iterator[tuple[Gateway, FakeVonage, Any]]:
    with FakeVonage() as vonage:
        env = base_env(tmp_path, fake_twilio)
        env.update(
            {
                "GATEWAY_VONAGE_API_KEY": vonage.api_key,
                "GATEWAY_VONAGE_API_SECRET": vonage.api_secret,
                "GATEWAY_VONAGE_SIGNATURE_SECRET": vonage.signature_secret,
                "GATEWAY_VONAGE_API_BASE": vonage.base_url,
                "GATEWAY_VONAGE_FROM_NUMBER": "+33100000007",
            }
        )
        gateway = Gateway(env, tmp_path)
        gateway.start("serve")
        try:
            gateway.wait_healthy()
            yield gateway, vonage, fake_twilio
        finally:
            gateway.stop()


def post(gateway: Gateway, vonage: FakeVonage, payload: object) -> requests.Response:
    request = signed(payload, vonage.signature_secret)
    return requests.post(
        gateway.url + "/webhooks/vonage/inbound",
        data=request["data"],
        headers=request["headers"],
        timeout=10,
    )


def test_a_vonage_sms_becomes_a_contribution_and_its_receipt_goes_back_through_vonage(
    served: tuple[Gateway, FakeVonage, Any],
):
    gateway, vonage, twilio = served
    payload = inbound_sms("PARC Des bancs à l'ombre près du kiosque", RESIDENT, CITY)
    for _ in range(2):  # Vonage's retry is absorbed
        response = post(gateway, vonage, payload)
        assert response.status_code == 200, response.text
    unsigned = requests.post(gateway.url + "/webhooks/vonage/inbound", json=payload, timeout=10)
    assert unsigned.status_code == 401

    (contribution,) = gateway.wait_for_contributions(1)
    assert (contribution["campaign"], contribution["channel"]) == ("parc", "sms")
    assert contribution["text"] == "Des bancs à l'ombre près du kiosque"
    assert RESIDENT not in str(contribution["contributor"])

    reference = str(contribution["reference"])
    deadline = time.monotonic() + 60
    receipts: list[dict[str, object]] = []
    while time.monotonic() < deadline and not receipts:
        receipts = [m for m in vonage.messages if reference in str(m["text"])]
        time.sleep(0.3)
    assert len(receipts) == 1, gateway.logs()
    # Everything the resident got (the notice on first contact, the receipt, the campaign's
    # question) came through Vonage, from the number they wrote to, without its +.
    replies = [m for m in vonage.messages if m["to"] == RESIDENT]
    assert receipts[0] in replies and {m["from"] for m in replies} == {CITY}
    assert all(r["authorised"] for r in vonage.requests)
    assert twilio.messages == []  # not through the first SMS provider of the registry
    assert RESIDENT not in gateway.logs() and "+" + RESIDENT not in gateway.logs()
