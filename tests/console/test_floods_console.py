"""A contribution filed during a flood (gateway.floods), as moderators see it: a badge in the
queue and on its page, and a filter."""

from __future__ import annotations

from tests.console import seed
from tests.console.conftest import Browser
from tests.console.test_queue import references


async def test_flooded_contributions_carry_a_badge_and_can_be_filtered(rt, moderator: Browser):
    calm = seed.contribution(rt, "Des bancs au parc")
    flooded = seed.contribution(rt, "Des bancs au parc encore", flood=True)

    dom = (await moderator.get("/moderation/queue")).dom
    rows = {row.get("data-contribution-id"): row for row in dom.select("table#queue tbody tr")}
    assert rows[str(flooded)].select("span.badge.flood")
    assert rows[str(flooded)].one("span.badge.flood").text == "flot de messages"
    assert not rows[str(calm)].select("span.badge.flood")

    assert references((await moderator.get("/moderation/queue?flood=1")).dom) == ["PARC-0002"]
    assert references((await moderator.get("/moderation/queue?flood=0")).dom) == ["PARC-0001"]
    assert references((await moderator.get("/moderation/queue?flood=x")).dom) == [
        "PARC-0001",
        "PARC-0002",
    ]  # a malformed value is ignored, as every filter's
    form = (await moderator.get("/moderation/queue?flood=1")).dom.one("form#filters")
    assert form.one("select#filter-flood option[selected]").get("value") == "1"

    page = (await moderator.get(f"/moderation/contributions/{flooded}")).dom
    assert page.one("p#flood span.badge.flood")
    assert not (await moderator.get(f"/moderation/contributions/{calm}")).dom.select("p#flood")
