"""Bearer tokens: who may call the API, and what a refusal looks like."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.clock import now_utc
from gateway.moderation.accounts import revoke_token
from gateway.runtime import Runtime
from tests.api.client import Api, events, seed, stored
from tests.api.conftest import make_token


def assert_unauthorized(reply: Any) -> None:
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert reply.error == "unauthorized"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/contributions", None),
        ("GET", "/events", None),
        ("GET", "/campaigns", None),
        ("POST", "/decisions", {"ids": [1], "action": "publish"}),
    ],
)
async def test_a_request_without_a_token_is_refused(
    client: TestClient[Any, Any], method: str, path: str, body: Any
):
    assert_unauthorized(await Api(client, None).call(method, path, body))


async def test_a_decision_without_a_token_changes_nothing(
    client: TestClient[Any, Any], runtime: Runtime
):
    contribution_id = seed(runtime, "Des bancs")
    reply = await Api(client, None).post(
        f"/contributions/{contribution_id}/decision", {"action": "publish"}
    )
    assert_unauthorized(reply)
    assert stored(runtime, contribution_id).status == "pending"
    assert events(runtime) == []


@pytest.mark.parametrize(
    "authorization",
    ["Bearer agora_not-a-real-token", "Basic ZGFzaGJvYXJkOnNlY3JldA==", "Bearer ", "agora_x"],
)
async def test_a_wrong_token_is_refused(client: TestClient[Any, Any], authorization: str):
    reply = await Api(client, None).call(
        "GET", "/contributions", headers={"Authorization": authorization}
    )
    assert_unauthorized(reply)


async def test_a_revoked_token_is_refused(client: TestClient[Any, Any], runtime: Runtime):
    api = Api(client, make_token(runtime, "old-script"))
    assert (await api.get("/contributions")).status == 200
    with runtime.sessions.begin() as session:
        assert revoke_token(session, "old-script", now_utc())
    reply = await api.get("/contributions")
    assert_unauthorized(reply)
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]


async def test_the_scheme_is_case_insensitive(client: TestClient[Any, Any], runtime: Runtime):
    token = make_token(runtime, "curl")
    reply = await Api(client, None).call(
        "GET", "/campaigns", headers={"Authorization": f"bearer {token}"}
    )
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"  # no proxy keeps moderation data


async def test_a_moderator_token_cannot_change_a_campaign(api: Api, runtime: Runtime):
    reply = await api.put("/campaigns/parc/status", {"status": "closed"})
    assert reply.status == 403
    assert reply.error == "console.errors.admin_only"
    campaigns = (await api.get("/campaigns")).body["items"]
    assert {c["slug"]: c["status"] for c in campaigns}["parc"] == "open"
    assert events(runtime) == []


async def test_an_admin_token_can(admin_api: Api):
    reply = await admin_api.put("/campaigns/parc/status", {"status": "closed"})
    assert reply.status == 200
    assert reply.body["campaign"]["status"] == "closed"
    (event,) = reply.body["events"]
    assert event["actor"] == "api:ops"
    assert event["after"] == {"campaign": "parc", "status": "closed"}


async def test_the_openapi_document_needs_no_token(client: TestClient[Any, Any]):
    reply = await Api(client, None).get("/openapi.json")
    assert reply.status == 200
    assert reply.body["openapi"].startswith("3.1")


async def test_unknown_paths_and_methods_answer_json_errors(api: Api):
    missing = await api.get("/nothing-here")
    assert (missing.status, missing.error) == (404, "not_found")
    assert (await api.get("/contributions/not-a-number")).status == 404
    wrong = await api.call("DELETE", "/contributions")
    assert (wrong.status, wrong.error) == (405, "method_not_allowed")
    assert "GET" in wrong.headers["Allow"]


async def test_every_api_answer_carries_the_security_headers(
    client: TestClient[Any, Any], api: Api
):
    answers = [
        await api.get("/contributions"),  # a success
        await api.get("/contributions/999999"),  # an error of the API's
        await Api(client, None).get("/contributions"),  # refused: no token
        await api.get("/no-such-endpoint"),  # aiohttp's own 404
    ]
    assert [a.status for a in answers] == [200, 404, 401, 404]
    for answer in answers:
        assert answer.headers["Content-Security-Policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["Cache-Control"] == "no-store"
