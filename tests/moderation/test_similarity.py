"""Grouping the copies of a tract, and keeping residents' own proposals apart."""

from __future__ import annotations

import pytest

from gateway.moderation.similarity import (
    MIN_LENGTH,
    THRESHOLD,
    find_group,
    fingerprint,
    normalise,
    similarity,
)

TRACT = (
    "Non au projet de parking souterrain place de la République ! Nous voulons un jardin "
    "partagé, des arbres et des bancs pour les familles du quartier, pas des voitures. "
    "Habitants du centre-ville, mobilisons-nous avant le conseil municipal de juin."
)
BENCHES = (
    "Il faudrait installer plus de bancs dans le parc de la Tête d'Or, surtout près de l'aire "
    "de jeux pour les parents qui surveillent les enfants."
)
# The same theme and vocabulary as BENCHES, in another resident's words.
OTHER_BENCHES = (
    "Des bancs au parc de la Tête d'Or svp, les personnes âgées n'ont nulle part où s'asseoir "
    "quand elles se promènent le dimanche."
)
BENCHES_AND_BINS = (
    "Plus de bancs dans le parc de la Tête d'Or, et aussi des poubelles près de l'aire de "
    "jeux, elles débordent tout le temps."
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Plus de BANCS au parc !!!", "plus de bancs au parc"),
        ("  plus   de\tbancs\nau parc ", "plus de bancs au parc"),
        ("Arrêt de bus à côté de l'école", "arret de bus a cote de l ecole"),
        ("Œuvre d'art 🎨👍 svp", "oeuvre d art svp"),
        ("« Vélo » — oui…", "velo oui"),
        ("PARC-0042", "parc 0042"),
        ("", ""),
        ("?! 😀 ...", ""),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    "copy",
    [
        TRACT.upper(),
        TRACT.lower(),
        TRACT.replace("é", "e").replace("à", "a"),
        TRACT.replace("!", "").replace(",", "").replace(".", ""),
        TRACT.replace(" ", "  ").replace(". ", ".\n\n"),
        "✊ " + TRACT + " ✊✊",
        "«" + TRACT + "»",
    ],
)
def test_copies_differing_only_in_form_have_the_tracts_fingerprint(copy: str) -> None:
    assert fingerprint(copy) == fingerprint(TRACT)
    assert similarity(copy, TRACT) == 1.0


def test_fingerprint_is_a_short_hex_digest() -> None:
    value = fingerprint("plus de bancs")
    assert len(value) == 32
    int(value, 16)


def test_different_texts_have_different_fingerprints() -> None:
    assert fingerprint("plus de bancs") != fingerprint("pas de bancs")
    assert fingerprint("plus de bancs") != fingerprint("plus de bancs au parc")


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "😀👍", "?!..."])
def test_a_text_with_no_words_has_no_fingerprint(text: str) -> None:
    assert fingerprint(text) == ""


@pytest.mark.parametrize(
    "copy",
    [
        TRACT.replace("jardin", "parc"),
        TRACT.replace("juin", "juillet"),
        TRACT.replace("des arbres et ", ""),
        TRACT + " Marie Dupont",
        TRACT + " Signé: Jean-Pierre Martin, habitant de la rue Victor Hugo",
        "Bonjour, " + TRACT + " Merci",
        TRACT.replace("mobilisons-nous", "mobilisont nous").replace("partagé", "partager"),
    ],
)
def test_an_edited_copy_of_a_tract_is_similar(copy: str) -> None:
    assert similarity(copy, TRACT) >= THRESHOLD
    assert find_group(copy, [(7, TRACT)]) == 7


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (BENCHES, OTHER_BENCHES),
        (BENCHES, BENCHES_AND_BINS),
        (OTHER_BENCHES, BENCHES_AND_BINS),
        (BENCHES, TRACT),
        # A tract's first sentence reused to open a proposal of one's own.
        (
            TRACT,
            "Non au projet de parking souterrain place de la République. Je propose plutôt "
            "une piste cyclable protégée jusqu'à la gare.",
        ),
    ],
)
def test_different_proposals_on_one_theme_are_not_similar(a: str, b: str) -> None:
    assert similarity(a, b) == 0.0
    assert 0.0 < similarity(a, b, cutoff=0) < THRESHOLD
    assert find_group(a, [(1, b)]) is None


def test_similarity_is_the_exact_ratio_without_a_cutoff() -> None:
    assert similarity("plus de bancs au parc", "plus de bancs au parc", cutoff=0) == 1.0
    assert similarity("abcd", "abce", cutoff=0) == pytest.approx(0.75)
    assert similarity("aaaa", "bbbb", cutoff=0) == 0.0


@pytest.mark.parametrize(("a", "b"), [("", ""), ("", TRACT), ("😀", "😀"), (TRACT, " ")])
def test_empty_texts_are_similar_to_nothing(a: str, b: str) -> None:
    assert similarity(a, b, cutoff=0) == 0.0


@pytest.mark.parametrize("text", ["", "  ", "😀"])
def test_an_empty_text_joins_no_group(text: str) -> None:
    assert find_group(text, [(1, text), (2, ""), (3, TRACT)]) is None


@pytest.mark.parametrize(
    ("text", "representative"),
    [
        ("oui", "ouii"),
        ("plus de bancs", "pas de bancs"),
        ("plus de bancs", "plus de bancs svp"),
        ("Non au parking", "Non au parking !!! Marie"),
        # Long enough on one side only: still not a copy.
        ("Plus de bancs au parc", "Plus de bancs au parc de la Tête d'Or"),
    ],
)
def test_short_texts_group_only_when_identical(text: str, representative: str) -> None:
    assert find_group(text, [(1, representative)]) is None


@pytest.mark.parametrize(
    ("text", "representative"),
    [("oui", "OUI !"), ("Plus de bancs", "plus de bancs."), ("vélo", "VELO")],
)
def test_identical_short_texts_group(text: str, representative: str) -> None:
    assert len(normalise(text)) < MIN_LENGTH
    assert find_group(text, [(1, "autre chose"), (2, representative)]) == 2


def test_an_identical_text_wins_over_a_more_similar_looking_one() -> None:
    near = TRACT.replace("juin", "juillet")
    assert find_group(TRACT.upper(), [(1, near), (2, TRACT), (3, near)]) == 2


def test_the_most_similar_group_wins() -> None:
    one_change = TRACT.replace("jardin", "parc")
    two_changes = one_change.replace("juin", "juillet").replace("arbres", "fleurs")
    copy = TRACT.replace("jardin", "parc") + " Merci"
    assert find_group(copy, [(1, two_changes), (2, one_change), (3, BENCHES)]) == 2


def test_on_a_tie_the_first_group_listed_wins() -> None:
    copy = TRACT.replace("juin", "juillet")
    assert find_group(copy, [(4, TRACT), (9, TRACT + " ")]) == 4


def test_no_candidates_no_group() -> None:
    assert find_group(TRACT, []) is None


def test_candidates_can_be_a_generator() -> None:
    candidates = ((i, text) for i, text in enumerate([BENCHES, OTHER_BENCHES, TRACT]))
    assert find_group(TRACT.replace("juin", "mai"), candidates) == 2


def test_the_threshold_decides() -> None:
    assert find_group(BENCHES, [(1, BENCHES_AND_BINS)]) is None
    assert find_group(BENCHES, [(1, BENCHES_AND_BINS)], threshold=0.5) == 1
