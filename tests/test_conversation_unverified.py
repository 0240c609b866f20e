"""The conversation engine on a message whose sender could not be verified (an email failing
DMARC alignment, ``Incoming.verified=False``): its words are filed for moderators, nothing is
answered, no command is obeyed, the owner's conversation is untouched. Pure: no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from gateway.conversation import (
    CHOOSE_CAMPAIGN,
    CHOOSE_NEIGHBOURHOOD,
    IDLE,
    Incoming,
    Outcome,
    OwnContribution,
    State,
    handle,
)
from tests.test_conversation import ALL, BUDGET, ECOLE, NOW, PARC, context

ADDRESS = "participez@participez.ville.example"


def unverified(
    text: str,
    state: State | None = None,
    *campaigns: object,
    to: str = ADDRESS,
    media: tuple[str, ...] = (),
    **sender: object,
) -> Outcome:
    ctx = context(*(campaigns or ALL), **sender)  # type: ignore[arg-type]
    message = Incoming(text=text, received_at=NOW, recipient=to, media=media, verified=False)
    return handle(state or State(), message, ctx)


def nothing_but_filing(outcome: Outcome) -> None:
    """What an unverified message may never cause, whatever it says."""
    assert outcome.replies == ()
    assert not (outcome.opt_out or outcome.opt_in or outcome.forget or outcome.notice_sent)
    assert outcome.language is None and outcome.updates == () and outcome.track is None


@pytest.mark.parametrize(
    "text",
    ["STOP", "OUBLIER", "START", "AIDE", "ENGLISH", "SUIVI PARC-0042", "GROUPE atelier", "oui"],
)
def test_a_command_is_not_obeyed_and_is_filed_unsorted_for_moderators(text: str):
    outcome = unverified(text, None, *ALL, first_contact=True)
    nothing_but_filing(outcome)
    (filed,) = outcome.contributions
    assert (filed.campaign, filed.text, filed.kind) == (None, text, "individual")


def test_opted_out_stays_opted_out_and_forget_is_not_honoured():
    outcome = unverified("START", None, *ALL, opted_out=True)
    nothing_but_filing(outcome)
    outcome = unverified("OUBLIER", None, *ALL, opted_out=True)
    nothing_but_filing(outcome)


def test_a_keyword_or_the_only_open_campaign_routes_the_words():
    by_keyword = unverified("BUDGET une ludothèque")
    nothing_but_filing(by_keyword)
    assert [(c.campaign, c.text) for c in by_keyword.contributions] == [
        ("budget", "une ludothèque")
    ]
    only_one_open = unverified("Des bancs à l'ombre", None, PARC, ECOLE)
    assert [(c.campaign, c.text) for c in only_one_open.contributions] == [
        ("parc", "Des bancs à l'ombre")
    ]
    several_open = unverified("Des bancs à l'ombre", None, PARC, BUDGET)
    assert [(c.campaign, c.text) for c in several_open.contributions] == [
        (None, "Des bancs à l'ombre")
    ]
    closed = unverified("ÉCOLE horaires", None, PARC, BUDGET, ECOLE)
    assert [(c.campaign, c.text) for c in closed.contributions] == [(None, "ÉCOLE horaires")]


def test_the_owners_conversation_is_left_as_it_was():
    menu = State(
        step=CHOOSE_CAMPAIGN,
        text="Plus de poubelles",
        received_at=NOW - timedelta(minutes=5),
        options=["parc", "budget"],
        expires_at=NOW + timedelta(hours=1),
    )
    outcome = unverified("2", menu)
    nothing_but_filing(outcome)
    assert outcome.state == menu  # not answered as the menu, not expired, not prolonged
    assert [(c.campaign, c.text) for c in outcome.contributions] == [(None, "2")]

    asking = State(step=CHOOSE_NEIGHBOURHOOD, campaign="parc", options=list(PARC.neighbourhoods))
    asking = replace(asking, reference="PARC-0042", expires_at=NOW + timedelta(hours=1))
    outcome = unverified("Centre", asking)
    assert outcome.state == asking and outcome.updates == ()


def test_follow_up_does_not_reveal_the_owners_contributions():
    own = (OwnContribution(reference="PARC-0042", status="published", campaign_title="Parc"),)
    outcome = unverified("SUIVI", None, *ALL, contributions=own)
    nothing_but_filing(outcome)
    assert [c.text for c in outcome.contributions] == ["SUIVI"]


def test_media_alone_are_filed_and_an_empty_message_files_nothing():
    outcome = unverified("", None, PARC, media=("media-1",))
    nothing_but_filing(outcome)
    assert [(c.campaign, c.media) for c in outcome.contributions] == [("parc", ("media-1",))]
    empty = unverified("   ")
    assert empty == Outcome(state=State()) and empty.state.step == IDLE


def test_the_same_text_verified_is_answered_and_obeyed():
    ctx = context(*ALL, first_contact=True)
    message = Incoming(text="STOP", received_at=NOW, recipient=ADDRESS, verified=True)
    outcome = handle(State(), message, ctx)
    assert outcome.opt_out and [r.key for r in outcome.replies] == ["stop.confirmed"]
    sms = handle(State(), Incoming(text="STOP", received_at=NOW), ctx)  # verified=None
    assert sms.opt_out
