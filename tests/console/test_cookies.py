"""The console's cookies (session, login form's CSRF token, flash messages): HttpOnly and
SameSite=Lax always, Secure when PUBLIC_URL is https and only then (a gateway on plain http
in a small town's office must still keep its session)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.console.conftest import Browser, add_account


def attributes(page_headers: Any, name: str) -> dict[str, str]:
    cookie = next(h for h in page_headers.getall("Set-Cookie") if h.startswith(f"{name}="))
    parts = [part.strip() for part in cookie.split(";")[1:]]
    return {p.split("=", 1)[0].lower(): ([*p.split("=", 1), ""])[1] for p in parts}


@pytest.mark.parametrize("public_url", ["https://agora.example.org", "http://192.0.2.10:8080"])
async def test_every_console_cookie_is_http_only_same_site_and_secure_behind_https(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    settings: Settings,
    public_url: str,
):
    server = await aiohttp_server(create_app(settings.with_overrides(public_url=public_url)))
    add_account(server.app[RUNTIME], "camille")
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
    browser = Browser(await aiohttp_client(server, cookie_jar=jar))
    form = await browser.get("/moderation/login")
    login = await browser.login("camille")
    assert login.status == 303
    logout = await browser.post("/moderation/logout", {})
    assert logout.status == 303
    secure = public_url.startswith("https")
    for headers, name in [
        (form.headers, "agora_login_csrf"),
        (login.headers, "agora_session"),
        (logout.headers, "agora_flash"),
    ]:
        found = attributes(headers, name)
        assert "httponly" in found, name
        assert found["samesite"] == "Lax", name
        assert found["path"] == "/moderation/", name
        assert ("secure" in found) is secure, name
