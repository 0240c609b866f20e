"""A poison job through real worker processes (issue 16): a reply that Twilio refuses every
time (500 for that one number) stops after its retries (GATEWAY_OUTBOUND_MAX_ATTEMPTS, 3
here), shows in the dead-letter list (``GET /api/v1/outbound/failed``, never with the
address), and the replies to the residents who texted after it go out, once each. Both
set-ups (worker_kit)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.faults.worker_kit import Rig, rig, sms  # noqa: F401 - rig is a fixture

pytestmark = pytest.mark.e2e

POISON = "+33612349999"
AFTER = ["+33612340011", "+33612340012", "+33612340013"]
ATTEMPTS = 3  # GATEWAY_OUTBOUND_MAX_ATTEMPTS in worker_kit


def test_a_send_that_fails_every_time_stops_shows_in_the_dead_letter_list_and_blocks_nothing(
    rig: Rig,  # noqa: F811
):
    rig.fake.refuse(POISON, 500)
    rig.start_worker()
    sms(rig, POISON, "PARC Des bancs")
    rig.wait_until(
        lambda: any(r["form"].get("To") == POISON for r in rig.fake.requests),
        60,
        "the first attempt at the poison reply",
    )
    for number in AFTER:  # queued behind it
        sms(rig, number, "PARC Des arbres")
    rig.wait_until(
        lambda: rig.settled() and all(rig.sent_to(n) for n in AFTER), 120, "every reply settled"
    )
    time.sleep(3)  # a retry beyond the limit, or a doubled reply, would show now
    rows = rig.outbound()
    poisoned = [r for r in rows if r.status == "failed"]
    assert poisoned, rows
    assert all(r.attempts == ATTEMPTS for r in poisoned), poisoned
    assert all("500" in (r.error or "") and POISON not in (r.error or "") for r in poisoned)
    refused = [r for r in rig.fake.requests if r["form"].get("To") == POISON]
    assert len(refused) == ATTEMPTS * len(poisoned), refused  # no attempt beyond the limit
    assert all(r["status"] == 500 for r in refused)
    assert not rig.sent_to(POISON)
    # The others: every reply sent, exactly once.
    sent = [r for r in rows if r.status != "failed"]
    assert all(r.status == "sent" for r in sent), sent
    for number in AFTER:
        seen = rig.sent_to(number)
        assert seen and max(seen.values()) == 1, seen
    assert sum(sum(rig.sent_to(n).values()) for n in AFTER) == len(sent) == len(rig.fake.messages)

    # The dead-letter list shows each poisoned reply, with its reason, never the address.
    response = requests.get(
        f"{rig.gateway.url}/api/v1/outbound/failed",
        headers={"Authorization": f"Bearer {rig.api_token()}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    listed = response.json()
    assert listed["total"] == len(poisoned)
    assert sorted(i["id"] for i in listed["items"]) == sorted(r.id for r in poisoned)
    for item in listed["items"]:
        assert item["attempts"] == ATTEMPTS and "500" in item["reason"]
        assert item["provider"] == "twilio"
    assert POISON not in response.text and POISON.lstrip("+") not in response.text
