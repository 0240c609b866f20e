"""Suggested redactions on contributions as residents write them (SMS, e-mail, transcripts)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from gateway.moderation.redaction import KINDS, Redaction, apply, placeholder, suggest


def found(text: str) -> list[tuple[str, str]]:
    return [(r.kind, r.text) for r in suggest(text)]


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("Rappelez-moi au 06 12 34 56 78 svp", "06 12 34 56 78"),
        ("mon num 06.12.34.56.78 merci", "06.12.34.56.78"),
        ("0612345678", "0612345678"),
        ("tel: 06-12-34-56-78", "06-12-34-56-78"),
        ("joignable au 01 42 68 53 00 (mairie annexe)", "01 42 68 53 00"),
        ("+33 6 12 34 56 78", "+33 6 12 34 56 78"),
        ("+33612345678", "+33612345678"),
        ("+33 6 12 34 56 78 15 euros", "+33 6 12 34 56 78"),
        ("0033 6 12 34 56 78", "0033 6 12 34 56 78"),
        ("0033612345678", "0033612345678"),
        ("+33 (0)6 12 34 56 78", "+33 (0)6 12 34 56 78"),
        ("Tél.0612345678", "0612345678"),
        ("appelez le 07 98 76 54 32.", "07 98 76 54 32"),
        ("my number is +44 20 7946 0958", "+44 20 7946 0958"),
        ("WhatsApp +4915123456789 😀", "+4915123456789"),
        ("+1 415 555 2671", "+1 415 555 2671"),
        ("0044 20 7946 0958", "0044 20 7946 0958"),
        ("+32 470 12 34 56", "+32 470 12 34 56"),
    ],
)
def test_phone_numbers(text: str, phone: str) -> None:
    assert found(text) == [("phone", phone)]


@pytest.mark.parametrize(
    "text",
    [
        "en 2024 il y avait 15 bancs",
        "15 euros par mois c'est trop",
        "1 500 000 euros pour un rond-point ?!",
        "Le 12 mars à 18h30",
        "réunion le 01.02.2024 10:30 salle B",
        "réunion le 01/02/2024",
        "ligne 12 du tram",
        "réf PARC-0042",
        "SUIVI PARC-0042-17",
        "+33 6 12",  # too short to be a number
        "1234567",
        "+1234567",  # seven digits: below E.164's useful minimum
        "code postal 69003 Lyon",
        "gateway-1234-9f8e7d6c",
    ],
)
def test_numbers_that_are_not_phones(text: str) -> None:
    assert [kind for kind, _ in found(text)] == []


@pytest.mark.parametrize(
    ("text", "email"),
    [
        ("écrivez à marie.dupont@example.fr", "marie.dupont@example.fr"),
        ("contact: jean+parc@mail.co.uk.", "jean+parc@mail.co.uk"),
        ("(paul_martin-2@orange.fr)", "paul_martin-2@orange.fr"),
        ("MARIE@EXAMPLE.COM", "MARIE@EXAMPLE.COM"),
        ("élodie@café.fr merci", "élodie@café.fr"),
    ],
)
def test_email_addresses(text: str, email: str) -> None:
    assert found(text) == [("email", email)]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("J'habite au 12 rue des Lilas il y a des trous", "12 rue des Lilas"),
        ("3 bis avenue Jean Jaurès, devant l'école", "3 bis avenue Jean Jaurès"),
        ("45, boulevard Voltaire", "45, boulevard Voltaire"),
        ("au 7 allée des Tilleuls.", "7 allée des Tilleuls"),
        ("12 rue de la gare est sale", "12 rue de la gare"),
        ("j'habite 4 cours Mirabeau", "4 cours Mirabeau"),
        ("5 rue de l'Église", "5 rue de l'Église"),
        ("12 RUE DES LILAS", "12 RUE DES LILAS"),
        ("12 rue du 8 Mai 1945", "12 rue du 8 Mai"),
        ("8 av. Foch", "8 av. Foch"),
        ("8 bd Gambetta", "8 bd Gambetta"),
        ("2 impasse des Roses depuis 3 ans", "2 impasse des Roses"),
        ("10 place de la République", "10 place de la République"),
        ("1 chemin du Moulin", "1 chemin du Moulin"),
        ("14 route de Lyon", "14 route de Lyon"),
        ("3 quai Saint-Vincent", "3 quai Saint-Vincent"),
        ("22 square Dupleix", "22 square Dupleix"),
        ("6 résidence Les Érables", "6 résidence Les Érables"),
        ("6 residence les erables bat B", "6 residence les erables bat B"),
        ("12b rue Pasteur", "12b rue Pasteur"),
        ("12 ter rue Pasteur", "12 ter rue Pasteur"),
        ("n°9 rue Victor Hugo\nmerci", "9 rue Victor Hugo"),
        # A street name is cut at six words: the rest is the resident's sentence.
        (
            "17 avenue du Général Charles de Gaulle Prolongée Nord Est",
            "17 avenue du Général Charles de Gaulle Prolongée",
        ),
        ("I live at 221B Baker Street", "221B Baker Street"),
        ("10 Downing St.", "10 Downing St."),
    ],
)
def test_street_addresses(text: str, address: str) -> None:
    assert found(text) == [("address", address)]


@pytest.mark.parametrize(
    "text",
    [
        "la rue est sale",
        "la rue des Lilas est sale",  # a street without a number identifies no one
        "2 cours de yoga par semaine",
        "3 place de parking pour 40 logements",
        "15 places de parking",
        "4 routes coupées",
        "12 rue",
        "12 rue, pas d'éclairage",
        "à 12 rue",
    ],
)
def test_texts_without_an_address(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Je m'appelle Marie Dupont et je suis contre", "Marie Dupont"),
        ("je m’appelle Jean-Pierre", "Jean-Pierre"),
        ("JE M'APPELLE MARIE DUPONT ET JE SUIS CONTRE", "MARIE DUPONT"),
        ("Bonjour, moi c'est Paul.", "Paul"),
        ("moi, c’est Fatou Diallo !", "Fatou Diallo"),
        ("mon nom est Le Goff", "Le Goff"),
        ("Mon nom c'est Nguyen", "Nguyen"),
        ("Je suis Marie de La Tour, habitante", "Marie de La Tour"),
        ("Bonjour je suis Ahmed Benali du quartier", "Ahmed Benali"),
        ("Signé : Valéry Giscard d'Estaing", "Valéry Giscard d'Estaing"),
        ("Merci. Signé Marie D.", "Marie D"),
        ("signée\nSophie Martin", "Sophie Martin"),
        ("je me nomme Karim", "Karim"),
        ("Je m'appelle Marie J'habite ici", "Marie"),
        ("je m'appelle Anne Marie Sophie Durand", "Anne Marie Sophie"),
        ("Je m'appelle Élodie Ouédraogo", "Élodie Ouédraogo"),
        ("my name is John Smith", "John Smith"),
        ("Hi, I am Alice.", "Alice"),
        ("I'm Bob Jones and I agree", "Bob Jones"),
    ],
)
def test_names_after_an_introduction(text: str, name: str) -> None:
    assert found(text) == [("name", name)]


@pytest.mark.parametrize(
    "text",
    [
        "je suis contre le projet",
        "Je suis pour",
        "je suis d'accord avec Marie",
        "Je suis très content du parc",
        "JE SUIS CONTRE",
        "JE SUIS POUR LE PROJET",
        # In capitals "je suis" cannot tell a name from an adjective: better to let it go.
        "JE SUIS RAVIE",
        "je m'appelle marie",  # nothing capitalised: no name to be sure of
        "Moi c'est non",
        "MOI C'EST NON",
        "I am not happy",
        "i am happy",
        "Je suis La",
        "je signe la pétition",
        "Marie Dupont a raison",  # a name without an introduction is left to the moderator
    ],
)
def test_texts_without_a_name(text: str) -> None:
    assert found(text) == []


def test_a_signed_sms_with_everything_in_it() -> None:
    text = (
        "Bonjour, je m'appelle Marie Dupont, j'habite au 12 rue des Lilas. Le lampadaire "
        "devant chez moi ne marche plus depuis le 12 mars. Rappelez-moi au 06 12 34 56 78 "
        "ou marie.dupont@example.fr 🙏"
    )
    redactions = suggest(text)
    assert [(r.kind, r.text) for r in redactions] == [
        ("name", "Marie Dupont"),
        ("address", "12 rue des Lilas"),
        ("phone", "06 12 34 56 78"),
        ("email", "marie.dupont@example.fr"),
    ]
    assert all(text[r.start : r.end] == r.text for r in redactions)
    assert apply(text) == (
        "Bonjour, je m'appelle [nom], j'habite au [adresse]. Le lampadaire "
        "devant chez moi ne marche plus depuis le 12 mars. Rappelez-moi au [téléphone] "
        "ou [e-mail] 🙏"
    )


def test_offsets_count_an_emoji_as_one_character() -> None:
    text = "😀😀 0612345678"
    (redaction,) = suggest(text)
    assert (redaction.start, redaction.end) == (3, 13)


def test_adjacent_spans_stay_separate() -> None:
    text = "0612345678/0698765432,marie@example.fr"
    assert found(text) == [
        ("phone", "0612345678"),
        ("phone", "0698765432"),
        ("email", "marie@example.fr"),
    ]
    assert apply(text) == "[téléphone]/[téléphone],[e-mail]"


def test_overlapping_detections_keep_the_surer_kind() -> None:
    # "Paul" would be a name after "moi c'est", but it is the start of an e-mail address.
    assert found("moi c'est Paul.Dupont@mail.fr") == [("email", "Paul.Dupont@mail.fr")]


def test_a_phone_number_is_not_read_inside_an_email_address() -> None:
    assert found("0612345678@sms.example.fr") == [("email", "0612345678@sms.example.fr")]


def test_spans_are_sorted_and_never_overlap() -> None:
    text = "signé Jean Valjean 0612345678 jean@x.fr 3 rue de la Paix moi c'est Cosette"
    redactions = suggest(text)
    assert [r.start for r in redactions] == sorted(r.start for r in redactions)
    for before, after in pairwise(redactions):
        assert before.end <= after.start


@pytest.mark.parametrize("text", ["", "   ", "\n", "😀", "ok"])
def test_nothing_to_hide(text: str) -> None:
    assert suggest(text) == []
    assert apply(text) == text


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", "Signé [nom] : [téléphone], [e-mail], [adresse]"),
        ("en", "Signé [name] : [phone], [email], [address]"),
        ("de", "Signé [nom] : [téléphone], [e-mail], [adresse]"),  # no catalogue: French
    ],
)
def test_placeholders_by_language(language: str, expected: str) -> None:
    text = "Signé Marie Curie : 0612345678, marie@example.fr, 11 rue Pasteur"
    assert apply(text, language=language) == expected


def test_every_language_has_a_placeholder_for_every_kind() -> None:
    markers = {lang: {placeholder(kind, lang) for kind in KINDS} for lang in ("fr", "en")}
    assert markers["fr"] == {"[téléphone]", "[e-mail]", "[adresse]", "[nom]"}
    assert markers["en"] == {"[phone]", "[email]", "[address]", "[name]"}


def test_apply_only_the_redactions_a_moderator_kept() -> None:
    text = "Je m'appelle Marie, mon numéro 0612345678"
    name, phone = suggest(text)
    assert apply(text, [phone]) == "Je m'appelle Marie, mon numéro [téléphone]"
    assert apply(text, [name]) == "Je m'appelle [nom], mon numéro 0612345678"
    assert apply(text, []) == text


def test_apply_a_span_a_moderator_drew() -> None:
    text = "La voisine du 3e, Mme Rossi, est d'accord"
    start = text.index("Mme Rossi")
    span = Redaction(start, start + len("Mme Rossi"), "name", "Mme Rossi")
    assert apply(text, [span]) == "La voisine du 3e, [nom], est d'accord"


def test_apply_accepts_spans_in_any_order() -> None:
    text = "0612345678 et 0698765432"
    assert apply(text, list(reversed(suggest(text)))) == "[téléphone] et [téléphone]"


def test_apply_refuses_spans_from_another_version_of_the_text() -> None:
    (phone,) = suggest("appelez le 0612345678")
    with pytest.raises(ValueError, match="does not fit"):
        apply("appelez-moi le 0612345678", [phone])


def test_apply_refuses_overlapping_spans() -> None:
    text = "Marie Dupont"
    spans = [Redaction(0, 12, "name", "Marie Dupont"), Redaction(6, 12, "name", "Dupont")]
    with pytest.raises(ValueError, match="overlapping"):
        apply(text, spans)


@pytest.mark.parametrize(
    ("start", "end", "kind", "text"),
    [
        (0, 4, "url", "http"),
        (3, 3, "name", ""),
        (-1, 2, "name", "abc"),
        (0, 5, "name", "abc"),
    ],
)
def test_a_redaction_must_be_a_real_span_of_a_known_kind(
    start: int, end: int, kind: str, text: str
) -> None:
    with pytest.raises(ValueError):
        Redaction(start, end, kind, text)
