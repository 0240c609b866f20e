"""The group, log, dashboard and administration pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from gateway.models import Campaign, ModerationEvent, Moderator
from tests.console import seed
from tests.console.conftest import Browser, add_account

TRACT = "Non à la fermeture de la piscine municipale !"


async def test_a_group_lists_its_members_and_is_decided_at_once(rt, moderator: Browser):
    person = seed.contributor(rt, "+33611111111")
    first = seed.contribution(rt, TRACT, person=person)
    second = seed.contribution(rt, TRACT, person=person)  # the same resident, twice
    third = seed.contribution(rt, TRACT.upper())
    seed.contribution(rt, "Autre chose : les horaires du marché")
    group = seed.get(rt, first).group_id
    assert group == seed.get(rt, third).group_id
    page = await moderator.get(f"/moderation/groups/{group}")
    dom = page.dom
    assert dom.one("main").get("data-group-id") == str(group)
    rows = dom.select("table#group-members tr[data-contribution-id]")
    assert [r.get("data-contribution-id") for r in rows] == [str(first), str(second), str(third)]
    assert "Contributions : 3 · personnes : 2 · en attente : 3" in dom.one("p.summary").text
    assert dom.one("form#group-decision-form button[name=action][value=publish]")

    refused = await moderator.post(f"/moderation/groups/{group}/decision", {"action": "reject"})
    assert refused.status == 400 and refused.flashes(error=True)
    page = await moderator.post(
        f"/moderation/groups/{group}/decision", {"action": "reject", "reason": "Pétition en double"}
    )
    assert page.status == 303 and page.location == f"/moderation/groups/{group}"
    assert {seed.get(rt, i).status for i in (first, second, third)} == {"rejected"}
    assert [k for k, _s, _t in seed.notices(rt, third)] == ["outcome.rejected"]
    shown = await moderator.get(page.location)
    assert shown.flashes() == ["Contributions refusées : 3."]
    again = await moderator.post(f"/moderation/groups/{group}/decision", {"action": "spam"})
    assert again.status == 409
    assert again.flashes(error=True) == ["Aucune contribution en attente dans ce groupe."]
    assert (await moderator.get("/moderation/groups/987654")).status == 404


async def test_the_log_shows_who_did_what_when_newest_first(rt, moderator: Browser):
    cid = seed.contribution(rt, "Des bancs")
    await moderator.post(
        f"/moderation/contributions/{cid}/classify",
        {"category": "question", "kind": "individual", "tags": "", "neighbourhood": ""},
    )
    await moderator.post(
        f"/moderation/contributions/{cid}/decision", {"action": "reject", "reason": "Doublon"}
    )
    dom = (await moderator.get("/moderation/log")).dom
    rows = dom.select("table#log tbody tr")
    assert [r.get("data-action") for r in rows] == ["reject", "classify"]
    assert {r.get("data-reference") for r in rows} == {"PARC-0001"}
    cells = [c.text for c in rows[0].select("td")]
    assert cells[1] == "camille" and cells[2] == "Refus" and cells[3] == "PARC-0001"
    assert "Motif : Doublon" in cells[4]
    assert "Statut : En attente → Refusée" in cells[4]
    assert "Avis à la personne : en file d’attente" in cells[4]
    assert "Catégorie : — → Question" in rows[1].text
    only = (await moderator.get("/moderation/log?action=classify")).dom
    assert [r.get("data-action") for r in only.select("table#log tbody tr")] == ["classify"]


async def test_the_log_is_paginated_newest_first(rt, moderator: Browser):
    cid = seed.contribution(rt, "Des bancs")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with rt.sessions.begin() as session:
        for n in range(55):
            session.add(
                ModerationEvent(
                    contribution_id=cid,
                    actor=f"m{n:02d}",
                    action="classify",
                    before={"tags": []},
                    after={"tags": [f"t{n}"]},
                    at=start + timedelta(minutes=n),
                )
            )
    first = (await moderator.get("/moderation/log")).dom
    actors = [r.select("td")[1].text for r in first.select("table#log tbody tr")]
    assert len(actors) == 50 and actors[0] == "m54" and actors[-1] == "m05"
    assert not first.select("nav.pagination a[rel=prev]")
    second = (await moderator.get(first.one("nav.pagination a[rel=next]").get("href") or "")).dom
    actors = [r.select("td")[1].text for r in second.select("table#log tbody tr")]
    assert actors == ["m04", "m03", "m02", "m01", "m00"]
    assert not second.select("nav.pagination a[rel=next]")
    mine = (await moderator.get("/moderation/log?actor=m07")).dom
    assert [r.select("td")[1].text for r in mine.select("table#log tbody tr")] == ["m07"]


async def test_the_dashboard_counts_and_charts(rt, moderator: Browser):
    now = datetime.now(UTC)
    seed.contribution(rt, "Un", neighbourhood="Centre", received_at=now - timedelta(hours=30))
    seed.contribution(rt, "Deux", channel="voice", received_at=now - timedelta(hours=2))
    seed.contribution(rt, "Trois", status="published", category="proposal")
    seed.contribution(rt, "Quatre", campaign="velo", received_at=now - timedelta(days=3))
    dom = (await moderator.get("/moderation/dashboard")).dom
    assert dom.one("#waiting-count").text == "3"
    assert dom.one("#oldest-waiting").text.startswith("3 j")
    figures = dom.select("figure.chart")
    assert len(figures) == 5
    for figure in figures:
        assert figure.one("svg[role=img]") and figure.one("figcaption").text
        assert figure.select("details table.chart-data")
    channel = dom.one("figure#chart-channel")
    table = {r.one("th").text: r.one("td").text for r in channel.select("tbody tr")}
    assert table == {"SMS": "3", "Téléphone": "1"}
    assert "SMS: 3" in channel.one("svg desc").text
    neighbourhood = dom.one("figure#chart-neighbourhood")
    assert "Sans quartier" in neighbourhood.text and "Centre" in neighbourhood.text
    parc = (await moderator.get("/moderation/dashboard?campaign=parc")).dom
    assert parc.one("select#dashboard-campaign option[selected]").get("value") == "parc"
    assert parc.one("#waiting-count").text == "2"
    assert parc.one("#oldest-waiting").text.startswith("1 j 6 h")


async def test_admin_adds_and_deactivates_accounts(rt, admin: Browser):
    page = await admin.post(
        "/moderation/admin/accounts",
        {"name": "sam", "password": "0123456789abc", "role": "moderator", "language": "en"},
    )
    assert page.status == 303
    dom = (await admin.get(page.location)).dom
    assert dom.select(".flash[role=status]")[0].text == "Compte sam créé."
    row = dom.one("table#accounts tr[data-name=sam]")
    assert row.get("data-active") == "1" and "English" in row.text
    refused = await admin.post(
        "/moderation/admin/accounts", {"name": "sam b", "password": "court", "role": "admin"}
    )
    assert refused.status == 400
    assert refused.flashes(error=True) == [
        "Un identifiant fait de 1 à 100 caractères, sans espace."
    ]
    assert refused.dom.one("input#account-name").get("value") == "sam b"
    short = await admin.post("/moderation/admin/accounts", {"name": "lou", "password": "court"})
    assert short.flashes(error=True) == ["Le mot de passe doit faire au moins 10 caractères."]
    with rt.sessions() as session:
        sam = session.scalar(select(Moderator).where(Moderator.name == "sam"))
        me = session.scalar(select(Moderator).where(Moderator.name == "alex"))
        assert sam is not None and me is not None and sam.language == "en"
    await admin.post(f"/moderation/admin/accounts/{sam.id}/active", {"active": "0"})
    dom = (await admin.get("/moderation/admin/accounts")).dom
    assert dom.one("table#accounts tr[data-name=sam]").get("data-active") == "0"
    itself = await admin.post(f"/moderation/admin/accounts/{me.id}/active", {"active": "0"})
    assert itself.status == 409
    assert (await admin.get("/moderation/queue")).status == 200


async def test_admin_changes_a_campaign_status(rt, admin: Browser):
    dom = (await admin.get("/moderation/admin/campaigns")).dom
    assert dom.one("table#campaigns tr[data-campaign=parc]").get("data-status") == "open"
    page = await admin.post("/moderation/admin/campaigns/parc/status", {"status": "closed"})
    assert page.status == 303
    with rt.sessions() as session:
        assert session.scalar(select(Campaign.status).where(Campaign.slug == "parc")) == "closed"
    log = (await admin.get("/moderation/log")).dom
    assert log.one("table#log tr[data-action=campaign_status]").select("td")[1].text == "alex"
    bad = await admin.post("/moderation/admin/campaigns/parc/status", {"status": "archived"})
    assert bad.status == 400 and bad.flashes(error=True) == ["Statut inconnu."]
    missing = await admin.post("/moderation/admin/campaigns/nope/status", {"status": "open"})
    assert missing.status == 404


async def test_navigation_on_every_page(rt, admin: Browser, moderator: Browser):
    add_account(rt, "extra")
    for browser, admin_link in ((admin, True), (moderator, False)):
        dom = (await browser.get("/moderation/log")).dom
        nav = dom.one("nav#main-nav")
        links = {a.get("href") for a in nav.select("a")}
        assert {
            "/moderation/queue",
            "/moderation/live",
            "/moderation/dashboard",
            "/moderation/log",
        } <= links
        assert ("/moderation/admin/accounts" in links) is admin_link
        assert nav.one("a[aria-current=page]").get("href") == "/moderation/log"
        assert dom.one("form#logout-form button[type=submit]")
        assert dom.one("a.skip-link").get("href") == "#main"
    home = await admin.get("/moderation/")
    assert home.status == 302 and home.location == "/moderation/queue"


async def test_the_log_shows_only_the_fields_that_changed(rt, moderator: Browser):
    kept = seed.contribution(rt, "Des bancs, appelez le 06 12 34 56 78")
    await moderator.post(
        f"/moderation/contributions/{kept}/public-text", {"public_text": "Des bancs"}
    )
    await moderator.post(f"/moderation/contributions/{kept}/decision", {"action": "publish"})
    advert = seed.contribution(rt, "Achetez des montres")
    await moderator.post(
        f"/moderation/contributions/{advert}/decision", {"action": "reject", "reason": "Pub"}
    )
    rows = (await moderator.get("/moderation/log")).dom.select("table#log tbody tr")
    assert [r.get("data-action") for r in rows] == ["reject", "publish", "anonymise"]
    reject, publish, anonymise = (r.select("td")[4] for r in rows)
    # A reject leaves "no public version" as it was: no "— → —" line for it.
    assert [li.text for li in reject.select("ul.changes li")] == [
        "Statut : En attente → Refusée",
        "Avis à la personne : en file d’attente",
    ]
    # Publishing keeps the public version written before: not a change either.
    assert "Version publique" not in publish.text
    assert "Statut : En attente → Publiée" in publish.text
    assert anonymise.one("ul.changes li").text == "Version publique : — → Des bancs"
    for row in rows:
        for li in row.select("ul.changes li"):
            assert "— → —" not in li.text
    history = (await moderator.get(f"/moderation/contributions/{advert}")).dom
    entry = history.one("#history li[data-action=reject]")
    assert "Version publique" not in entry.text and "— → —" not in entry.text
    assert "Statut : En attente → Refusée" in entry.text
