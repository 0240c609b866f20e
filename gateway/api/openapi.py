"""The API's OpenAPI 3.1 description, served at GET /api/v1/openapi.json.

Generated: the schemas from the request and response models (gateway.api.bodies,
gateway.api.responses) by pydantic, with gateway.api.fields.DocumentSchema; the operations
from the table below (summary, body, answer, query parameters, refusals), keyed as
gateway.api.scopes.NEEDED is, whose scope each operation's ``security`` names (OpenAPI 3.1
lets a non-OAuth scheme list role names there). Tests check that every route is described,
that real requests and responses match the schemas, and that the document is the one the
hand-written description was (tests/api/openapi_before.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import models_json_schema

from gateway.api import bodies, scopes
from gateway.api import responses as r
from gateway.api.fields import REF_TEMPLATE, DocumentSchema, Id, Request, Stated
from gateway.moderation.accounts import DEFAULT_TOKEN_DAYS
from gateway.moderation.actions import CATEGORIES, CHANNELS, STATUSES
from gateway.moderation.queries import MAX_PER_PAGE, PER_PAGE

Schema = dict[str, Any]


def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


# -- parameters: a name, a type (its schema is pydantic's), a default, what it means ---------


@dataclass(frozen=True)
class Param:
    name: str
    type: Any
    description: str = ""
    default: Any = None
    where: str = "query"

    def described(self) -> Schema:
        schema = TypeAdapter(self.type).json_schema(
            ref_template=REF_TEMPLATE, schema_generator=DocumentSchema
        )
        if self.default is not None:
            schema["default"] = self.default
        param: Schema = {"name": self.name, "in": self.where, "schema": schema}
        if self.where == "path":
            param["required"] = True
        if self.description:
            param["description"] = self.description
        return param


PerPage = Annotated[int, Field(ge=1, le=MAX_PER_PAGE)]
Flag = Literal["1", "0", "true", "false", "yes", "no", "on", "off"]

# Shared parameters (components), by name; a path's own are named by its template.
PARAMETERS = {
    "ContributionId": Param("id", Id, where="path"),
    "GroupId": Param("group_id", Id, where="path"),
    "AttachmentNumber": Param("number", Annotated[int, Field(ge=1, le=1000)], where="path"),
    "Slug": Param("slug", str, where="path"),
    "Page": Param("page", Annotated[int, Field(ge=1)], default=1),
}
PATH_PARAMETERS = {
    "id": "ContributionId",
    "group_id": "GroupId",
    "slug": "Slug",
    "number": "AttachmentNumber",
}

# The queue's filters (gateway.moderation.queries.QueueFilter.from_params).
QUEUE_PARAMETERS: tuple[Param | str, ...] = (
    Param(
        "status",
        Annotated[str, Stated(enum=[*STATUSES, "all"])],
        "Any other value means every status, as `all`.",
        default="pending",
    ),
    Param("campaign", str, "A campaign's slug; `none` for unassigned."),
    Param("channel", Annotated[str, Stated(enum=list(CHANNELS))]),
    Param("category", Annotated[str, Stated(enum=[*CATEGORIES, "none"])]),
    Param("neighbourhood", str, "`none` for contributions without one."),
    Param("from", date, "Received on or after (local date)."),
    Param("to", date, "Received on or before (local date)."),
    Param("audio", Flag, "With (1) or without (0) a recording."),
    Param("broadcast", Flag, "Callers who agreed (1) or not (0) to a radio broadcast."),
    Param("flood", Flag, "Filed while its sender was (1) or was not (0) over the flood limit."),
    Param("q", Annotated[str, Field(max_length=200)], "Accent- and case-blind; every word."),
    Param("group", Id, "Members of one group."),
    Param("grouped", Flag, "1: one item per group of identical texts. Default 0."),
    Param("sort", Literal["oldest", "newest"], default="oldest"),
    "Page",
    Param("per_page", PerPage, default=PER_PAGE),
)
EVENT_PARAMETERS: tuple[Param | str, ...] = (
    Param("actor", str, "A moderator's name or api:<token name>."),
    Param("action", str),
    Param("contribution", Id, "A contribution's id."),
    "Page",
    Param("per_page", PerPage, default=bodies.EVENTS_PER_PAGE),
)
STATS_PARAMETERS: tuple[Param | str, ...] = (
    Param(
        "days",
        Annotated[int, Field(ge=1, le=bodies.MAX_DASHBOARD_DAYS)],
        "How many days `per_day` covers.",
        default=bodies.DASHBOARD_DAYS,
    ),
)

# -- refusals: each status's shared response ------------------------------------------------

_CHALLENGED = {"WWW-Authenticate": {"schema": {"type": "string"}}}
REFUSALS: dict[int, tuple[str, str, dict[str, Any] | None]] = {
    400: (
        "BadRequest",
        "Malformed JSON, a field of the wrong type or unknown, or a refused value.",
        None,
    ),
    401: ("Unauthorized", "No token, or an unknown, revoked or expired one.", _CHALLENGED),
    403: (
        "Forbidden",
        "The token's scope is below what this request needs (read < moderate < admin): "
        "code insufficient_scope, or console.errors.admin_only for admin requests. A read "
        "token is also refused the queue filters over non-public data.",
        _CHALLENGED,
    ),
    404: ("NotFound", "No such contribution, group or campaign.", None),
    409: (
        "Conflict",
        "The action does not apply (not a voice contribution, nothing pending in the group, "
        "a resident who cannot be reached).",
        None,
    ),
    413: ("PayloadTooLarge", "The body is over the server's size limit.", None),
    422: (
        "UnprocessableContent",
        "A value refused by the checks the console's forms share. A contribution: code "
        "invalid_contribution, params.fields naming every field at fault with the "
        "catalogue key of the reason (console.collect.errors.*). A campaign that a campaign "
        "file's rules refuse (a keyword another campaign has, a number not in E.164...): "
        "code campaign.<rule>, field the key at fault. A recording refused: "
        "unreadable, not audio, too long or silent (the code says which).",
        None,
    ),
}
# Every request with a body may be malformed, refused, too large or about nothing; a read
# needs a token only, and says what else it may answer.
BODY_REFUSALS = (400, 401, 403, 404, 413)
READ_REFUSALS = (401,)

# A recorded answer's audio (gateway.recorded_answers): the file as the body, with its own
# content type, or a form's ``audio`` file (and ``language``).
_AUDIO_FILE: Schema = {"type": "string", "format": "binary"}
UPLOAD_CONTENT: Schema = {
    "audio/*": {"schema": _AUDIO_FILE},
    "application/octet-stream": {"schema": _AUDIO_FILE},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["audio"],
            "properties": {
                "audio": _AUDIO_FILE,
                "language": {"type": "string", "enum": ["fr", "en"], "default": "fr"},
            },
        }
    },
}
RECORDING_LANGUAGE = Param(
    "language",
    Literal["fr", "en"],
    "The recording's language; callers hear the one in their language, or the only one.",
    default="fr",
)

# -- operations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    summary: str
    # The answer's model; several: one of them (by the token's scope).
    answer: type[BaseModel] | tuple[type[BaseModel], ...]
    # The answer's description.
    answered: str = "What changed."
    body: type[Request] | None = None
    status: int = 200
    parameters: tuple[Param | str, ...] = ()
    # Refusals besides the usual ones (BODY_REFUSALS with a body, READ_REFUSALS without).
    refusals: tuple[int, ...] = ()
    # A body that is a file, not JSON (a recorded answer's audio): said so, with its form.
    upload: bool = False


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/contributions"): Operation(
        "The moderation queue, filtered as in the console; one item per contribution "
        "unless grouped=1. A read token gets published contributions only, in their "
        "public shape, and may filter by status (published only), campaign, channel, "
        "category, neighbourhood, dates, sort and page; any other filter is refused (403).",
        (r.ContributionList, r.PublicContributionList),
        "A page of contributions (PublicContributionList for a read token).",
        parameters=QUEUE_PARAMETERS,
        refusals=(403,),
    ),
    ("POST", "/contributions"): Operation(
        "File a contribution an agent collected in the street, on paper or at a meeting "
        "(token scope collect, moderate or admin). With a contact, the resident gets the "
        "receipt on its channel, and later the outcome. A retry with the same "
        "Idempotency-Key answers 200 with what the first request filed.",
        r.CollectedContribution,
        "The contribution filed (201), or filed before under this Idempotency-Key (200).",
        body=bodies.CollectedContributionRequest,
        status=201,
        parameters=(
            Param(
                "Idempotency-Key",
                Annotated[str, Field(min_length=1, max_length=200)],
                "A key the client chooses per contribution: sent again, nothing is filed twice.",
                where="header",
            ),
        ),
        refusals=(422,),
    ),
    ("GET", "/contributions/{id}"): Operation(
        "One contribution with its transcript details, notices and log. A read token "
        "gets a published contribution's public shape, and 404 for any other.",
        (r.ContributionDetail, r.PublicContribution),
        "The contribution (PublicContribution for a read token).",
        refusals=(404,),
    ),
    ("POST", "/contributions/{id}/decision"): Operation(
        "Publish, reject (with a public reason), mark as spam or reopen. Publishing and "
        "rejecting queue the resident's notice.",
        r.ActionResult,
        body=bodies.DecisionRequest,
    ),
    ("POST", "/contributions/{id}/answer"): Operation(
        "The city's answer to a published contribution (token scope answer or more). A "
        "change of state tells the resident on their channel, quoting the reference.",
        r.ActionResult,
        body=bodies.AnswerRequest,
        refusals=(409,),
    ),
    ("POST", "/contributions/{id}/answer/audio"): Operation(
        "Record the city's answer (an elected official or an agent reading it), played to "
        "callers who follow the contribution by phone or are called back, instead of the "
        "text said by text to speech. Any audio up to 10 MB and 3 minutes; replaces the one "
        "in that language. Taken off when the answer changes. 409 without an answer; 413 "
        "too large; 422 unreadable, too long or silent.",
        r.ActionResult,
        upload=True,
        parameters=(RECORDING_LANGUAGE,),
        refusals=(409, 422),
    ),
    ("DELETE", "/contributions/{id}/answer/audio"): Operation(
        "Remove the recorded answer in that language (its file is deleted).",
        r.ActionResult,
        parameters=(RECORDING_LANGUAGE,),
        refusals=(403, 404),
    ),
    ("POST", "/contributions/{id}/classification"): Operation(
        "Set category, themes, tags, neighbourhood or kind.",
        r.ActionResult,
        body=bodies.ClassificationRequest,
    ),
    ("PUT", "/contributions/{id}/transcript"): Operation(
        "Correct a voice contribution's transcript (the machine's is kept).",
        r.ActionResult,
        body=bodies.TranscriptRequest,
        refusals=(409,),
    ),
    ("PUT", "/contributions/{id}/public-text"): Operation(
        "Set the anonymised version that is published.",
        r.ActionResult,
        body=bodies.PublicTextRequest,
    ),
    ("PUT", "/contributions/{id}/attachments/{number}/public"): Operation(
        "Publish a photo the resident sent (off by default), after checking it for faces and "
        "number plates, or withdraw it; logged. It is public only while the contribution is "
        "published. 409 for an attachment that is not a photo.",
        r.ActionResult,
        body=bodies.PhotoPublicRequest,
        refusals=(409,),
    ),
    ("POST", "/contributions/{id}/replies"): Operation(
        "Write to the resident through the channel they used.",
        r.ActionResult,
        body=bodies.ReplyRequest,
        status=201,
        refusals=(409,),
    ),
    ("POST", "/decisions"): Operation(
        "One decision for several contributions, in one transaction: an unknown id "
        "changes nothing.",
        r.ActionResult,
        body=bodies.BulkDecisionRequest,
    ),
    ("GET", "/groups/{group_id}"): Operation(
        "The contributions of a group of identical or near-identical texts.",
        r.Group,
        "The group.",
        refusals=(404, 403),
    ),
    ("POST", "/groups/{group_id}/decision"): Operation(
        "One decision for every pending contribution of a group; each is logged and each "
        "resident told.",
        r.ActionResult,
        body=bodies.DecisionRequest,
        refusals=(409,),
    ),
    ("POST", "/groups/{group_id}/answer"): Operation(
        "One answer for every published contribution of a group; each resident told.",
        r.ActionResult,
        body=bodies.AnswerRequest,
        refusals=(409,),
    ),
    ("POST", "/groups/{group_id}/answer/audio"): Operation(
        "One recorded answer (one file) for every published contribution of a group.",
        r.ActionResult,
        upload=True,
        parameters=(RECORDING_LANGUAGE,),
        refusals=(409, 422),
    ),
    ("DELETE", "/groups/{group_id}/answer/audio"): Operation(
        "Remove the group's recorded answer in that language.",
        r.ActionResult,
        parameters=(RECORDING_LANGUAGE,),
        refusals=(403, 404),
    ),
    ("GET", "/events"): Operation(
        "The moderation log, newest first.",
        r.EventList,
        "A page of the log.",
        parameters=EVENT_PARAMETERS,
        refusals=(400, 403),
    ),
    ("GET", "/campaigns"): Operation(
        "Every campaign (a read token: not the drafts).", r.CampaignList, "The campaigns."
    ),
    ("POST", "/campaigns"): Operation(
        "Create a campaign from a campaign file's keys, checked by the file's rules (admin "
        "tokens only): 409 when the slug exists, 422 naming the field a rule refuses.",
        r.ActionResult,
        "Created.",
        body=bodies.CampaignRequest,
        status=201,
        refusals=(409, 422),
    ),
    ("PUT", "/campaigns/{slug}"): Operation(
        "Replace a campaign wholly (admin tokens only); the slug does not change. 422 "
        "naming the field a rule refuses.",
        r.ActionResult,
        body=bodies.CampaignRequest,
        refusals=(422,),
    ),
    ("PUT", "/campaigns/{slug}/status"): Operation(
        "Open, close or set a campaign back to draft (admin tokens only).",
        r.ActionResult,
        body=bodies.CampaignStatusRequest,
    ),
    ("POST", "/campaigns/{slug}/synthesis"): Operation(
        "Publish a campaign's synthesis (admin tokens only): shown on its public page, and "
        "announced once to each resident who asked for announcements (INFO). Publishing "
        "again corrects the link or summary and announces nothing more.",
        r.ActionResult,
        body=bodies.SynthesisRequest,
    ),
    ("POST", "/residents/forget"): Operation(
        "Erase a resident who asks in person, on every channel of their address, as their "
        "own OUBLIER would (admin tokens only). Their contributions stay, detached and "
        "without audio.",
        r.Erasure,
        "What was erased (counts).",
        body=bodies.ResidentRequest,
    ),
    ("POST", "/residents/opt-out"): Operation(
        "Send nothing more to a resident, on every channel of their address (admin tokens "
        "only); kept for their next message too.",
        r.OptOut,
        "Done.",
        body=bodies.ResidentRequest,
    ),
    ("GET", "/outbound/failed"): Operation(
        "The messages to residents that failed for good (the dead-letter list), newest "
        "first, admin tokens only: channel, provider, pseudonymous contributor, reference, "
        "text, reason, attempts, dates; never an address.",
        r.FailedOutboundList,
        "A page of the list.",
        parameters=("Page", Param("per_page", PerPage, default=50)),
        refusals=(400, 403),
    ),
    ("POST", "/outbound/{id}/retry"): Operation(
        "Send a failed message again (admin tokens only): queued with its attempts reset, "
        "once; a message already queued or sent is left as it is (changed: false). 409 when "
        "it was discarded, or the resident opted out or was forgotten since.",
        r.OutboundOutcome,
        body=bodies.OutboundActionRequest,
        refusals=(409,),
    ),
    ("POST", "/outbound/{id}/discard"): Operation(
        "Give up a failed message (admin tokens only): kept as discarded, never sent. "
        "Discarding it again changes nothing; 409 when it has not failed.",
        r.OutboundOutcome,
        body=bodies.OutboundActionRequest,
        refusals=(409,),
    ),
    ("GET", "/campaigns/{slug}/stats"): Operation(
        "The campaign's dashboard; durations in seconds.",
        r.Stats,
        "The figures.",
        parameters=STATS_PARAMETERS,
        refusals=(400, 404, 403),
    ),
}

INFO = {
    "title": "Agora gateway API",
    "version": "1.0.0",
    "description": "The moderation console's reads and actions, for the city's other "
    "tools. Never an address: contributors are pseudonymous ids. Errors are "
    '{"error": {"code", "message"}}. Each operation names the token scope it needs '
    "(read: published contributions and public text only; moderate: the console's "
    "moderator rights; admin: also campaign status).",
}
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "A token from `gateway tokens create NAME --scope "
    "read|moderate|admin [--expires-in DAYS]`. Scopes: read (public data only), "
    "moderate, admin; each includes the ones before it. Beside them, collect (an agent's "
    "tablet) only enters contributions collected in person (moderate and admin may too). "
    "Every token expires "
    f"(by default after {DEFAULT_TOKEN_DAYS['read']} days for read, "
    f"{DEFAULT_TOKEN_DAYS['moderate']} for moderate and admin) and can be "
    "revoked at once (`gateway tokens revoke NAME`).",
}

# -- the document ---------------------------------------------------------------------------


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _answer(operation: Operation) -> Schema:
    answer = operation.answer
    if isinstance(answer, tuple):
        return {"oneOf": [ref(model.__name__) for model in answer]}
    return ref(answer.__name__)


def _parameter(param: Param | str) -> Schema:
    return ref(param, "parameters") if isinstance(param, str) else param.described()


def _operation(method: str, path: str, operation: Operation) -> Schema:
    described: Schema = {"summary": operation.summary}
    if operation.parameters:
        described["parameters"] = [_parameter(p) for p in operation.parameters]
    if operation.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": _json(ref(operation.body.__name__)),
        }
    if operation.upload:
        described["requestBody"] = {"required": True, "content": UPLOAD_CONTENT}
    usual = BODY_REFUSALS if operation.body is not None or operation.upload else READ_REFUSALS
    described["responses"] = {
        str(operation.status): {
            "description": operation.answered,
            "content": _json(_answer(operation)),
        },
        **{str(s): ref(REFUSALS[s][0], "responses") for s in (*usual, *operation.refusals)},
    }
    described["security"] = [{"bearer": [scopes.needed(method, path)]}]
    return described


def _paths() -> Schema:
    paths: Schema = {
        f"{scopes.PREFIX}/openapi.json": {
            "get": {
                "summary": "This description.",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document."}},
            }
        }
    }
    for (method, path), operation in OPERATIONS.items():
        item = paths.setdefault(scopes.PREFIX + path, {})
        templated = [PATH_PARAMETERS[name] for name in PATH_PARAMETERS if f"{{{name}}}" in path]
        if templated:
            item["parameters"] = [ref(name, "parameters") for name in templated]
        item[method.lower()] = _operation(method, path, operation)
    return paths


def _models() -> list[type[BaseModel]]:
    """Every model an operation names, with the error's: their schemas are the components."""
    found: list[type[BaseModel]] = []
    for operation in OPERATIONS.values():
        answers = operation.answer if isinstance(operation.answer, tuple) else (operation.answer,)
        for model in (*answers, operation.body, r.Error):
            if model is not None and model not in found:
                found.append(model)
    return found


def _schemas() -> Schema:
    _, top = models_json_schema(
        [(m, "validation" if issubclass(m, Request) else "serialization") for m in _models()],
        ref_template=REF_TEMPLATE,
        schema_generator=DocumentSchema,
    )
    schemas: Schema = top["$defs"]
    return schemas


def _responses() -> Schema:
    described: Schema = {}
    for name, description, headers in REFUSALS.values():
        described[name] = {"description": description, "content": _json(ref("Error"))}
        if headers:
            described[name]["headers"] = headers
    return described


def document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": BEARER},
            "schemas": _schemas(),
            "responses": _responses(),
            "parameters": {name: param.described() for name, param in PARAMETERS.items()},
        },
    }


DOCUMENT = document()


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
