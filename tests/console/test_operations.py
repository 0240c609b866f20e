"""The operations page: admins see the services' state and the figures with their sparklines
(the history gateway.metrics samples once a minute); moderators do not see it."""

from __future__ import annotations

import time

from redis import Redis

from gateway import metrics
from gateway.runtime import Runtime
from tests.console import seed
from tests.console.conftest import Browser


def sample(rt: Runtime, at: float) -> bool:
    Redis.from_url(rt.settings.redis_url).delete(metrics.SAMPLED_KEY)  # as a minute later
    return metrics.record_sample(rt, now=at)


async def test_an_admin_sees_the_state_and_the_figures_with_their_history(
    rt: Runtime, admin: Browser
) -> None:
    now = time.time()
    assert sample(rt, now - 7200)
    seed.contribution(rt, "Des bancs")
    assert sample(rt, now - 3600)
    assert not metrics.record_sample(rt)  # the same minute: another process's sample stands
    page = await admin.get("/moderation/admin/operations")
    assert page.status == 200
    parts = {li.attrs["data-part"]: li.attrs["data-ok"] for li in page.dom.select("#readiness li")}
    assert parts == {"database": "yes", "redis": "yes", "workers": "no"}  # no worker in tests
    assert "gateway worker" in page.dom.one("#readiness li[data-part=workers]").text
    rows = {r.attrs["data-series"]: r for r in page.dom.select("#operations-figures tbody tr")}
    assert list(rows) == list(metrics.SERIES)
    backlog = rows["moderation_backlog"]
    assert float(backlog.attrs["data-now"]) == 1
    # Two samples and now: a line of three points, from 0 (before the contribution) to 1.
    (line,) = backlog.select("svg.spark polyline")
    assert len(line.attrs["points"].split()) == 3
    assert backlog.one("svg.spark").attrs["aria-label"] == "de 0.0 à 1.0"
    assert page.dom.one("nav.subnav a[aria-current=page]").attrs["href"] == (
        "/moderation/admin/operations"
    )


async def test_without_history_the_page_says_so(rt: Runtime, admin: Browser) -> None:
    Redis.from_url(rt.settings.redis_url).delete(metrics.HISTORY_KEY)
    page = await admin.get("/moderation/admin/operations")
    assert page.status == 200
    assert "pas encore d’historique" in page.dom.one("#operations-figures").text


async def test_a_moderator_does_not_see_it(moderator: Browser) -> None:
    page = await moderator.get("/moderation/admin/operations")
    assert page.status == 403


def test_the_history_expires_and_keeps_a_day(rt: Runtime) -> None:
    redis = Redis.from_url(rt.settings.redis_url)
    redis.delete(metrics.HISTORY_KEY)
    start = time.time() - 3 * 24 * 3600
    for minute in range(3):
        assert sample(rt, start + 60 * minute)
    assert 0 < redis.ttl(metrics.HISTORY_KEY) <= metrics.KEEP_HISTORY
    assert metrics.history(rt, hours=6) == []  # three days old: not in the last hours
    redis.rpush(metrics.HISTORY_KEY, *["{}"] * (metrics.KEEP_SAMPLES + 10))
    assert sample(rt, time.time())
    assert redis.llen(metrics.HISTORY_KEY) == metrics.KEEP_SAMPLES
    assert len(metrics.history(rt, hours=6)) == 1
