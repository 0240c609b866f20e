"""The conversation engine, called as the inbound worker calls it: no database, no network."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.conversation import (
    AWAITING_TEXT,
    CHOOSE_CAMPAIGN,
    CHOOSE_NEIGHBOURHOOD,
    GROUP_DESCRIPTION,
    IDLE,
    MAX_NEIGHBOURHOOD_MISSES,
    RECEIPT,
    RECEIPT_EXPIRED,
    RECEIPT_UNSORTED,
    STOP_CONFIRMED_FILED,
    CampaignInfo,
    Context,
    ContributionUpdate,
    Incoming,
    Outcome,
    OwnContribution,
    Sender,
    State,
    expire,
    handle,
    is_expired,
)
from gateway.i18n import translate
from gateway.textnorm import best_match, clean, fold, split_first_word, token

NOW = datetime(2025, 3, 12, 18, 4, tzinfo=UTC)
REF = "PARC-0042"

PARC = CampaignInfo(
    slug="parc",
    title="Rénovation du quartier du Parc",
    question="Que souhaitez-vous pour le futur parc ?",
    keywords=("PARC",),
    status="open",
    phone_numbers=("+33100000001",),
    neighbourhoods=("Parc", "Centre", "Université"),
)
BUDGET = CampaignInfo(
    slug="budget",
    title="Budget participatif",
    question="Quel projet la ville doit-elle financer ?",
    keywords=("BUDGET",),
    status="open",
)
GARES = CampaignInfo(
    slug="gares",
    title="Quartier des gares",
    question="Comment rendre les gares plus agréables ?",
    keywords=("GARES", "GARE"),
    status="open",
)
ECOLE = CampaignInfo(
    slug="ecoles",
    title="Rythmes scolaires",
    question="Quels horaires pour les écoles ?",
    keywords=("ÉCOLE",),
    status="closed",
)
MARCHE = CampaignInfo(
    slug="marche",
    title="Marché couvert",
    question="Que vendre au marché ?",
    keywords=("MARCHE",),
    status="draft",
)
ALL = (PARC, BUDGET, GARES, ECOLE, MARCHE)


def sender(**changes: object) -> Sender:
    base = Sender(first_contact=False, opted_out=False)
    return replace(base, **changes)  # type: ignore[arg-type]


def context(*campaigns: CampaignInfo, now: datetime = NOW, **sender_changes: object) -> Context:
    return Context(now=now, campaigns=campaigns, sender=sender(**sender_changes))


def send(
    state: State,
    text: str,
    ctx: Context,
    *,
    at: datetime | None = None,
    to: str | None = None,
    attachments: int = 0,
) -> Outcome:
    message = Incoming(text=text, received_at=at or ctx.now, recipient=to, attachments=attachments)
    return handle(state, message, ctx)


def stored(outcome: Outcome, reference: str = REF) -> State:
    """The state as the caller stores it: the tracked contribution's reference written in."""
    if outcome.track is None:
        return outcome.state
    return replace(outcome.state, reference=reference)


def converse(ctx: Context, *texts: str, to: str | None = None) -> list[Outcome]:
    """Several messages in a row, each from the state the previous one left (as stored)."""
    outcomes, state = [], State()
    for text in texts:
        outcome = send(state, text, ctx, to=to)
        outcomes.append(outcome)
        state = stored(outcome)
    return outcomes


def rendered(outcome: Outcome, language: str = "fr") -> list[str]:
    """The SMS texts the resident reads, as the caller renders them."""
    language = outcome.language or language
    return [
        translate(
            r.key,
            r.language or language,
            **({"reference": REF} if r.contribution is not None else {}),
            **r.params,
        )
        for r in outcome.replies
    ]


def keys(outcome: Outcome) -> list[str]:
    return [r.key for r in outcome.replies]


# --- normalisation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["ARRÊT", "arret", "ARRET", "Arrêt", "arrêt.", "«arrêt»", "ARRÊT!"]
)
def test_token_folds_case_accents_and_surrounding_punctuation(word: str) -> None:
    assert token(word) == "arret"


def test_token_keeps_inner_punctuation_of_a_reference() -> None:
    assert token("(PARC-0042).") == "parc-0042"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PARC Il faut des bancs", ("parc", "Il faut des bancs")),
        ("Parc: il faut des bancs", ("parc", "il faut des bancs")),
        ("parc, il faut des bancs", ("parc", "il faut des bancs")),
        ("  - Parc !  des bancs ", ("parc", "des bancs")),
        ("", ("", "")),
        ("  ...  ", ("", "")),
    ],
)
def test_split_first_word(text: str, expected: tuple[str, str]) -> None:
    assert split_first_word(text) == expected


def test_fold_spells_out_ligatures() -> None:
    assert fold("Œuvre") == "oeuvre"


def test_clean_drops_control_characters_but_keeps_line_breaks() -> None:
    assert clean("\x00 des\x07 bancs\npartout \x1b") == "des bancs\npartout"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("universite", 2),
        ("l'université", 2),
        ("UNIVERSITÉ", 2),
        ("univ", 2),
        ("centre ville", 1),
        ("Centre-ville", 1),
        ("quartier du parc", 0),
        ("unversité", 2),
        ("parc centre", None),  # names two: a guess could misfile
        ("les Fontenelles", None),
        ("il faudrait vraiment plus de bancs au parc et au centre", None),  # content, not a choice
    ],
)
def test_best_match_names_one_option_or_none(answer: str, expected: int | None) -> None:
    assert best_match(answer, ["Parc", "Centre", "Université"]) == expected


# --- a campaign keyword ---------------------------------------------------------------


def test_keyword_and_text_files_at_once_and_quotes_the_reference() -> None:
    outcome = send(State(), "BUDGET Il faut plus de bancs", context(*ALL))
    assert outcome.contributions[0].campaign == "budget"
    assert outcome.contributions[0].text == "Il faut plus de bancs"
    assert outcome.contributions[0].kind == "individual"
    assert outcome.contributions[0].received_at == NOW
    assert outcome.replies[0].key == RECEIPT and outcome.replies[0].contribution == 0
    receipt = rendered(outcome)[0]
    assert REF in receipt and f"SUIVI {REF}" in receipt
    assert outcome.state == State()


@pytest.mark.parametrize(
    "text",
    [
        "budget Il faut plus de bancs",
        "Budget: Il faut plus de bancs",
        "BUDGET, Il faut plus de bancs",
        "  budget   Il faut plus de bancs  ",
        "«Budget» Il faut plus de bancs",
        "BÜDGET Il faut plus de bancs",
    ],
)
def test_keyword_matches_in_any_case_with_punctuation(text: str) -> None:
    outcome = send(State(), text, context(*ALL))
    assert [(c.campaign, c.text) for c in outcome.contributions] == [
        ("budget", "Il faut plus de bancs")
    ]


def test_keyword_written_with_accents_matches_without() -> None:
    ecole = replace(ECOLE, status="open")
    outcome = send(State(), "ecole des horaires plus tard", context(ecole, BUDGET))
    assert outcome.contributions[0].campaign == "ecoles"


def test_second_keyword_of_a_campaign_works() -> None:
    outcome = send(State(), "gare plus de vélos", context(*ALL))
    assert outcome.contributions[0].campaign == "gares"


def test_keyword_alone_asks_the_question_then_takes_the_next_message() -> None:
    ctx = context(*ALL)
    first = send(State(), "budget", ctx)
    assert first.state.step == AWAITING_TEXT
    assert not first.contributions
    assert BUDGET.question in rendered(first)[0]
    later = NOW + timedelta(minutes=5)
    second = send(first.state, "Une piscine", replace(ctx, now=later))
    assert second.contributions[0].campaign == "budget"
    assert second.contributions[0].text == "Une piscine"
    assert second.contributions[0].received_at == later
    assert keys(second) == [RECEIPT]


def test_keyword_alone_then_keyword_with_text_files_once() -> None:
    outcomes = converse(context(*ALL), "BUDGET", "BUDGET une piscine")
    assert [(c.campaign, c.text) for c in outcomes[1].contributions] == [("budget", "une piscine")]


def test_awaiting_text_ignores_a_closed_campaigns_keyword() -> None:
    outcomes = converse(context(*ALL), "BUDGET", "École Jules Ferry à rénover")
    assert outcomes[1].contributions[0].campaign == "budget"
    assert outcomes[1].contributions[0].text == "École Jules Ferry à rénover"


def test_closed_campaign_is_refused_politely() -> None:
    outcome = send(State(), "ÉCOLE des horaires plus tard", context(*ALL))
    assert not outcome.contributions
    assert keys(outcome) == ["campaign.closed"]
    assert ECOLE.title in rendered(outcome)[0]
    assert outcome.state.step == IDLE


def test_draft_campaign_has_its_own_reply() -> None:
    outcome = send(State(), "marche des fruits bio", context(*ALL))
    assert not outcome.contributions
    assert keys(outcome) == ["campaign.not_open"]
    assert MARCHE.title in rendered(outcome)[0]


def test_open_campaign_wins_a_shared_keyword() -> None:
    old = replace(BUDGET, slug="budget-2024", status="closed")
    outcome = send(State(), "BUDGET une piscine", context(old, BUDGET))
    assert outcome.contributions[0].campaign == "budget"


# --- neighbourhoods -------------------------------------------------------------------


def test_campaign_with_neighbourhoods_files_at_once_then_asks_which_one() -> None:
    outcome = send(State(), "PARC plus de bancs", context(*ALL))
    assert [(c.campaign, c.text, c.neighbourhood) for c in outcome.contributions] == [
        ("parc", "plus de bancs", None)
    ]
    # The receipt first, then the question.
    assert [(r.key, r.contribution) for r in outcome.replies] == [
        (RECEIPT, 0),
        ("neighbourhood.ask", None),
    ]
    receipt, question = rendered(outcome)
    assert REF in receipt
    for line in ("1. Parc", "2. Centre", "3. Université", "0. Passer"):
        assert line in question
    assert outcome.track == 0
    assert outcome.state.step == CHOOSE_NEIGHBOURHOOD
    assert outcome.state.campaign == "parc"
    assert outcome.state.options == ["Parc", "Centre", "Université"]
    assert outcome.state.text == ""  # nothing left to file
    assert outcome.state.reference is None  # the caller writes it (track)
    assert outcome.updates == ()


def test_track_points_at_the_contribution_the_question_is_about() -> None:
    # An expired menu is filed first; the new contribution is the second one.
    state = send(State(), "Plus de bancs", context(*ALL)).state
    outcome = send(state, "PARC des arbres", context(*ALL, now=NOW + timedelta(days=2)))
    assert [(c.campaign, c.text, c.expired) for c in outcome.contributions] == [
        (None, "Plus de bancs", True),
        ("parc", "des arbres", False),
    ]
    assert [(r.key, r.contribution) for r in outcome.replies] == [
        (RECEIPT_EXPIRED, 0),
        (RECEIPT, 1),
        ("neighbourhood.ask", None),
    ]
    assert outcome.track == 1


def test_campaign_without_neighbourhoods_tracks_nothing() -> None:
    outcome = send(State(), "BUDGET une piscine", context(*ALL))
    assert outcome.track is None and outcome.state == State()


def test_a_resident_who_never_answers_the_question_is_filed_anyway() -> None:
    state = stored(send(State(), "PARC plus de bancs", context(*ALL)))
    outcome = expire(state, context(*ALL, now=NOW + timedelta(days=1)))
    assert outcome.contributions == () and outcome.replies == () and outcome.updates == ()
    assert outcome.state == State()


@pytest.mark.parametrize(
    ("answer", "neighbourhood"),
    [
        ("2", "Centre"),
        ("2.", "Centre"),
        ("2 merci", "Centre"),
        ("centre", "Centre"),
        ("Centre ville", "Centre"),
        ("universite", "Université"),
        ("l'université", "Université"),
        ("UNIVERSITÉ", "Université"),
        ("Parc", "Parc"),  # also the campaign's keyword: the question comes first
    ],
)
def test_neighbourhood_answer_updates_the_filed_contribution(
    answer: str, neighbourhood: str
) -> None:
    last = converse(context(*ALL), "PARC plus de bancs", answer)[-1]
    assert last.contributions == ()
    assert last.updates == (ContributionUpdate(reference=REF, neighbourhood=neighbourhood),)
    assert keys(last) == ["neighbourhood.noted"]
    assert neighbourhood in rendered(last)[0]
    assert last.state == State() and last.track is None


@pytest.mark.parametrize(
    "answer", ["0", "PASSER", "passer", "non", "Non merci", "Aucun", "aucune", "skip", "merci"]
)
def test_neighbourhood_skipped(answer: str) -> None:
    last = converse(context(*ALL), "PARC plus de bancs", answer)[-1]
    assert last.contributions == () and last.updates == ()
    assert keys(last) == ["neighbourhood.skipped"]
    assert last.state == State()


def test_neighbourhood_asked_again_once_then_the_answers_are_appended() -> None:
    _first, second, third = converse(
        context(*ALL), "PARC plus de bancs", "Fontenelles", "Petit-Nanterre"
    )
    # Each unrecognised answer is added to the filed contribution, nothing is lost.
    assert second.contributions == ()
    assert second.updates == (ContributionUpdate(reference=REF, append_text="Fontenelles"),)
    assert second.state.step == CHOOSE_NEIGHBOURHOOD
    assert second.state.reference == REF and second.state.retries == 1
    assert second.track is None  # the stored state already has its reference
    assert keys(second) == ["neighbourhood.retry"]
    assert "3. Université" in rendered(second)[0]
    assert MAX_NEIGHBOURHOOD_MISSES == 2
    assert third.contributions == ()
    assert third.updates == (ContributionUpdate(reference=REF, append_text="Petit-Nanterre"),)
    assert keys(third) == ["neighbourhood.appended"]
    assert third.state == State()


def test_all_the_updates_of_a_conversation_name_its_contribution() -> None:
    outcomes = converse(context(*ALL), "PARC plus de bancs", "euh", "3")
    updates = [u for o in outcomes for u in o.updates]
    assert updates == [
        ContributionUpdate(reference=REF, append_text="euh"),
        ContributionUpdate(reference=REF, neighbourhood="Université"),
    ]
    assert keys(outcomes[-1]) == ["neighbourhood.noted"]


def test_neighbourhood_number_out_of_range_is_not_appended() -> None:
    _first, second, third = converse(context(*ALL), "PARC plus de bancs", "7", "8")
    assert second.updates == () and keys(second) == ["neighbourhood.retry"]
    assert third.updates == () and keys(third) == ["neighbourhood.skipped"]
    assert third.state == State()


def test_second_miss_after_an_appended_one_says_it_was_added() -> None:
    third = converse(context(*ALL), "PARC plus de bancs", "7", "pres de la gare")[-1]
    assert third.updates == (ContributionUpdate(reference=REF, append_text="pres de la gare"),)
    assert keys(third) == ["neighbourhood.appended"]


def test_closed_campaigns_keyword_during_the_question_is_content() -> None:
    second = converse(context(*ALL), "PARC plus de bancs", "École à côté")[1]
    assert second.updates == (ContributionUpdate(reference=REF, append_text="École à côté"),)
    assert second.contributions == ()


def test_new_keyword_message_during_neighbourhood_question_is_a_new_contribution() -> None:
    last = converse(context(*ALL), "PARC plus de bancs", "BUDGET une piscine")[-1]
    assert [(c.campaign, c.text, c.neighbourhood) for c in last.contributions] == [
        ("budget", "une piscine", None)
    ]
    assert last.updates == ()
    assert [(r.key, r.contribution) for r in last.replies] == [(RECEIPT, 0)]
    assert last.state == State() and last.track is None


def test_same_campaigns_keyword_and_text_during_the_question_tracks_the_new_one() -> None:
    _first, second = converse(context(*ALL), "PARC plus de bancs", "PARC une aire de jeux")
    assert [(c.campaign, c.text) for c in second.contributions] == [("parc", "une aire de jeux")]
    assert keys(second) == [RECEIPT, "neighbourhood.ask"]
    assert second.track == 0
    assert second.state.step == CHOOSE_NEIGHBOURHOOD and second.state.reference is None


def test_keyword_and_text_naming_an_option_exactly_is_the_neighbourhood() -> None:
    nord = replace(PARC, neighbourhoods=("Parc Nord", "Parc Sud", "Centre"))
    outcomes = converse(context(nord, BUDGET), "PARC plus de bancs", "parc nord")
    assert outcomes[1].contributions == ()
    assert outcomes[1].updates == (ContributionUpdate(reference=REF, neighbourhood="Parc Nord"),)


def test_keyword_alone_during_the_question_asks_that_campaigns_question() -> None:
    last = converse(context(*ALL), "PARC plus de bancs", "budget")[-1]
    assert last.contributions == () and last.updates == ()
    assert last.state.step == AWAITING_TEXT and last.state.campaign == "budget"
    assert last.state.reference is None


def test_after_a_miss_a_keyword_message_still_starts_a_new_contribution() -> None:
    outcomes = converse(context(*ALL), "PARC plus de bancs", "euh", "BUDGET une piscine")
    assert outcomes[1].updates == (ContributionUpdate(reference=REF, append_text="euh"),)
    assert [(c.campaign, c.text) for c in outcomes[2].contributions] == [("budget", "une piscine")]
    assert outcomes[2].updates == ()


def test_neighbourhood_menu_is_the_one_shown_even_if_the_campaign_changes() -> None:
    first = send(State(), "PARC plus de bancs", context(*ALL))
    changed = replace(PARC, neighbourhoods=("Université", "Parc"))
    last = send(stored(first), "1", context(changed, BUDGET))
    assert last.updates == (ContributionUpdate(reference=REF, neighbourhood="Parc"),)


def test_stop_during_the_neighbourhood_question_is_the_plain_confirmation() -> None:
    last = converse(context(*ALL), "PARC plus de bancs", "STOP")[-1]
    assert last.opt_out
    assert last.contributions == () and last.updates == ()
    assert keys(last) == ["stop.confirmed"]
    assert last.state == State()


def test_stop_after_a_miss_keeps_what_was_appended() -> None:
    outcomes = converse(context(*ALL), "PARC plus de bancs", "Fontenelles", "stop")
    assert outcomes[1].updates == (ContributionUpdate(reference=REF, append_text="Fontenelles"),)
    assert outcomes[2].opt_out and keys(outcomes[2]) == ["stop.confirmed"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("AIDE", "help.default"),
        ("SUIVI", "followup.list"),
        ("SUIVI PARC-0042", "followup.status"),
        ("english", "language.changed"),
    ],
)
def test_commands_during_the_neighbourhood_question_keep_it(text: str, key: str) -> None:
    ctx = context(*ALL, contributions=OWN)
    _first, second, third = converse(ctx, "PARC plus de bancs", text, "2")
    assert keys(second) == [key]
    assert second.state.step == CHOOSE_NEIGHBOURHOOD and second.state.reference == REF
    assert second.track is None and second.updates == ()
    assert third.updates == (ContributionUpdate(reference=REF, neighbourhood="Centre"),)


def test_forget_during_the_neighbourhood_question() -> None:
    last = converse(context(*ALL), "PARC plus de bancs", "OUBLIER")[-1]
    assert last.forget and last.updates == () and last.contributions == ()
    assert keys(last) == ["forget.confirmed"]
    assert last.state == State()


def test_opted_out_sender_is_filed_without_the_question() -> None:
    outcome = send(State(), "PARC plus de bancs", context(*ALL, opted_out=True))
    assert len(outcome.contributions) == 1
    assert outcome.replies == () and outcome.track is None and outcome.state == State()


def test_opted_out_during_the_question_answers_nothing_and_drops_it() -> None:
    state = stored(send(State(), "PARC plus de bancs", context(*ALL)))
    outcome = send(state, "2", context(*ALL, opted_out=True))
    assert outcome.replies == () and outcome.updates == () and outcome.contributions == ()
    assert outcome.state == State()


def test_first_contact_notice_comes_after_the_receipt_and_the_question() -> None:
    outcome = send(State(), "PARC plus de bancs", context(*ALL, first_contact=True))
    assert keys(outcome) == [RECEIPT, "language.invite", "neighbourhood.ask", "notice"]
    assert outcome.track == 0


def test_expired_question_files_nothing_before_the_new_message() -> None:
    state = stored(send(State(), "PARC plus de bancs", context(*ALL)))
    outcome = send(state, "2", context(BUDGET, now=NOW + timedelta(days=2)))
    # The old question is over: "2" is a new contribution, the first is not filed twice.
    assert [(c.campaign, c.text, c.expired) for c in outcome.contributions] == [
        ("budget", "2", False)
    ]
    assert outcome.updates == ()
    assert keys(outcome) == [RECEIPT]


# A state stored by the engine before contributions were filed at once: the text
# was kept, waiting for the neighbourhood.
OLD = State(
    step=CHOOSE_NEIGHBOURHOOD,
    campaign="parc",
    text="plus de bancs",
    received_at=NOW,
    options=["Parc", "Centre", "Université"],
    expires_at=NOW + timedelta(hours=24),
)


@pytest.mark.parametrize(("answer", "neighbourhood"), [("2", "Centre"), ("0", None)])
def test_an_old_state_is_filed_with_the_answer(answer: str, neighbourhood: str | None) -> None:
    outcome = send(OLD, answer, context(*ALL))
    assert [(c.campaign, c.text, c.neighbourhood) for c in outcome.contributions] == [
        ("parc", "plus de bancs", neighbourhood)
    ]
    assert keys(outcome) == [RECEIPT] and outcome.updates == ()
    assert outcome.state == State()


def test_an_old_state_keeps_the_misses_in_the_text() -> None:
    second = send(OLD, "Fontenelles", context(*ALL))
    assert second.contributions == () and keys(second) == ["neighbourhood.retry"]
    third = send(second.state, "Petit-Nanterre", context(*ALL))
    assert [c.text for c in third.contributions] == ["plus de bancs\nFontenelles\nPetit-Nanterre"]
    assert keys(third) == [RECEIPT]


def test_an_old_state_is_filed_on_stop_keyword_and_expiry() -> None:
    stop = send(OLD, "STOP", context(*ALL))
    assert [(r.key, r.contribution) for r in stop.replies] == [(STOP_CONFIRMED_FILED, 0)]
    new = send(OLD, "BUDGET une piscine", context(*ALL))
    assert [c.text for c in new.contributions] == ["plus de bancs", "une piscine"]
    expired = expire(OLD, context(*ALL, now=NOW + timedelta(days=1)))
    assert [(c.text, c.expired) for c in expired.contributions] == [("plus de bancs", True)]
    assert keys(expired) == [RECEIPT_EXPIRED]


def test_a_state_without_reference_nor_text_still_gets_an_answer() -> None:
    damaged = replace(OLD, text="")
    outcome = send(damaged, "2", context(*ALL))
    assert keys(outcome) == ["neighbourhood.skipped"]
    assert outcome.contributions == () and outcome.updates == ()


# --- no keyword: choosing the campaign ------------------------------------------------


def test_only_open_campaign_takes_the_text() -> None:
    outcome = send(State(), "Il faut plus de bancs", context(BUDGET, ECOLE, MARCHE))
    assert [(c.campaign, c.text) for c in outcome.contributions] == [
        ("budget", "Il faut plus de bancs")
    ]
    assert keys(outcome) == [RECEIPT]


@pytest.mark.parametrize("to", ["+33100000001", "+33 1 00 00 00 01"])
def test_number_written_to_picks_its_campaign(to: str) -> None:
    outcome = send(State(), "Plus de bancs", context(*ALL), to=to)
    assert outcome.state.step == CHOOSE_NEIGHBOURHOOD
    assert outcome.state.campaign == "parc"


def test_number_of_a_closed_campaign_does_not_pick_it() -> None:
    closed = replace(PARC, status="closed")
    outcome = send(State(), "Plus de bancs", context(closed, BUDGET), to="+33100000001")
    assert outcome.contributions[0].campaign == "budget"


def test_several_open_campaigns_get_a_numbered_menu() -> None:
    outcome = send(State(), "Il faut plus de bancs", context(*ALL))
    assert not outcome.contributions
    assert outcome.state.step == CHOOSE_CAMPAIGN
    assert outcome.state.text == "Il faut plus de bancs"
    assert outcome.state.options == ["parc", "budget", "gares"]
    menu = rendered(outcome)[0]
    assert "1. Rénovation du quartier du Parc (PARC)" in menu
    assert "2. Budget participatif (BUDGET)" in menu
    assert "3. Quartier des gares (GARES)" in menu
    assert "Rythmes scolaires" not in menu and "Marché" not in menu


@pytest.mark.parametrize(
    "answer", ["2", "2)", "budget", "Budget participatif", "budjet participatif"]
)
def test_menu_answer_files_the_kept_text(answer: str) -> None:
    last = converse(context(*ALL), "Il faut plus de bancs", answer)[-1]
    assert [(c.campaign, c.text) for c in last.contributions] == [
        ("budget", "Il faut plus de bancs")
    ]
    assert keys(last) == [RECEIPT]


def test_menu_answer_by_title_files_then_asks_the_neighbourhood() -> None:
    outcomes = converse(context(*ALL), "Il faut plus de bancs", "rénovation", "centre")
    assert [(c.campaign, c.text, c.neighbourhood) for c in outcomes[1].contributions] == [
        ("parc", "Il faut plus de bancs", None)
    ]
    assert keys(outcomes[1]) == [RECEIPT, "neighbourhood.ask"]
    assert outcomes[1].track == 0
    assert outcomes[1].state.step == CHOOSE_NEIGHBOURHOOD
    assert outcomes[2].updates == (ContributionUpdate(reference=REF, neighbourhood="Centre"),)


def test_menu_keyword_with_more_text_adds_to_the_kept_text() -> None:
    last = converse(context(*ALL), "Il faut plus de bancs", "BUDGET et des jeux")[-1]
    assert last.contributions[0].text == "Il faut plus de bancs\net des jeux"


def test_menu_order_is_kept_when_campaigns_change_between_messages() -> None:
    first = send(State(), "Il faut plus de bancs", context(*ALL))
    # Meanwhile the list is reordered and one campaign closes.
    shuffled = context(GARES, replace(PARC, status="closed"), BUDGET)
    last = send(first.state, "2", shuffled)
    assert last.contributions[0].campaign == "budget"


def test_menu_miss_keeps_the_answer_and_resends_the_menu() -> None:
    outcomes = converse(context(*ALL), "Il faut plus de bancs", "et des arbres")
    second = outcomes[1]
    assert second.state.step == CHOOSE_CAMPAIGN
    assert second.state.text == "Il faut plus de bancs\net des arbres"
    assert second.state.retries == 1
    assert keys(second) == ["campaign_menu.retry"]
    assert "2. Budget participatif (BUDGET)" in rendered(second)[0]


def test_menu_is_resent_a_bounded_number_of_times_then_filed_unsorted() -> None:
    outcomes = converse(context(*ALL), "Il faut plus de bancs", "a", "b", "c")
    assert [keys(o) for o in outcomes[1:3]] == [["campaign_menu.retry"]] * 2
    last = outcomes[3]
    (filed,) = last.contributions
    assert filed.campaign is None and not filed.expired
    assert filed.text == "Il faut plus de bancs\na\nb\nc"
    assert keys(last) == [RECEIPT_UNSORTED]
    assert REF in rendered(last)[0]
    assert last.state.step == IDLE


def test_menu_number_out_of_range_is_a_miss_but_not_content() -> None:
    second = converse(context(*ALL), "Il faut plus de bancs", "9")[1]
    assert second.state.text == "Il faut plus de bancs"
    assert second.state.retries == 1


def test_no_open_campaign_files_nothing() -> None:
    outcome = send(State(), "Il faut plus de bancs", context(ECOLE, MARCHE))
    assert not outcome.contributions
    assert keys(outcome) == ["campaign.none_open"]
    assert outcome.state.step == IDLE


# --- STOP and START ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "Stop.",
        "ARRÊT",
        "arret",
        "Arrêt !",
        "STOPALL",
        "unsubscribe",
        "CANCEL",
        "end",
        "QUIT",
        "stop merci",
        "STOP svp",
    ],
)
def test_stop_opts_out_and_says_how_to_come_back(text: str) -> None:
    outcome = send(State(), text, context(*ALL))
    assert outcome.opt_out
    assert keys(outcome) == ["stop.confirmed"]
    reply = rendered(outcome)[0]
    assert "START" in reply and "REPRENDRE" in reply
    assert outcome.state == State()


@pytest.mark.parametrize("text", ["Stop aux voitures dans le parc", "Arrêt de bus trop loin"])
def test_contribution_starting_with_stop_is_not_an_opt_out(text: str) -> None:
    outcome = send(State(), text, context(BUDGET))
    assert not outcome.opt_out
    assert [c.text for c in outcome.contributions] == [text]


def test_stop_during_a_conversation_files_the_kept_text_first() -> None:
    last = converse(context(*ALL), "GROUPE atelier", "Plus de bancs", "STOP")[-1]
    assert last.opt_out
    assert [(c.campaign, c.text, c.group) for c in last.contributions] == [
        (None, "Plus de bancs", "atelier")
    ]
    assert [(r.key, r.contribution) for r in last.replies] == [(STOP_CONFIRMED_FILED, 0)]
    assert REF in rendered(last)[0] and "START" in rendered(last)[0]


def test_stop_in_the_campaign_menu_files_the_text_unsorted() -> None:
    last = converse(context(*ALL), "Il faut plus de bancs", "STOP")[-1]
    assert last.opt_out
    assert [(c.campaign, c.text) for c in last.contributions] == [(None, "Il faut plus de bancs")]


def test_stop_with_only_a_campaign_chosen_files_nothing() -> None:
    last = converse(context(*ALL), "BUDGET", "STOP")[-1]
    assert last.opt_out and not last.contributions
    assert keys(last) == ["stop.confirmed"]


@pytest.mark.parametrize(
    "text",
    [
        "AIDE",
        "SUIVI",
        "SUIVI PARC-0042",
        "GROUPE atelier",
        "BUDGET",
        "ENGLISH",
        "Bonjour",
        "ÉCOLE horaires",
        "",
        "STOP",
        "Il faut plus de bancs",
    ],
)
def test_opted_out_sender_gets_no_reply(text: str) -> None:
    outcome = send(State(), text, context(*ALL, opted_out=True, first_contact=True))
    assert outcome.replies == ()
    assert not outcome.notice_sent
    assert outcome.state == State()


def test_opted_out_keyword_and_text_is_filed_silently_without_questions() -> None:
    outcome = send(State(), "PARC plus de bancs", context(*ALL, opted_out=True))
    assert [(c.campaign, c.text, c.neighbourhood) for c in outcome.contributions] == [
        ("parc", "plus de bancs", None)
    ]
    assert outcome.replies == ()
    assert outcome.state == State()


def test_opted_out_text_for_the_only_open_campaign_is_filed_silently() -> None:
    outcome = send(State(), "Une piscine", context(BUDGET, ECOLE, opted_out=True))
    assert [(c.campaign, c.text) for c in outcome.contributions] == [("budget", "Une piscine")]
    assert outcome.replies == ()


def test_opted_out_text_to_a_campaigns_number_is_filed_silently() -> None:
    outcome = send(State(), "Des bancs", context(*ALL, opted_out=True), to="+33100000001")
    assert [c.campaign for c in outcome.contributions] == ["parc"]


@pytest.mark.parametrize("text", ["Il faut plus de bancs", "BUDGET", "AIDE", "ÉCOLE horaires"])
def test_opted_out_ambiguous_message_files_nothing(text: str) -> None:
    outcome = send(State(), text, context(*ALL, opted_out=True))
    assert outcome.contributions == ()
    assert outcome.replies == ()


@pytest.mark.parametrize("text", ["START", "reprendre", "UNSTOP", "Start merci", "YES"])
def test_start_opts_back_in_with_a_confirmation(text: str) -> None:
    outcome = send(State(), text, context(*ALL, opted_out=True))
    assert outcome.opt_in
    assert keys(outcome) == ["optin.confirmed"]


def test_yes_is_an_ordinary_answer_when_not_opted_out() -> None:
    outcome = send(State(), "yes", context(BUDGET))
    assert not outcome.opt_in
    assert [c.text for c in outcome.contributions] == ["yes"]


def test_opted_out_sender_can_still_be_forgotten_silently() -> None:
    outcome = send(State(), "OUBLIER", context(*ALL, opted_out=True))
    assert outcome.forget
    assert outcome.replies == ()


# --- other commands ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["AIDE", "aide", "HELP", "aide ?", "AIDE svp"])
def test_help_lists_the_open_campaigns_keywords(text: str) -> None:
    outcome = send(State(), text, context(*ALL))
    assert keys(outcome) == ["help.default"]
    reply = rendered(outcome)[0]
    for word in ("PARC", "BUDGET", "GARES", "SUIVI", "GROUPE", "STOP", "OUBLIER"):
        assert word in reply
    assert "ÉCOLE" not in reply and "MARCHE" not in reply
    assert not outcome.contributions


def test_help_without_open_campaign() -> None:
    outcome = send(State(), "AIDE", context(ECOLE))
    assert keys(outcome) == ["help.no_campaign"]


def test_help_in_the_middle_keeps_the_conversation() -> None:
    _first, second, third = converse(context(*ALL), "Plus de bancs", "AIDE", "2")
    assert second.state.step == CHOOSE_CAMPAIGN
    assert second.state.text == "Plus de bancs"
    assert third.contributions[0].campaign == "budget"


def test_contribution_starting_with_aide_is_a_contribution() -> None:
    outcome = send(State(), "Aide aux devoirs pour les collégiens", context(BUDGET))
    assert [c.text for c in outcome.contributions] == ["Aide aux devoirs pour les collégiens"]


# Newest first, as the caller queries them.
OWN = (
    OwnContribution("PARC-0042", "pending", "Rénovation du quartier du Parc"),
    OwnContribution("PARC-0041", "spam", "Rénovation du quartier du Parc"),
    OwnContribution("PARC-0040", "rejected", "Rénovation du quartier du Parc", "hors sujet"),
    OwnContribution("BUDGET-0007", "published", "Budget participatif"),
)


@pytest.mark.parametrize(
    "text",
    ["SUIVI PARC-0042", "suivi parc-0042", "Suivi: PARC-0042", "suivi parc-42", "SUIVI PARC 42"],
)
def test_follow_up_tells_the_status_of_an_own_contribution(text: str) -> None:
    outcome = send(State(), text, context(*ALL, contributions=OWN))
    assert keys(outcome) == ["followup.status"]
    reply = rendered(outcome)[0]
    assert "PARC-0042" in reply and "en attente" in reply


def test_follow_up_gives_the_reason_of_a_rejection() -> None:
    outcome = send(State(), "SUIVI PARC-0040", context(*ALL, contributions=OWN))
    assert "non retenue (hors sujet)" in rendered(outcome)[0]


def test_follow_up_by_number_alone_and_published_status() -> None:
    outcome = send(State(), "suivi 7", context(*ALL, contributions=OWN))
    assert keys(outcome) == ["followup.status"]
    reply = rendered(outcome)[0]
    assert "BUDGET-0007" in reply and "Budget participatif" in reply and "publiée" in reply


def test_follow_up_never_reveals_someone_elses_contribution() -> None:
    outcome = send(State(), "SUIVI PARC-0099", context(*ALL, contributions=OWN))
    assert keys(outcome) == ["followup.not_found"]
    assert "PARC-0099" in rendered(outcome)[0]
    assert not outcome.contributions


def test_follow_up_alone_lists_the_last_three_newest_first() -> None:
    outcome = send(State(), "SUIVI", context(*ALL, contributions=OWN))
    assert keys(outcome) == ["followup.list"]
    reply = rendered(outcome)[0]
    assert "BUDGET-0007" not in reply
    assert reply.index("PARC-0042") < reply.index("PARC-0041") < reply.index("PARC-0040")
    assert "spam" not in reply


def test_follow_up_alone_without_contributions() -> None:
    outcome = send(State(), "suivi", context(*ALL))
    assert keys(outcome) == ["followup.none"]


def test_follow_up_followed_by_a_sentence_is_a_contribution() -> None:
    outcome = send(State(), "Suivi des travaux insuffisant", context(BUDGET))
    assert [c.text for c in outcome.contributions] == ["Suivi des travaux insuffisant"]


def test_forget_confirms_and_discards_the_kept_text() -> None:
    last = converse(context(*ALL, first_contact=True), "PARC plus de bancs", "OUBLIER")[-1]
    assert last.forget
    assert last.contributions == ()
    assert keys(last) == ["forget.confirmed"]
    assert not last.notice_sent
    assert last.state == State()


def test_forget_after_expiry_files_nothing_either() -> None:
    state = converse(context(*ALL), "PARC plus de bancs")[0].state
    later = context(*ALL, now=NOW + timedelta(days=2))
    outcome = send(state, "FORGET", later)
    assert outcome.forget and outcome.contributions == ()
    assert keys(outcome) == ["forget.confirmed"]


@pytest.mark.parametrize(
    ("text", "language"), [("ENGLISH", "en"), ("en", "en"), ("Français", "fr"), ("FR", "fr")]
)
def test_language_switch_confirms_in_the_new_language(text: str, language: str) -> None:
    outcome = send(State(), text, context(*ALL))
    assert outcome.language == language
    assert keys(outcome) == ["language.changed"]
    expected = "English" if language == "en" else "français"
    assert expected in rendered(outcome)[0]


def test_language_switch_keeps_the_conversation() -> None:
    second = converse(context(*ALL), "PARC plus de bancs", "english")[1]
    assert second.state.step == CHOOSE_NEIGHBOURHOOD


def test_menus_are_written_in_the_senders_language() -> None:
    outcome = send(State(), "PARC more benches", context(*ALL, language="en"))
    receipt, question = rendered(outcome, "en")
    assert "Thank you" in receipt and "0. Skip" in question


# --- groups -------------------------------------------------------------------------------


def test_group_with_description_then_text_is_collective() -> None:
    first, second = converse(
        context(*ALL), "GROUPE réunion d'appartement, 8 personnes", "BUDGET une piscine"
    )
    assert first.state.step == AWAITING_TEXT
    assert keys(first) == ["group.noted"]
    assert "réunion d'appartement, 8 personnes" in rendered(first)[0]
    (filed,) = second.contributions
    assert (filed.kind, filed.group, filed.campaign) == (
        "collective",
        "réunion d'appartement, 8 personnes",
        "budget",
    )


def test_group_alone_asks_for_the_description() -> None:
    first, second, third = converse(
        context(BUDGET), "groupe", "Atelier du centre social", "Une piscine"
    )
    assert first.state.step == GROUP_DESCRIPTION
    assert keys(first) == ["group.ask"]
    assert second.state.step == AWAITING_TEXT
    (filed,) = third.contributions
    assert (filed.kind, filed.group, filed.text) == (
        "collective",
        "Atelier du centre social",
        "Une piscine",
    )


def test_group_during_the_menu_comes_back_to_the_menu() -> None:
    outcomes = converse(context(*ALL), "Plus de bancs", "GROUPE", "Conseil citoyen", "2")
    assert outcomes[1].state.step == GROUP_DESCRIPTION
    assert outcomes[2].state.step == CHOOSE_CAMPAIGN
    assert keys(outcomes[2]) == ["group.noted_continue", "campaign_menu.ask"]
    (filed,) = outcomes[3].contributions
    assert (filed.campaign, filed.text, filed.kind, filed.group) == (
        "budget",
        "Plus de bancs",
        "collective",
        "Conseil citoyen",
    )


def test_group_during_the_neighbourhood_question_is_for_the_next_contribution() -> None:
    outcomes = converse(
        context(*ALL), "PARC plus de bancs", "GROUPE amicale des locataires", "BUDGET une piscine"
    )
    # The first contribution is filed already: the question ends, the group waits.
    assert outcomes[1].contributions == () and outcomes[1].updates == ()
    assert keys(outcomes[1]) == ["group.noted"]
    assert outcomes[1].state.step == AWAITING_TEXT and outcomes[1].state.reference is None
    filed = outcomes[2].contributions[0]
    assert (filed.campaign, filed.kind, filed.group) == (
        "budget",
        "collective",
        "amicale des locataires",
    )


def test_group_alone_during_the_neighbourhood_question_asks_the_description() -> None:
    second = converse(context(*ALL), "PARC plus de bancs", "GROUPE")[1]
    assert keys(second) == ["group.ask"]
    assert second.state.step == GROUP_DESCRIPTION and second.state.resume is None


def test_group_before_a_campaign_with_neighbourhoods_is_filed_with_it() -> None:
    _first, second = converse(context(*ALL), "GROUPE atelier", "PARC plus de bancs")
    (filed,) = second.contributions
    assert (filed.kind, filed.group, filed.neighbourhood) == ("collective", "atelier", None)
    assert second.state.step == CHOOSE_NEIGHBOURHOOD and not second.state.collective


def test_group_keyword_alone_in_description_step_goes_to_the_campaign() -> None:
    outcomes = converse(context(*ALL), "GROUPE", "BUDGET", "une piscine")
    assert outcomes[1].state.step == AWAITING_TEXT
    filed = outcomes[2].contributions[0]
    assert (filed.campaign, filed.kind, filed.group) == ("budget", "collective", None)


def test_group_applies_to_the_next_contribution_only() -> None:
    outcomes = converse(context(BUDGET), "GROUPE atelier", "une piscine", "un skatepark")
    assert outcomes[1].contributions[0].kind == "collective"
    assert outcomes[2].contributions[0].kind == "individual"
    assert outcomes[2].contributions[0].group is None


def test_long_group_description_is_cut_in_the_reply_not_in_the_contribution() -> None:
    description = "collectif " * 100
    first, second = converse(context(BUDGET), f"GROUPE {description}", "une piscine")
    assert len(rendered(first)[0]) < 160
    assert second.contributions[0].group == description.strip()


# --- first contact ------------------------------------------------------------------------


def test_first_contact_adds_the_data_notice_after_the_receipt() -> None:
    outcome = send(State(), "BUDGET une piscine", context(*ALL, first_contact=True))
    assert outcome.notice_sent
    assert keys(outcome) == [RECEIPT, "language.invite", "notice"]
    notice = rendered(outcome)[2]
    for word in ("Agora", "chiffré", "STOP", "OUBLIER"):  # Context.organisation, default
        assert word in notice


def test_a_new_resident_is_offered_english_in_english_after_the_first_reply() -> None:
    outcome = send(State(), "BUDGET une piscine", context(*ALL, first_contact=True))
    invite = outcome.replies[1]
    assert (invite.key, invite.language) == ("language.invite", "en")
    assert rendered(outcome)[1] == "English? Reply ENGLISH"


def test_a_new_english_reader_is_offered_french_in_french() -> None:
    outcome = send(State(), "BUDGET a pool", context(*ALL, first_contact=True, language="en"))
    assert [r.language for r in outcome.replies if r.key == "language.invite"] == ["fr"]
    assert "FRANÇAIS" in rendered(outcome, "en")[1]


@pytest.mark.parametrize("text", ["ENGLISH", "français"])
def test_a_resident_whose_first_message_chooses_a_language_is_not_offered_one(text: str) -> None:
    outcome = send(State(), text, context(*ALL, first_contact=True))
    assert keys(outcome) == ["language.changed", "notice"]


@pytest.mark.parametrize("text", ["STOP", "OUBLIER"])
def test_no_language_offer_with_stop_or_erasure(text: str) -> None:
    outcome = send(State(), text, context(*ALL, first_contact=True))
    assert "language.invite" not in keys(outcome)


def test_the_language_offer_is_only_in_the_first_reply() -> None:
    # The caller marks the notice sent after the first reply: the next one offers nothing.
    assert "language.invite" not in keys(send(State(), "BUDGET des arbres", context(*ALL)))


def test_no_notice_once_it_was_sent() -> None:
    outcome = send(State(), "BUDGET une piscine", context(*ALL))
    assert not outcome.notice_sent
    assert "notice" not in keys(outcome)


def test_no_notice_with_a_stop() -> None:
    outcome = send(State(), "STOP", context(*ALL, first_contact=True))
    assert not outcome.notice_sent
    assert keys(outcome) == ["stop.confirmed"]


# --- expiry -------------------------------------------------------------------------------


def test_every_step_but_idle_carries_an_expiry() -> None:
    ctx = replace(context(*ALL), expiry=timedelta(hours=2))
    outcome = send(State(), "PARC plus de bancs", ctx)
    assert outcome.state.expires_at == NOW + timedelta(hours=2)
    later = replace(ctx, now=NOW + timedelta(hours=1))
    again = send(stored(outcome), "AIDE", later)
    assert again.state.expires_at == NOW + timedelta(hours=3)
    done = send(again.state, "0", later)
    assert done.state.expires_at is None


def test_is_expired_at_the_exact_expiry() -> None:
    state = send(State(), "PARC plus de bancs", context(*ALL)).state
    assert not is_expired(state, NOW + timedelta(hours=23, minutes=59))
    assert is_expired(state, NOW + timedelta(hours=24))
    assert not is_expired(State(), NOW + timedelta(days=365))


def test_expired_conversation_is_filed_before_the_new_message() -> None:
    state = send(State(), "Plus de bancs", context(*ALL)).state
    later = context(*ALL, now=NOW + timedelta(days=2))
    outcome = send(state, "BUDGET une piscine", later)
    assert [
        (c.campaign, c.text, c.neighbourhood, c.expired, c.received_at)
        for c in outcome.contributions
    ] == [
        (None, "Plus de bancs", None, True, NOW),
        ("budget", "une piscine", None, False, later.now),
    ]
    assert [(r.key, r.contribution) for r in outcome.replies] == [
        (RECEIPT_EXPIRED, 0),
        (RECEIPT, 1),
    ]
    assert REF in rendered(outcome)[0]


def test_expired_answer_is_not_taken_for_the_old_question() -> None:
    state = send(State(), "Plus de bancs", context(*ALL)).state
    outcome = send(state, "2", context(BUDGET, now=NOW + timedelta(days=2)))
    assert [(c.campaign, c.text, c.expired) for c in outcome.contributions] == [
        (None, "Plus de bancs", True),
        ("budget", "2", False),
    ]


def test_expired_menu_is_filed_without_campaign() -> None:
    state = send(State(), "Plus de bancs", context(*ALL)).state
    outcome = expire(state, context(*ALL, now=NOW + timedelta(days=1)))
    assert [(c.campaign, c.text, c.expired) for c in outcome.contributions] == [
        (None, "Plus de bancs", True)
    ]
    assert [(r.key, r.contribution) for r in outcome.replies] == [(RECEIPT_EXPIRED, 0)]
    assert outcome.state == State()


def test_expire_before_the_expiry_changes_nothing() -> None:
    state = send(State(), "Plus de bancs", context(*ALL)).state
    outcome = expire(state, context(*ALL, now=NOW + timedelta(hours=1)))
    assert outcome == Outcome(state=state)


def test_expire_with_nothing_kept_resets_quietly() -> None:
    state = send(State(), "BUDGET", context(*ALL)).state
    outcome = expire(state, context(*ALL, now=NOW + timedelta(days=1)))
    assert outcome.contributions == () and outcome.replies == ()
    assert outcome.state == State()


def test_expire_for_an_opted_out_sender_files_silently() -> None:
    state = send(State(), "Plus de bancs", context(*ALL)).state
    outcome = expire(state, context(*ALL, now=NOW + timedelta(days=1), opted_out=True))
    assert len(outcome.contributions) == 1 and outcome.replies == ()


def test_expired_neighbourhood_question_files_nothing_and_says_nothing() -> None:
    first, second = converse(context(*ALL), "PARC plus de bancs", "Fontenelles")
    for state in (stored(first), second.state):
        outcome = expire(state, context(*ALL, now=NOW + timedelta(days=2)))
        assert outcome.contributions == () and outcome.replies == () and outcome.updates == ()
        assert outcome.state == State() and outcome.track is None


def test_expired_group_description_keeps_the_kept_text() -> None:
    state = converse(context(*ALL), "Plus de bancs", "GROUPE")[-1].state
    assert state.step == GROUP_DESCRIPTION
    outcome = expire(state, context(*ALL, now=NOW + timedelta(days=1)))
    assert [(c.text, c.kind, c.expired) for c in outcome.contributions] == [
        ("Plus de bancs", "collective", True)
    ]


# --- state storage ------------------------------------------------------------------------


def test_state_round_trips_through_json() -> None:
    state = converse(context(*ALL), "GROUPE atelier", "Plus de bancs")[-1].state
    assert state.step == CHOOSE_CAMPAIGN
    stored = json.loads(json.dumps(state.to_dict()))
    assert State.from_dict(stored) == state


def test_state_with_reference_round_trips_through_json() -> None:
    state = stored(send(State(), "PARC plus de bancs", context(*ALL)))
    assert state.reference == REF
    stored_state = json.loads(json.dumps(state.to_dict()))
    assert stored_state["reference"] == REF
    assert State.from_dict(stored_state) == state
    assert State.from_dict({**stored_state, "reference": 42}).reference is None


@pytest.mark.parametrize("data", [None, {}])
def test_missing_state_is_idle(data: dict[str, object] | None) -> None:
    assert State.from_dict(data) == State()


def test_state_from_dict_tolerates_unknown_and_malformed_values() -> None:
    state = State.from_dict(
        {
            "step": "teleported",
            "future_field": 1,
            "expires_at": "not a date",
            "retries": "x",
            "options": "parc",
            "text": None,
            "received_at": "2025-03-12T18:04:00",
        }
    )
    assert state.step == IDLE and state.expires_at is None and state.retries == 0
    assert state.options == [] and state.text == ""
    assert state.received_at == NOW  # a naive date is taken as UTC


def test_handle_does_not_change_the_callers_state() -> None:
    state = send(State(), "Plus de bancs", context(*ALL)).state
    before = state.to_dict()
    send(state, "pas compris", context(*ALL))
    assert state.to_dict() == before


# --- empty messages and media -----------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\x00\x07"])
def test_empty_message_gets_a_short_prompt(text: str) -> None:
    outcome = send(State(), text, context(*ALL))
    assert keys(outcome) == ["empty"]
    assert "AIDE" in rendered(outcome)[0]
    assert not outcome.contributions


def test_media_only_message_is_told_media_are_not_handled() -> None:
    outcome = send(State(), "", context(*ALL), attachments=2)
    assert keys(outcome) == ["media.unsupported"]
    assert not outcome.contributions


def test_text_with_media_is_handled_and_the_media_noted() -> None:
    outcome = send(State(), "BUDGET une piscine", context(*ALL), attachments=1)
    assert [c.text for c in outcome.contributions] == ["une piscine"]
    assert keys(outcome) == [RECEIPT, "media.ignored"]


def test_empty_message_mid_conversation_keeps_it() -> None:
    second = converse(context(*ALL), "Plus de bancs", "  ")[1]
    assert second.state.step == CHOOSE_CAMPAIGN
    assert second.state.text == "Plus de bancs"


# --- odd input never raises --------------------------------------------------------------

ODD = [
    "",
    " " * 50,
    "😀",
    "PARC 😀🎉👍🏽",
    "👨‍👩‍👧",
    "x" * 1600,
    "PARC " + "é" * 1600,
    "\x00\x01\x02\x1b[31m",
    "\u202eSTOP",
    "\ud800 lone surrogate",
    "SUIVI " + "9" * 400,
    "SUIVI -",
    "GROUPE " + "🎉" * 300,
    "0",
    "-1",
    "99999999999999999999999",
    "{reference} {0} {} %s",
    "'; DROP TABLE contributions; --",
    "\n\n\n",
    "ＰＡＲＣ plein écran",
    "ǅ ß İ ﬁ",
    "١٢",
]


def _states() -> list[State]:
    ctx = context(*ALL)
    return [
        State(),
        send(State(), "Plus de bancs", ctx).state,
        send(State(), "PARC plus de bancs", ctx).state,
        stored(send(State(), "PARC plus de bancs", ctx)),
        send(State(), "GROUPE", ctx).state,
        send(State(), "BUDGET", ctx).state,
        State(step=CHOOSE_CAMPAIGN, options=[], text="x"),  # a corrupted store
        State(step=CHOOSE_NEIGHBOURHOOD, campaign="gone", options=["A"], text="x"),
    ]


@pytest.mark.parametrize("text", ODD)
@pytest.mark.parametrize("opted_out", [False, True])
def test_odd_input_never_raises_and_every_reply_renders(text: str, opted_out: bool) -> None:
    for state in _states():
        for ctx in (
            context(*ALL, opted_out=opted_out, first_contact=True),
            context(opted_out=opted_out),
        ):
            outcome = send(state, text, ctx, attachments=1 if text == "0" else 0)
            for language in ("fr", "en"):
                for reply in rendered(outcome, language):
                    assert reply
            json.dumps(outcome.state.to_dict())
            if opted_out:
                assert all(r.key == "optin.confirmed" for r in outcome.replies)


def test_fullwidth_keyword_is_recognised() -> None:
    outcome = send(State(), "ＢＵＤＧＥＴ une piscine", context(*ALL))
    assert outcome.contributions[0].campaign == "budget"
