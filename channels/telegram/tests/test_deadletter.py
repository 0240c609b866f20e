"""Telegram's refusals and the dead-letter list (gateway.moderation.deadletter), with the fake
Bot API: 429s with retry_after until the attempts run out, then a retry from the list that
goes out once; a bot blocked by the resident (403) fails, opts them out, and is not retried."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from channels.telegram import updates
from channels.telegram.tests import updates as tg
from channels.telegram.tests.conftest import CHAT, outbound_rows
from channels.telegram.tests.fake_api import FakeTelegram
from gateway import ingest
from gateway.clock import now_utc
from gateway.models import OutboundMessage
from gateway.moderation import deadletter
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError
from gateway.runtime import Runtime
from tests.helpers import drain
from workers.sweeper import sweep

ADMIN = Actor(name="alice", role="admin", scope="admin")


def write(runtime: Runtime, update_: dict[str, Any]) -> None:
    message = updates.parse(update_).message
    assert message is not None
    ingest.store(runtime, [message])
    drain(runtime)


def time_passes(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.status == "queued")
            .values(next_attempt_at=now_utc() - timedelta(seconds=1))
        )
    sweep(runtime, only_due_outbound=True)
    drain(runtime)


def test_429s_until_the_attempts_run_out_then_a_retry_from_the_list(
    tg_runtime: Runtime, fake_telegram: FakeTelegram
):
    attempts = tg_runtime.settings.outbound_max_attempts
    fake_telegram.fail_next("sendMessage", status=429, retry_after=30, times=100)
    write(tg_runtime, tg.text(CHAT, "BUDGET un skatepark"))
    first = outbound_rows(tg_runtime)[0]
    assert first.next_attempt_at is not None  # Telegram's 30 s, not the 2 s backoff
    assert first.next_attempt_at - first.created_at > timedelta(seconds=25)
    for _ in range(attempts + 1):
        time_passes(tg_runtime)
    fake_telegram.reset()  # Telegram lets the bot send again
    with tg_runtime.sessions() as session:
        listed = deadletter.failed_messages(session)
    (item,) = [m for m in listed if m.id == first.id]
    assert item.attempts == attempts and item.channel == "telegram"
    assert item.reason and "429" in item.reason and str(CHAT) not in item.reason
    assert fake_telegram.sent == []
    assert deadletter.retry(tg_runtime, first.id, ADMIN).changed
    assert not deadletter.retry(tg_runtime, first.id, ADMIN).changed
    drain(tg_runtime)
    resent = fake_telegram.sent
    assert [m["text"] for m in resent] == [first.text]
    assert {m["chat_id"] for m in resent} == {CHAT}


def test_a_blocked_bot_fails_opts_out_and_is_not_retried(
    tg_runtime: Runtime, fake_telegram: FakeTelegram
):
    fake_telegram.fail_next("sendMessage", status=403, times=5)
    write(tg_runtime, tg.text(CHAT, "BUDGET un jardin partagé"))
    first = outbound_rows(tg_runtime)[0]
    assert first.status == "failed"
    before = len(fake_telegram.sent)
    with pytest.raises(ActionError) as refused:
        deadletter.retry(tg_runtime, first.id, ADMIN)
    assert refused.value.key == "console.outbound.errors.opted_out"
    drain(tg_runtime)
    assert fake_telegram.sent[before:] == []
