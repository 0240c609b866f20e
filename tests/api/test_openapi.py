"""The OpenAPI document: complete (every route, every $ref), and true (real responses and the
requests the tests send match its schemas)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from aiohttp.test_utils import TestClient

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.api.openapi import DOCUMENT
from gateway.runtime import Runtime
from tests.api.client import Api, Reply, sms, voice, with_photo
from tests.api.schema import errors, resolve
from tests.deadletter_kit import undeliverable
from tests.speech import spoken as speech

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def parameters(path: str, operation: dict[str, Any]) -> list[dict[str, Any]]:
    listed = [*DOCUMENT["paths"][path].get("parameters", []), *operation.get("parameters", [])]
    return [resolve(DOCUMENT, p["$ref"]) if "$ref" in p else p for p in listed]


def test_every_api_route_is_described_and_every_description_is_a_route(
    client: TestClient[Any, Any],
):
    routes = {
        (resource.canonical, route.method.lower())
        for resource in client.app.router.resources()
        if resource.canonical.startswith("/api/v1")
        for route in resource
        if route.method != "HEAD"
    }
    described = {(path, method) for path, method, _ in operations()}
    assert len(routes) == 31
    assert routes == described


def test_every_ref_resolves_and_every_component_is_used():
    found = set(refs(DOCUMENT))
    for ref in found:
        resolve(DOCUMENT, ref)  # KeyError when it does not
    components = DOCUMENT["components"]
    declared = {
        f"#/components/{kind}/{name}"
        for kind in ("schemas", "responses", "parameters")
        for name in components[kind]
    }
    assert declared - found == set()
    assert set(components["securitySchemes"]) == {"bearer"}
    assert components["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for name in (
        "Contribution",
        "ContributionDetail",
        "Error",
        "ActionResult",
        "Event",
        "Campaign",
        "Stats",
    ):
        assert name in components["schemas"]


def test_every_operation_declares_its_parameters_responses_and_body():
    for path, method, operation in operations():
        declared = {p["name"] for p in parameters(path, operation) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (path, method)
        assert operation.get("summary"), (path, method)
        statuses = set(operation["responses"])
        assert any(s.startswith("2") for s in statuses), (path, method)
        if path != "/api/v1/openapi.json":
            assert "401" in statuses, (path, method)
        assert ("requestBody" in operation) == (method in ("post", "put")), (path, method)


def test_the_checker_finds_what_is_wrong():
    contribution = {"$ref": "#/components/schemas/Contribution"}
    item = {
        "id": 1,
        "reference": "PARC-0001",
        "campaign": "parc",
        "channel": "sms",
        "status": "pending",
        "text": "Des bancs",
        "transcript": None,
        "audio": False,
        "kind": "individual",
        "group": None,
        "neighbourhood": None,
        "category": None,
        "tags": [],
        "received_at": "2025-03-12T17:04:00Z",
        "contributor": "c-abc",
        "audio_duration": None,
        "transcription_status": None,
        "broadcast_consent": None,
        "public_text": None,
        "themes": [],
        "decision_reason": None,
        "moderated_at": None,
        "answer_state": None,
        "answer_text": None,
        "answer_text_en": None,
        "answered_at": None,
        "group_id": 1,
        "group_size": 1,
        "flood": False,
        "awaiting_review": False,
    }
    assert errors(DOCUMENT, contribution, item) == []
    assert errors(DOCUMENT, contribution, {**item, "status": "lost"})
    assert errors(DOCUMENT, contribution, {**item, "id": "1"})
    assert errors(DOCUMENT, contribution, {**item, "tags": [1]})
    assert errors(DOCUMENT, contribution, {**item, "received_at": "yesterday"})
    assert errors(DOCUMENT, contribution, {**item, "phone": "+33612345678"})
    assert errors(DOCUMENT, contribution, {k: v for k, v in item.items() if k != "reference"})


def test_the_checker_reads_a_nullable_model():
    detail = {"anyOf": [{"$ref": "#/components/schemas/Word"}, {"type": "null"}]}
    word = {"word": "fontaine", "start": 0.5, "end": 0.9, "confidence": 0.8}
    assert errors(DOCUMENT, detail, None) == []
    assert errors(DOCUMENT, detail, word) == []
    assert errors(DOCUMENT, detail, {**word, "confidence": 2})
    assert errors(DOCUMENT, detail, "fontaine")


class Checked:
    """Calls the API and checks each request and response against the document."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.seen: set[tuple[str, str, int]] = set()

    async def __call__(
        self,
        method: str,
        template: str,
        body: Any = None,
        status: int = 200,
        *,
        audio: bytes | None = None,
        **values: Any,
    ) -> Reply:
        """``audio``: a file as the body (a recorded answer), under a content type the
        document lists for the operation."""
        path, _, query = template.partition("?")
        operation = DOCUMENT["paths"]["/api/v1" + path][method.lower()]
        if body is not None and status < 400:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert errors(DOCUMENT, schema, body) == [], (template, body)
        headers = None
        if audio is not None:
            assert "audio/*" in operation["requestBody"]["content"], template
            headers = {"Content-Type": "audio/wav"}
        concrete = path.format(**values) + (f"?{query}" if query else "")
        reply = await self.api.call(method, concrete, body, raw=audio, headers=headers)
        assert reply.status == status, (template, reply.text)
        response = operation["responses"][str(status)]
        if "$ref" in response:
            response = resolve(DOCUMENT, response["$ref"])
        schema = response["content"]["application/json"]["schema"]
        assert errors(DOCUMENT, schema, reply.body) == [], (template, reply.body)
        self.seen.add((path, method.lower(), status))
        return reply


async def test_real_responses_match_the_document(
    api: Api, admin_api: Api, runtime: Runtime, fake_twilio: FakeTwilio
):
    call, admin = Checked(api), Checked(admin_api)
    contribution = sms(runtime, "Des bancs près du kiosque", "+33612345678")
    tract = [sms(runtime, "Non au parking", n).id for n in ("+33611111111", "+33622222222")]
    spoken = voice(runtime, "réparer la fontaine")
    cid = contribution.id
    group = contribution.group_id

    await call("GET", "/contributions?status=all")
    await call("GET", "/contributions?grouped=1")
    collected = {"campaign": "parc", "text": "Un banc", "channel": "paper", "place": "mairie"}
    await call("POST", "/contributions", collected, 201)
    await call("POST", "/contributions", {**collected, "channel": "fax"}, 422)
    await call("PUT", "/contributions/{id}/public-text", {"public_text": "Des bancs"}, id=cid)
    with_photo(runtime, cid)
    photo = "/contributions/{id}/attachments/{number}/public"
    await call("PUT", photo, {"public": True}, id=cid, number=1)
    await call(
        "POST",
        "/contributions/{id}/classification",
        {
            "category": "proposal",
            "themes": ["Espaces verts"],
            "tags": ["bancs"],
            "kind": "individual",
        },
        id=cid,
    )
    await call("POST", "/contributions/{id}/replies", {"text": "Merci !"}, 201, id=cid)
    await call("POST", "/contributions/{id}/decision", {"action": "publish"}, id=cid)
    answer = {"state": "accepted", "text": "Des bancs seront posés au printemps."}
    await call("POST", "/contributions/{id}/answer", answer, id=cid)
    spoken_answer = speech("Des bancs seront posés au printemps dans le parc.")
    await call("POST", "/contributions/{id}/answer/audio", audio=spoken_answer, id=cid)
    await call("POST", "/contributions/{id}/answer/audio", None, 422, audio=b"x" * 64, id=cid)
    await call("DELETE", "/contributions/{id}/answer/audio", id=cid)
    await call("PUT", "/contributions/{id}/transcript", {"transcript": "Réparer."}, id=spoken)
    await call("POST", "/decisions", {"ids": [spoken], "action": "reject", "reason": "Doublon"})
    await call("GET", "/contributions/{id}", id=cid)
    await call("GET", "/contributions/{id}", id=spoken)
    await call("GET", "/groups/{group_id}", group_id=tract[0])
    await call("POST", "/groups/{group_id}/decision", {"action": "spam"}, group_id=tract[0])
    await call("GET", "/events?per_page=3")
    await call("GET", "/campaigns")
    await call("GET", "/campaigns/{slug}/stats", slug="parc")
    await admin("PUT", "/campaigns/{slug}/status", {"status": "closed"}, slug="velo")
    quais = {"slug": "quais", "title": "Quais", "keywords": ["QUAIS"], "closes_at": "2027-03-31"}
    await admin("POST", "/campaigns", quais, 201)
    await admin("PUT", "/campaigns/{slug}", {**quais, "title": "Les quais"}, slug="quais")
    await admin("POST", "/campaigns", quais, 409)
    await admin("PUT", "/campaigns/{slug}", {**quais, "keywords": ["PARC"]}, 422, slug="quais")
    synthesis = {"url": "https://ville.example/synthese.pdf", "summary": "Trois priorités."}
    await admin("POST", "/campaigns/{slug}/synthesis", synthesis, slug="parc")
    await admin("POST", "/residents/opt-out", {"channel": "sms", "address": "+33611111111"})
    await admin("POST", "/residents/forget", {"channel": "sms", "address": "+33622222222"})
    failed = undeliverable(runtime, fake_twilio, "+33633333333")
    failed_too = undeliverable(runtime, fake_twilio, "+33644444444", "BUDGET Un potager")
    await admin("GET", "/outbound/failed")
    await admin("POST", "/outbound/{id}/retry", {}, id=failed)
    await admin("POST", "/outbound/{id}/discard", {"reason": "Numéro résilié"}, id=failed_too)
    await admin("POST", "/outbound/{id}/retry", {}, 409, id=failed_too)
    await admin("POST", "/outbound/{id}/discard", {}, 404, id=4242)

    # Refusals are described too.
    await call("POST", "/contributions/{id}/decision", {"action": "reject"}, 400, id=cid)
    await call("GET", "/contributions/{id}", None, 404, id=4242)
    await call("PUT", "/contributions/{id}/transcript", {"transcript": "x"}, 409, id=cid)
    await call("POST", "/groups/{group_id}/decision", {"action": "publish"}, 409, group_id=group)
    await call("POST", "/groups/{group_id}/answer", answer, 409, group_id=tract[0])
    await call(
        "POST", "/groups/{group_id}/answer/audio", None, 409, audio=spoken_answer, group_id=tract[0]
    )
    await call("DELETE", "/groups/{group_id}/answer/audio", group_id=group)
    await call("PUT", "/campaigns/{slug}/status", {"status": "open"}, 403, slug="velo")
    await Checked(Api(api.client, None))("GET", "/campaigns", None, 401)
    big = {"text": "x" * 70_000}
    await call("POST", "/contributions/{id}/replies", big, 413, id=cid)

    described = {(path[len("/api/v1") :], method) for path, method, _ in operations()}
    checked = {(path, method) for path, method, _ in call.seen | admin.seen}
    assert described - checked == {("/openapi.json", "get")}
