"""The same message delivered two and three times, at the same moment, to two `gateway serve`
processes sharing the database and Redis (a provider's retry racing its first delivery behind
a load balancer): one contribution, one receipt, on both set-ups. Twilio's MessageSid and
Telegram's update id are the keys."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import requests

from channels.telegram.tests import updates as tu
from channels.telegram.tests.conftest import SECRET
from channels.telegram.tests.fake_api import FakeTelegram
from channels.telegram.webhook import PATH, SECRET_HEADER
from tests.faults.serve_kit import Deliveries, Stack, at_once, exactly_once, residents_messages

pytestmark = pytest.mark.e2e

MESSAGES = 40  # each delivered 2 or 3 times: 100 deliveries


def test_an_sms_delivered_two_and_three_times_at_once_to_two_web_processes_is_filed_once(
    stack: Stack,
):
    stack.start()
    second = stack.another_web_process()
    deliveries = Deliveries(stack)
    messages = residents_messages(MESSAGES, "en double")
    urls = [stack.gateway.url, second]
    for i, message in enumerate(messages):
        times = 2 if i % 2 else 3
        answers = at_once(
            [lambda m=message, u=urls[k % 2]: deliveries.deliver(m, u) for k in range(times)]  # type: ignore[misc]
        )
        assert answers == ["200"] * times, answers  # a duplicate is acknowledged, not refused
    assert sum(deliveries.counts().values()) == MESSAGES // 2 * 5
    exactly_once(stack, messages)


def _telegram_text(update_id: int, chat_id: int, body: str) -> dict[str, Any]:
    update = tu.text(chat_id, body)
    update["update_id"] = update_id
    return update


def test_a_telegram_update_delivered_two_and_three_times_at_once_is_filed_once(
    stack: Stack,
):
    with FakeTelegram() as telegram:
        stack.gateway.env.update(
            {
                "GATEWAY_TELEGRAM_BOT_TOKEN": telegram.token,
                "GATEWAY_TELEGRAM_WEBHOOK_SECRET": SECRET,
                "GATEWAY_TELEGRAM_API_BASE": telegram.base_url,
            }
        )
        stack.start()
        second = stack.another_web_process()
        urls = [stack.gateway.url, second]
        chats = {900000 + i: f"PARC idée télégraphiée {i}" for i in range(20)}
        for i, (chat_id, body) in enumerate(chats.items()):
            update = _telegram_text(700000 + i, chat_id, body)
            times = 2 if i % 2 else 3
            answers = at_once(
                [
                    lambda u=update, url=urls[k % 2]: (
                        requests.post(  # type: ignore[misc]
                            url + PATH, json=u, headers={SECRET_HEADER: SECRET}, timeout=60
                        ).status_code
                    )
                    for k in range(times)
                ]
            )
            assert answers == [200] * times, answers
        expected = sorted(body.removeprefix("PARC ") for body in chats.values())

        def receipts() -> Counter[int]:
            return Counter(
                int(s["chat_id"]) for s in telegram.sent if "PARC-" in str(s.get("text", ""))
            )

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            filed = [c for c in stack.gateway.contributions() if c["channel"] == "telegram"]
            if len(filed) >= len(chats) and len(receipts()) >= len(chats):
                break
            time.sleep(1)
        time.sleep(3)  # a doubled job would show now
        filed = [c for c in stack.gateway.contributions() if c["channel"] == "telegram"]
        assert sorted(str(c["text"]) for c in filed) == expected, stack.gateway.logs()
        assert receipts() == Counter(dict.fromkeys(chats, 1)), stack.gateway.logs()
