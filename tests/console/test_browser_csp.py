"""The console's Content-Security-Policy in a real browser (Debian's Chromium through
Playwright): every page loads, and its script runs, without one policy violation; an inline
script the policy forbids is caught, so that the check can fail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.console.auth import CONTENT_SECURITY_POLICY
from tests.console import seed
from tests.console.conftest import chromium_tab
from tests.console.test_access import get_pages, seeded

# Runs before any script of every page: records each violation the browser reports.
LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`);
});
"""


@pytest.fixture
async def admin_tab(rt: Any, server: TestServer) -> AsyncIterator[Any]:
    async with chromium_tab(rt, server, "sacha", "admin", init_script=LISTEN) as tab:
        yield tab


async def test_every_console_page_loads_without_a_policy_violation(rt, admin_tab):
    cid, gid, _ = seeded(rt)
    flooded = seed.contribution(rt, "Encore des bancs", flood=True)
    paths = [p for p in get_pages(cid, gid) if not p.endswith("/events")]
    paths += [f"/moderation/contributions/{flooded}", "/moderation/queue?flood=1"]
    for path in paths:
        response = await admin_tab.goto(admin_tab.base + path)
        assert response is not None and response.status == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        await admin_tab.wait_for_load_state("load")
        assert await admin_tab.evaluate("window.__violations") == [], path
    assert admin_tab.console_errors + admin_tab.page_errors == []


async def test_an_inline_script_is_refused_and_reported(rt, admin_tab):
    await admin_tab.goto(admin_tab.base + "/moderation/queue")
    ran = await admin_tab.evaluate(
        """() => new Promise((resolve) => {
          window.__ran = false;
          document.addEventListener("securitypolicyviolation", () => resolve(window.__ran));
          const s = document.createElement("script");
          s.textContent = "window.__ran = true";
          document.body.append(s);
        })"""
    )
    assert ran is False
    violations = await admin_tab.evaluate("window.__violations")
    assert len(violations) == 1 and violations[0].startswith("script-src")
