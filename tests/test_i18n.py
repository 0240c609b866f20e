"""The message catalogue: complete in every language, and receipts cheap to send."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from gateway.conversation import FOLLOW_UP_WORDS, GROUP_WORDS, RECEIPT_KEYS, STANDALONE_WORDS
from gateway.i18n import catalogue, languages, switch_words, translate
from gateway.sms_segments import GSM7, encoding, segments
from gateway.textnorm import fold

REALISTIC = {
    "organisation": "Ville de Nanterre, Agora permanente",
    "reference": "BUDGET-0042",
    "title": "Rénovation du quartier du Parc",
    "question": "Que souhaitez-vous pour le futur parc ?",
    "keywords": "PARC, BUDGET, GARES",
    "example": "PARC",
    "keyword": "PARC",
    "number": "1",
    "name": "Université",
    "menu": "1. Parc\n2. Centre",
    "group": "réunion d'immeuble, 8 personnes",
    "lines": "PARC-0042 : publiée",
    "status": "publiée",
    "campaign": "Budget participatif",
    "reason": "hors sujet",
    "text": "Les travaux commencent en mars.",
    "state": "acceptée",
    "more": " Réponse complète : https://agora.nanterre.fr/campaigns/parc#PARC-0042",
    "url": "https://agora.nanterre.fr/campaigns/parc#PARC-0042",
    # An announcement's way to take part by phone, and a synthesis's summary.
    "call": " Ou appelez le 01 00 00 00 01.",
    "summary": "Trois priorités : des bancs, de l'ombre, des jeux.",
    # The calling hours, said to a caller who asked to be called back.
    "start": "9",
    "end": "20",
    # The day a campaign ended on (campaign.ended).
    "day": "31",
    "month": "03",
    "year": "2027",
    # A request body refused (gateway/bodycaps.py): its cap, its time limit.
    "kilobytes": "64",
    "seconds": "30",
}


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


LOCALES = Path(__file__).resolve().parent.parent / "gateway" / "locales"
# The languages are the catalogue files: a new one is checked like English, key by key.
ON_DISK = sorted(p.stem for p in LOCALES.glob("*.yaml"))
OTHERS = [language for language in ON_DISK if language != "fr"]


def test_the_languages_are_the_files_french_first_and_english_among_them() -> None:
    assert "fr" in ON_DISK and "en" in ON_DISK
    assert languages() == ("fr", *OTHERS)


@pytest.mark.parametrize("folder", ["console", "public"])
def test_moderators_and_the_public_read_the_same_languages(folder: str) -> None:
    assert sorted(p.stem for p in (LOCALES / folder).glob("*.yaml")) == ON_DISK


@pytest.mark.parametrize("language", ON_DISK)
def test_each_catalogue_names_its_language_its_words_and_its_voice(language: str) -> None:
    own = catalogue(language)
    for key in ("language.name", "language.switch_words", "language.invite"):
        assert own[key].strip(), key
    for key in ("voice.say_language", "voice.say_voice", "voice.language_offer"):
        assert own[key].strip(), key
    assert switch_words()[fold(own["language.switch_words"].split(",")[0]).strip()] == language


def test_no_switch_word_is_another_command_or_another_languages() -> None:
    claimed: dict[str, str] = {}
    for language in languages():
        for word in catalogue(language)["language.switch_words"].split(","):
            folded = fold(word).strip()
            assert folded not in STANDALONE_WORDS | FOLLOW_UP_WORDS | GROUP_WORDS, word
            assert claimed.setdefault(folded, language) == language, word


@pytest.mark.parametrize("language", ON_DISK)
def test_the_offer_of_a_language_fits_beside_a_receipt_in_one_segment(language: str) -> None:
    invite = translate("language.invite", language)
    assert encoding(invite) == GSM7
    for reader in languages():
        if reader != language:
            receipt = translate("receipt.default", reader, reference="BUDGET-0042")
            assert segments(f"{receipt}\n{invite}") == 1, (reader, language)


@pytest.mark.parametrize("language", OTHERS)
def test_every_key_exists_in_both_languages_with_the_same_placeholders(language: str) -> None:
    french, other = catalogue("fr"), catalogue(language)
    assert set(other) == set(french)
    for key, template in french.items():
        assert placeholders(other[key]) == placeholders(template), key


@pytest.mark.parametrize("language", ON_DISK)
def test_no_message_is_empty_and_every_placeholder_is_known(language: str) -> None:
    for key, template in catalogue(language).items():
        assert template.strip(), key
        if key.startswith(("console.", "public.")):
            continue  # what moderators and the public read: never in an SMS
        assert placeholders(template) <= set(REALISTIC), key


def test_translate_fills_placeholders() -> None:
    text = translate("receipt.default", "fr", reference="BUDGET-0042")
    assert text.count("BUDGET-0042") == 2
    assert "{" not in text


def test_translate_in_english() -> None:
    assert translate("campaign_menu.line", "en", number=2, title="Budget", keyword="BUDGET") == (
        "2. Budget (BUDGET)"
    )
    assert "Thank you" in translate("receipt.default", "en", reference="BUDGET-0042")


@pytest.mark.parametrize("language", ["de", "", "FR-fr"])
def test_unknown_language_falls_back_to_french(language: str) -> None:
    assert translate("empty", language) == translate("empty", "fr")


def test_unknown_key_raises() -> None:
    with pytest.raises(KeyError):
        translate("no.such.key", "fr")


def test_default_language_is_french() -> None:
    assert translate("stop.confirmed") == catalogue("fr")["stop.confirmed"]


def test_extra_parameters_are_ignored() -> None:
    # The caller passes reference= to any reply tied to a contribution.
    assert translate("empty", "fr", reference="X") == translate("empty", "fr")


def test_receipt_keys_all_quote_the_reference() -> None:
    for language in languages():
        for key in RECEIPT_KEYS:
            assert "{reference}" in catalogue(language)[key]


@pytest.mark.parametrize("language", ON_DISK)
@pytest.mark.parametrize("key", RECEIPT_KEYS)
def test_receipts_fit_in_two_segments_even_as_ucs2(language: str, key: str) -> None:
    text = translate(key, language, reference="BUDGET-0042")
    assert segments(text) <= 2
    # Even if a later wording brings in one accent outside GSM-7 (ç, ê, ’).
    assert len(text.encode("utf-16-le")) // 2 <= 2 * 67


@pytest.mark.parametrize("language", ON_DISK)
def test_short_replies_fit_in_one_segment(language: str) -> None:
    for key in ("receipt.default", "stop.confirmed", "optin.confirmed", "empty", "notice"):
        assert segments(translate(key, language, **REALISTIC)) == 1, key


@pytest.mark.parametrize("language", ON_DISK)
@pytest.mark.parametrize("key", RECEIPT_KEYS)
def test_receipts_avoid_ucs2_so_they_go_in_one_segment(language: str, key: str) -> None:
    # A single "ç" or "’" would cut the segment from 160 to 70 characters.
    text = translate(key, language, reference="BUDGET-0042")
    assert encoding(text) == GSM7
    assert segments(text) == 1


@pytest.mark.parametrize("language", ON_DISK)
@pytest.mark.parametrize("key", ["outcome.published", "outcome.rejected"])
def test_outcome_notices_fit_in_two_segments(language: str, key: str) -> None:
    assert segments(translate(key, language, **REALISTIC)) <= 2
