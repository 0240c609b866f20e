"""What a client sends: request bodies as pydantic models, ids from the path, integers from
the query.

Strict on purpose: a script that sends ``"tags": "vélo"`` or misspells ``neighbourhood``
gets a 400 naming the field (``invalid_body``), rather than a change it did not mean. The
models check the JSON's shape: types, required and unknown fields, and the limits the API
itself sets. What the moderation actions check themselves (a known decision or category, a
reason for a rejection, a text's length) they refuse with their own catalogue codes, and the
document only states it (``Stated``).
"""

from __future__ import annotations

import json
from typing import Annotated, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from gateway import plugins
from gateway.api.errors import ApiError
from gateway.api.fields import Omittable, Request, Stated
from gateway.campaigns import MODERATION_MODES
from gateway.campaigns import STATUSES as CAMPAIGN_STATUSES
from gateway.moderation.actions import (
    CATEGORIES,
    DECISIONS,
    KINDS,
    MAX_REPLY,
    MAX_TAGS,
    MAX_TEXT,
    ActionError,
)
from gateway.moderation.answers import ANSWER_STATES, MAX_ANSWER
from gateway.moderation.collected import COLLECTED_CHANNELS, MAX_CONTACT, MAX_GROUP, MAX_PLACE
from gateway.moderation.queries import MAX_PER_PAGE
from gateway.moderation.synthesis import MAX_SUMMARY as MAX_SYNTHESIS_SUMMARY
from gateway.moderation.synthesis import MAX_URL as MAX_SYNTHESIS_URL

MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database
MAX_BULK = MAX_PER_PAGE  # ids in one bulk decision: one page of the queue
MAX_REASON = 500  # gateway.moderation.actions.decide's limit
MAX_ADDRESS = 320  # the longest email address RFC 5321 allows
# Query parameters: the log's page, the dashboard's days.
EVENTS_PER_PAGE = 50
DASHBOARD_DAYS = 30
MAX_DASHBOARD_DAYS = 366
MAX_PAGE = 100_000

M = TypeVar("M", bound=Request)


def _stored_id(value: int) -> int:
    # Not in the document, as before: a larger id cannot exist.
    if value > MAX_ID:
        raise PydanticCustomError(
            "id_too_large", "no id is larger than {max_id}", {"max_id": MAX_ID}
        )
    return value


def _one_line(value: object) -> object:
    return " ".join(value.split()) if isinstance(value, str) else value


Decision = Annotated[str, Stated(enum=list(DECISIONS))]
Reason = Annotated[str, Stated(maxLength=MAX_REASON)]
AnswerText = Annotated[str, Stated(maxLength=MAX_ANSWER)]
ContributionId = Annotated[int, Field(ge=1), AfterValidator(_stored_id)]


class DecisionRequest(Request):
    action: Decision
    reason: Reason | None = Field(default=None, description="Required to reject; shown publicly.")


class AnswerRequest(Request):
    state: Annotated[str, Stated(enum=list(ANSWER_STATES))]
    text: AnswerText | None = Field(
        default=None,
        description="The reasoned answer, public, in French; required except for evaluating.",
    )
    text_en: AnswerText | None = None


class BulkDecisionRequest(Request):
    # At least one id, as the document says; none is the action's nothing_selected.
    ids: Annotated[list[ContributionId], Field(max_length=MAX_BULK), Stated(minItems=1)]
    action: Decision
    reason: Reason | None = None


class ClassificationRequest(Request):
    """Absent fields stay as they are; null or an empty string clears category and
    neighbourhood; themes and tags replace the lists."""

    category: Annotated[str, Stated(enum=[*CATEGORIES, ""])] | None = None
    themes: Omittable[list[str]] = None
    tags: Omittable[Annotated[list[str], Stated(maxItems=MAX_TAGS)]] = None
    neighbourhood: str | None = None
    kind: Omittable[Annotated[str, Stated(enum=list(KINDS))]] = None

    @field_validator("kind")
    @classmethod
    def _kind_is_not_empty(cls, kind: str | None) -> str | None:
        if kind == "":
            raise PydanticCustomError("string_too_short", "cannot be empty")
        return kind


class TranscriptRequest(Request):
    transcript: Annotated[str, Stated(maxLength=MAX_TEXT)]


class PublicTextRequest(Request):
    public_text: Annotated[str, Stated(minLength=1, maxLength=MAX_TEXT)]


class PhotoPublicRequest(Request):
    public: bool = Field(
        description="true: publish the photo, after checking it for faces and number plates; "
        "false: withdraw it."
    )


class ReplyRequest(Request):
    text: Annotated[str, Stated(minLength=1, maxLength=MAX_REPLY)]


class CampaignStatusRequest(Request):
    status: Annotated[str, Stated(enum=list(CAMPAIGN_STATUSES))]


class Part(Request):
    """A mapping inside a body (a campaign's ``voice``), checked as strictly."""


class CampaignVoice(Part):
    greeting: str | None = Field(default=None, description="Read aloud to callers (TTS).")
    audio: str | None = Field(
        default=None,
        description="An http(s) URL of an audio file played instead of the greeting; an "
        "uploaded greeting (console) wins over it.",
    )
    sms_receipt: bool | None = Field(default=None, description="Text callers their receipt.")


class CampaignPublication(Part):
    rejected_text: Annotated[str, Stated(enum=["shown", "hidden"])] | None = None


class CampaignDecidim(Part):
    component: int | None = Field(default=None, description="A proposals component's number.")


class CampaignRequest(Request):
    """A whole campaign, with a campaign file's keys (docs/campaigns.md); checked by the same
    rules as a file (a refusal is a 422 naming the field). PUT replaces it wholly: a key left
    out takes its default."""

    slug: str = Field(description="Lower case letters, digits and dashes; fixed once created.")
    title: str
    question: str | None = None
    keywords: list[str] | None = Field(
        default=None, description="Single words, unique across campaigns once normalised."
    )
    status: Annotated[str, Stated(enum=list(CAMPAIGN_STATUSES))] | None = None
    phone_numbers: list[str] | None = Field(default=None, description="E.164 (+33100000001).")
    neighbourhoods: list[str] | None = None
    themes: list[str] | None = None
    reference_prefix: str | None = None
    language: str | None = Field(default=None, description="One with a catalogue (fr, en).")
    voice: CampaignVoice | None = None
    publication: CampaignPublication | None = None
    decidim: CampaignDecidim | None = None
    closes_at: str | None = Field(
        default=None,
        description="End date: an ISO date (open through that day) or date and time; "
        "without an offset, the city's local time (TIMEZONE).",
    )
    moderation: Annotated[str, Stated(enum=list(MODERATION_MODES))] | None = Field(
        default=None,
        description="a_priori (a moderator publishes) or a_posteriori (published at once, "
        "redacted, reviewed after); a_priori by default.",
    )

    def file_data(self) -> dict[str, object]:
        """The campaign file's mapping gateway.campaigns.parse reads."""
        return self.model_dump(exclude_none=True)


class SynthesisRequest(Request):
    """A campaign's synthesis: an http(s) link, and a short summary for the announcement."""

    url: Annotated[str, Stated(minLength=1, maxLength=MAX_SYNTHESIS_URL, format="uri")]
    summary: Annotated[str, Stated(maxLength=MAX_SYNTHESIS_SUMMARY)] = ""


def _installed_channel(value: str) -> str:
    if value not in plugins.channels():
        raise ValueError(f"must be one of {list(plugins.channels())}")
    return value


# The installed plugins' channels (gateway.plugins), shown as the document's enum.
Channel = Annotated[str, Stated(enum=list(plugins.channels())), AfterValidator(_installed_channel)]


class OutboundActionRequest(Request):
    """A retry or a discard of a message that could not be delivered: ``{}``, or a reason."""

    reason: Reason | None = Field(default=None, description="Why; kept in the moderation log.")


class ResidentRequest(Request):
    channel: Channel = Field(description="The address space: a number covers SMS and calls alike.")
    # Spaces are collapsed before the length is checked. An error names the field only: the
    # address is never repeated back, nor logged.
    address: Annotated[
        str, Field(min_length=1, max_length=MAX_ADDRESS), BeforeValidator(_one_line)
    ] = Field(
        description="A phone number (E.164, or French national: 06 12 34 56 78), a chat app's "
        "chat id or an email address. Used to find the person, never stored nor shown back."
    )


# Checked by gateway.moderation.collected, the same way for the console's form and spreadsheet
# upload: a value it refuses is a 422 naming every field at fault, not a 400.
Collected = Annotated[str, Field(max_length=MAX_TEXT * 4)]


class CollectedContributionRequest(Request):
    """A contribution an agent collected in person, on paper or at a meeting."""

    campaign: Annotated[str, Field(max_length=64)] = Field(description="The campaign's slug.")
    text: Annotated[Collected, Stated(minLength=1, maxLength=MAX_TEXT)]
    channel: Annotated[str, Stated(enum=list(COLLECTED_CHANNELS))] = Field(
        description="How it was collected: street (a stand, door to door), paper, meeting."
    )
    collected_on: Collected | None = Field(
        default=None,
        description="The day it was collected (2027-03-12, 12/03/2027) or an ISO 8601 date "
        "and time; default today. Not in the future.",
    )
    place: Annotated[Collected, Stated(maxLength=MAX_PLACE)] | None = Field(
        default=None, description="Where (« marché du Parc »): public, in the provenance line."
    )
    neighbourhood: Annotated[Collected, Stated(maxLength=MAX_PLACE)] | None = Field(
        default=None, description="One of the campaign's, when it lists them."
    )
    kind: Annotated[str, Stated(enum=list(KINDS))] | None = None
    group_description: Annotated[Collected, Stated(maxLength=MAX_GROUP)] | None = Field(
        default=None, description="Required for a collective contribution."
    )
    contact: Annotated[Collected, Stated(maxLength=MAX_CONTACT)] | None = Field(
        default=None,
        description="A phone number (SMS) or an email address, when the resident wants the "
        "receipt and the outcome; encrypted, never shown back nor published.",
    )


async def read(request: web.Request, model: type[M]) -> M:
    """The request's body as ``model``. Reading it enforces the app's client_max_size (413)."""
    raw = await request.read()
    try:
        # What json.loads reads: UTF-8 (with or without a BOM), UTF-16 or UTF-32.
        text = raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise refusal(exc, model) from None


def refusal(exc: ValidationError, model: type[Request]) -> ApiError:
    """The first thing wrong with a body, as the API's 400: an unknown field before the rest.
    Never with the value sent (an address must not come back)."""
    found = exc.errors(include_url=False, include_input=False)
    unknown = sorted((e for e in found if e["type"] == "extra_forbidden"), key=lambda e: e["loc"])
    error = unknown[0] if unknown else found[0]
    if error["type"] == "json_invalid":
        reason = error.get("ctx", {}).get("error", error["msg"])
        return ApiError(400, "invalid_json", f"the body is not valid JSON: {reason}")
    if not error["loc"]:
        return ApiError(400, "invalid_body", "the body must be a JSON object")
    field = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        message = f"unknown field {field!r}; expected {sorted(model.model_fields)}"
    else:
        # Bodies are flat: after the field, an index in its list (or a union's branch: left out).
        at = "".join(f"[{p}]" for p in error["loc"][1:] if isinstance(p, int))
        message = f"{field + at!r}: {error['msg']}"
    return ApiError(400, "invalid_body", message, field=field)


def path_id(request: web.Request, name: str, what: str) -> int:
    """An id from the path (the route allows digits only); too large to exist is not found."""
    value = int(request.match_info[name])
    if not 0 < value <= MAX_ID:
        raise ActionError("console.errors.not_found", f"no such {what}", 404)
    return value


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter, clamped to [low, high]; not an integer is a 400."""
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name!r} must be an integer", field=name
        ) from None
    return max(low, min(high, value))
