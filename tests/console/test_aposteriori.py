"""Moderation a posteriori in the console: the mode of each campaign, the "to review" tab and
badge, and a review that confirms a publication or withdraws it from the contribution page."""

from __future__ import annotations

from sqlalchemy import select, update

from gateway.models import Campaign, Contribution, OutboundMessage
from gateway.runtime import Runtime
from tests.console import seed
from tests.console.conftest import Browser
from tests.console.test_queue import counts, references


def auto_published(rt: Runtime, text: str) -> int:
    """A contribution as the system publishes it at once in an a posteriori campaign."""
    return seed.contribution(
        rt,
        text,
        status="published",
        public_text=text,
        awaiting_review=True,
        moderated_by="system",
    )


def a_posteriori(rt: Runtime) -> None:
    with rt.sessions.begin() as session:
        session.execute(
            update(Campaign).where(Campaign.slug == "parc").values(moderation_mode="a_posteriori")
        )


async def test_the_review_tab_appears_when_something_awaits_review(rt, moderator: Browser):
    seed.contribution(rt, "Une école plus verte")
    seed.contribution(rt, "Des jeux pour enfants", status="published")
    dom = (await moderator.get("/moderation/queue")).dom
    assert "review" not in counts(dom)  # a city without a posteriori campaigns never sees it

    auto_published(rt, "Des bancs à l'ombre")
    dom = (await moderator.get("/moderation/queue")).dom
    assert counts(dom)["review"] == 1 and counts(dom)["published"] == 2
    link = dom.one("#status-counts [data-status=review] a").get("href") or ""
    review = (await moderator.get(link)).dom
    assert references(review) == ["PARC-0003"]
    assert review.one("table#queue tbody tr .awaiting-review").text == "À relire"
    published = (await moderator.get("/moderation/queue?status=published")).dom
    assert len(published.select("table#queue tbody tr .awaiting-review")) == 1


async def test_the_contribution_page_says_the_mode_and_confirming_keeps_it(rt, moderator: Browser):
    a_posteriori(rt)
    cid = auto_published(rt, "Des bancs à l'ombre")
    page = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    assert page.one("#moderation-mode").get("data-moderation-mode") == "a_posteriori"
    assert "a posteriori" in page.one("#moderation-mode").text
    assert page.first("h1 .awaiting-review") is not None
    assert page.first("#review-help") is not None

    done = await moderator.post(
        f"/moderation/contributions/{cid}/decision", {"action": "publish"}, follow=True
    )
    assert done.status == 200
    again = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    assert again.one("h1 #status").get("data-status") == "published"
    assert again.first("h1 .awaiting-review") is None and again.first("#review-help") is None
    with rt.sessions() as session:
        c = session.get(Contribution, cid)
        assert c is not None and (c.status, c.awaiting_review) == ("published", False)
        notices = session.scalars(
            select(OutboundMessage).where(OutboundMessage.contribution_id == cid)
        ).all()
    assert notices == []  # no second "published" notice


async def test_rejecting_from_the_page_needs_a_reason_and_withdraws_it(rt, moderator: Browser):
    a_posteriori(rt)
    cid = auto_published(rt, "Des bancs à l'ombre")
    refused = await moderator.post(
        f"/moderation/contributions/{cid}/decision", {"action": "reject", "reason": ""}
    )
    assert refused.status == 400
    with rt.sessions() as session:
        c = session.get(Contribution, cid)
        assert c is not None and (c.status, c.awaiting_review) == ("published", True)
    await moderator.post(
        f"/moderation/contributions/{cid}/decision",
        {"action": "reject", "reason": "Propos injurieux"},
        follow=True,
    )
    with rt.sessions() as session:
        c = session.get(Contribution, cid)
        assert c is not None
        assert (c.status, c.awaiting_review, c.decision_reason) == (
            "rejected",
            False,
            "Propos injurieux",
        )
        keys = session.scalars(
            select(OutboundMessage.message_key).where(OutboundMessage.contribution_id == cid)
        ).all()
    assert keys == ["outcome.rejected"]


async def test_the_campaigns_list_shows_each_mode(rt, admin: Browser):
    a_posteriori(rt)
    dom = (await admin.get("/moderation/admin/campaigns")).dom
    modes = {
        row.get("data-campaign"): row.one(".moderation-mode").get("data-moderation-mode")
        for row in dom.select("table#campaigns tbody tr")
    }
    assert modes["parc"] == "a_posteriori" and modes["budget"] == "a_priori"
    assert "publiée dès réception" in dom.one("tr[data-campaign=parc] .moderation-mode").text
