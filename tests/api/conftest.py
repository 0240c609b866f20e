from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.clock import now_utc
from gateway.moderation.accounts import create_token
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from tests.api.client import Api


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any], settings: Settings, runtime: Runtime
) -> TestClient[Any, Any]:
    # The test's own runtime (tokens, seeding) works on the same database as the app's.
    return await aiohttp_client(create_app(settings))


def make_token(
    runtime: Runtime, name: str, scope: str = "moderate", days: int | None = None
) -> str:
    with runtime.sessions.begin() as session:
        return create_token(session, name, scope=scope, now=now_utc(), expires_in_days=days)


@pytest.fixture
def api(client: TestClient[Any, Any], runtime: Runtime) -> Api:
    """A moderation token, as the city's own moderation tool would hold."""
    return Api(client, make_token(runtime, "dashboard"))


@pytest.fixture
def admin_api(client: TestClient[Any, Any], runtime: Runtime) -> Api:
    return Api(client, make_token(runtime, "ops", scope="admin"))


@pytest.fixture
def read_api(client: TestClient[Any, Any], runtime: Runtime) -> Api:
    """The open-data token the docs create: scope read."""
    return Api(client, make_token(runtime, "opendata", scope="read"))
