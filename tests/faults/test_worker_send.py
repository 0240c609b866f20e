"""A worker SIGKILLed in the middle of an outbound send (issue 16): after a new worker starts,
the resident has exactly one copy of each reply, whether Twilio had taken the message before
the worker died (its answer held by the fake) or the request had not reached Twilio yet.

The new worker's recovery (workers.recovery) puts the interrupted send back, marked to be
checked; its next attempt asks Twilio's list of messages (the plugin's ``reconcile`` hook)
and sends only if Twilio does not have it (workers.outbound). Both set-ups (worker_kit)."""

from __future__ import annotations

import time

import pytest

from tests.faults.worker_kit import Rig, rig, sms  # noqa: F401 - rig is a fixture

pytestmark = pytest.mark.e2e

RESIDENT = "+33612340001"
OTHER = "+33612340002"


@pytest.mark.parametrize(
    "accepted", [True, False], ids=["twilio-took-it", "request-not-reached-twilio"]
)
def test_a_worker_killed_mid_send_gives_each_resident_one_reply(rig: Rig, accepted: bool):  # noqa: F811
    worker = rig.start_worker()
    rig.fake.hold_next(accept=accepted, seconds=120)
    sms(rig, RESIDENT, "PARC Des bancs à l'ombre")
    rig.fake.wait_for_held(1, timeout=60)
    # The worker is inside the send: its row is claimed, the provider has (or not) the text.
    (claimed,) = [r for r in rig.outbound() if r.status == "sending"]
    assert len(rig.fake.messages) == (1 if accepted else 0)
    assert rig.kill(worker) == 2  # the worker and the horse running the send
    # Residents keep texting while no worker runs: queued, not lost.
    sms(rig, OTHER, "PARC Une fontaine")
    rig.start_worker()
    rig.wait_until(
        lambda: rig.settled() and len(rig.outbound()) >= 2, 90, "every reply sent or settled"
    )
    time.sleep(3)  # a doubled job or a second send would show now
    rig.assert_each_reply_sent_once([RESIDENT, OTHER])
    row = next(r for r in rig.outbound() if r.id == claimed.id)
    assert row.attempts == 2, row  # the killed attempt, then the one that asked Twilio
    lists = [
        r for r in rig.fake.requests if r["method"] == "GET" and r["path"].endswith("Messages.json")
    ]
    assert len(lists) == 1, lists  # Twilio asked about the interrupted send only
    if accepted:  # found at Twilio: marked sent with the message it had, not sent again
        (taken,) = [m for m in rig.fake.messages if m["To"] == RESIDENT and m["Body"] == row.text]
        assert row.provider_message_id == taken["sid"]
