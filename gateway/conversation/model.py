"""The conversation engine's data: what it is given, what it returns, what it keeps.

The steps a conversation can be at, the campaigns' statuses, the kinds of contribution and the
receipt keys (replies that quote the reference of a filed contribution); the records the
caller builds (``CampaignInfo``, ``Sender`` with its ``OwnContribution``s, ``Incoming``,
``Context``), the ``State`` it stores as JSON between messages, and the ``Outcome`` it is
given back (``NewContribution``, ``Reply``, ``ContributionUpdate``). No logic here beyond
reading a stored state back; the package's docstring says how a caller uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

IDLE = "idle"
CHOOSE_CAMPAIGN = "choose_campaign"
CHOOSE_NEIGHBOURHOOD = "choose_neighbourhood"
GROUP_DESCRIPTION = "group_description"
AWAITING_TEXT = "awaiting_text"
STEPS = (IDLE, CHOOSE_CAMPAIGN, CHOOSE_NEIGHBOURHOOD, GROUP_DESCRIPTION, AWAITING_TEXT)

OPEN, DRAFT, CLOSED = "open", "draft", "closed"
INDIVIDUAL, COLLECTIVE = "individual", "collective"

# Receipts: replies whose text quotes the reference of a filed contribution.
RECEIPT = "receipt.default"
RECEIPT_EXPIRED = "receipt.expired"
RECEIPT_UNSORTED = "receipt.unsorted"
STOP_CONFIRMED_FILED = "stop.confirmed_filed"
# The receipt of a contribution that the caller published at once (a campaign moderated a
# posteriori, gateway.moderation.aposteriori): the caller puts it in place of the engine's.
RECEIPT_PUBLISHED = "receipt.published"
RECEIPT_KEYS = (
    RECEIPT,
    RECEIPT_EXPIRED,
    RECEIPT_UNSORTED,
    STOP_CONFIRMED_FILED,
    RECEIPT_PUBLISHED,
)
# The line offering another language, in that language's own words (Reply.language), in the
# first reply to a new resident; the caller may join it to the reply before it.
LANGUAGE_INVITE = "language.invite"


@dataclass(frozen=True)
class CampaignInfo:
    slug: str
    title: str
    question: str
    keywords: tuple[str, ...]
    status: str  # "draft" | "open" | "closed"
    phone_numbers: tuple[str, ...] = ()  # a message sent to one of them picks this campaign
    neighbourhoods: tuple[str, ...] = ()
    # The end date (gateway.campaigns): from this instant an open campaign counts as closed
    # (``campaigns.as_of``), and ``closes_on`` is the local day residents are told it ended
    # on (ISO, "2027-03-31"), since the engine knows no time zone.
    closes_at: datetime | None = None
    closes_on: str = ""


@dataclass(frozen=True)
class OwnContribution:
    """One of the sender's own contributions, for SUIVI (newest first in Sender)."""

    reference: str
    status: str  # "pending" | "published" | "rejected" | "spam"
    campaign_title: str
    reason: str | None = None  # why it was rejected, told to its author
    # The city's answer (gateway.moderation.answers): its state and text, French and English.
    answer_state: str | None = None
    answer_text: str | None = None
    answer_text_en: str | None = None
    # The answer recorded (gateway.recorded_answers): tokens of the French and English files,
    # played on the phone instead of the text; written channels keep the text.
    answer_audio: str | None = None
    answer_audio_en: str | None = None


@dataclass(frozen=True)
class Sender:
    first_contact: bool  # True until the data-use notice has been sent once
    opted_out: bool
    language: str = "fr"
    contributions: tuple[OwnContribution, ...] = ()  # newest first, as the caller queries them


@dataclass(frozen=True)
class Incoming:
    text: str
    received_at: datetime  # tz-aware UTC
    recipient: str | None = None  # the number or address the resident wrote to
    attachments: int = 0  # media the channel cannot keep (an MMS's photos)
    media: tuple[str, ...] = ()  # media the channel keeps, as references (see the package doc)
    start: str | None = None  # a start command's payload ("" when bare); None otherwise
    # Whether the sender is who the address says (email: DMARC alignment, see
    # channels/email/authentication.py); None where the channel has no such doubt. False: see
    # ``unverified``.
    verified: bool | None = None


def _parse_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class State:
    """Where a conversation stands; the caller stores it as JSON between messages."""

    step: str = IDLE
    campaign: str | None = None  # slug, once chosen
    text: str = ""  # the contribution's text, kept until it can be filed
    received_at: datetime | None = None  # when the kept text was (first) sent
    collective: bool = False  # GROUPE was sent: the next contribution speaks for a group
    group: str | None = None
    options: list[str] = field(default_factory=list)  # menu order: slugs or neighbourhoods
    retries: int = 0  # wrong answers to the current question
    resume: str | None = None  # the step to return to once the group is described
    expires_at: datetime | None = None
    # The filed contribution awaiting its neighbourhood; the caller sets it (Outcome.track).
    reference: str | None = None
    media: list[str] = field(default_factory=list)  # kept with the text until it is filed

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "campaign": self.campaign,
            "text": self.text,
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "collective": self.collective,
            "group": self.group,
            "options": list(self.options),
            "retries": self.retries,
            "resume": self.resume,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "reference": self.reference,
            "media": list(self.media),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> State:
        """Rebuild a state; anything missing or malformed falls back to its default.

        A stored state may come from an older version of the engine: it must
        never stop a resident from being answered.
        """
        if not data:
            return cls()
        step = data.get("step")
        options = data.get("options")
        retries = data.get("retries")
        media = data.get("media")
        return cls(
            step=step if step in STEPS else IDLE,
            campaign=_str_or_none(data.get("campaign")),
            text=_str_or_none(data.get("text")) or "",
            received_at=_parse_datetime(data.get("received_at")),
            collective=bool(data.get("collective", False)),
            group=_str_or_none(data.get("group")),
            options=[str(o) for o in options] if isinstance(options, list) else [],
            retries=retries if isinstance(retries, int) else 0,
            resume=data.get("resume") if data.get("resume") in STEPS else None,
            expires_at=_parse_datetime(data.get("expires_at")),
            reference=_str_or_none(data.get("reference")),
            media=[str(m) for m in media] if isinstance(media, list) else [],
        )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Context:
    now: datetime
    campaigns: tuple[CampaignInfo, ...]
    sender: Sender
    expiry: timedelta = timedelta(hours=24)  # a conversation left half-way expires after this
    organisation: str = "Agora"  # who runs the consultations, named in the data-use notice


@dataclass(frozen=True)
class NewContribution:
    campaign: str | None  # None when no campaign could be chosen (see the package doc)
    text: str
    kind: str  # "individual" | "collective"
    group: str | None
    neighbourhood: str | None
    received_at: datetime
    expired: bool = False  # filed because the conversation expired
    media: tuple[str, ...] = ()  # the Incoming.media references that belong to it


@dataclass(frozen=True)
class Reply:
    key: str
    params: Mapping[str, str] = field(default_factory=dict)
    contribution: int | None = None  # index into Outcome.contributions; fills {reference}
    # Said in this language rather than the resident's: a language offered in its own words.
    language: str | None = None


@dataclass(frozen=True)
class ContributionUpdate:
    """A change to a contribution filed earlier, named by the reference the caller gave it."""

    reference: str
    neighbourhood: str | None = None  # set: record this neighbourhood
    append_text: str | None = None  # set: add this text (an answer that was not a neighbourhood)
    media: tuple[str, ...] = ()  # add these media (sent while its neighbourhood was asked)


@dataclass(frozen=True)
class Outcome:
    state: State
    contributions: tuple[NewContribution, ...] = ()
    replies: tuple[Reply, ...] = ()
    updates: tuple[ContributionUpdate, ...] = ()
    # Index into ``contributions``: write that contribution's reference into
    # ``state.reference`` before storing the state (see the package doc).
    track: int | None = None
    opt_out: bool = False
    opt_in: bool = False
    forget: bool = False
    notice_sent: bool = False  # this outcome includes the first-contact notice
    language: str | None = None  # set when the resident switched language
    # Announcements asked for (True: INFO) or ended (False: INFO STOP); None: unchanged. STOP
    # (opt_out) ends them too, applied by the caller.
    announcements: bool | None = None
