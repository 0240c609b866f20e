"""The conversation engine: what to answer a resident, and what to file.

Pure logic (functional core): given the conversation's state, one incoming
message and a context (the clock, the campaigns, what is known of the sender),
``handle`` returns the new state, the contributions to record and the replies
to send. It opens no connection and reads no clock; the caller does the I/O.

Replies are catalogue keys with parameters (see ``gateway/locales/``), in
order. Render each with ``translate(reply.key, language, **reply.params)``,
where ``language`` is ``Outcome.language`` when set, else the sender's. A
reply whose ``contribution`` is set (the keys in ``RECEIPT_KEYS``) quotes the
reference the caller assigns to ``Outcome.contributions[reply.contribution]``:
add ``reference=ref``. Parameters are already rendered in that language.

A contribution is filed as soon as it has its campaign. When the campaign lists
neighbourhoods, the receipt is followed by the neighbourhood question, and the
new state (step ``choose_neighbourhood``) must remember which contribution the
answer is for: ``Outcome.track`` is the index in ``Outcome.contributions`` of
that contribution, and the caller writes its reference into the state's
``reference`` before storing it (when ``track`` is None, store the state as
returned). The answer comes back as ``Outcome.updates``: changes to an already
filed contribution, named by that reference.

Decisions worth knowing (also in the tests):

* Kept text is never silently dropped, except on OUBLIER (the resident asked
  for erasure, so what they were typing is discarded too). When no campaign
  could be chosen (the conversation expired in the campaign menu, the menu
  was answered wrongly too often, or STOP came in the menu), the text is filed
  with ``campaign=None`` for moderators to sort.
* STOP, START, AIDE, OUBLIER and the language switches only count when the
  message is the command alone (politeness words allowed: "stop merci").
  French contributions often begin with these words ("Stop aux voitures",
  "Arrêt de bus trop loin", "Aide aux devoirs"), and SMS providers' own
  opt-out matching is on the whole message too. SUIVI and GROUPE take an argument.
* Filing comes first, the neighbourhood question after: a resident who never
  answers it has still been filed, with a receipt. Its expiry files nothing
  and says nothing; STOP during it is the plain confirmation.
* An unrecognised answer to the neighbourhood question is appended to the
  contribution's text at once (``ContributionUpdate.append_text``): it may be
  content, or a place the list lacks. The question is asked again once; after
  a second miss the conversation ends. A bare out-of-range number is not
  content; a message of politeness alone ("merci") is taken as a skip. An
  open campaign's keyword starts a new contribution instead, and GROUPE
  describes the group of the next contribution (the filed one is not changed).
* A ``choose_neighbourhood`` state without ``reference`` but with kept text was
  stored before contributions were filed at once: the text is filed (with the
  answer's neighbourhood if there is one), so that nothing is lost.
* An answer to the campaign menu that chooses nothing is appended to the kept
  text as well, except a bare out-of-range number.
* While opted out, OUBLIER is still honoured (``forget=True``), silently, and
  YES opts back in as START does (SMS providers re-subscribe on it).
* SUIVI is forgiving about the reference ("parc-42", "PARC 42") but only ever
  looks in the sender's own contributions; a spam verdict is told as "not
  retained".
* A message with media but no text gets a reply that media are not handled by
  SMS yet; with text, the text is handled and a short note says the media
  were not kept.
* The first-contact notice comes after the other replies, so that the receipt
  is the first thing the resident reads; it is not sent on STOP or OUBLIER.
* Media the channel keeps (``Incoming.media``: a chat app's photos, drawings and
  voice notes, as opaque references the caller resolves) are content: a voice
  note alone is a contribution (its text is the transcript, filled in later),
  and media travel with the kept text until it is filed
  (``NewContribution.media``). Sent while the neighbourhood question is open,
  media are added to the contribution just filed (``ContributionUpdate.media``)
  and the question stays open. Media sent with a command are not kept, and the
  resident is told.
* ``Incoming.start`` is a chat app's start command (``/start``, or a
  deep link ``/start parc``): a campaign named by slug or keyword opens with its
  question; otherwise the resident is welcomed with the open campaigns (one open
  campaign: its question at once). Whatever the conversation kept is filed first,
  as a keyword would. While opted out it means START.
* ``Incoming.verified`` False (an email whose sender failed DMARC alignment: anyone may have
  written it in the address's name): the words are filed for moderators, nothing is answered,
  no command obeyed, and the conversation is left as it was (``_unverified``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.i18n import languages, translate
from gateway.textnorm import best_match, clean, fold, split_first_word, token, words

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
RECEIPT_KEYS = (RECEIPT, RECEIPT_EXPIRED, RECEIPT_UNSORTED, STOP_CONFIRMED_FILED)

# Command words, folded. The SMS providers' standard opt-out and opt-in words are
# included because the provider acts on them for the number whatever the gateway does.
OPT_OUT_WORDS = frozenset(
    {
        "stop",
        "arret",
        "arreter",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "optout",
        "revoke",
    }
)
OPT_IN_WORDS = frozenset({"start", "reprendre", "unstop"})
# "yes" re-subscribes at the SMS provider, so it must here too; but only when opted out,
# since otherwise it is an ordinary answer.
OPT_IN_WORDS_WHEN_OPTED_OUT = OPT_IN_WORDS | {"yes"}
HELP_WORDS = frozenset({"aide", "help", "info", "infos"})
FOLLOW_UP_WORDS = frozenset({"suivi", "status", "statut"})
# SUIVI quotes the city's answer up to this length: about two SMS (the whole answer is on the
# campaign's public page).
ANSWER_EXCERPT = 280
FORGET_WORDS = frozenset({"oublier", "forget"})
GROUP_WORDS = frozenset({"groupe", "group"})
LANGUAGE_WORDS = {
    "english": "en",
    "en": "en",
    "anglais": "en",
    "francais": "fr",
    "fr": "fr",
    "french": "fr",
}
SKIP_WORDS = frozenset({"0", "passer", "non", "aucun", "aucune", "rien", "skip", "no", "none"})
# Allowed after a command that must stand alone: "STOP merci", "aide svp".
POLITE_WORDS = frozenset(
    {
        "merci",
        "svp",
        "stp",
        "please",
        "pls",
        "thanks",
        "thank",
        "you",
        "il",
        "vous",
        "plait",
        "beaucoup",
        "bcp",
    }
)
# Commands that count only when they are the whole message.
STANDALONE_WORDS = (
    OPT_OUT_WORDS
    | OPT_IN_WORDS_WHEN_OPTED_OUT
    | HELP_WORDS
    | FORGET_WORDS
    | frozenset(LANGUAGE_WORDS)
)

MAX_MENU_RESENDS = 2  # after that many wrong answers to the campaign menu, file unsorted
MAX_NEIGHBOURHOOD_MISSES = 2  # the question is asked again once, then the conversation ends
FOLLOW_UP_LIST_SIZE = 3
ECHO_LENGTH = 40  # a resident's words quoted back in a reply are cut to this (SMS cost)

# Possessive quantifiers: letters, separators and digits never overlap, so giving any back
# cannot help a match. The old pattern ("0*(\d+)") backtracked over every split of a digit run:
# quadratic time, under the interpreter lock, on "SUIVI 000…0a".
_REFERENCE = re.compile(r"([a-z]++)?[\s\-_#/.]*+(\d++)")
# A reference is a campaign prefix (at most 12 letters), a dash and a few digits; a resident
# may add spaces ("PARC - 0042"). Anything longer is words, not a reference.
MAX_REFERENCE_LENGTH = 40
# No menu lists 10,000 options: a longer number is out of range, whatever it says (and int()
# refuses numbers of more than 4,300 digits).
MAX_MENU_DIGITS = 4
_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class CampaignInfo:
    slug: str
    title: str
    question: str
    keywords: tuple[str, ...]
    status: str  # "draft" | "open" | "closed"
    phone_numbers: tuple[str, ...] = ()  # a message sent to one of them picks this campaign
    neighbourhoods: tuple[str, ...] = ()


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
    media: tuple[str, ...] = ()  # media the channel keeps, as references (see module doc)
    start: str | None = None  # a start command's payload ("" when bare); None otherwise
    # Whether the sender is who the address says (email: DMARC alignment, see
    # channels/email/authentication.py); None where the channel has no such doubt. False: see
    # ``_unverified``.
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
    campaign: str | None  # None when no campaign could be chosen (see module doc)
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
    # ``state.reference`` before storing the state (see the module doc).
    track: int | None = None
    opt_out: bool = False
    opt_in: bool = False
    forget: bool = False
    notice_sent: bool = False  # this outcome includes the first-contact notice
    language: str | None = None  # set when the resident switched language


# --- the turn being built -------------------------------------------------------------


class _Turn:
    """What one call decides, accumulated as the message is worked through."""

    def __init__(self, context: Context, silent: bool) -> None:
        self.context = context
        self.silent = silent  # opted out: file what is unambiguous, answer nothing
        self.language = context.sender.language
        self.contributions: list[NewContribution] = []
        self.replies: list[Reply] = []
        self.updates: list[ContributionUpdate] = []
        self.track: int | None = None  # the filed contribution the neighbourhood question is about
        self.opt_out = False
        self.opt_in = False
        self.forget = False
        self.switched_language: str | None = None
        self.media: list[str] = []  # this message's media, until something takes them

    def take_media(self) -> list[str]:
        taken, self.media = self.media, []
        return taken

    def say(self, key: str, **params: str) -> None:
        if not self.silent:
            self.replies.append(Reply(key, dict(params)))

    def render(self, key: str, **params: object) -> str:
        """A fragment of a reply (a menu line, a status) in the resident's language."""
        return translate(key, self.language, **params)

    def file(
        self, state: State, neighbourhood: str | None, receipt: str | None, expired: bool = False
    ) -> None:
        """Record the kept text as a contribution and acknowledge it."""
        self.contributions.append(
            NewContribution(
                campaign=state.campaign,
                text=state.text,
                kind=COLLECTIVE if state.collective else INDIVIDUAL,
                group=state.group,
                neighbourhood=neighbourhood,
                received_at=state.received_at or self.context.now,
                expired=expired,
                media=tuple(state.media),
            )
        )
        if receipt is not None and not self.silent:
            self.replies.append(Reply(receipt, {}, len(self.contributions) - 1))

    def outcome(self, state: State, notice: bool) -> Outcome:
        sender = self.context.sender
        send_notice = (
            notice
            and sender.first_contact
            and not self.silent
            and not self.opt_out
            and not self.forget
        )
        if self.forget:
            # Erasure was asked: nothing of this turn is recorded, not even an expired leftover.
            self.contributions.clear()
            self.updates.clear()
            self.track = None
            self.replies = [r for r in self.replies if r.contribution is None]
        if send_notice:
            self.replies.append(Reply("notice", {"organisation": self.context.organisation}))
        if state.step == IDLE:
            state = State()
        else:
            state.expires_at = self.context.now + self.context.expiry
        track = self.track if state.step == CHOOSE_NEIGHBOURHOOD else None
        return Outcome(
            state=state,
            contributions=tuple(self.contributions),
            replies=tuple(self.replies),
            updates=tuple(self.updates),
            track=track,
            opt_out=self.opt_out,
            opt_in=self.opt_in,
            forget=self.forget,
            notice_sent=send_notice,
            language=self.switched_language,
        )


# --- public entry points --------------------------------------------------------------


def is_expired(state: State, now: datetime) -> bool:
    """True when a conversation left half-way has outlived its expiry."""
    return state.step != IDLE and state.expires_at is not None and state.expires_at <= now


def expire(state: State, context: Context) -> Outcome:
    """For the periodic sweeper: file what an expired conversation kept, and reset it.

    A neighbourhood question left unanswered keeps nothing (its contribution is
    filed already): it is reset without a word.
    """
    if not is_expired(state, context.now):
        return Outcome(state=state)
    turn = _Turn(context, silent=context.sender.opted_out)
    _file_expired(turn, state)
    return turn.outcome(State(), notice=False)


def handle(state: State, message: Incoming, context: Context) -> Outcome:
    """Work through one message from a resident."""
    # never mutate the caller's state
    state = replace(state, options=list(state.options), media=list(state.media))
    if message.verified is False:
        return _unverified(state, message, context)
    sender = context.sender
    turn = _Turn(context, silent=sender.opted_out)
    turn.media = list(message.media)
    if is_expired(state, context.now):
        _file_expired(turn, state)
        state = State()
    text = clean(message.text)
    if sender.opted_out:
        if message.start is not None:
            text = "START"
        state = _handle_opted_out(turn, state, message, text)
        return turn.outcome(state, notice=turn.opt_in)
    if message.start is not None:
        state = _start(turn, state, message)
        return turn.outcome(state, notice=True)
    if not text and message.media:
        state = _take_media(turn, state, message)
    elif not text:
        turn.say("media.unsupported" if message.attachments else "empty")
        return turn.outcome(state, notice=True)
    else:
        state = _handle_text(turn, state, message, text)
    if message.attachments and not turn.opt_out and not turn.forget:
        turn.say("media.ignored")
    if turn.media and not turn.opt_out and not turn.forget:
        turn.say("media.not_kept")  # sent with a command: not content
    return turn.outcome(state, notice=True)


# --- steps ----------------------------------------------------------------------------


def _unverified(state: State, message: Incoming, context: Context) -> Outcome:
    """A message whose sender could not be verified: anyone may have written it in the name
    of the address's owner. Its words are filed for moderators (in the campaign its keyword
    or address names, else the one open campaign, else unsorted) and that is all: no reply,
    no receipt, no notice (the address may be a victim's), no command (STOP, OUBLIER, START,
    SUIVI, GROUPE, AIDE, a language), and the owner's conversation is left as it was."""
    text = clean(message.text)
    if not text and not message.media:
        return Outcome(state=state)
    word, rest = split_first_word(text)
    campaign = _campaign_for_keyword(context.campaigns, word, open_only=True)
    if campaign is None:
        candidates = _default_candidates(context.campaigns, message.recipient)
        campaign = candidates[0] if len(candidates) == 1 else None
    elif rest:
        text = rest
    turn = _Turn(context, silent=True)
    kept = State(
        campaign=campaign.slug if campaign else None,
        text=text,
        received_at=message.received_at,
        media=list(message.media),
    )
    turn.file(kept, None, receipt=None)
    return Outcome(state=state, contributions=tuple(turn.contributions))


def _file_expired(turn: _Turn, state: State) -> None:
    # In choose_neighbourhood the text is empty, except in a state stored before
    # contributions were filed at once.
    if state.text or state.media:
        turn.file(state, None, RECEIPT_EXPIRED, expired=True)


def _handle_opted_out(turn: _Turn, state: State, message: Incoming, text: str) -> State:
    """Silence, except START; unambiguous contributions are still filed."""
    word, rest = split_first_word(text)
    alone = _only_polite(rest)
    if word in OPT_IN_WORDS_WHEN_OPTED_OUT and alone:
        turn.opt_in = True
        turn.silent = False
        _abandon(turn, state)
        turn.say("optin.confirmed")
        return State()
    if word in FORGET_WORDS and alone:
        turn.forget = True
        return State()
    # A conversation left over from before the opt-out: keep its text, quietly.
    _abandon(turn, state)
    if word in OPT_OUT_WORDS and alone:
        turn.opt_out = True
        return State()
    if not text or _is_command(word, rest):
        return State()
    keyword_campaign = _campaign_for_keyword(turn.context.campaigns, word, open_only=True)
    if keyword_campaign is not None:
        if rest:
            _file_silently(turn, keyword_campaign, rest, message.received_at)
        return State()
    candidates = _default_candidates(turn.context.campaigns, message.recipient)
    if len(candidates) == 1:
        _file_silently(turn, candidates[0], text, message.received_at)
    return State()


def _file_silently(turn: _Turn, campaign: CampaignInfo, text: str, received_at: datetime) -> None:
    state = State(campaign=campaign.slug, text=text, received_at=received_at)
    turn.file(state, None, receipt=None)


def _abandon(turn: _Turn, state: State) -> bool:
    """File what a conversation kept without asking more; True if something was filed."""
    if not state.text and not state.media:
        return False
    turn.file(state, None, None)
    return True


def _handle_text(turn: _Turn, state: State, message: Incoming, text: str) -> State:
    word, rest = split_first_word(text)
    alone = _only_polite(rest)

    if word in OPT_OUT_WORDS and alone:
        turn.opt_out = True
        if _abandon(turn, state):
            turn.replies.append(Reply(STOP_CONFIRMED_FILED, {}, len(turn.contributions) - 1))
        else:
            turn.say("stop.confirmed")
        return State()
    if word in OPT_IN_WORDS and alone:
        turn.opt_in = True
        turn.say("optin.confirmed")
        return state
    if word in FORGET_WORDS and alone:
        turn.forget = True  # what was being typed is discarded too: erasure was asked for
        turn.say("forget.confirmed")
        return State()
    if word in HELP_WORDS and alone:
        _help(turn)
        return state
    if word in LANGUAGE_WORDS and alone and LANGUAGE_WORDS[word] in languages():
        turn.language = turn.switched_language = LANGUAGE_WORDS[word]
        turn.say("language.changed")
        return state
    if word in FOLLOW_UP_WORDS and _follow_up(turn, rest):
        return state
    if word in GROUP_WORDS:
        if state.step == CHOOSE_NEIGHBOURHOOD:
            # The contribution is filed: the group is for the next one.
            state = _leave_neighbourhood(turn, state)
        return _group(turn, state, rest)

    if state.step == CHOOSE_CAMPAIGN:
        return _answer_campaign_menu(turn, state, message, text, word, rest)
    if state.step == CHOOSE_NEIGHBOURHOOD:
        return _answer_neighbourhood(turn, state, message, text, word, rest)
    if state.step == GROUP_DESCRIPTION:
        return _answer_group(turn, state, message, text, word, rest)
    if state.step == AWAITING_TEXT:
        return _answer_text(turn, state, message, text, word, rest)
    return _from_idle(turn, state, message, text, word, rest)


def _from_idle(
    turn: _Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    campaign = _campaign_for_keyword(turn.context.campaigns, word, open_only=False)
    if campaign is not None:
        return _keyword(turn, state, message, campaign, rest)
    return _take_text(turn, state, message, text)


def _keyword(
    turn: _Turn, state: State, message: Incoming, campaign: CampaignInfo, rest: str
) -> State:
    if campaign.status == CLOSED:
        turn.say("campaign.closed", title=campaign.title)
        return State()
    if campaign.status != OPEN:
        turn.say("campaign.not_open", title=campaign.title)
        return State()
    state.campaign = campaign.slug
    if rest:
        return _take_text(turn, state, message, rest)
    state.step = AWAITING_TEXT
    _ask(turn, state)
    return state


def _take_text(turn: _Turn, state: State, message: Incoming, text: str) -> State:
    state.text = text
    state.media = [*state.media, *turn.take_media()]
    state.received_at = message.received_at
    if state.campaign is None or _campaign(turn.context.campaigns, state.campaign) is None:
        candidates = _default_candidates(turn.context.campaigns, message.recipient)
        if not candidates:
            turn.say("campaign.none_open")
            return State()
        if len(candidates) > 1:
            state.campaign = None
            state.step = CHOOSE_CAMPAIGN
            state.options = [c.slug for c in candidates]
            state.retries = 0
            turn.say("campaign_menu.ask", menu=_campaign_menu(turn, state.options))
            return state
        state.campaign = candidates[0].slug
    return _campaign_chosen(turn, state)


def _campaign_chosen(turn: _Turn, state: State) -> State:
    """File the kept text at once; then ask the neighbourhood if the campaign lists any."""
    turn.file(state, None, RECEIPT)
    campaign = _campaign(turn.context.campaigns, state.campaign)
    if campaign is None or not campaign.neighbourhoods or turn.silent:
        return State()
    turn.track = len(turn.contributions) - 1
    asking = State(
        step=CHOOSE_NEIGHBOURHOOD, campaign=campaign.slug, options=list(campaign.neighbourhoods)
    )
    _ask(turn, asking)
    return asking


def _answer_campaign_menu(
    turn: _Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    campaigns = turn.context.campaigns
    state.media = [*state.media, *turn.take_media()]  # a caption's media go with the kept text
    chosen: str | None = None
    number = _menu_number(word)
    if number is not None:
        if 1 <= number <= len(state.options) and _only_polite(rest):
            chosen = state.options[number - 1]
    # The title first: "Budget participatif" names a campaign, it does not add "participatif".
    if chosen is None:
        titles = [_title(campaigns, slug) for slug in state.options]
        index = best_match(text, titles)
        if index is not None:
            chosen = state.options[index]
    if chosen is None:
        by_keyword = _campaign_for_keyword(
            [c for c in campaigns if c.slug in state.options], word, open_only=False
        )
        if by_keyword is not None:
            chosen = by_keyword.slug
            if rest:  # "PARC et aussi des jeux": the rest adds to what was kept
                state.text = f"{state.text}\n{rest}"
    if chosen is not None:
        state.campaign = chosen
        state.options = []
        return _campaign_chosen(turn, state)

    state.retries += 1
    if not (number is not None and _only_polite(rest)):  # a wrong menu number is not content
        state.text = f"{state.text}\n{text}"
    if state.retries > MAX_MENU_RESENDS:
        turn.file(state, None, RECEIPT_UNSORTED)
        return State()
    turn.say("campaign_menu.retry", menu=_campaign_menu(turn, state.options))
    return state


def _answer_neighbourhood(
    turn: _Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    content = True  # whether an unrecognised answer is worth keeping
    media = turn.take_media()
    if media and state.reference is not None:
        turn.updates.append(ContributionUpdate(state.reference, media=tuple(media)))
    elif media:
        state.media = [*state.media, *media]  # an old state: kept with its text until filed
    number = _menu_number(word)
    if number is not None and _only_polite(rest):
        if number == 0:
            return _skip_neighbourhood(turn, state)
        if number <= len(state.options):
            return _note_neighbourhood(turn, state, state.options[number - 1])
        content = False  # a wrong number is not content
    elif (word in SKIP_WORDS and _only_polite(rest)) or _only_polite(text):
        return _skip_neighbourhood(turn, state)  # "0", "non merci", or just "merci"
    else:
        # A neighbourhood name may equal a keyword ("Parc"): the keyword alone (or
        # with politeness) is the name, unless it names no option; the keyword
        # followed by more ("PARC une aire de jeux") is a new contribution, unless
        # the whole answer is an option's name ("Parc Nord"). A closed campaign's
        # keyword is content.
        campaign = _campaign_for_keyword(turn.context.campaigns, word, open_only=True)
        index = best_match(text, state.options)
        if campaign is not None and not _only_polite(rest):
            if not any(words(text) == words(option) for option in state.options):
                index = None
        if index is not None:
            return _note_neighbourhood(turn, state, state.options[index])
        if campaign is not None:
            _leave_neighbourhood(turn, state)
            return _keyword(turn, State(), message, campaign, rest)

    state.retries += 1
    if content:
        if state.reference is not None:
            turn.updates.append(ContributionUpdate(state.reference, append_text=text))
        else:
            state.text = "\n".join(t for t in (state.text, text) if t)  # kept until filed
    if state.retries < MAX_NEIGHBOURHOOD_MISSES:
        turn.say("neighbourhood.retry", menu=_neighbourhood_menu(turn, state.options))
        return state
    if state.reference is None and state.text:
        return _leave_neighbourhood(turn, state)  # an old state: file what it kept
    if content and state.reference is not None:
        turn.say("neighbourhood.appended")
    else:
        turn.say("neighbourhood.skipped")
    return State()


def _note_neighbourhood(turn: _Turn, state: State, name: str) -> State:
    if state.reference is not None:
        turn.updates.append(ContributionUpdate(state.reference, neighbourhood=name))
        turn.say("neighbourhood.noted", name=name)
    elif state.text:  # an old state: its contribution was not filed yet
        turn.file(state, name, RECEIPT)
    else:  # a damaged state: nothing to attach the answer to
        turn.say("neighbourhood.skipped")
    return State()


def _skip_neighbourhood(turn: _Turn, state: State) -> State:
    if state.reference is None and state.text:
        return _leave_neighbourhood(turn, state)  # an old state: file what it kept
    turn.say("neighbourhood.skipped")
    return State()


def _leave_neighbourhood(turn: _Turn, state: State) -> State:
    """Drop the neighbourhood question (filing what an old state kept) and go back to idle."""
    _abandon_with_receipt(turn, state)
    return State()


def _abandon_with_receipt(turn: _Turn, state: State) -> None:
    if state.text or state.media:
        turn.file(state, None, RECEIPT)


def _take_media(turn: _Turn, state: State, message: Incoming) -> State:
    """Media without a word: content, wherever the conversation stands (see module doc)."""
    if state.step == CHOOSE_NEIGHBOURHOOD and state.reference is not None:
        media = tuple(turn.take_media())
        turn.updates.append(ContributionUpdate(state.reference, media=media))
        turn.say("media.added", reference=state.reference)
        return state
    if state.step in (CHOOSE_CAMPAIGN, GROUP_DESCRIPTION) or (
        state.step == CHOOSE_NEIGHBOURHOOD and state.text
    ):
        # Kept with what the conversation holds; the question still stands.
        state.media = [*state.media, *turn.take_media()]
        state.received_at = state.received_at or message.received_at
        _ask(turn, state)
        return state
    if state.step == CHOOSE_NEIGHBOURHOOD:  # a damaged state: start afresh
        state = State()
    return _take_text(turn, state, message, "")


def _start(turn: _Turn, state: State, message: Incoming) -> State:
    """A chat app's start command, bare or with a deep link's payload (see module doc)."""
    if state.step == CHOOSE_NEIGHBOURHOOD:
        _leave_neighbourhood(turn, state)
    else:
        _abandon_with_receipt(turn, state)
    turn.take_media()
    campaigns = turn.context.campaigns
    payload = fold(message.start or "").strip()
    if payload:
        named = [c for c in campaigns if fold(c.slug) == payload] or [
            c for c in campaigns if any(fold(k) == payload for k in c.keywords)
        ]
        named.sort(key=lambda c: c.status != OPEN)
        if named:
            return _keyword(turn, State(), message, named[0], "")
    open_campaigns = [c for c in campaigns if c.status == OPEN]
    if not open_campaigns:
        turn.say("campaign.none_open")
        return State()
    if len(open_campaigns) == 1:
        return _keyword(turn, State(), message, open_campaigns[0], "")
    slugs = [c.slug for c in open_campaigns]
    turn.say("start.welcome", menu=_campaign_menu(turn, slugs))
    # Text written next is taken as usual (the campaign menu follows); the options are the
    # campaigns the welcome listed, for the channel's buttons.
    return State(step=AWAITING_TEXT, options=slugs)


def _answer_group(
    turn: _Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    if state.resume is None:
        campaign = _campaign_for_keyword(turn.context.campaigns, word, open_only=True)
        if campaign is not None:
            return _keyword(turn, state, message, campaign, rest)
    return _describe_group(turn, state, text)


def _answer_text(
    turn: _Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    # Only open campaigns' keywords switch campaign here: otherwise a text that
    # begins with a closed campaign's keyword would be refused and lost.
    campaign = _campaign_for_keyword(turn.context.campaigns, word, open_only=True)
    if campaign is not None:
        return _keyword(turn, state, message, campaign, rest)
    return _take_text(turn, state, message, text)


def _group(turn: _Turn, state: State, description: str) -> State:
    state.collective = True
    if description:
        return _describe_group(turn, state, description)
    if state.step not in (IDLE, GROUP_DESCRIPTION):
        state.resume = state.step
    state.step = GROUP_DESCRIPTION
    _ask(turn, state)
    return state


def _describe_group(turn: _Turn, state: State, description: str) -> State:
    state.collective = True
    state.group = description
    if state.step == GROUP_DESCRIPTION:
        state.step = state.resume or AWAITING_TEXT
        state.resume = None
    elif state.step == IDLE:
        state.step = AWAITING_TEXT
    if state.step == AWAITING_TEXT and state.campaign is None:
        turn.say("group.noted", group=_echo(description))
        return state
    turn.say("group.noted_continue", group=_echo(description))
    _ask(turn, state)
    return state


def _ask(turn: _Turn, state: State) -> None:
    """(Re)ask the question of the step the conversation is at."""
    if state.step == CHOOSE_CAMPAIGN:
        turn.say("campaign_menu.ask", menu=_campaign_menu(turn, state.options))
    elif state.step == CHOOSE_NEIGHBOURHOOD:
        turn.say("neighbourhood.ask", menu=_neighbourhood_menu(turn, state.options))
    elif state.step == GROUP_DESCRIPTION:
        turn.say("group.ask")
    else:
        campaign = _campaign(turn.context.campaigns, state.campaign)
        if campaign is None:
            turn.say("text.ask")
        else:
            turn.say("campaign.question", title=campaign.title, question=campaign.question)


def _help(turn: _Turn) -> None:
    keywords = [c.keywords[0] for c in turn.context.campaigns if c.status == OPEN and c.keywords]
    if keywords:
        turn.say("help.default", keywords=", ".join(keywords), example=keywords[0])
    else:
        turn.say("help.no_campaign")


def _follow_up(turn: _Turn, argument: str) -> bool:
    """Answer SUIVI; False when the words after it are not a reference (a contribution)."""
    own = turn.context.sender.contributions
    if not argument:
        if not own:
            turn.say("followup.none")
            return True
        latest = own[:FOLLOW_UP_LIST_SIZE]
        lines = "\n".join(
            turn.render("followup.line", reference=c.reference, status=_status(turn, c))
            for c in latest
        )
        turn.say("followup.list", lines=lines)
        return True
    if not _looks_like_reference(argument):
        return False  # "Suivi des travaux insuffisant" is a contribution, not a request
    found = [c for c in own if _same_reference(argument, c.reference)]
    if not found:
        turn.say("followup.not_found", reference=_echo(argument.upper()))
    for contribution in found[:FOLLOW_UP_LIST_SIZE]:
        turn.say(
            "followup.status",
            reference=contribution.reference,
            campaign=contribution.campaign_title,
            status=_status(turn, contribution),
        )
        if contribution.status == "published" and contribution.answer_state:
            text = contribution.answer_text or ""
            if turn.language == "en" and contribution.answer_text_en:
                text = contribution.answer_text_en
            state = turn.render(f"answer.state.{contribution.answer_state}")
            if text:
                turn.say("followup.answer", state=state, text=_clip(text, ANSWER_EXCERPT))
    return True


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def _status(turn: _Turn, contribution: OwnContribution) -> str:
    if contribution.status == "published" and contribution.answer_state:
        return turn.render(
            "followup.answer_state",
            state=turn.render(f"answer.state.{contribution.answer_state}"),
        )
    if contribution.status == "published":
        return turn.render("status.published")
    if contribution.status == "rejected" and contribution.reason:
        return turn.render("status.rejected_reason", reason=contribution.reason)
    # Spam is reported as not kept: naming it would only invite a way around.
    if contribution.status in ("rejected", "spam"):
        return turn.render("status.rejected")
    return turn.render("status.pending")


def _parse_reference(text: str) -> tuple[str | None, int] | None:
    text = text.strip()
    if len(text) > MAX_REFERENCE_LENGTH:
        return None
    match = _REFERENCE.fullmatch(fold(text).strip())
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def _looks_like_reference(text: str) -> bool:
    """One short word, or a keyword and a number ("PARC 42"): worth looking up."""
    if len(text.strip()) > MAX_REFERENCE_LENGTH:
        return False
    return len(text.split()) == 1 or _parse_reference(text) is not None


def _same_reference(typed: str, reference: str) -> bool:
    """Forgiving comparison: "parc-42", "PARC 0042" and "42" all name PARC-0042."""
    if _NON_WORD.sub("", fold(typed)) == _NON_WORD.sub("", fold(reference)):
        return True
    wanted, actual = _parse_reference(typed), _parse_reference(reference)
    if wanted is None or actual is None:
        return False
    return wanted[1] == actual[1] and (wanted[0] is None or wanted[0] == actual[0])


# --- helpers --------------------------------------------------------------------------


def _is_command(word: str, rest: str) -> bool:
    """Whether a message is a command rather than a contribution, as _handle_text decides."""
    if word in GROUP_WORDS or (word in STANDALONE_WORDS and _only_polite(rest)):
        return True
    return word in FOLLOW_UP_WORDS and (not rest or _looks_like_reference(rest))


def _menu_number(word: str) -> int | None:
    """The number a word is, for a menu's answer ("2", "02", "２"); None if it is not one.

    ``isdecimal``, not ``isdigit``: the Ethiopic "፩" is a digit to ``isdigit`` (folding
    leaves it as it is) but ``int`` refuses it.
    """
    if not word.isdecimal():
        return None
    significant = word.lstrip("0")
    if len(significant) > MAX_MENU_DIGITS:
        return 10**MAX_MENU_DIGITS  # beyond any menu
    return int(significant or "0")


def _only_polite(rest: str) -> bool:
    return all(word in POLITE_WORDS for word in words(rest))


def _echo(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ECHO_LENGTH else text[: ECHO_LENGTH - 1].rstrip() + "…"


def _campaign(campaigns: Sequence[CampaignInfo], slug: str | None) -> CampaignInfo | None:
    return next((c for c in campaigns if c.slug == slug), None) if slug else None


def _title(campaigns: Sequence[CampaignInfo], slug: str) -> str:
    campaign = _campaign(campaigns, slug)
    return campaign.title if campaign else slug


def _campaign_for_keyword(
    campaigns: Sequence[CampaignInfo], word: str, open_only: bool
) -> CampaignInfo | None:
    """The campaign a first word names; an open one wins over a past or future one."""
    if not word:
        return None
    named = [c for c in campaigns if any(token(k) == word for k in c.keywords)]
    for status in (OPEN,) if open_only else (OPEN, DRAFT, CLOSED):
        for campaign in named:
            if campaign.status == status:
                return campaign
    if not open_only and named:
        return named[0]
    return None


def _address(value: str) -> str:
    """Numbers compare by digits ("+33 1 00…" is "+331…"); other addresses by case."""
    compact = re.sub(r"[\s().\-]", "", value)
    if re.fullmatch(r"\+?\d+", compact):
        return compact
    return value.strip().casefold()


def _default_candidates(
    campaigns: Sequence[CampaignInfo], recipient: str | None
) -> list[CampaignInfo]:
    """The open campaigns a message without keyword may belong to, best first.

    The number the resident wrote to says the most; failing that, any open
    campaign.
    """
    open_campaigns = [c for c in campaigns if c.status == OPEN]
    if recipient:
        wanted = _address(recipient)
        by_number = [
            c for c in open_campaigns if any(_address(n) == wanted for n in c.phone_numbers)
        ]
        if by_number:
            return by_number
    return open_campaigns


def _campaign_menu(turn: _Turn, slugs: Sequence[str]) -> str:
    lines = []
    for number, slug in enumerate(slugs, start=1):
        campaign = _campaign(turn.context.campaigns, slug)
        title = campaign.title if campaign else slug
        if campaign and campaign.keywords:
            lines.append(
                turn.render(
                    "campaign_menu.line", number=number, title=title, keyword=campaign.keywords[0]
                )
            )
        else:
            lines.append(turn.render("campaign_menu.line_no_keyword", number=number, title=title))
    return "\n".join(lines)


def _neighbourhood_menu(turn: _Turn, names: Sequence[str]) -> str:
    lines = [
        turn.render("neighbourhood.line", number=number, name=name)
        for number, name in enumerate(names, start=1)
    ]
    lines.append(turn.render("neighbourhood.skip_line"))
    return "\n".join(lines)
