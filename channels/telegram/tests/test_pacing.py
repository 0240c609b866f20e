"""Outbound pacing on Telegram (gateway.pacing): about one message a second in a chat and
thirty a second in all, as the Bot API FAQ asks, against the fake Bot API metering both and
answering 429 ``retry_after`` as Telegram does. Real Redis, SQLite and PostgreSQL.

Spacing is asserted as a lower bound on the fake's own arrival times, never as a speed."""

from __future__ import annotations

from collections import defaultdict

from channels.telegram.tests.fake_api import FakeTelegram
from gateway.settings import Settings
from tests.helpers import runtime_with
from tests.pacing_kit import drain, gaps, queue_replies, spans, statuses

SLACK = 0.5  # seconds: a request's way from the worker to the fake, at worst


def test_a_burst_to_many_chats_gets_no_429(tg_settings: Settings, fake_telegram: FakeTelegram):
    """40 messages: 30 chats, ten of which get a second message (a receipt, then its
    question)."""
    fake_telegram.limit(per_chat=1.0, overall=30.0)
    runtime = runtime_with(tg_settings, outbound_pacing=True)
    chats = [str(700000 + n) for n in range(30)]
    replies = []
    for n, chat in enumerate(chats):
        replies.append((chat, f"Merci ! Contribution VELO-{n:04d} bien reçue."))
        if n < 10:
            replies.append((chat, "Dans quel quartier ?"))
    try:
        ids = queue_replies(runtime, "telegram", replies)
        drain(runtime, ids, timeout=120)
        assert statuses(runtime, ids) == ["sent"] * 40
    finally:
        runtime.close()
    assert fake_telegram.throttled == 0
    sent = fake_telegram.sent
    assert sorted((str(s["chat_id"]), s["text"]) for s in sent) == sorted(replies)  # once each
    times = fake_telegram.sent_times
    by_chat: dict[str, list[float]] = defaultdict(list)
    for message, at in zip(sent, times, strict=True):
        by_chat[str(message["chat_id"])].append(at)
    # One a second in a chat (the pacer's 1 s, less the slack) ...
    assert all(gap >= 1 - SLACK for chat in chats[:10] for gap in gaps(by_chat[chat]))
    # ... and 25 a second in all (the gateway's default, under Telegram's 30).
    assert spans(times) >= 39 / 25 - SLACK


def test_unpaced_the_fake_refuses_a_burst(tg_settings: Settings, fake_telegram: FakeTelegram):
    """The meter the test above passes is a real one: without pacing the same burst is
    refused with Telegram's 429, and the refused messages are retried, not lost."""
    fake_telegram.limit(per_chat=1.0, overall=30.0)
    runtime = runtime_with(tg_settings, outbound_pacing=False)
    chat = "700001"
    try:
        ids = queue_replies(runtime, "telegram", [(chat, f"message {n}") for n in range(3)])
        drain(runtime, ids, timeout=60)
        assert statuses(runtime, ids) == ["sent"] * 3
    finally:
        runtime.close()
    assert fake_telegram.throttled > 0
    assert sorted(s["text"] for s in fake_telegram.sent) == [f"message {n}" for n in range(3)]
