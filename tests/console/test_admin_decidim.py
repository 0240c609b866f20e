"""The campaigns page's Decidim column: counts, the last run, and the button that queues a
publication (gateway.publication.decidim_api, workers.jobs.publish_to_decidim)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from gateway.models import Campaign
from gateway.publication import decidim_api
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.console import seed
from tests.console.conftest import Browser
from tests.fakes.decidim_api import FakeDecidim
from tests.helpers import drain

PAGE = "/moderation/admin/campaigns"


@pytest.fixture
def fake_decidim() -> Iterator[FakeDecidim]:
    with FakeDecidim() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, fake_decidim: FakeDecidim) -> Settings:
    return settings.with_overrides(
        decidim_url=fake_decidim.base_url,
        decidim_api_key=fake_decidim.key,
        decidim_api_secret=fake_decidim.secret,
    )


def with_component(rt: Runtime) -> None:
    with rt.sessions.begin() as session:
        session.execute(update(Campaign).where(Campaign.slug == "parc").values(decidim_component=7))


def cell(page, slug: str):  # type: ignore[no-untyped-def]
    return page.dom.one(f"tr[data-campaign={slug}] td.decidim")


async def test_the_button_queues_a_publication_and_the_page_counts_it(
    rt: Runtime, admin: Browser, fake_decidim: FakeDecidim
):
    with_component(rt)
    seed.contribution(rt, "Plus de bancs au parc, près des jeux", status="published")
    failing = seed.contribution(rt, "Des arbres le long du mail. " * 5, status="published")

    page = await admin.get(PAGE)
    parc = cell(page, "parc")
    assert "Publiées dans Decidim : 0 · erreurs : 0" in parc.text
    assert parc.select("form[action='/moderation/admin/campaigns/parc/decidim'] button")
    assert "Aucun composant Decidim" in cell(page, "budget").text
    assert not cell(page, "budget").select("form")

    queued = await admin.post(PAGE + "/parc/decidim", {}, follow=True)
    assert queued.status == 200
    assert queued.flashes() == ["Publication de parc dans Decidim mise en file d’attente."]
    again = await admin.post(PAGE + "/parc/decidim", {}, follow=True)
    assert again.flashes() == ["Une publication de parc dans Decidim attend déjà ou est en cours."]
    assert "Dernière publication : en attente" in cell(again, "parc").text
    assert fake_decidim.requests == []  # queued, not run by the web process

    fake_decidim.components[7].proposal_length = 170  # the second one's body is too long
    await asyncio.get_running_loop().run_in_executor(None, drain, rt)

    done = await admin.get(PAGE)
    parc = cell(done, "parc")
    assert parc.get("data-decidim-published") == "1"
    assert parc.get("data-decidim-errors") == "1"
    assert "Dernière publication : terminée" in parc.text
    assert len(fake_decidim.proposals) == 1
    assert seed.get(rt, failing).decidim_error


async def test_no_button_without_settings_and_a_refusal_if_posted(
    rt: Runtime, admin: Browser, monkeypatch
):
    with_component(rt)
    monkeypatch.setattr(rt, "settings", rt.settings.with_overrides(decidim_url=""))
    page = await admin.get(PAGE)
    assert "n’est pas configuré" in cell(page, "parc").text
    assert not cell(page, "parc").select("form")
    refused = await admin.post(PAGE + "/parc/decidim", {})
    assert refused.status == 409
    assert refused.flashes(error=True)


async def test_moderators_cannot_queue_a_publication(rt: Runtime, moderator: Browser):
    with_component(rt)
    assert (await moderator.post(PAGE + "/parc/decidim", {})).status == 403
    assert decidim_api.last_run(rt, "parc") is None
