"""Telegram tests: the gateway against a local fake Bot API server
(channels.telegram.tests.fake_api), with real Redis, SQLite and PostgreSQL. Updates are built by
channels.telegram.tests.updates in the Bot API's own shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.telegram.tests.fake_api import FakeTelegram
from channels.telegram.webhook import PATH, SECRET_HEADER
from gateway.models import OutboundMessage
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from tests.helpers import runtime_with

SECRET = "webhook-secret-for-tests_0123456789"
CHAT = 424242  # a resident's private chat (its id is the user's id)


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def tg_settings(settings: Settings, fake_telegram: FakeTelegram) -> Settings:
    return settings.with_overrides(
        telegram_bot_token=fake_telegram.token,
        telegram_webhook_secret=SECRET,
        telegram_api_base=fake_telegram.base_url,
    )


@pytest.fixture
def tg_runtime(tg_settings: Settings) -> Iterator[Runtime]:
    rt = runtime_with(tg_settings)
    yield rt
    rt.close()


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any], tg_settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(tg_settings))


async def post_update(
    client: TestClient[Any, Any], update: Any, secret: str | None = SECRET
) -> Any:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return await client.post(PATH, json=update, headers=headers)


def outbound_rows(runtime: Runtime) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))
