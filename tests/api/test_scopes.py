"""Token scopes, expiry and public listings: the open-data token reads published
contributions' public text and nothing else, every route says what it needs, and tokens end.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.api import scopes
from gateway.api.openapi import DOCUMENT, ref
from gateway.clock import now_utc
from gateway.models import (
    ApiToken,
    Campaign,
    Contribution,
    Contributor,
    ModerationEvent,
    OutboundMessage,
)
from gateway.moderation import accounts
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from tests.api.client import Api, seed, sms, stored, voice, with_photo
from tests.api.conftest import make_token
from tests.api.schema import errors
from tests.deadletter_kit import undeliverable
from tests.speech import spoken as speech

SAID = "Je m'appelle Marie Dupont, rappelez-moi au 06 12 34 56 78 pour les bancs"
PUBLIC = "Des bancs près du kiosque, svp"
SPOKEN = "Ici Paul Martin du 12 rue des Lilas, il faut réparer la fontaine"
SPOKEN_PUBLIC = "Il faut réparer la fontaine"
PUBLIC_KEYS = {
    "id",
    "reference",
    "campaign",
    "channel",
    "status",
    "text",
    "kind",
    "neighbourhood",
    "category",
    "themes",
    "tags",
    "received_at",
    "moderated_at",
    "answer_state",
    "answer_text",
    "answer_text_en",
    "answered_at",
}


def state(runtime: Runtime) -> dict[str, Any]:
    """Everything an API call could change."""
    with runtime.sessions() as session:
        return {
            "contributions": [
                (
                    c.id,
                    c.status,
                    list(c.tags),
                    c.transcript,
                    c.public_text,
                    c.category,
                    [dict(a) for a in c.attachments or []],
                )
                for c in session.scalars(select(Contribution).order_by(Contribution.id)).unique()
            ],
            "events": session.scalar(select(func.count()).select_from(ModerationEvent)),
            "outbound": session.scalar(select(func.count()).select_from(OutboundMessage)),
            "campaigns": [
                (c.slug, c.status, c.synthesis_url)
                for c in session.scalars(select(Campaign).order_by(Campaign.id))
            ],
            "contributors": [
                (c.id, c.opted_out)
                for c in session.scalars(select(Contributor).order_by(Contributor.id))
            ],
        }


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, resource.canonical.removeprefix(scopes.PREFIX))
        for resource in app.router.resources()
        if resource.canonical.startswith(scopes.PREFIX + "/")
        and resource.canonical != scopes.PREFIX + "/openapi.json"
        for route in resource
        if route.method != "HEAD"
    }


async def call(api: Api, method: str, path: str, body: Any) -> Any:
    """A JSON body, or a file (bytes) as the body with an audio content type."""
    if isinstance(body, bytes):
        return await api.call(method, path, raw=body, headers={"Content-Type": "audio/wav"})
    return await api.call(method, path, body)


def published(runtime: Runtime) -> tuple[int, int, int]:
    """A published SMS and a published voice message, each with a public version written by
    a moderator, and one still pending."""
    text = seed(runtime, SAID, status="published", public_text=PUBLIC, moderated_at=now_utc())
    call = voice(runtime, SPOKEN)
    with runtime.sessions.begin() as session:
        c = session.get(Contribution, call)
        assert c is not None
        c.status, c.public_text, c.moderated_at = "published", SPOKEN_PUBLIC, now_utc()
    pending = seed(runtime, "Secret encore en attente de modération")
    return text, call, pending


def test_every_route_declares_its_scope_and_the_description_says_it(
    client: TestClient[Any, Any],
):
    routes = api_routes(client.app)
    assert routes == set(scopes.NEEDED)
    for (method, path), needed in scopes.NEEDED.items():
        operation = DOCUMENT["paths"][scopes.PREFIX + path][method.lower()]
        assert operation["security"] == [{"bearer": [needed]}], (method, path)
        if needed != accounts.READ:
            assert "403" in operation["responses"], (method, path)
    assert DOCUMENT["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    # The reads a read token may call, and nothing else.
    assert {k for k, v in scopes.NEEDED.items() if v == accounts.READ} == {
        ("GET", "/contributions"),
        ("GET", "/contributions/{id}"),
        ("GET", "/campaigns"),
    }


def test_a_route_without_a_declared_scope_needs_admin():
    assert scopes.needed("GET", "/api/v1/something-new") == accounts.ADMIN
    assert scopes.needed("HEAD", "/api/v1/contributions") == accounts.READ


async def test_a_read_token_is_refused_every_write_and_every_non_public_read(
    client: TestClient[Any, Any], runtime: Runtime, fake_twilio: FakeTwilio
):
    """The token the docs created for open data could publish, reject and write to anyone."""
    reader = Api(client, make_token(runtime, "opendata", scope="read"))
    admin = Api(client, make_token(runtime, "ops", scope="admin"))
    text, _call, _pending = published(runtime)
    resident = sms(runtime, "Il faut plus de bancs", "+33611111111").id
    spoken = voice(runtime, "réparer la fontaine du square")
    ids = {name: seed(runtime, f"Contribution {name}") for name in ("a", "b", "c", "d")}
    with_photo(runtime, ids["c"])
    tract = [
        sms(runtime, "Non au parking sous le parc", n).id for n in ("+33622222222", "+33633333333")
    ]
    group = stored(runtime, tract[0]).group_id
    undelivered = [
        undeliverable(runtime, fake_twilio, n, f"BUDGET Un jardin {n}")
        for n in ("+33644444444", "+33655555555")
    ]
    calls: dict[tuple[str, str], tuple[str, Any]] = {
        ("GET", "/contributions"): ("/contributions", None),
        ("POST", "/contributions"): (
            "/contributions",
            {"campaign": "parc", "text": "Un banc de plus", "channel": "street"},
        ),
        ("GET", "/contributions/{id}"): (f"/contributions/{text}", None),
        ("POST", "/contributions/{id}/decision"): (
            f"/contributions/{ids['a']}/decision",
            {"action": "reject", "reason": "Hors sujet"},
        ),
        ("POST", "/contributions/{id}/classification"): (
            f"/contributions/{ids['b']}/classification",
            {"tags": ["bancs"], "category": "proposal"},
        ),
        ("PUT", "/contributions/{id}/transcript"): (
            f"/contributions/{spoken}/transcript",
            {"transcript": "Réparer la fontaine."},
        ),
        ("PUT", "/contributions/{id}/attachments/{number}/public"): (
            f"/contributions/{ids['c']}/attachments/1/public",
            {"public": True},
        ),
        ("PUT", "/contributions/{id}/public-text"): (
            f"/contributions/{ids['c']}/public-text",
            {"public_text": "Une autre version"},
        ),
        ("POST", "/contributions/{id}/replies"): (
            f"/contributions/{resident}/replies",
            {"text": "Bonjour, ceci est un message de n'importe qui"},
        ),
        ("POST", "/decisions"): ("/decisions", {"ids": [ids["d"]], "action": "publish"}),
        ("POST", "/contributions/{id}/answer"): (
            f"/contributions/{text}/answer",
            {"state": "accepted", "text": "La ville posera des bancs."},
        ),
        ("POST", "/groups/{group_id}/answer"): (
            f"/groups/{stored(runtime, text).group_id}/answer",
            {"state": "done", "text": "Les bancs sont posés."},
        ),
        # The city's answer recorded (bytes: the audio file as the body).
        ("POST", "/contributions/{id}/answer/audio"): (
            f"/contributions/{text}/answer/audio",
            speech("La ville posera des bancs au printemps."),
        ),
        ("DELETE", "/contributions/{id}/answer/audio"): (
            f"/contributions/{text}/answer/audio",
            None,
        ),
        ("POST", "/groups/{group_id}/answer/audio"): (
            f"/groups/{stored(runtime, text).group_id}/answer/audio",
            speech("Bonjour, ici la mairie : les bancs sont posés près des jeux."),
        ),
        ("DELETE", "/groups/{group_id}/answer/audio"): (
            f"/groups/{stored(runtime, text).group_id}/answer/audio",
            None,
        ),
        ("GET", "/groups/{group_id}"): (f"/groups/{group}", None),
        ("POST", "/groups/{group_id}/decision"): (f"/groups/{group}/decision", {"action": "spam"}),
        ("GET", "/events"): ("/events", None),
        ("GET", "/campaigns"): ("/campaigns", None),
        ("PUT", "/campaigns/{slug}/status"): ("/campaigns/parc/status", {"status": "closed"}),
        ("POST", "/campaigns"): ("/campaigns", {"slug": "quais", "title": "Quais"}),
        ("PUT", "/campaigns/{slug}"): ("/campaigns/parc", {"slug": "parc", "title": "Parc"}),
        ("POST", "/campaigns/{slug}/synthesis"): (
            "/campaigns/parc/synthesis",
            {"url": "https://ville.example/synthese.pdf"},
        ),
        ("GET", "/campaigns/{slug}/stats"): ("/campaigns/parc/stats", None),
        ("POST", "/residents/opt-out"): (
            "/residents/opt-out",
            {"channel": "sms", "address": "+33622222222"},
        ),
        ("POST", "/residents/forget"): (
            "/residents/forget",
            {"channel": "sms", "address": "06 11 11 11 11"},
        ),
        ("GET", "/outbound/failed"): ("/outbound/failed", None),
        ("POST", "/outbound/{id}/retry"): (f"/outbound/{undelivered[0]}/retry", {}),
        ("POST", "/outbound/{id}/discard"): (f"/outbound/{undelivered[1]}/discard", {}),
    }
    assert set(calls) == api_routes(client.app)  # a new route must be added to this table
    for (method, template), (path, body) in calls.items():
        needed = scopes.NEEDED[(method, template)]
        before = state(runtime)
        reply = await call(reader, method, path, body)
        if needed == accounts.READ:
            assert reply.status == 200, (method, path, reply.text)
            continue
        assert reply.status == 403, (method, path, reply.text)
        assert reply.error in ("insufficient_scope", "console.errors.admin_only")
        assert f'scope="{needed}"' in reply.headers["WWW-Authenticate"]
        assert state(runtime) == before, (method, path)
        # The same request with a token allowed to make it goes through: the refusal above
        # was the scope's doing, not a request that would have failed anyway.
        allowed = await call(admin, method, path, body)
        assert allowed.status in (200, 201), (method, path, allowed.text)
        if method != "GET":
            assert state(runtime) != before, (method, path)


async def test_a_read_token_lists_published_contributions_with_their_public_text_only(
    read_api: Api, runtime: Runtime
):
    """`?status=published` used to return the resident's own text and transcript."""
    text, call, _pending = published(runtime)
    for query in ({}, {"status": "published"}, {"campaign": "parc", "sort": "newest"}):
        reply = await read_api.get("/contributions", **query)
        assert reply.status == 200, reply.text
        items = {item["id"]: item for item in reply.body["items"]}
        assert set(items) == {text, call}, query
        assert set(reply.body) == {"items", "page", "per_page", "pages", "total"}
        assert reply.body["total"] == 2
        for item in items.values():
            assert set(item) == PUBLIC_KEYS
            assert item["status"] == "published"
        assert items[text]["text"] == PUBLIC and items[call]["text"] == SPOKEN_PUBLIC
        assert errors(DOCUMENT, ref("PublicContributionList"), reply.body) == []
    detail = await read_api.get(f"/contributions/{call}")
    assert detail.status == 200 and set(detail.body) == PUBLIC_KEYS
    assert detail.body["text"] == SPOKEN_PUBLIC
    assert errors(DOCUMENT, ref("PublicContribution"), detail.body) == []
    everything = "".join(read_api.bodies)
    for private in ("Dupont", "06 12 34 56 78", "Paul Martin", "Lilas", "Secret"):
        assert private not in everything
    assert '"transcript"' not in everything and '"contributor"' not in everything


@pytest.mark.parametrize(
    "query",
    [
        {"status": "pending"},
        {"status": "all"},
        {"status": "rejected"},
        {"q": "Dupont"},  # searches the original words: an oracle for what is hidden
        {"grouped": "1"},
        {"group": "1"},
        {"broadcast": "1"},
        {"audio": "1"},
    ],
)
async def test_a_read_token_is_refused_filters_over_non_public_data(
    read_api: Api, runtime: Runtime, query: dict[str, str]
):
    published(runtime)
    reply = await read_api.get("/contributions", **query)
    assert (reply.status, reply.error) == (403, "insufficient_scope")
    assert reply.body["error"]["field"] == next(iter(query))
    assert "Dupont" not in reply.text


async def test_a_read_token_sees_no_unpublished_contribution_and_no_draft_campaign(
    read_api: Api, api: Api, runtime: Runtime
):
    _text, _call, pending = published(runtime)
    assert (await read_api.get(f"/contributions/{pending}")).status == 404
    assert (await read_api.get("/contributions/999999")).status == 404
    slugs = {c["slug"] for c in (await read_api.get("/campaigns")).body["items"]}
    assert "velo" not in slugs and "parc" in slugs  # velo is a draft
    assert "velo" in {c["slug"] for c in (await api.get("/campaigns")).body["items"]}


async def test_a_moderation_token_still_reads_what_moderators_read(api: Api, runtime: Runtime):
    """Moderators work with the resident's own words, as in the console; the public version
    is beside them, named as such."""
    text, call, pending = published(runtime)
    reply = await api.get("/contributions", status="published")
    items = {item["id"]: item for item in reply.body["items"]}
    assert set(items) == {text, call}
    assert items[text]["text"] == SAID and items[text]["public_text"] == PUBLIC
    assert items[call]["transcript"] == SPOKEN
    assert (await api.get(f"/contributions/{pending}")).status == 200


async def test_an_expired_token_is_refused(client: TestClient[Any, Any], runtime: Runtime):
    """Tokens never expired."""
    api = Api(client, make_token(runtime, "season", scope="moderate", days=1))
    assert (await api.get("/contributions")).status == 200
    with runtime.sessions.begin() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.name == "season")
            .values(expires_at=now_utc() - timedelta(seconds=1))
        )
    reply = await api.get("/contributions")
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]


async def test_a_token_made_without_a_scope_can_only_read(
    client: TestClient[Any, Any], runtime: Runtime
):
    """`gateway tokens create opendata`, as the docs wrote it, made a moderator's token."""
    with runtime.sessions.begin() as session:
        token = accounts.create_token(session, "opendata", now=now_utc())
    reader = Api(client, token)
    resident = sms(runtime, "Il faut plus de bancs", "+33611111111").id
    before = state(runtime)
    decided = await reader.post(f"/contributions/{resident}/decision", {"action": "publish"})
    answered = await reader.post(f"/contributions/{resident}/replies", {"text": "Coucou"})
    assert decided.status == answered.status == 403
    assert state(runtime) == before


async def test_an_api_reply_is_under_the_per_resident_cap(
    aiohttp_client: Any, settings: Settings, runtime: Runtime
):
    """Moderator replies bypassed the cap: a token could flood one resident."""
    client = await aiohttp_client(create_app(settings.with_overrides(replies_per_hour=4)))
    api = Api(client, make_token(runtime, "tool", scope="moderate"))
    resident = sms(runtime, "Il faut plus de bancs", "+33611111111").id
    statuses = [
        (await api.post(f"/contributions/{resident}/replies", {"text": f"Message {i}"})).status
        for i in range(6)
    ]
    assert 429 in statuses and statuses.index(429) > 0, statuses
    assert set(statuses[statuses.index(429) :]) == {429}, statuses
    refused = json.loads(api.bodies[-1])
    assert refused["error"]["code"] == "console.notice.withheld"
