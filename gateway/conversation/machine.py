"""The engine's entry points and its commands: ``handle`` (one message: expiry, an opted-out
sender, a start command, media, then the commands INFO (announcements), STOP, START, OUBLIER,
AIDE, the languages, SUIVI and GROUPE before the answer of the step the conversation is at,
in ``steps``), ``expire`` and ``is_expired`` (for the sweeper), and what an unverified
sender's message gets (``unverified``: filed, nothing else)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from gateway.conversation import steps
from gateway.conversation.campaigns import as_of, campaign_for_keyword, default_candidates
from gateway.conversation.followup import follow_up, say_help
from gateway.conversation.model import (
    AWAITING_TEXT,
    CHOOSE_CAMPAIGN,
    CHOOSE_NEIGHBOURHOOD,
    GROUP_DESCRIPTION,
    IDLE,
    RECEIPT_EXPIRED,
    STOP_CONFIRMED_FILED,
    CampaignInfo,
    Context,
    Incoming,
    Outcome,
    Reply,
    State,
)
from gateway.conversation.turn import Turn
from gateway.conversation.words import (
    FOLLOW_UP_WORDS,
    FORGET_WORDS,
    GROUP_WORDS,
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_IN_WORDS_WHEN_OPTED_OUT,
    OPT_OUT_WORDS,
    announcements_request,
    is_command,
    language_word,
    only_polite,
)
from gateway.i18n import languages
from gateway.textnorm import clean, split_first_word


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
    turn = Turn(context, silent=context.sender.opted_out)
    _file_expired(turn, state)
    return turn.outcome(State(), notice=False)


def handle(state: State, message: Incoming, context: Context) -> Outcome:
    """Work through one message from a resident."""
    # never mutate the caller's state
    state = replace(state, options=list(state.options), media=list(state.media))
    # What counts is when the resident wrote: a message sent before the end date is taken
    # even when it is worked through after.
    context = replace(context, campaigns=as_of(context.campaigns, message.received_at))
    if message.verified is False:
        return unverified(state, message, context)
    sender = context.sender
    turn = Turn(context, silent=sender.opted_out)
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
        state = steps.start(turn, state, message)
        return turn.outcome(state, notice=True)
    if not text and message.media:
        state = steps.take_media(turn, state, message)
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


def unverified(state: State, message: Incoming, context: Context) -> Outcome:
    """A message whose sender could not be verified: anyone may have written it in the name
    of the address's owner. Its words are filed for moderators (in the campaign its keyword
    or address names, else the one open campaign, else unsorted) and that is all: no reply,
    no receipt, no notice (the address may be a victim's), no command (STOP, OUBLIER, START,
    SUIVI, GROUPE, AIDE, a language), and the owner's conversation is left as it was."""
    text = clean(message.text)
    if not text and not message.media:
        return Outcome(state=state)
    word, rest = split_first_word(text)
    campaign = campaign_for_keyword(context.campaigns, word, open_only=True)
    if campaign is None:
        candidates = default_candidates(context.campaigns, message.recipient)
        campaign = candidates[0] if len(candidates) == 1 else None
    elif rest:
        text = rest
    turn = Turn(context, silent=True)
    kept = State(
        campaign=campaign.slug if campaign else None,
        text=text,
        received_at=message.received_at,
        media=list(message.media),
    )
    turn.file(kept, None, receipt=None)
    return Outcome(state=state, contributions=tuple(turn.contributions))


def _file_expired(turn: Turn, state: State) -> None:
    # In choose_neighbourhood the text is empty, except in a state stored before
    # contributions were filed at once.
    if state.text or state.media:
        turn.file(state, None, RECEIPT_EXPIRED, expired=True)


def _handle_opted_out(turn: Turn, state: State, message: Incoming, text: str) -> State:
    """Silence, except START; unambiguous contributions are still filed."""
    word, rest = split_first_word(text)
    alone = only_polite(rest)
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
    if not text or is_command(word, rest):
        return State()
    keyword_campaign = campaign_for_keyword(turn.context.campaigns, word, open_only=True)
    if keyword_campaign is not None:
        if rest:
            _file_silently(turn, keyword_campaign, rest, message.received_at)
        return State()
    candidates = default_candidates(turn.context.campaigns, message.recipient)
    if len(candidates) == 1:
        _file_silently(turn, candidates[0], text, message.received_at)
    return State()


def _file_silently(turn: Turn, campaign: CampaignInfo, text: str, received_at: datetime) -> None:
    state = State(campaign=campaign.slug, text=text, received_at=received_at)
    turn.file(state, None, receipt=None)


def _abandon(turn: Turn, state: State) -> bool:
    """File what a conversation kept without asking more; True if something was filed."""
    if not state.text and not state.media:
        return False
    turn.file(state, None, None)
    return True


def _handle_text(turn: Turn, state: State, message: Incoming, text: str) -> State:
    word, rest = split_first_word(text)
    alone = only_polite(rest)

    announcements = announcements_request(word, rest)
    if announcements is not None:
        turn.announcements = announcements
        turn.say("announce.confirmed" if announcements else "announce.stopped")
        return state
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
        say_help(turn)
        return state
    chosen = language_word(word)
    if chosen is not None and alone and chosen in languages():
        turn.language = turn.switched_language = chosen
        turn.say("language.changed")
        return state
    if word in FOLLOW_UP_WORDS and follow_up(turn, rest):
        return state
    if word in GROUP_WORDS:
        if state.step == CHOOSE_NEIGHBOURHOOD:
            # The contribution is filed: the group is for the next one.
            state = steps.leave_neighbourhood(turn, state)
        return steps.group(turn, state, rest)

    if state.step == CHOOSE_CAMPAIGN:
        return steps.answer_campaign_menu(turn, state, message, text, word, rest)
    if state.step == CHOOSE_NEIGHBOURHOOD:
        return steps.answer_neighbourhood(turn, state, message, text, word, rest)
    if state.step == GROUP_DESCRIPTION:
        return steps.answer_group(turn, state, message, text, word, rest)
    if state.step == AWAITING_TEXT:
        return steps.answer_text(turn, state, message, text, word, rest)
    return steps.from_idle(turn, state, message, text, word, rest)
