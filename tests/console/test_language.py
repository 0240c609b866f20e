"""French first, English complete: the catalogue, and the switch a moderator makes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from sqlalchemy import select

from gateway import console
from gateway.i18n import _flatten
from gateway.models import Moderator
from gateway.moderation import accounts, actions
from tests.console import seed
from tests.console.conftest import Browser

LOCALES = Path(console.__file__).parent.parent / "locales" / "console"


def keys(language: str) -> dict[str, str]:
    return _flatten(yaml.safe_load((LOCALES / f"{language}.yaml").read_text(encoding="utf-8")))


def test_english_has_every_french_key_with_the_same_placeholders():
    fr, en = keys("fr"), keys("en")
    assert set(fr) == set(en)
    for key, text in fr.items():
        assert set(re.findall(r"{(\w+)", text)) == set(re.findall(r"{(\w+)", en[key])), key


def test_every_refusal_the_actions_can_give_has_a_message():
    sources = Path(actions.__file__).read_text() + Path(accounts.__file__).read_text()
    used = set(re.findall(r'"(console\.[a-z_.]+)"', sources))
    results = ("forgotten", "opted_out", "no_channel", "landline", "no_sender", "withheld")
    used |= {f"console.notice.{r}" for r in (*results, "unverified")}
    used |= {f"console.notice_results.{r}" for r in (*results, "unverified")}
    assert used  # the pattern still finds them
    fr, en = keys("fr"), keys("en")
    assert used <= set(fr) and used <= set(en), used - set(fr)


def test_every_key_the_templates_name_exists():
    templates = Path(console.__file__).parent / "templates"
    fr = keys("fr")
    for template in templates.glob("*.html"):
        for key in re.findall(r"""_\(\s*["'](console\.[a-z_.]*[a-z_])["']""", template.read_text()):
            assert key in fr, (template.name, key)


async def test_switching_to_english_is_remembered(rt, moderator: Browser):
    seed.contribution(rt, "Des bancs", category="proposal")
    page = await moderator.post(
        "/moderation/language",
        {"language": "en"},
        headers={"Referer": str(moderator.client.make_url("/moderation/queue?status=all"))},
    )
    assert page.status == 303 and page.location == "/moderation/queue?status=all"
    with rt.sessions() as session:
        stored = session.scalar(select(Moderator.language).where(Moderator.name == "camille"))
    assert stored == "en"
    shown = await moderator.get(page.location)
    dom = shown.dom
    assert dom.one("html").get("lang") == "en"
    assert shown.flashes() == ["Console language changed."]
    assert dom.one("h1").text == "Moderation queue"
    assert dom.one("#status-counts [data-status=pending] a").text.startswith("Pending")
    assert dom.one("table#queue tbody tr").select("td")[6].text == "Proposal"
    assert "File de modération" not in shown.text
    back = await moderator.post(
        "/moderation/language",
        {"language": "fr"},
        headers={"Referer": "https://evil.example/moderation/log"},
    )
    assert back.location == "/moderation/queue"  # another site's page: not followed
    assert (await moderator.get("/moderation/queue")).dom.one("html").get("lang") == "fr"


async def test_english_pages_render_dates_and_provenance_in_english(rt, moderator: Browser):
    from datetime import UTC, datetime

    cid = seed.contribution(
        rt, "Benches", neighbourhood="Centre", received_at=datetime(2026, 7, 1, 8, 30, tzinfo=UTC)
    )
    await moderator.post("/moderation/language", {"language": "en"})
    dom = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    assert dom.one("#provenance").text == (
        "Received by SMS on 1 July 2026 at 10:30, Centre neighbourhood"
    )
    for path in ("/moderation/log", "/moderation/live", "/moderation/dashboard"):
        assert (await moderator.get(path)).dom.one("html").get("lang") == "en"


async def test_an_unknown_language_is_refused(rt, moderator: Browser):
    page = await moderator.post("/moderation/language", {"language": "de"})
    assert page.status == 400
    with rt.sessions() as session:
        assert session.scalar(select(Moderator.language)) == "fr"


async def test_the_login_page_speaks_english_on_request(anonymous: Browser):
    page = await anonymous.get("/moderation/login?lang=en")
    assert page.dom.one("html").get("lang") == "en"
    assert page.dom.one("label[for=password]").text == "Password"
    assert (await anonymous.get("/moderation/login")).dom.one("html").get("lang") == "fr"
