"""What the API answers, as pydantic models: the OpenAPI document's response schemas are
generated from them (gateway.api.openapi), and every answer is built from one (``respond``).

Never an address: no phone number, chat id, email or recipient; the contributor is the
pseudonymous id only. Enumerations come from gateway.moderation so that the description
cannot drift from what the actions write. gateway.api.shapes fills these from the database.
A model's docstring is its description in the document; comments are for this code only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.fields import Count, Id, Omittable, Response, Stated, Timestamp
from gateway.campaigns import MODERATION_MODES
from gateway.campaigns import STATUSES as CAMPAIGN_STATUSES
from gateway.moderation.actions import CATEGORIES, CHANNELS, DECISIONS, KINDS, STATUSES
from gateway.moderation.answers import ANSWER_STATES
from gateway.moderation.queries import MAX_PER_PAGE


def respond(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An answer from its model, as JSON; an ``Omittable`` field is left out unless set."""
    body = model.model_dump(mode="json", exclude_unset=True)
    return web.json_response(body, status=status, headers=headers)


Status = Annotated[str, Stated(enum=list(STATUSES))]
Kind = Annotated[str, Stated(enum=list(KINDS))]
Category = Annotated[str, Stated(enum=list(CATEGORIES))]
CampaignStatus = Annotated[str, Stated(enum=list(CAMPAIGN_STATUSES))]
Reference = Annotated[str, Field(examples=["PARC-0042"])]
Channel = Annotated[str, Field(examples=list(CHANNELS))]
CampaignSlug = Annotated[str | None, Field(description="The campaign's slug.")]
AnswerState = Annotated[
    Annotated[str, Stated(enum=list(ANSWER_STATES))] | None,
    Field(description="The city's answer: Decidim's states, and done (carried out)."),
]
AnswerText = Annotated[str | None, Field(description="The city's reasoned answer, in French.")]
AnswerTextEn = Annotated[str | None, Field(description="The same answer in English, if given.")]
Page = Annotated[int, Field(ge=1)]
PerPage = Annotated[int, Field(ge=1, le=MAX_PER_PAGE)]


# -- contributions: fields in gateway.exports.contribution_dict's order (the JSON's) -------


class Contribution(Response):
    # The contract (shared/ARCHITECTURE.md, gateway.exports.contribution_dict).
    id: Id
    reference: Reference
    campaign: CampaignSlug
    channel: Channel
    status: Status
    text: str = Field(description="What the resident wrote, or the transcript.")
    transcript: str | None = Field(description="Null for written contributions.")
    audio: bool = Field(description="True when there is a recording.")
    kind: Kind
    group: str | None = Field(description="Who a collective contribution speaks for.")
    neighbourhood: str | None
    category: Category | None
    tags: list[str]
    received_at: Timestamp
    contributor: str | None = Field(
        description="A pseudonymous id (never an address); null once the resident is forgotten."
    )
    audio_duration: float | None = Field(description="Seconds; voice only.")
    transcription_status: Annotated[str, Stated(enum=["pending", "done", "failed"])] | None
    broadcast_consent: bool | None
    # What moderators work with.
    public_text: str | None = Field(description="The anonymised version that is published.")
    themes: list[str] = Field(description="Among the campaign's themes.")
    decision_reason: str | None = Field(description="A rejection's public reason.")
    moderated_at: Timestamp | None
    answer_state: AnswerState
    answer_text: AnswerText
    answer_text_en: AnswerTextEn
    answered_at: Timestamp | None
    group_id: int | None = Field(description="Identical or near-identical texts share a group.")
    group_size: int = Field(ge=1, description="Contributions in the group.")
    flood: bool = Field(
        description="Filed while its sender was over the per-sender flood limit "
        "(FLOOD_PER_SENDER_PER_MINUTE): never published at once."
    )
    awaiting_review: bool = Field(
        description="Published at once (a campaign moderated a posteriori) and not yet "
        "reviewed by a moderator (the queue's status=review)."
    )


class QueueItem(Contribution):
    # An item of the queue's list: with grouped=1, how many of its group match the filters.
    group_matching: Omittable[int] = Field(
        default=None,
        description="grouped=1 only: the group's contributions matching the filters.",
    )


class PublicContribution(Response):
    """A published contribution as a read token sees it: no transcript, no original text, no
    contributor, recording or conversation."""

    id: Id
    reference: Reference
    campaign: CampaignSlug
    channel: Channel
    status: Annotated[str, Stated(enum=["published"])]
    text: str = Field(
        description="The public version a moderator approved (anonymised), never what the "
        "resident wrote or said in their own words."
    )
    kind: Kind
    neighbourhood: str | None
    category: Category | None
    themes: list[str]
    tags: list[str]
    received_at: Timestamp
    moderated_at: Timestamp | None = Field(description="When published.")
    answer_state: AnswerState
    answer_text: AnswerText
    answer_text_en: AnswerTextEn
    answered_at: Timestamp | None


class Word(Response):
    word: str
    start: float
    end: float
    confidence: float = Field(ge=0, le=1)


class TranscriptDetail(Response):
    # What a stored transcript carries besides its text (transcription.engine.Transcript).
    words: list[Word]
    model: str | None
    language: str | None
    duration: float | None


class Notice(Response):
    """A message to the resident: what and when, never to whom."""

    id: Id
    message_key: str | None = Field(examples=["outcome.published"])
    status: str = Field(examples=["queued", "sent", "failed"])
    created_at: Timestamp
    sent_at: Timestamp | None


class Event(Response):
    id: Id
    contribution_id: int | None
    reference: str | None
    actor: str = Field(description="A moderator's name, or api:<token name>.")
    action: str = Field(
        examples=[
            *DECISIONS,
            "classify",
            "correct_transcript",
            "anonymise",
            "reply",
            "campaign_status",
        ]
    )
    reason: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: Timestamp


class Attachment(Response):
    """A photo or file the resident sent, as moderators see it (the file itself: the console's
    authenticated route); never in a public answer."""

    number: int = Field(ge=1, description="Its number on the contribution, from 1.")
    kind: str = Field(examples=["photo", "file", "text"])
    content_type: str
    size: int | None
    publishable: bool = Field(description="A photo a moderator may publish (JPEG, PNG, WebP, GIF).")
    public: bool = Field(
        description="Published by a moderator: shown on the public page and in open data while "
        "the contribution is published."
    )


class ContributionDetail(Contribution):
    attachments: list[Attachment]
    transcript_machine: str | None = Field(
        description="The machine's transcript, kept once a moderator corrects it."
    )
    transcript_detail: TranscriptDetail | None
    notices: list[Notice] = Field(description="Messages sent or queued to the resident.")
    events: list[Event] = Field(description="This contribution's moderation log, newest first.")


# -- lists ----------------------------------------------------------------------------------


class StatusCounts(Response):
    # queries.status_counts: one per status (gateway.moderation.actions.STATUSES), and all.
    pending: Count
    published: Count
    rejected: Count
    spam: Count
    all: Count


class ContributionList(Response):
    items: list[QueueItem]
    page: Page
    per_page: PerPage
    pages: Page
    total: int = Field(description="Items over every page (groups when grouped=1).")
    contributions: int = Field(description="Contributions matching.")
    counts: StatusCounts


class PublicContributionList(Response):
    """What a read token lists: published contributions only."""

    items: list[PublicContribution]
    page: Page
    per_page: PerPage
    pages: Page
    total: Count


class Group(Response):
    id: Id
    size: int = Field(ge=1)
    pending: Count
    items: list[Contribution]


class EventList(Response):
    items: list[Event]
    page: Page
    per_page: PerPage
    pages: Page
    total: Count


# -- campaigns and their figures ------------------------------------------------------------


class Campaign(Response):
    # Not the campaign's phone numbers: the API lists no number at all, so that a client
    # never has to tell the city's numbers from residents'.
    slug: str
    title: str
    question: str
    status: CampaignStatus
    keywords: list[str]
    neighbourhoods: list[str]
    themes: list[str]
    language: str
    reference_prefix: str
    moderation_mode: Annotated[str, Stated(enum=list(MODERATION_MODES))] = Field(
        description="a_priori: a moderator publishes; a_posteriori: published at once "
        "(redacted), reviewed after."
    )
    closes_at: Timestamp | None = Field(
        description="The end date: after it the campaign counts as closed whatever its status."
    )


class CampaignList(Response):
    items: list[Campaign]


def _keys_not_listed(schema: dict[str, Any]) -> None:
    # Both keys are always there, but the document has never listed them as required: kept
    # as it was (gateway.api's OpenAPI document is compared with tests/api/openapi_before.json).
    schema.pop("additionalProperties", None)
    schema.pop("required", None)


class _Counted(Response):
    model_config = ConfigDict(json_schema_extra=_keys_not_listed)


class DayCount(_Counted):
    date: Annotated[str, Stated(format="date")]
    count: int


class ChannelCount(_Counted):
    channel: str
    count: int


class CategoryCount(_Counted):
    category: str | None
    count: int


class NeighbourhoodCount(_Counted):
    neighbourhood: str | None
    count: int


class StatusCountsByStatus(Response):
    pending: Count
    published: Count
    rejected: Count
    spam: Count


class Stats(Response):
    campaign: str
    days: int
    per_day: list[DayCount] = Field(
        description="The last `days` days, in the city's time zone; days without "
        "contributions left out."
    )
    per_channel: list[ChannelCount]
    per_category: list[CategoryCount]
    per_neighbourhood: list[NeighbourhoodCount]
    per_status: StatusCountsByStatus
    waiting: int = Field(description="Pending contributions.")
    oldest_waiting_seconds: float | None
    median_waiting_seconds: float | None


# -- what an action did ---------------------------------------------------------------------


class ActionResult(Response):
    """Nothing changed (changed and events empty) when the action was already done: retrying a
    request is harmless."""

    changed: list[Id] = Field(description="Contributions the action changed.")
    events: list[Event] = Field(description="The log entries it wrote.")
    notices_queued: Count
    # What the action is about, as it now is: one of these, by route.
    contribution: Omittable[Contribution] = None
    contributions: Omittable[list[Contribution]] = None
    campaign: Omittable[Campaign] = None


class Erased(Response):
    contributors: Count
    contributions_detached: Count
    messages: Count
    replies: Count
    calls: Count
    files: Count


class Erasure(Response):
    erased: Erased
    known: bool = Field(description="False when nothing of this address was known.")


class OptOut(Response):
    opted_out: bool
    rows_changed: Count


# -- messages that could not be delivered (gateway.moderation.deadletter) -------------------


class FailedOutbound(Response):
    """An outbound message that failed for good. Never the recipient's address."""

    id: Id
    channel: Channel
    provider: str | None = Field(description="The provider that refused it, if one was tried.")
    contributor: str | None = Field(description="The resident's pseudonymous id.")
    reference: str | None = Field(description="The contribution it is about, if any.")
    text: str
    reason: str | None = Field(description="Why it failed (the provider's answer, no address).")
    attempts: Count
    created_at: Timestamp
    last_attempt_at: Timestamp | None


class FailedOutboundList(Response):
    items: list[FailedOutbound]
    page: Page
    per_page: PerPage
    pages: Page
    total: Count


class OutboundOutcome(Response):
    """A message's status after a retry or a discard; ``changed`` is false when the request
    found it already done (re-queued, sent or discarded): nothing was done twice."""

    id: Id
    status: Annotated[str, Stated(enum=["queued", "sending", "sent", "discarded"])]
    changed: bool


# -- refusals -------------------------------------------------------------------------------


class CollectedContribution(Response):
    """A contribution collected by an agent, as filed (or as filed before, for a retry that
    carries the same Idempotency-Key: then ``created`` is false)."""

    contribution: Contribution
    created: bool
    receipt: Annotated[
        str | None,
        Field(
            description="What became of the resident's receipt: queued, withheld, opted_out, "
            "forgotten, no_sender; null without a contact (hand the reference over)."
        ),
    ]


class ErrorDetail(Response):
    code: str = Field(
        description="A refused moderation action's catalogue key "
        "(console.errors.reason_required) or the API's own code: invalid_json, invalid_body, "
        "invalid_parameter, unauthorized, insufficient_scope, not_found, method_not_allowed, "
        "payload_too_large."
    )
    message: str = Field(description="For developers, in English.")
    field: Omittable[str] = Field(
        default=None, description="The body field or query parameter at fault."
    )
    params: Omittable[dict[str, Any]] = None


class Error(Response):
    # gateway.api.errors answers every refusal with one.
    error: ErrorDetail
