from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

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


def make_token(runtime: Runtime, name: str, role: str = "moderator") -> str:
    with runtime.sessions.begin() as session:
        return create_token(session, name, role=role)


@pytest.fixture
def api(client: TestClient[Any, Any], runtime: Runtime) -> Api:
    """A moderator's token, as a city dashboard would hold."""
    return Api(client, make_token(runtime, "dashboard"))


@pytest.fixture
def admin_api(client: TestClient[Any, Any], runtime: Runtime) -> Api:
    return Api(client, make_token(runtime, "ops", role="admin"))
