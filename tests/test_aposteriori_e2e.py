"""Moderation a posteriori through the app, as a resident, the public and a moderator see it.

A resident texts the Parc campaign (moderated a posteriori) through Twilio's signed webhook; a
worker drains the queue. At once, before any moderator: the receipt says "published", the
public page and the open data show the automatically redacted text (no number, no email), the
recording-free record is marked as not yet reviewed. A moderator's token rejects it through
the API: it leaves the published list and the exports' published rows, stays listed as
rejected with its reason, and the resident is told once, through the fake Twilio. On SQLite
and PostgreSQL, with a real Redis.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.models import Campaign, Contribution, ModerationEvent, OutboundMessage
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from tests.api.client import Api
from tests.api.conftest import make_token
from tests.conftest import TEST_CAMPAIGNS
from tests.console.dom import Node, parse
from tests.helpers import drain, sign, sms_form
from tests.privacy_scan import phone_forms

RESIDENT = "+33698765432"
PARC_NUMBER = "+33100000001"
EMAIL = "jeanne.martin@example.net"
WORDS = "Il faut des bancs ombragés près des jeux"
SMS = f"PARC {WORDS}. Rappelez-moi au 06 98 76 54 32 ou {EMAIL}"
REASON = "Hors sujet : concerne un autre quartier"


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any],
    settings: Settings,
    runtime: Runtime,
    tmp_path: Path,
) -> TestClient[Any, Any]:
    """The app with the test campaigns, Parc's file saying ``moderation: a_posteriori`` (the
    app loads the campaign files when it starts, as `gateway serve` does)."""
    folder = tmp_path / "campaigns"
    shutil.copytree(TEST_CAMPAIGNS, folder)
    parc = folder / "parc.yaml"
    parc.write_text(parc.read_text(encoding="utf-8") + "moderation: a_posteriori\n", "utf-8")
    app = await aiohttp_client(create_app(settings.with_overrides(campaigns_dir=str(folder))))
    with runtime.sessions() as session:
        mode = session.scalar(select(Campaign.moderation_mode).where(Campaign.slug == "parc"))
    assert mode == "a_posteriori"
    return app


async def text_in(client: TestClient[Any, Any], runtime: Runtime, settings: Settings) -> None:
    form = sms_form(SMS, sender=RESIDENT, to=PARC_NUMBER)
    path = "/webhooks/twilio/sms"
    signature = sign(settings.twilio_auth_token, settings.public_url + path, form)
    response = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 200, await response.text()
    drain(runtime)


async def page(client: TestClient[Any, Any], query: str = "") -> tuple[Node, str]:
    response = await client.get(f"/campaigns/parc{query}")
    assert response.status == 200
    html = await response.text()
    return parse(html), html


async def open_data(client: TestClient[Any, Any]) -> tuple[list[dict[str, Any]], str]:
    body = await (await client.get("/campaigns/parc/contributions.json")).text()
    csv_text = await (await client.get("/campaigns/parc/contributions.csv")).text()
    return json.loads(body)["contributions"], csv_text


def texts_to_resident(fake: FakeTwilio) -> list[str]:
    return [m["Body"] for m in fake.messages if m["To"] == RESIDENT]


def private(body: str) -> list[str]:
    return [form for form in [*phone_forms(RESIDENT), EMAIL, "06 98 76"] if form in body]


async def test_published_at_once_then_withdrawn_by_a_moderator(
    client: TestClient[Any, Any], runtime: Runtime, settings: Settings, fake_twilio: FakeTwilio
) -> None:
    await text_in(client, runtime, settings)

    # The resident's receipt says it is published (the neighbourhood question follows).
    fake_twilio.wait_for_messages(2)
    sent = texts_to_resident(fake_twilio)
    assert "publiée" in sent[0] and "PARC-" in sent[0], sent
    with runtime.sessions() as session:
        c = session.scalars(select(Contribution)).one()
        reference, cid = c.reference, c.id
        assert (c.status, c.awaiting_review, c.moderated_by) == ("published", True, "system")
        event = session.scalars(select(ModerationEvent)).one()
        assert (event.actor, event.action) == ("system", "auto_publish")

    # The public sees it at once: the redacted text, nothing personal.
    dom, html = await page(client)
    article = dom.one(f"article#{reference}")
    assert article.attrs["data-outcome"] == "published"
    shown = article.one("blockquote.text").text
    assert WORDS in shown and "[téléphone]" in shown and "[e-mail]" in shown
    assert article.first("p.unreviewed") is not None
    assert dom.one("#moderation-mode").attrs["data-moderation-mode"] == "a_posteriori"
    assert "dès réception" in dom.one("#moderation-mode").text
    english, _ = await page(client, "?lang=en")
    assert "on arrival" in english.one("#moderation-mode").text
    rows, csv_text = await open_data(client)
    assert [(r["reference"], r["outcome"]) for r in rows] == [(reference, "published")]
    assert "[téléphone]" in rows[0]["text"]
    for body in (html, json.dumps(rows, ensure_ascii=False), csv_text):
        assert private(body) == []

    # The moderators' queue lists it as to review; the API token rejects it.
    api = Api(client, make_token(runtime, "moderation"))
    queue = await api.get("/contributions", status="review")
    assert queue.status == 200
    assert [item["reference"] for item in queue.body["items"]] == [reference]
    reply = await api.post(f"/contributions/{cid}/decision", {"action": "reject", "reason": REASON})
    assert reply.status == 200, reply.text
    drain(runtime)
    assert (await api.get("/contributions", status="review")).body["items"] == []

    # Withdrawn from what is published; still listed, as rejected, with its reason.
    dom, _ = await page(client)
    article = dom.one(f"article#{reference}")
    assert article.attrs["data-outcome"] == "rejected"
    assert REASON in article.one("p.rejected").text
    assert article.first("p.unreviewed") is None
    published_only, _ = await page(client, "?state=unanswered")
    assert published_only.first(f"article#{reference}") is None
    rows, csv_text = await open_data(client)
    assert [(r["reference"], r["outcome"], r["rejection_reason"]) for r in rows] == [
        (reference, "rejected", REASON)
    ]
    assert private(csv_text) == []
    parsed = list(csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff")), delimiter=";"))
    assert [r["outcome"] for r in parsed] == ["rejected"]

    # Told once: the receipt, the neighbourhood question, the rejection; never "published" twice.
    fake_twilio.wait_for_messages(3)
    sent = texts_to_resident(fake_twilio)
    rejections = [s for s in sent if REASON in s]
    assert len(rejections) == 1, sent
    with runtime.sessions() as session:
        keys = list(
            session.scalars(
                select(OutboundMessage.message_key).where(OutboundMessage.contribution_id == cid)
            )
        )
    assert keys.count("outcome.rejected") == 1 and "outcome.published" not in keys, keys


async def test_a_moderator_confirms_without_a_second_notice(
    client: TestClient[Any, Any], runtime: Runtime, settings: Settings, fake_twilio: FakeTwilio
) -> None:
    await text_in(client, runtime, settings)
    fake_twilio.wait_for_messages(2)
    before = len(texts_to_resident(fake_twilio))
    with runtime.sessions() as session:
        c = session.scalars(select(Contribution)).one()
        cid, reference, public_text = c.id, c.reference, c.public_text
    api = Api(client, make_token(runtime, "moderation"))
    reply = await api.post(f"/contributions/{cid}/decision", {"action": "publish"})
    assert reply.status == 200, reply.text
    again = await api.post(f"/contributions/{cid}/decision", {"action": "publish"})
    assert again.status == 200
    drain(runtime)

    with runtime.sessions() as session:
        c = session.get(Contribution, cid)
        assert c is not None
        assert (c.status, c.awaiting_review, c.moderated_by) == (
            "published",
            False,
            "api:moderation",
        )
        assert c.public_text == public_text
        actions = list(
            session.scalars(
                select(ModerationEvent.action)
                .where(ModerationEvent.contribution_id == cid)
                .order_by(ModerationEvent.id)
            )
        )
    assert actions == ["auto_publish", "confirm"]  # the double click logged nothing more
    assert len(texts_to_resident(fake_twilio)) == before
    dom, _ = await page(client)
    article = dom.one(f"article#{reference}")
    assert article.attrs["data-outcome"] == "published" and article.first("p.unreviewed") is None
