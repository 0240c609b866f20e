"""The console under test: the real app (create_app) on the shared settings (SQLite and
PostgreSQL, real Redis), driven like a browser: cookies, CSRF tokens, forms."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from gateway.moderation import accounts
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.conftest import require_tool
from tests.console.dom import Node, parse

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Page:
    status: int
    headers: CIMultiDictProxy[str]
    text: str
    url: str

    @property
    def dom(self) -> Node:
        return parse(self.text)

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def flashes(self, error: bool = False) -> list[str]:
        selector = ".flash.error[role=alert]" if error else ".flash[role=status]"
        return [n.text for n in self.dom.select(selector)]


class Browser:
    """One person's browser: its own cookie jar, and the session's CSRF token once in."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.csrf = ""

    async def _page(self, response: aiohttp.ClientResponse) -> Page:
        body = await response.read()
        text = body.decode("utf-8", "replace")
        page = Page(response.status, response.headers, text, str(response.url))
        found = _CSRF.search(text)
        if found and 'id="logout-form"' in text:
            self.csrf = found.group(1)
        return page

    async def get(self, path: str, *, follow: bool = False, **kwargs: Any) -> Page:
        async with self.client.get(path, allow_redirects=follow, **kwargs) as response:
            return await self._page(response)

    async def post(
        self,
        path: str,
        data: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        *,
        csrf: str | None = None,
        follow: bool = False,
        **kwargs: Any,
    ) -> Page:
        """A form POST with the session's CSRF token (or ``csrf`` instead; "" for none)."""
        token = self.csrf if csrf is None else csrf
        fields = list(data.items()) if isinstance(data, Mapping) else list(data or [])
        if token:
            fields.append(("csrf_token", token))
        async with self.client.post(
            path, data=fields, allow_redirects=follow, **kwargs
        ) as response:
            return await self._page(response)

    async def login(
        self,
        name: str,
        password: str = PASSWORD,
        next_path: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Page:
        """The login form, filled and sent (``headers`` on both requests, e.g. a proxy's)."""
        form = await self.get("/moderation/login", headers=headers)
        token = form.dom.one("form#login-form input[name=csrf_token]").get("value")
        page = await self.post(
            "/moderation/login",
            {"name": name, "password": password, "next": next_path},
            csrf=token or "",
            headers=headers,
        )
        if page.status == 303:
            await self.get("/moderation/queue")  # picks up the session's CSRF token
        return page


@pytest.fixture
async def server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings
) -> TestServer:
    return await aiohttp_server(create_app(settings))


@pytest.fixture
def app(server: TestServer) -> web.Application:
    return server.app


@pytest.fixture
def rt(server: TestServer) -> Runtime:
    """The app's own runtime (same database and Redis as the test's)."""
    return server.app[RUNTIME]


@pytest.fixture
def new_browser(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], server: TestServer
) -> Callable[[], Awaitable[Browser]]:
    async def make() -> Browser:
        # The settings' public URL is https, so session cookies are Secure: the test server
        # (plain http on loopback) is treated as the secure origin it stands for.
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
        return Browser(await aiohttp_client(server, cookie_jar=jar))

    return make


def add_account(rt: Runtime, name: str, role: str = "moderator", language: str = "fr") -> int:
    with rt.sessions.begin() as session:
        return accounts.add_moderator(session, name, PASSWORD, role=role, language=language).id


@pytest.fixture
async def anonymous(new_browser: Callable[[], Awaitable[Browser]]) -> Browser:
    return await new_browser()


@pytest.fixture
async def moderator(rt: Runtime, new_browser: Callable[[], Awaitable[Browser]]) -> Browser:
    add_account(rt, "camille")
    browser = await new_browser()
    page = await browser.login("camille")
    assert page.status == 303, page.text
    return browser


@pytest.fixture
async def admin(rt: Runtime, new_browser: Callable[[], Awaitable[Browser]]) -> Browser:
    add_account(rt, "alex", role="admin")
    browser = await new_browser()
    page = await browser.login("alex")
    assert page.status == 303, page.text
    return browser


@contextlib.asynccontextmanager
async def chromium_tab(
    rt: Runtime,
    server: TestServer,
    name: str,
    role: str = "moderator",
    *,
    lands_on: str = "queue",
    init_script: str | None = None,
) -> AsyncIterator[Any]:
    """A Chromium tab (Debian's, through Playwright) logged in to the console as a new account
    ``name`` with ``role``, on the page the login lands on. The tab carries ``base`` (the
    server's URL), and what it saw: ``dialogs`` (alert, confirm: each recorded, then dismissed
    so that the page never freezes on one), ``console_errors`` and ``page_errors`` (uncaught
    exceptions). ``init_script`` runs in every page before its own scripts."""
    chromium = require_tool("chromium")
    playwright_api = pytest.importorskip("playwright.async_api")
    add_account(rt, name, role=role)
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            tab = await browser.new_page()
            if init_script:
                await tab.add_init_script(init_script)
            tab.dialogs, tab.console_errors, tab.page_errors = [], [], []

            async def on_dialog(dialog: Any) -> None:
                tab.dialogs.append(dialog.message)
                await dialog.dismiss()

            tab.on("dialog", on_dialog)
            tab.on(
                "console",
                lambda m: tab.console_errors.append(m.text) if m.type == "error" else None,
            )
            tab.on("pageerror", lambda error: tab.page_errors.append(str(error)))
            # localhost is a secure context: the session cookie (Secure) is kept over plain http.
            tab.base = f"http://localhost:{server.port}"
            await tab.goto(tab.base + "/moderation/login")
            await tab.fill("input#name", name)
            await tab.fill("input#password", PASSWORD)
            await tab.click("form#login-form button[type=submit]")
            await tab.wait_for_url(f"**/moderation/{lands_on}")
            yield tab
        finally:
            await browser.close()
