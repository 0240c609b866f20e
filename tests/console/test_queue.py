"""The queue as a moderator uses it: counts, filters, search, pages, groups, bulk decisions."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.runtime import Runtime
from tests.console import seed
from tests.console.conftest import Browser
from tests.console.dom import Node


def references(page_dom: Node) -> list[str]:
    return [row.get("data-reference") or "" for row in page_dom.select("table#queue tbody tr")]


def counts(page_dom: Node) -> dict[str, int]:
    return {
        item.get("data-status") or "": int(item.one(".count").text)
        for item in page_dom.select("#status-counts [data-status]")
    }


def local_noon(rt: Runtime) -> datetime:
    """Today at noon in the city's time zone: the queue's date filters take local days, so
    instants a whole number of days before it fall on the day the test names, whatever the
    hour the test runs (a run at 23:30 UTC is already tomorrow in Paris)."""
    tz = ZoneInfo(rt.settings.timezone)
    return datetime.combine(datetime.now(tz).date(), time(12), tz)


def sample(rt: Runtime) -> dict[str, int]:
    """A small, varied queue."""
    now = local_noon(rt)
    return {
        "ecole": seed.contribution(
            rt,
            "Une école plus verte, avec des arbres",
            neighbourhood="Centre",
            category="proposal",
            received_at=now - timedelta(days=3),
        ),
        "voice": seed.contribution(
            rt,
            "Le parc est trop sombre le soir",
            channel="voice",
            transcript="Le parc est trop sombre le soir",
            transcription_status="done",
            audio=seed.WAV,
            audio_duration=65.0,
            broadcast_consent=True,
            neighbourhood="Parc Nord",
            received_at=now - timedelta(days=2),
        ),
        "velo": seed.contribution(
            rt,
            "Une piste cyclable rue de la Gare",
            campaign="velo",
            category="diagnostic",
            received_at=now - timedelta(days=1),
        ),
        "published": seed.contribution(rt, "Des jeux pour enfants", status="published"),
        "spam": seed.contribution(rt, "Gagnez un iPhone", status="spam"),
    }


async def test_counts_per_status_link_to_their_queue(rt, moderator: Browser):
    sample(rt)
    page = await moderator.get("/moderation/queue")
    dom = page.dom
    assert counts(dom) == {"pending": 3, "published": 1, "rejected": 0, "spam": 1, "all": 5}
    assert references(dom) == ["PARC-0001", "PARC-0002", "VELO-0001"]  # oldest first
    link = dom.one("#status-counts [data-status=published] a").get("href")
    assert references((await moderator.get(link or "")).dom) == ["PARC-0003"]
    everything = (await moderator.get("/moderation/queue?status=all")).dom
    assert len(references(everything)) == 5


async def test_rows_show_what_a_moderator_triages_on(rt, moderator: Browser):
    ids = sample(rt)
    dom = (await moderator.get("/moderation/queue")).dom
    row = dom.one(f"table#queue tr[data-contribution-id={ids['voice']}]")
    assert row.get("data-channel") == "voice" and row.get("data-status") == "pending"
    cells = [cell.text for cell in row.select("td")]
    assert "Téléphone" in cells[2]
    assert (row.one("time").get("datetime") or "").endswith(("+01:00", "+02:00"))  # Paris time
    assert cells[4] == "Rénovation du quartier du Parc"
    assert cells[5] == "Parc Nord"
    assert "trop sombre" in cells[7]
    assert cells[8] == "1 min 05 s"
    assert cells[9] == "En attente"
    link = row.one("a.contribution-link")
    assert (
        link.text == "PARC-0002" and link.get("href") == f"/moderation/contributions/{ids['voice']}"
    )
    assert row.one("input.select-row[type=checkbox][name=ids]").get("value") == str(ids["voice"])


async def test_a_pending_transcription_is_said_so(rt, moderator: Browser):
    seed.contribution(rt, "", channel="voice", transcription_status="pending", audio=seed.WAV)
    dom = (await moderator.get("/moderation/queue")).dom
    assert dom.one("table#queue tbody tr td.col-text").text == "Transcription en cours"


async def test_each_filter_narrows_the_queue(rt, moderator: Browser):
    sample(rt)
    today = local_noon(rt).date()
    cases = {
        "channel=voice": ["PARC-0002"],
        "campaign=velo": ["VELO-0001"],
        "category=proposal": ["PARC-0001"],
        "category=none": ["PARC-0002"],
        "neighbourhood=Centre": ["PARC-0001"],
        "neighbourhood=none": ["VELO-0001"],
        "audio=1": ["PARC-0002"],
        "audio=0": ["PARC-0001", "VELO-0001"],
        "broadcast=1": ["PARC-0002"],
        f"from={today - timedelta(days=1)}": ["VELO-0001"],
        f"to={today - timedelta(days=2)}": ["PARC-0001", "PARC-0002"],
        "status=spam": ["PARC-0004"],
        "sort=newest": ["VELO-0001", "PARC-0002", "PARC-0001"],
    }
    for query, expected in cases.items():
        dom = (await moderator.get(f"/moderation/queue?{query}")).dom
        assert (query, references(dom)) == (query, expected)


async def test_the_filter_form_shows_the_filters_in_use(rt, moderator: Browser):
    sample(rt)
    dom = (await moderator.get("/moderation/queue?channel=voice&audio=1&q=sombre")).dom
    form = dom.one("form#filters")
    assert form.one("select#filter-channel option[selected]").get("value") == "voice"
    assert form.one("select#filter-audio option[selected]").get("value") == "1"
    assert form.one("input#filter-q[type=search]").get("value") == "sombre"
    assert form.one("button#apply-filters")
    assert counts(dom)["all"] == 1  # counts follow the other filters
    for name in ("status", "campaign", "category", "neighbourhood", "broadcast"):
        assert form.one(f"select#filter-{name}"), name
    assert form.one("input#filter-from") and form.one("input#filter-to")


async def test_search_ignores_accents_and_case(rt, moderator: Browser):
    sample(rt)
    for query in ("ecole", "ÉCOLE", "Ecole verte", "PARC-0001"):
        dom = (await moderator.get("/moderation/queue", params={"q": query})).dom
        assert references(dom) == ["PARC-0001"], query
    dom = (await moderator.get("/moderation/queue", params={"q": "sombre"})).dom
    assert references(dom) == ["PARC-0002"]  # the transcript is searched too
    assert references((await moderator.get("/moderation/queue?q=introuvable")).dom) == []


async def test_pages_of_the_queue_follow_each_other(rt, moderator: Browser):
    for text in (
        "Des bancs à l'ombre",
        "Un terrain de pétanque",
        "Fermer le parc la nuit",
        "Plus de poubelles",
        "Une fontaine à eau potable",
    ):
        seed.contribution(rt, text)
    first = await moderator.get("/moderation/queue?per_page=2")
    assert references(first.dom) == ["PARC-0001", "PARC-0002"]
    assert not first.dom.select("nav.pagination a[rel=prev]")
    second = await moderator.get(first.dom.one("nav.pagination a[rel=next]").get("href") or "")
    assert references(second.dom) == ["PARC-0003", "PARC-0004"]
    assert "Page 2 sur 3" in second.dom.one("nav.pagination").text
    third = await moderator.get(second.dom.one("nav.pagination a[rel=next]").get("href") or "")
    assert references(third.dom) == ["PARC-0005"]
    assert not third.dom.select("nav.pagination a[rel=next]")
    back = await moderator.get(third.dom.one("nav.pagination a[rel=prev]").get("href") or "")
    assert references(back.dom) == ["PARC-0003", "PARC-0004"]


async def test_identical_texts_are_one_row_with_a_group_badge(rt, moderator: Browser):
    tract = "Non à la fermeture de la piscine municipale !"
    first = seed.contribution(rt, tract)
    for _ in range(3):
        seed.contribution(rt, tract)
    seed.contribution(rt, "Un autre sujet entièrement, les poubelles")
    dom = (await moderator.get("/moderation/queue")).dom
    assert references(dom) == ["PARC-0001", "PARC-0005"]
    badge = dom.one(f"tr[data-contribution-id={first}] .group-size")
    assert "4" in badge.text
    group = seed.get(rt, first).group_id
    assert badge.get("href") == f"/moderation/groups/{group}"
    assert not dom.select("tr[data-reference=PARC-0005] .group-size")
    ungrouped = (await moderator.get("/moderation/queue?grouped=0")).dom
    assert len(references(ungrouped)) == 5


async def test_bulk_publish_of_a_selection(rt, moderator: Browser):
    ids = sample(rt)
    page = await moderator.post(
        "/moderation/queue/bulk",
        [
            ("ids", str(ids["ecole"])),
            ("ids", str(ids["velo"])),
            ("action", "publish"),
            ("back", "channel=sms"),
        ],
    )
    assert page.status == 303 and page.location == "/moderation/queue?channel=sms"
    assert seed.get(rt, ids["ecole"]).status == "published"
    assert seed.get(rt, ids["velo"]).status == "published"
    assert seed.get(rt, ids["voice"]).status == "pending"
    assert [k for k, _s, _t in seed.notices(rt, ids["ecole"])] == ["outcome.published"]
    shown = await moderator.get(page.location)
    assert shown.flashes() == ["Contributions publiées : 2."]


async def test_bulk_reject_needs_a_reason_and_keeps_the_selection(rt, moderator: Browser):
    ids = sample(rt)
    page = await moderator.post(
        "/moderation/queue/bulk", [("ids", str(ids["ecole"])), ("action", "reject")]
    )
    assert page.status == 400
    assert page.flashes(error=True) == [
        "Un refus demande un motif, qui sera public et envoyé à la personne."
    ]
    assert page.dom.one(f"input.select-row[value={ids['ecole']}]").get("checked") is not None
    assert seed.get(rt, ids["ecole"]).status == "pending"
    page = await moderator.post(
        "/moderation/queue/bulk",
        [("ids", str(ids["ecole"])), ("action", "reject"), ("reason", "Hors sujet")],
    )
    assert page.status == 303
    assert seed.get(rt, ids["ecole"]).status == "rejected"
    assert seed.get(rt, ids["ecole"]).decision_reason == "Hors sujet"


async def test_bulk_with_nothing_selected_says_so(rt, moderator: Browser):
    sample(rt)
    page = await moderator.post("/moderation/queue/bulk", {"action": "spam"})
    assert page.status == 400
    assert page.flashes(error=True) == ["Aucune contribution sélectionnée."]


async def test_select_all_without_javascript(rt, moderator: Browser):
    sample(rt)
    dom = (await moderator.get("/moderation/queue")).dom
    link = dom.one("form#bulk-form a.select-all-link").get("href") or ""
    selected = (await moderator.get(link)).dom.select("input.select-row[checked]")
    assert len(selected) == 3
    form = dom.one("form#bulk-form")
    assert form.one("select#bulk-action") and form.one("#bulk-reason")
    assert form.one("button#bulk-apply")
    assert form.select("table#queue input.select-row")  # the checkboxes belong to the form
