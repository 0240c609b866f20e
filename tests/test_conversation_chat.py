"""The conversation engine's chat-app inputs: a start command (bare or a deep link's payload)
and media the channel keeps (Telegram's voice notes and photos), in every step. Pure logic, no
I/O, as in tests/test_conversation.py."""

from __future__ import annotations

from dataclasses import replace

from gateway.conversation import (
    AWAITING_TEXT,
    CHOOSE_CAMPAIGN,
    CHOOSE_NEIGHBOURHOOD,
    IDLE,
    Incoming,
    Outcome,
    State,
    handle,
)
from tests.test_conversation import ALL, BUDGET, ECOLE, NOW, PARC, REF, context, stored


def start(state: State, payload: str, ctx) -> Outcome:  # type: ignore[no-untyped-def]
    return handle(state, Incoming(text="", received_at=NOW, start=payload), ctx)


def media(state: State, ctx, *refs: str, text: str = "") -> Outcome:  # type: ignore[no-untyped-def]
    return handle(state, Incoming(text=text, received_at=NOW, media=refs), ctx)


def keys(outcome: Outcome) -> list[str]:
    return [r.key for r in outcome.replies]


def test_bare_start_with_several_open_campaigns_welcomes_with_their_list():
    outcome = start(State(), "", context(*ALL, first_contact=True))
    assert keys(outcome) == ["start.welcome", "language.invite", "notice"]
    assert outcome.state.step == AWAITING_TEXT
    assert outcome.state.options == ["parc", "budget", "gares"]  # open ones only, in order
    assert "1. Rénovation du quartier du Parc (PARC)" in outcome.replies[0].params["menu"]
    assert outcome.contributions == ()


def test_bare_start_with_one_open_campaign_asks_its_question():
    outcome = start(State(), "", context(PARC, ECOLE))
    assert keys(outcome) == ["campaign.question"]
    assert (outcome.state.step, outcome.state.campaign) == (AWAITING_TEXT, "parc")


def test_bare_start_without_open_campaign_says_so():
    assert keys(start(State(), "", context(ECOLE))) == ["campaign.none_open"]


def test_deep_link_by_slug_or_keyword_any_case_opens_the_campaign():
    for payload in ("parc", "PARC", "Parc"):
        outcome = start(State(), payload, context(*ALL))
        assert (outcome.state.step, outcome.state.campaign) == (AWAITING_TEXT, "parc"), payload
    assert start(State(), "budget", context(*ALL)).state.campaign == "budget"


def test_deep_link_to_a_closed_campaign_says_it_is_closed():
    outcome = start(State(), "ecoles", context(*ALL))
    assert keys(outcome) == ["campaign.closed"]
    assert outcome.state.step == IDLE


def test_deep_link_to_nothing_known_falls_back_to_the_welcome():
    assert keys(start(State(), "nowhere", context(*ALL))) == ["start.welcome"]


def test_start_files_what_the_menu_kept_before_moving_on():
    ctx = context(PARC, BUDGET)
    menu = handle(State(), Incoming(text="Des bancs", received_at=NOW), ctx)
    assert menu.state.step == CHOOSE_CAMPAIGN
    outcome = start(menu.state, "budget", ctx)
    (filed,) = outcome.contributions
    assert (filed.text, filed.campaign) == ("Des bancs", None)  # nothing lost, sorted later
    assert outcome.state.campaign == "budget"


def test_start_while_opted_out_is_start_again():
    outcome = start(State(), "parc", context(*ALL, opted_out=True))
    assert outcome.opt_in
    assert keys(outcome) == ["optin.confirmed"]


def test_a_voice_note_alone_is_a_contribution():
    outcome = media(State(step=AWAITING_TEXT, campaign="parc"), context(*ALL), "in7:0")
    (filed,) = outcome.contributions
    assert (filed.campaign, filed.text, filed.media) == ("parc", "", ("in7:0",))
    assert keys(outcome)[0] == "receipt.default"
    assert outcome.state.step == CHOOSE_NEIGHBOURHOOD  # parc lists neighbourhoods


def test_a_photo_with_its_caption_is_one_contribution():
    outcome = media(State(), context(BUDGET), "in8:0", text="Ce banc est cassé")
    (filed,) = outcome.contributions
    assert (filed.text, filed.media) == ("Ce banc est cassé", ("in8:0",))
    assert "media.not_kept" not in keys(outcome)


def test_media_wait_with_the_text_for_the_campaign_menu():
    ctx = context(PARC, BUDGET)
    first = media(State(), ctx, "in9:0")
    assert keys(first) == ["campaign_menu.ask"]
    assert first.state.media == ["in9:0"]
    second = media(first.state, ctx, "in10:0")  # another photo: kept, the menu asked again
    assert second.state.media == ["in9:0", "in10:0"]
    assert keys(second) == ["campaign_menu.ask"]
    chosen = handle(second.state, Incoming(text="2", received_at=NOW), ctx)
    (filed,) = chosen.contributions
    assert (filed.campaign, filed.media) == ("budget", ("in9:0", "in10:0"))


def test_media_while_the_neighbourhood_is_asked_join_the_filed_contribution():
    ctx = context(PARC)
    asked = handle(
        State(step=AWAITING_TEXT, campaign="parc"),
        Incoming(text="Un kiosque", received_at=NOW),
        ctx,
    )
    state = stored(asked)
    outcome = media(state, ctx, "in11:0")
    (update,) = outcome.updates
    assert (update.reference, update.media) == (REF, ("in11:0",))
    assert outcome.contributions == ()
    assert keys(outcome) == ["media.added"]
    assert outcome.state.step == CHOOSE_NEIGHBOURHOOD  # the question still stands
    answered = handle(outcome.state, Incoming(text="2", received_at=NOW), ctx)
    assert answered.updates[0].neighbourhood == "Centre"


def test_media_sent_with_a_command_are_not_kept_and_the_resident_is_told():
    outcome = media(State(), context(*ALL), "in12:0", text="AIDE")
    assert keys(outcome) == ["help.default", "media.not_kept"]
    assert outcome.contributions == ()


def test_kept_media_survive_the_stored_state_and_an_expiry():
    ctx = context(PARC, BUDGET)
    kept = media(State(), ctx, "in13:0").state
    again = State.from_dict(kept.to_dict())
    assert again.media == ["in13:0"]
    later = replace(ctx, now=NOW.replace(year=2026))
    outcome = handle(again, Incoming(text="BUDGET autre chose", received_at=later.now), later)
    expired = [c for c in outcome.contributions if c.expired]
    assert [c.media for c in expired] == [("in13:0",)]
