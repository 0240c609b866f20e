"""The API's OpenAPI 3.1 description, as Python data, served at GET /api/v1/openapi.json.

Enumerations come from gateway.moderation so that the description cannot drift from what the
actions accept, and each operation's ``security`` names the scope it needs from
gateway.api.scopes (OpenAPI 3.1 lets a non-OAuth scheme list role names there); tests check
that every route is described and that real responses match the schemas.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api import scopes
from gateway.moderation.accounts import DEFAULT_TOKEN_DAYS
from gateway.moderation.actions import (
    CATEGORIES,
    CHANNELS,
    DECISIONS,
    KINDS,
    MAX_REPLY,
    MAX_TAGS,
    MAX_TEXT,
    STATUSES,
)
from gateway.moderation.answers import ANSWER_STATES, MAX_ANSWER
from gateway.moderation.queries import MAX_PER_PAGE, PER_PAGE

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str, **more: Any) -> Schema:
    return {"type": [kind, "null"], **more}


def array(items: Schema, **more: Any) -> Schema:
    return {"type": "array", "items": items, **more}


def obj(properties: dict[str, Schema], required: list[str] | None = None, **more: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **more}
    if required is not None:
        schema["required"] = required
    return schema


def closed(properties: dict[str, Schema], required: list[str] | None = None, **more: Any) -> Schema:
    """A request body: the API refuses fields it does not know."""
    return obj(properties, required, additionalProperties=False, **more)


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def ok(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": json_content(schema)}


def error(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


TIMESTAMP = {"type": "string", "format": "date-time"}
ID = {"type": "integer", "minimum": 1}
STATUS = {"type": "string", "enum": list(STATUSES)}

CONTRIBUTION: dict[str, Schema] = {
    # The contract (shared/ARCHITECTURE.md, gateway.exports.contribution_dict).
    "id": ID,
    "reference": {"type": "string", "examples": ["PARC-0042"]},
    "campaign": nullable("string", description="The campaign's slug."),
    "channel": {"type": "string", "examples": list(CHANNELS)},
    "status": STATUS,
    "text": {"type": "string", "description": "What the resident wrote, or the transcript."},
    "transcript": nullable("string", description="Null for written contributions."),
    "audio": {"type": "boolean", "description": "True when there is a recording."},
    "kind": {"type": "string", "enum": list(KINDS)},
    "group": nullable("string", description="Who a collective contribution speaks for."),
    "neighbourhood": nullable("string"),
    "category": {"type": ["string", "null"], "enum": [*CATEGORIES, None]},
    "tags": array({"type": "string"}),
    "received_at": TIMESTAMP,
    "contributor": nullable(
        "string",
        description="A pseudonymous id (never an address); null once the resident is forgotten.",
    ),
    "audio_duration": nullable("number", description="Seconds; voice only."),
    "transcription_status": {
        "type": ["string", "null"],
        "enum": ["pending", "done", "failed", None],
    },
    "broadcast_consent": nullable("boolean"),
    # What moderators work with.
    "public_text": nullable("string", description="The anonymised version that is published."),
    "themes": array({"type": "string"}, description="Among the campaign's themes."),
    "decision_reason": nullable("string", description="A rejection's public reason."),
    "moderated_at": nullable("string", format="date-time"),
    "answer_state": {
        "type": ["string", "null"],
        "enum": [*ANSWER_STATES, None],
        "description": "The city's answer: Decidim's states, and done (carried out).",
    },
    "answer_text": nullable("string", description="The city's reasoned answer, in French."),
    "answer_text_en": nullable("string", description="The same answer in English, if given."),
    "answered_at": nullable("string", format="date-time"),
    "group_id": nullable("integer", description="Identical or near-identical texts share a group."),
    "group_size": {"type": "integer", "minimum": 1, "description": "Contributions in the group."},
}
CONTRIBUTION_REQUIRED = list(CONTRIBUTION)

# What a read (open-data) token sees of a published contribution (gateway.api.shapes).
PUBLIC_CONTRIBUTION: dict[str, Schema] = {
    "id": ID,
    "reference": {"type": "string", "examples": ["PARC-0042"]},
    "campaign": nullable("string", description="The campaign's slug."),
    "channel": {"type": "string", "examples": list(CHANNELS)},
    "status": {"type": "string", "enum": ["published"]},
    "text": {
        "type": "string",
        "description": "The public version a moderator approved (anonymised), never what "
        "the resident wrote or said in their own words.",
    },
    "kind": {"type": "string", "enum": list(KINDS)},
    "neighbourhood": nullable("string"),
    "category": {"type": ["string", "null"], "enum": [*CATEGORIES, None]},
    "themes": array({"type": "string"}),
    "tags": array({"type": "string"}),
    "received_at": TIMESTAMP,
    "moderated_at": nullable("string", format="date-time", description="When published."),
    "answer_state": {
        "type": ["string", "null"],
        "enum": [*ANSWER_STATES, None],
        "description": "The city's answer: Decidim's states, and done (carried out).",
    },
    "answer_text": nullable("string", description="The city's reasoned answer, in French."),
    "answer_text_en": nullable("string", description="The same answer in English, if given."),
    "answered_at": nullable("string", format="date-time"),
}

WORD = obj(
    {
        "word": {"type": "string"},
        "start": {"type": "number"},
        "end": {"type": "number"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    ["word", "start", "end", "confidence"],
)

DETAIL: dict[str, Schema] = {
    **CONTRIBUTION,
    "transcript_machine": nullable(
        "string", description="The machine's transcript, kept once a moderator corrects it."
    ),
    "transcript_detail": {
        "oneOf": [
            {"type": "null"},
            obj(
                {
                    "words": array(ref("Word")),
                    "model": nullable("string"),
                    "language": nullable("string"),
                    "duration": nullable("number"),
                },
                ["words", "model", "language", "duration"],
            ),
        ]
    },
    "notices": array(ref("Notice"), description="Messages sent or queued to the resident."),
    "events": array(ref("Event"), description="This contribution's moderation log, newest first."),
}

SCHEMAS: dict[str, Schema] = {
    "Contribution": obj(CONTRIBUTION, CONTRIBUTION_REQUIRED),
    "ContributionDetail": obj(DETAIL, list(DETAIL)),
    "Word": WORD,
    "PublicContribution": obj(
        PUBLIC_CONTRIBUTION,
        list(PUBLIC_CONTRIBUTION),
        description="A published contribution as a read token sees it: no transcript, no "
        "original text, no contributor, recording or conversation.",
    ),
    "PublicContributionList": obj(
        {
            "items": array(ref("PublicContribution")),
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "pages": {"type": "integer", "minimum": 1},
            "total": {"type": "integer", "minimum": 0},
        },
        ["items", "page", "per_page", "pages", "total"],
        description="What a read token lists: published contributions only.",
    ),
    "Notice": obj(
        {
            "id": ID,
            "message_key": nullable("string", examples=["outcome.published"]),
            "status": {"type": "string", "examples": ["queued", "sent", "failed"]},
            "created_at": TIMESTAMP,
            "sent_at": nullable("string", format="date-time"),
        },
        ["id", "message_key", "status", "created_at", "sent_at"],
        description="A message to the resident: what and when, never to whom.",
    ),
    "StatusCounts": obj(
        {name: {"type": "integer", "minimum": 0} for name in (*STATUSES, "all")},
        [*STATUSES, "all"],
    ),
    "ContributionList": obj(
        {
            "items": array(
                {
                    "allOf": [ref("Contribution")],
                    "properties": {
                        "group_matching": {
                            "type": "integer",
                            "description": "grouped=1 only: the group's contributions "
                            "matching the filters.",
                        }
                    },
                }
            ),
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "pages": {"type": "integer", "minimum": 1},
            "total": {
                "type": "integer",
                "description": "Items over every page (groups when grouped=1).",
            },
            "contributions": {"type": "integer", "description": "Contributions matching."},
            "counts": ref("StatusCounts"),
        },
        ["items", "page", "per_page", "pages", "total", "contributions", "counts"],
    ),
    "Group": obj(
        {
            "id": ID,
            "size": {"type": "integer", "minimum": 1},
            "pending": {"type": "integer", "minimum": 0},
            "items": array(ref("Contribution")),
        },
        ["id", "size", "pending", "items"],
    ),
    "Event": obj(
        {
            "id": ID,
            "contribution_id": nullable("integer"),
            "reference": nullable("string"),
            "actor": {
                "type": "string",
                "description": "A moderator's name, or api:<token name>.",
            },
            "action": {
                "type": "string",
                "examples": [
                    *DECISIONS,
                    "classify",
                    "correct_transcript",
                    "anonymise",
                    "reply",
                    "campaign_status",
                ],
            },
            "reason": nullable("string"),
            "before": nullable("object"),
            "after": nullable("object"),
            "at": TIMESTAMP,
        },
        [
            "id",
            "contribution_id",
            "reference",
            "actor",
            "action",
            "reason",
            "before",
            "after",
            "at",
        ],
    ),
    "EventList": obj(
        {
            "items": array(ref("Event")),
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "pages": {"type": "integer", "minimum": 1},
            "total": {"type": "integer", "minimum": 0},
        },
        ["items", "page", "per_page", "pages", "total"],
    ),
    "ActionResult": obj(
        {
            "changed": array(ID, description="Contributions the action changed."),
            "events": array(ref("Event"), description="The log entries it wrote."),
            "notices_queued": {"type": "integer", "minimum": 0},
            "contribution": ref("Contribution"),
            "contributions": array(ref("Contribution")),
            "campaign": ref("Campaign"),
        },
        ["changed", "events", "notices_queued"],
        description="Nothing changed (changed and events empty) when the action was already "
        "done: retrying a request is harmless.",
    ),
    "Campaign": obj(
        {
            "slug": {"type": "string"},
            "title": {"type": "string"},
            "question": {"type": "string"},
            "status": {"type": "string", "enum": ["draft", "open", "closed"]},
            "keywords": array({"type": "string"}),
            "neighbourhoods": array({"type": "string"}),
            "themes": array({"type": "string"}),
            "language": {"type": "string"},
            "reference_prefix": {"type": "string"},
        },
        [
            "slug",
            "title",
            "question",
            "status",
            "keywords",
            "neighbourhoods",
            "themes",
            "language",
            "reference_prefix",
        ],
    ),
    "CampaignList": obj({"items": array(ref("Campaign"))}, ["items"]),
    "Stats": obj(
        {
            "campaign": {"type": "string"},
            "days": {"type": "integer"},
            "per_day": array(
                obj({"date": {"type": "string", "format": "date"}, "count": {"type": "integer"}}),
                description="The last `days` days, in the city's time zone; days without "
                "contributions left out.",
            ),
            "per_channel": array(
                obj({"channel": {"type": "string"}, "count": {"type": "integer"}})
            ),
            "per_category": array(
                obj({"category": nullable("string"), "count": {"type": "integer"}})
            ),
            "per_neighbourhood": array(
                obj({"neighbourhood": nullable("string"), "count": {"type": "integer"}})
            ),
            "per_status": ref("StatusCountsByStatus"),
            "waiting": {"type": "integer", "description": "Pending contributions."},
            "oldest_waiting_seconds": nullable("number"),
            "median_waiting_seconds": nullable("number"),
        },
        [
            "campaign",
            "days",
            "per_day",
            "per_channel",
            "per_category",
            "per_neighbourhood",
            "per_status",
            "waiting",
            "oldest_waiting_seconds",
            "median_waiting_seconds",
        ],
    ),
    "StatusCountsByStatus": obj(
        {name: {"type": "integer", "minimum": 0} for name in STATUSES}, list(STATUSES)
    ),
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {
                        "type": "string",
                        "description": "A refused moderation action's catalogue key "
                        "(console.errors.reason_required) or the API's own code: "
                        "invalid_json, invalid_body, invalid_parameter, unauthorized, "
                        "insufficient_scope, not_found, method_not_allowed, "
                        "payload_too_large.",
                    },
                    "message": {"type": "string", "description": "For developers, in English."},
                    "field": {
                        "type": "string",
                        "description": "The body field or query parameter at fault.",
                    },
                    "params": {"type": "object"},
                },
                ["code", "message"],
            )
        },
        ["error"],
    ),
    # Request bodies.
    "DecisionRequest": closed(
        {
            "action": {"type": "string", "enum": list(DECISIONS)},
            "reason": nullable(
                "string", maxLength=500, description="Required to reject; shown publicly."
            ),
        },
        ["action"],
    ),
    "AnswerRequest": closed(
        {
            "state": {"type": "string", "enum": list(ANSWER_STATES)},
            "text": nullable(
                "string",
                maxLength=MAX_ANSWER,
                description="The reasoned answer, public, in French; required except for "
                "evaluating.",
            ),
            "text_en": nullable("string", maxLength=MAX_ANSWER),
        },
        ["state"],
    ),
    "BulkDecisionRequest": closed(
        {
            "ids": array(ID, minItems=1, maxItems=MAX_PER_PAGE),
            "action": {"type": "string", "enum": list(DECISIONS)},
            "reason": nullable("string", maxLength=500),
        },
        ["ids", "action"],
    ),
    "ClassificationRequest": closed(
        {
            "category": {"type": ["string", "null"], "enum": [*CATEGORIES, "", None]},
            "themes": array({"type": "string"}),
            "tags": array({"type": "string"}, maxItems=MAX_TAGS),
            "neighbourhood": nullable("string"),
            "kind": {"type": "string", "enum": list(KINDS)},
        },
        description="Absent fields stay as they are; null or an empty string clears category "
        "and neighbourhood; themes and tags replace the lists.",
    ),
    "TranscriptRequest": closed(
        {"transcript": {"type": "string", "maxLength": MAX_TEXT}}, ["transcript"]
    ),
    "PublicTextRequest": closed(
        {"public_text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}},
        ["public_text"],
    ),
    "ReplyRequest": closed(
        {"text": {"type": "string", "minLength": 1, "maxLength": MAX_REPLY}}, ["text"]
    ),
    "CampaignStatusRequest": closed(
        {"status": {"type": "string", "enum": ["draft", "open", "closed"]}}, ["status"]
    ),
    "ResidentRequest": closed(
        {
            "channel": {
                "type": "string",
                "enum": ["sms", "voice", "telegram", "email"],
                "description": "The address space: a number covers SMS and calls alike.",
            },
            "address": {
                "type": "string",
                "minLength": 1,
                "maxLength": 320,
                "description": "A phone number (E.164, or French national: 06 12 34 56 78), "
                "a Telegram chat id or an email address. Used to find the person, never stored "
                "nor shown back.",
            },
        },
        ["channel", "address"],
    ),
    "Erasure": obj(
        {
            "erased": obj(
                {
                    name: {"type": "integer", "minimum": 0}
                    for name in (
                        "contributors",
                        "contributions_detached",
                        "messages",
                        "replies",
                        "calls",
                        "files",
                    )
                },
                [
                    "contributors",
                    "contributions_detached",
                    "messages",
                    "replies",
                    "calls",
                    "files",
                ],
            ),
            "known": {
                "type": "boolean",
                "description": "False when nothing of this address was known.",
            },
        },
        ["erased", "known"],
    ),
    "OptOut": obj(
        {"opted_out": {"type": "boolean"}, "rows_changed": {"type": "integer", "minimum": 0}},
        ["opted_out", "rows_changed"],
    ),
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": json_content(ref("Error"))}


RESPONSES: dict[str, Any] = {
    "BadRequest": _error_response(
        "Malformed JSON, a field of the wrong type or unknown, or a refused value."
    ),
    "Unauthorized": {
        **_error_response("No token, or an unknown, revoked or expired one."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "Forbidden": {
        **_error_response(
            "The token's scope is below what this request needs (read < moderate < admin): "
            "code insufficient_scope, or console.errors.admin_only for admin requests. A read "
            "token is also refused the queue filters over non-public data."
        ),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "NotFound": _error_response("No such contribution, group or campaign."),
    "Conflict": _error_response(
        "The action does not apply (not a voice contribution, nothing pending in the group, "
        "a resident who cannot be reached)."
    ),
    "PayloadTooLarge": _error_response("The body is over the server's size limit."),
}


def _param(name: str, where: str, schema: Schema, description: str = "") -> Schema:
    param: Schema = {"name": name, "in": where, "schema": schema}
    if where == "path":
        param["required"] = True
    if description:
        param["description"] = description
    return param


PARAMETERS: dict[str, Any] = {
    "ContributionId": _param("id", "path", ID),
    "GroupId": _param("group_id", "path", ID),
    "Slug": _param("slug", "path", {"type": "string"}),
    "Page": _param("page", "query", {"type": "integer", "minimum": 1, "default": 1}),
}


def _pref(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    return _param(name, "query", schema, description)


FLAG = {"type": "string", "enum": ["1", "0", "true", "false", "yes", "no", "on", "off"]}

QUEUE_PARAMETERS = [
    _query(
        "status",
        {"type": "string", "enum": [*STATUSES, "all"], "default": "pending"},
        "Any other value means every status, as `all`.",
    ),
    _query("campaign", {"type": "string"}, "A campaign's slug; `none` for unassigned."),
    _query("channel", {"type": "string", "enum": list(CHANNELS)}),
    _query("category", {"type": "string", "enum": [*CATEGORIES, "none"]}),
    _query("neighbourhood", {"type": "string"}, "`none` for contributions without one."),
    _query("from", {"type": "string", "format": "date"}, "Received on or after (local date)."),
    _query("to", {"type": "string", "format": "date"}, "Received on or before (local date)."),
    _query("audio", FLAG, "With (1) or without (0) a recording."),
    _query("broadcast", FLAG, "Callers who agreed (1) or not (0) to a radio broadcast."),
    _query("q", {"type": "string", "maxLength": 200}, "Accent- and case-blind; every word."),
    _query("group", ID, "Members of one group."),
    _query("grouped", FLAG, "1: one item per group of identical texts. Default 0."),
    _query("sort", {"type": "string", "enum": ["oldest", "newest"], "default": "oldest"}),
    _pref("Page"),
    _query(
        "per_page",
        {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": PER_PAGE},
    ),
]

COMMON_ERRORS = {"401": error("Unauthorized")}
ACTION_ERRORS = {
    "400": error("BadRequest"),
    "401": error("Unauthorized"),
    "403": error("Forbidden"),
    "404": error("NotFound"),
    "413": error("PayloadTooLarge"),
}
FORBIDDEN = {"403": error("Forbidden")}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": json_content(ref(name))}


def _action(
    summary: str, body: str, *, status: str = "200", errors: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "summary": summary,
        "requestBody": _body(body),
        "responses": {
            status: ok("What changed.", ref("ActionResult")),
            **ACTION_ERRORS,
            **(errors or {}),
        },
    }


def _read(
    summary: str,
    description: str,
    schema: str | Schema,
    *,
    parameters: list[Schema] | None = None,
    errors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary}
    if parameters:
        operation["parameters"] = parameters
    operation["responses"] = {
        "200": ok(description, ref(schema) if isinstance(schema, str) else schema),
        **COMMON_ERRORS,
        **(errors or {}),
    }
    return operation


NOT_FOUND = {"404": error("NotFound")}

PATHS: dict[str, Any] = {
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This description.",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI document."}},
        }
    },
    "/api/v1/contributions": {
        "get": _read(
            "The moderation queue, filtered as in the console; one item per contribution "
            "unless grouped=1. A read token gets published contributions only, in their "
            "public shape, and may filter by status (published only), campaign, channel, "
            "category, neighbourhood, dates, sort and page; any other filter is refused (403).",
            "A page of contributions (PublicContributionList for a read token).",
            {"oneOf": [ref("ContributionList"), ref("PublicContributionList")]},
            parameters=QUEUE_PARAMETERS,
            errors=FORBIDDEN,
        )
    },
    "/api/v1/contributions/{id}": {
        "parameters": [_pref("ContributionId")],
        "get": _read(
            "One contribution with its transcript details, notices and log. A read token "
            "gets a published contribution's public shape, and 404 for any other.",
            "The contribution (PublicContribution for a read token).",
            {"oneOf": [ref("ContributionDetail"), ref("PublicContribution")]},
            errors=NOT_FOUND,
        ),
    },
    "/api/v1/contributions/{id}/decision": {
        "parameters": [_pref("ContributionId")],
        "post": _action(
            "Publish, reject (with a public reason), mark as spam or reopen. Publishing and "
            "rejecting queue the resident's notice.",
            "DecisionRequest",
        ),
    },
    "/api/v1/contributions/{id}/answer": {
        "parameters": [_pref("ContributionId")],
        "post": _action(
            "The city's answer to a published contribution (token scope answer or more). A "
            "change of state tells the resident on their channel, quoting the reference.",
            "AnswerRequest",
            errors={"409": error("Conflict")},
        ),
    },
    "/api/v1/contributions/{id}/classification": {
        "parameters": [_pref("ContributionId")],
        "post": _action(
            "Set category, themes, tags, neighbourhood or kind.", "ClassificationRequest"
        ),
    },
    "/api/v1/contributions/{id}/transcript": {
        "parameters": [_pref("ContributionId")],
        "put": _action(
            "Correct a voice contribution's transcript (the machine's is kept).",
            "TranscriptRequest",
            errors={"409": error("Conflict")},
        ),
    },
    "/api/v1/contributions/{id}/public-text": {
        "parameters": [_pref("ContributionId")],
        "put": _action("Set the anonymised version that is published.", "PublicTextRequest"),
    },
    "/api/v1/contributions/{id}/replies": {
        "parameters": [_pref("ContributionId")],
        "post": _action(
            "Write to the resident through the channel they used.",
            "ReplyRequest",
            status="201",
            errors={"409": error("Conflict")},
        ),
    },
    "/api/v1/decisions": {
        "post": _action(
            "One decision for several contributions, in one transaction: an unknown id "
            "changes nothing.",
            "BulkDecisionRequest",
        )
    },
    "/api/v1/groups/{group_id}": {
        "parameters": [_pref("GroupId")],
        "get": _read(
            "The contributions of a group of identical or near-identical texts.",
            "The group.",
            "Group",
            errors={**NOT_FOUND, **FORBIDDEN},
        ),
    },
    "/api/v1/groups/{group_id}/decision": {
        "parameters": [_pref("GroupId")],
        "post": _action(
            "One decision for every pending contribution of a group; each is logged and each "
            "resident told.",
            "DecisionRequest",
            errors={"409": error("Conflict")},
        ),
    },
    "/api/v1/groups/{group_id}/answer": {
        "parameters": [_pref("GroupId")],
        "post": _action(
            "One answer for every published contribution of a group; each resident told.",
            "AnswerRequest",
            errors={"409": error("Conflict")},
        ),
    },
    "/api/v1/events": {
        "get": _read(
            "The moderation log, newest first.",
            "A page of the log.",
            "EventList",
            parameters=[
                _query("actor", {"type": "string"}, "A moderator's name or api:<token name>."),
                _query("action", {"type": "string"}),
                _query("contribution", ID, "A contribution's id."),
                _pref("Page"),
                _query(
                    "per_page",
                    {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 50},
                ),
            ],
            errors={"400": error("BadRequest"), **FORBIDDEN},
        )
    },
    "/api/v1/campaigns": {
        "get": _read(
            "Every campaign (a read token: not the drafts).", "The campaigns.", "CampaignList"
        )
    },
    "/api/v1/campaigns/{slug}/status": {
        "parameters": [_pref("Slug")],
        "put": _action(
            "Open, close or set a campaign back to draft (admin tokens only).",
            "CampaignStatusRequest",
        ),
    },
    "/api/v1/residents/forget": {
        "post": {
            "summary": "Erase a resident who asks in person, on every channel of their address, "
            "as their own OUBLIER would (admin tokens only). Their contributions stay, "
            "detached and without audio.",
            "requestBody": _body("ResidentRequest"),
            "responses": {
                "200": ok("What was erased (counts).", ref("Erasure")),
                **ACTION_ERRORS,
            },
        }
    },
    "/api/v1/residents/opt-out": {
        "post": {
            "summary": "Send nothing more to a resident, on every channel of their address "
            "(admin tokens only); kept for their next message too.",
            "requestBody": _body("ResidentRequest"),
            "responses": {"200": ok("Done.", ref("OptOut")), **ACTION_ERRORS},
        }
    },
    "/api/v1/campaigns/{slug}/stats": {
        "parameters": [_pref("Slug")],
        "get": _read(
            "The campaign's dashboard; durations in seconds.",
            "The figures.",
            "Stats",
            parameters=[
                _query(
                    "days",
                    {"type": "integer", "minimum": 1, "maximum": 366, "default": 30},
                    "How many days `per_day` covers.",
                )
            ],
            errors={"400": error("BadRequest"), **NOT_FOUND, **FORBIDDEN},
        ),
    },
}


def _declare_scopes(paths: dict[str, Any]) -> None:
    """Each operation's ``security``: the bearer scheme with the scope the route needs."""
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "parameters" or operation.get("security") == []:
                continue
            needed = scopes.needed(method.upper(), path)
            operation["security"] = [{"bearer": [needed]}]


_declare_scopes(PATHS)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Agora gateway API",
        "version": "1.0.0",
        "description": "The moderation console's reads and actions, for the city's other "
        "tools. Never an address: contributors are pseudonymous ids. Errors are "
        '{"error": {"code", "message"}}. Each operation names the token scope it needs '
        "(read: published contributions and public text only; moderate: the console's "
        "moderator rights; admin: also campaign status).",
    },
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from `gateway tokens create NAME --scope "
                "read|moderate|admin [--expires-in DAYS]`. Scopes: read (public data only), "
                "moderate, admin; each includes the ones before it. Every token expires "
                f"(by default after {DEFAULT_TOKEN_DAYS['read']} days for read, "
                f"{DEFAULT_TOKEN_DAYS['moderate']} for moderate and admin) and can be "
                "revoked at once (`gateway tokens revoke NAME`).",
            }
        },
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "parameters": PARAMETERS,
    },
}


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
