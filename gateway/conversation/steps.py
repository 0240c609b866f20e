"""The answers at each step of a conversation: a campaign's keyword, text to file (and the
campaign menu when more than one campaign may be meant), the menu's answer, the neighbourhood
question, GROUPE and its description, media without words, and a chat app's start command.
Each takes the ``Turn`` and the current ``State`` and returns the new state; the commands are
dealt with before (``machine``)."""

from __future__ import annotations

from gateway.conversation.campaigns import (
    by_slug,
    campaign_for_keyword,
    default_candidates,
    title_of,
)
from gateway.conversation.model import (
    AWAITING_TEXT,
    CHOOSE_CAMPAIGN,
    CHOOSE_NEIGHBOURHOOD,
    CLOSED,
    GROUP_DESCRIPTION,
    IDLE,
    OPEN,
    RECEIPT,
    RECEIPT_UNSORTED,
    CampaignInfo,
    ContributionUpdate,
    Incoming,
    State,
)
from gateway.conversation.questions import ask, campaign_menu, neighbourhood_menu
from gateway.conversation.turn import Turn
from gateway.conversation.words import SKIP_WORDS, echo, menu_number, only_polite
from gateway.textnorm import best_match, fold, words

MAX_MENU_RESENDS = 2  # after that many wrong answers to the campaign menu, file unsorted
MAX_NEIGHBOURHOOD_MISSES = 2  # the question is asked again once, then the conversation ends


def from_idle(
    turn: Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    campaign = campaign_for_keyword(turn.context.campaigns, word, open_only=False)
    if campaign is not None:
        return _keyword(turn, state, message, campaign, rest)
    return _take_text(turn, state, message, text)


def _keyword(
    turn: Turn, state: State, message: Incoming, campaign: CampaignInfo, rest: str
) -> State:
    if campaign.status == CLOSED:
        if campaign.closes_on:  # closed by its end date
            year, month, day = campaign.closes_on.split("-")
            turn.say("campaign.ended", title=campaign.title, day=day, month=month, year=year)
        else:
            turn.say("campaign.closed", title=campaign.title)
        return State()
    if campaign.status != OPEN:
        turn.say("campaign.not_open", title=campaign.title)
        return State()
    state.campaign = campaign.slug
    if rest:
        return _take_text(turn, state, message, rest)
    state.step = AWAITING_TEXT
    ask(turn, state)
    return state


def _take_text(turn: Turn, state: State, message: Incoming, text: str) -> State:
    state.text = text
    state.media = [*state.media, *turn.take_media()]
    state.received_at = message.received_at
    if state.campaign is None or by_slug(turn.context.campaigns, state.campaign) is None:
        candidates = default_candidates(turn.context.campaigns, message.recipient)
        if not candidates:
            turn.say("campaign.none_open")
            return State()
        if len(candidates) > 1:
            state.campaign = None
            state.step = CHOOSE_CAMPAIGN
            state.options = [c.slug for c in candidates]
            state.retries = 0
            turn.say("campaign_menu.ask", menu=campaign_menu(turn, state.options))
            return state
        state.campaign = candidates[0].slug
    return _campaign_chosen(turn, state)


def _campaign_chosen(turn: Turn, state: State) -> State:
    """File the kept text at once; then ask the neighbourhood if the campaign lists any."""
    turn.file(state, None, RECEIPT)
    campaign = by_slug(turn.context.campaigns, state.campaign)
    if campaign is None or not campaign.neighbourhoods or turn.silent:
        return State()
    turn.track = len(turn.contributions) - 1
    asking = State(
        step=CHOOSE_NEIGHBOURHOOD, campaign=campaign.slug, options=list(campaign.neighbourhoods)
    )
    ask(turn, asking)
    return asking


def answer_campaign_menu(
    turn: Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    campaigns = turn.context.campaigns
    state.media = [*state.media, *turn.take_media()]  # a caption's media go with the kept text
    chosen: str | None = None
    number = menu_number(word)
    if number is not None:
        if 1 <= number <= len(state.options) and only_polite(rest):
            chosen = state.options[number - 1]
    # The title first: "Budget participatif" names a campaign, it does not add "participatif".
    if chosen is None:
        titles = [title_of(campaigns, slug) for slug in state.options]
        index = best_match(text, titles)
        if index is not None:
            chosen = state.options[index]
    if chosen is None:
        by_keyword = campaign_for_keyword(
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
    if not (number is not None and only_polite(rest)):  # a wrong menu number is not content
        state.text = f"{state.text}\n{text}"
    if state.retries > MAX_MENU_RESENDS:
        turn.file(state, None, RECEIPT_UNSORTED)
        return State()
    turn.say("campaign_menu.retry", menu=campaign_menu(turn, state.options))
    return state


def answer_neighbourhood(
    turn: Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    content = True  # whether an unrecognised answer is worth keeping
    media = turn.take_media()
    if media and state.reference is not None:
        turn.updates.append(ContributionUpdate(state.reference, media=tuple(media)))
    elif media:
        state.media = [*state.media, *media]  # an old state: kept with its text until filed
    number = menu_number(word)
    if number is not None and only_polite(rest):
        if number == 0:
            return _skip_neighbourhood(turn, state)
        if number <= len(state.options):
            return _note_neighbourhood(turn, state, state.options[number - 1])
        content = False  # a wrong number is not content
    elif (word in SKIP_WORDS and only_polite(rest)) or only_polite(text):
        return _skip_neighbourhood(turn, state)  # "0", "non merci", or just "merci"
    else:
        # A neighbourhood name may equal a keyword ("Parc"): the keyword alone (or
        # with politeness) is the name, unless it names no option; the keyword
        # followed by more ("PARC une aire de jeux") is a new contribution, unless
        # the whole answer is an option's name ("Parc Nord"). A closed campaign's
        # keyword is content.
        campaign = campaign_for_keyword(turn.context.campaigns, word, open_only=True)
        index = best_match(text, state.options)
        if campaign is not None and not only_polite(rest):
            if not any(words(text) == words(option) for option in state.options):
                index = None
        if index is not None:
            return _note_neighbourhood(turn, state, state.options[index])
        if campaign is not None:
            leave_neighbourhood(turn, state)
            return _keyword(turn, State(), message, campaign, rest)

    state.retries += 1
    if content:
        if state.reference is not None:
            turn.updates.append(ContributionUpdate(state.reference, append_text=text))
        else:
            state.text = "\n".join(t for t in (state.text, text) if t)  # kept until filed
    if state.retries < MAX_NEIGHBOURHOOD_MISSES:
        turn.say("neighbourhood.retry", menu=neighbourhood_menu(turn, state.options))
        return state
    if state.reference is None and state.text:
        return leave_neighbourhood(turn, state)  # an old state: file what it kept
    if content and state.reference is not None:
        turn.say("neighbourhood.appended")
    else:
        turn.say("neighbourhood.skipped")
    return State()


def _note_neighbourhood(turn: Turn, state: State, name: str) -> State:
    if state.reference is not None:
        turn.updates.append(ContributionUpdate(state.reference, neighbourhood=name))
        turn.say("neighbourhood.noted", name=name)
    elif state.text:  # an old state: its contribution was not filed yet
        turn.file(state, name, RECEIPT)
    else:  # a damaged state: nothing to attach the answer to
        turn.say("neighbourhood.skipped")
    return State()


def _skip_neighbourhood(turn: Turn, state: State) -> State:
    if state.reference is None and state.text:
        return leave_neighbourhood(turn, state)  # an old state: file what it kept
    turn.say("neighbourhood.skipped")
    return State()


def leave_neighbourhood(turn: Turn, state: State) -> State:
    """Drop the neighbourhood question (filing what an old state kept) and go back to idle."""
    _abandon_with_receipt(turn, state)
    return State()


def _abandon_with_receipt(turn: Turn, state: State) -> None:
    if state.text or state.media:
        turn.file(state, None, RECEIPT)


def take_media(turn: Turn, state: State, message: Incoming) -> State:
    """Media without a word: content, wherever the conversation stands (see the package doc)."""
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
        ask(turn, state)
        return state
    if state.step == CHOOSE_NEIGHBOURHOOD:  # a damaged state: start afresh
        state = State()
    return _take_text(turn, state, message, "")


def start(turn: Turn, state: State, message: Incoming) -> State:
    """A chat app's start command, bare or with a deep link's payload (see the package doc)."""
    if state.step == CHOOSE_NEIGHBOURHOOD:
        leave_neighbourhood(turn, state)
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
    turn.say("start.welcome", menu=campaign_menu(turn, slugs))
    # Text written next is taken as usual (the campaign menu follows); the options are the
    # campaigns the welcome listed, for the channel's buttons.
    return State(step=AWAITING_TEXT, options=slugs)


def answer_group(
    turn: Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    if state.resume is None:
        campaign = campaign_for_keyword(turn.context.campaigns, word, open_only=True)
        if campaign is not None:
            return _keyword(turn, state, message, campaign, rest)
    return _describe_group(turn, state, text)


def answer_text(
    turn: Turn, state: State, message: Incoming, text: str, word: str, rest: str
) -> State:
    # Only open campaigns' keywords switch campaign here: otherwise a text that
    # begins with a closed campaign's keyword would be refused and lost.
    campaign = campaign_for_keyword(turn.context.campaigns, word, open_only=True)
    if campaign is not None:
        return _keyword(turn, state, message, campaign, rest)
    return _take_text(turn, state, message, text)


def group(turn: Turn, state: State, description: str) -> State:
    state.collective = True
    if description:
        return _describe_group(turn, state, description)
    if state.step not in (IDLE, GROUP_DESCRIPTION):
        state.resume = state.step
    state.step = GROUP_DESCRIPTION
    ask(turn, state)
    return state


def _describe_group(turn: Turn, state: State, description: str) -> State:
    state.collective = True
    state.group = description
    if state.step == GROUP_DESCRIPTION:
        state.step = state.resume or AWAITING_TEXT
        state.resume = None
    elif state.step == IDLE:
        state.step = AWAITING_TEXT
    if state.step == AWAITING_TEXT and state.campaign is None:
        turn.say("group.noted", group=echo(description))
        return state
    turn.say("group.noted_continue", group=echo(description))
    ask(turn, state)
    return state
