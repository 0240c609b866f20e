"""The Telegram plugin's kit for the registry-driven harness (tests/channel_kit.py,
tests/test_channel_contract.py): its webhook is authenticated by the secret token Telegram
sends in X-Telegram-Bot-Api-Secret-Token (the one given to setWebhook) and refused with 403;
replies go out through the fake Bot API (channels/telegram/tests/fake_api.py), choices as an
inline keyboard."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from channels.telegram.tests.fake_api import FakeTelegram
from channels.telegram.webhook import SECRET_HEADER
from gateway.settings import Settings
from tests.channel_kit import (
    ChannelKit,
    Fixture,
    Gateway,
    Refused,
    Request,
    Signing,
    load_fixtures,
    post,
)

SECRET = "kit-webhook-secret_0123456789"
FORGED = "forged-webhook-secret_0123456789"  # well-formed, not the one set


class TelegramBench:
    def __init__(self, fake: FakeTelegram, settings: Settings) -> None:
        self.fake = fake
        self.settings = settings

    def sign(self, request: Request, signing: Signing) -> Request:
        if signing is Signing.MISSING:
            return request
        return request.with_headers(
            **{SECRET_HEADER: SECRET if signing is Signing.VALID else FORGED}
        )

    async def deliver(self, gateway: Gateway, request: Request) -> int:
        return await post(gateway, request)

    def replies(self) -> list[Any]:
        return list(self.fake.sent)

    def check_reply(self, fixture: Fixture) -> None:
        chat = fixture.request.json["message"]["chat"]["id"]
        sent = self.fake.sent
        assert sent and {s["chat_id"] for s in sent} == {chat}
        keyboards = [(s.get("reply_markup") or {}).get("inline_keyboard") or [] for s in sent]
        buttons = [b for rows in keyboards for row in rows for b in row]
        assert buttons, f"no inline keyboard in {sent}"
        assert all(b["text"] and b["callback_data"] for b in buttons)


@contextmanager
def open_bench(base: Settings) -> Iterator[TelegramBench]:
    with FakeTelegram() as fake:
        yield TelegramBench(
            fake,
            base.with_overrides(
                telegram_bot_token=fake.token,
                telegram_webhook_secret=SECRET,
                telegram_api_base=fake.base_url,
            ),
        )


def writes(fixture: Fixture, text: str, n: int) -> Request:
    update = copy.deepcopy(fixture.request.json)
    update["update_id"] += n
    update["message"]["message_id"] += n
    update["message"]["text"] = text
    body = json.dumps(update).encode()
    return Request(fixture.request.content_type, body, fixture.request.path, json=update)


KIT = ChannelKit(
    plugin="telegram",
    fixtures=load_fixtures(Path(__file__).resolve().parent.parent / "fixtures"),
    refusal=Refused(403),
    contribution="text",  # PARC ...: filed at once
    question="start",  # /start: the welcome, the open campaigns as buttons
    open=open_bench,
    writes=writes,
    reply_text=lambda sent: str(sent["text"]),
)
