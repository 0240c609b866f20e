"""The generated OpenAPI document says what the hand-written one said.

tests/api/openapi_before.json is the document gateway/api/openapi.py wrote by hand before
the schemas were generated from pydantic models, with one deliberate change made to both
since: the resident request's ``address`` description says "a chat app's chat id" where it
named a provider (issue 14: the core names no provider), and the operations added since, in
both (a photo's publication: ``PUT /contributions/{id}/attachments/{number}/public``, with the
contribution's ``attachments``), and a contribution's ``flood`` mark with the queue's ``flood``
filter (issue 16, gateway.floods), a contribution's ``awaiting_review`` and a campaign's
``moderation_mode`` and ``closes_at`` (issue 15). Both documents are compared whole, after a
normalisation that removes what may differ without changing what a client is told:

1. every ``$ref`` is replaced by what it names, so that a schema may move into a component
   of its own (pydantic makes one per model: ``QueueItem``, ``TranscriptDetail``...);
2. ``title`` keywords are dropped (pydantic writes them; the generator leaves them out);
3. a nullable schema is written one way: ``anyOf``/``oneOf`` of ``X`` and ``{"type":
   "null"}`` becomes ``X`` with ``"null"`` in its ``type`` (and ``None`` in its ``enum``), as
   ``{"type": [T, "null"]}`` already is;
4. ``allOf`` is merged into the schema around it (its properties and required names join);
5. ``additionalProperties: true`` is dropped (JSON Schema's default);
6. ``required`` is compared as a set;
7. numbers are compared as numbers: ``1`` and ``1.0`` are the same JSON number (pydantic
   before 2.11 writes a float field's bound as ``1.0``).

Everything else must be equal: paths, methods, statuses, summaries, parameters, security,
the error responses, and in every schema its properties, types, required names, enums,
limits, formats, descriptions and examples. The components the old document named must
keep their names and say the same; the new components are listed below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.api import bodies, responses
from gateway.api.openapi import DOCUMENT
from gateway.moderation.actions import STATUSES

BEFORE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "openapi_before.json").read_text(encoding="utf-8")
)
# Components that were inline schemas in the hand-written document.
NEW_SCHEMAS = {
    "QueueItem",  # ContributionList's items (allOf Contribution, with group_matching)
    "TranscriptDetail",  # ContributionDetail.transcript_detail
    "DayCount",  # Stats.per_day's items
    "ChannelCount",
    "CategoryCount",
    "NeighbourhoodCount",
    "ErrorDetail",  # Error.error
    "Erased",  # Erasure.erased
}
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
# Operations added since the hand-written document (path, method), which it could not say:
# compared with nothing; and their models.
NEW_OPERATIONS = {
    ("/api/v1/campaigns", "post"),  # campaigns administered through the API (issue 15)
    ("/api/v1/campaigns/{slug}", "put"),
    ("/api/v1/contributions/{id}/answer/audio", "post"),  # the city's recorded answer
    ("/api/v1/contributions/{id}/answer/audio", "delete"),
    ("/api/v1/groups/{group_id}/answer/audio", "post"),
    ("/api/v1/groups/{group_id}/answer/audio", "delete"),
    ("/api/v1/outbound/failed", "get"),  # the dead-letter list (issue 16)
    ("/api/v1/outbound/{id}/retry", "post"),
    ("/api/v1/outbound/{id}/discard", "post"),
}
NEW_SCHEMAS |= {"CampaignRequest", "CampaignVoice", "CampaignPublication", "CampaignDecidim"}
NEW_SCHEMAS |= {"FailedOutbound", "FailedOutboundList", "OutboundOutcome", "OutboundActionRequest"}


def resolve(document: dict[str, Any], pointer: str) -> Any:
    node: Any = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    return node


def schema(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema, normalised as the module's docstring says."""
    if "$ref" in node:
        return schema(document, resolve(document, node["$ref"]))
    node = {k: v for k, v in node.items() if k != "title"}
    if node.get("additionalProperties") is True:
        del node["additionalProperties"]
    for key in ("anyOf", "oneOf"):
        branches = node.get(key, [])
        if len(branches) == 2 and {"type": "null"} in branches:
            (other,) = [schema(document, b) for b in branches if b != {"type": "null"}]
            rest = {k: v for k, v in node.items() if k != key}
            return schema(document, {**other, **rest, "type": [other["type"], "null"]})
    if "allOf" in node:
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for part in (schema(document, p) for p in node["allOf"]):
            merged["properties"] = {**part.get("properties", {}), **merged.get("properties", {})}
            merged["required"] = [*part.get("required", []), *merged.get("required", [])]
            merged |= {k: v for k, v in part.items() if k not in ("properties", "required")}
        node = merged
    if isinstance(node.get("type"), list) and "enum" in node and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]
    if "required" in node:
        node["required"] = sorted(set(node["required"]))
    for key in ("properties", "patternProperties"):
        if key in node:
            node[key] = {name: schema(document, s) for name, s in node[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            node[key] = schema(document, node[key])
    for key in ("oneOf", "anyOf"):
        if key in node:
            node[key] = [schema(document, s) for s in node[key]]
    return node


def content(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    return {
        media: {**value, "schema": schema(document, value["schema"])}
        for media, value in node.items()
    }


def response(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return response(document, resolve(document, node["$ref"]))
    node = dict(node)
    if "content" in node:
        node["content"] = content(document, node["content"])
    if "headers" in node:
        node["headers"] = {
            name: {**h, "schema": schema(document, h["schema"])}
            for name, h in node["headers"].items()
        }
    return node


def parameter(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return parameter(document, resolve(document, node["$ref"]))
    return {**node, "schema": schema(document, node["schema"])}


def operation(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "parameters" in node:
        node["parameters"] = [parameter(document, p) for p in node["parameters"]]
    if "requestBody" in node:
        body = node["requestBody"]
        node["requestBody"] = {**body, "content": content(document, body["content"])}
    node["responses"] = {s: response(document, r) for s, r in node["responses"].items()}
    return node


def paths(document: dict[str, Any]) -> dict[str, Any]:
    """The document's paths, without the operations added since (NEW_OPERATIONS)."""
    normalised: dict[str, Any] = {}
    for path, item in document["paths"].items():
        kept = {
            key: (
                operation(document, value)
                if key in METHODS
                else [parameter(document, p) for p in value]
            )
            for key, value in item.items()
            if (path, key) not in NEW_OPERATIONS
        }
        if any(key in METHODS for key in kept):
            normalised[path] = kept
    return normalised


def differences(before: Any, after: Any, at: str = "") -> Iterator[str]:
    """Where two JSON values differ, as JSON pointers: for a readable failure."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            here = f"{at}/{key.replace('~', '~0').replace('/', '~1')}"
            if key not in after:
                yield f"{here}: gone"
            elif key not in before:
                yield f"{here}: added"
            else:
                yield from differences(before[key], after[key], here)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from differences(b, a, f"{at}/{index}")
    elif _number(before) and _number(after):
        if before != after:  # 1 and 1.0 are the same JSON number
            yield f"{at}: {before!r} became {after!r}"
    elif before != after or type(before) is not type(after):
        yield f"{at}: {before!r} became {after!r}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_the_same_operations_and_statuses():
    def statuses(document: dict[str, Any]) -> set[tuple[str, str, str]]:
        return {
            (path, method, status)
            for path, item in document["paths"].items()
            for method, op in item.items()
            if method in METHODS and (path, method) not in NEW_OPERATIONS
            for status in op["responses"]
            if (path, method) not in NEW_OPERATIONS
        }

    assert statuses(DOCUMENT) == statuses(BEFORE)
    assert len(statuses(BEFORE)) == 119  # 22 operations


def test_every_path_says_the_same():
    assert list(differences(paths(BEFORE), paths(DOCUMENT))) == []


def test_every_component_keeps_its_name_and_says_the_same():
    old, new = BEFORE["components"], DOCUMENT["components"]
    assert set(new["schemas"]) == set(old["schemas"]) | NEW_SCHEMAS
    for name, before in old["schemas"].items():
        after = new["schemas"][name]
        found = list(differences(schema(BEFORE, before), schema(DOCUMENT, after), name))
        assert found == [], name
    for name in old["responses"]:
        assert response(BEFORE, old["responses"][name]) == response(
            DOCUMENT, new["responses"][name]
        )
    for name in old["parameters"]:
        assert parameter(BEFORE, old["parameters"][name]) == parameter(
            DOCUMENT, new["parameters"][name]
        )
    assert new["securitySchemes"] == old["securitySchemes"]


def test_the_rest_of_the_document_is_the_same():
    outside = ("paths", "components")
    assert {k: v for k, v in DOCUMENT.items() if k not in outside} == {
        k: v for k, v in BEFORE.items() if k not in outside
    }
    assert set(DOCUMENT["components"]) == set(BEFORE["components"])


def test_the_normalisation_sees_a_difference():
    """The comparison is not blind: a changed limit, enum, type or required name shows."""
    before = schema(BEFORE, {"$ref": "#/components/schemas/ReplyRequest"})
    assert before["properties"]["text"]["maxLength"] == 600
    changed = json.loads(json.dumps(BEFORE))
    reply = changed["components"]["schemas"]["ReplyRequest"]
    reply["properties"]["text"]["maxLength"] = 601
    changed["components"]["schemas"]["Campaign"]["properties"]["status"]["enum"].pop()
    changed["components"]["schemas"]["Event"]["properties"]["at"]["type"] = "integer"
    changed["components"]["schemas"]["OptOut"]["required"].pop()
    found = list(differences(paths(BEFORE), paths(changed)))
    assert any("replies/post/requestBody" in d and "maxLength" in d for d in found)
    assert any("status/enum" in d for d in found)
    assert any("/at/type" in d for d in found)
    assert any("opt-out" in d and "required" in d for d in found)


def test_the_count_models_have_the_moderation_statuses():
    assert tuple(responses.StatusCountsByStatus.model_fields) == STATUSES
    assert tuple(responses.StatusCounts.model_fields) == (*STATUSES, "all")


def test_every_request_model_is_documented():
    used = {
        s["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for item in DOCUMENT["paths"].values()
        for method, s in item.items()
        if method in METHODS
        and "requestBody" in s
        and "application/json" in s["requestBody"]["content"]  # not a file's upload
    }
    declared = {
        name
        for name, value in vars(bodies).items()
        if isinstance(value, type)
        and issubclass(value, bodies.Request)
        and value is not bodies.Request
        and not issubclass(value, bodies.Part)  # inside a body, not one
    }
    assert used == declared
