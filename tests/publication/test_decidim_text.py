"""Titles and bodies Decidim accepts (gateway.publication.decidim_text), checked against the
rules of Decidim's source, and the settings of direct publication."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.publication.decidim_text import (
    BODY_MAX,
    proposal_body,
    proposal_title,
    validation_errors,
)
from gateway.publication.records import PublicRecord
from gateway.settings import Settings, SettingsError

PARIS = ZoneInfo("Europe/Paris")
GOOD_BODY = "Un texte assez long pour Decidim."


def record(text: str | None, channel: str = "sms", reference: str = "PARC-0042") -> PublicRecord:
    return PublicRecord(
        reference=reference,
        campaign="parc",
        channel=channel,
        received_at=datetime(2026, 3, 1, 8, 5, tzinfo=UTC),
        outcome="published",
        text=text,
        reason=None,
        kind="individual",
        neighbourhood="Centre",
        category=None,
        themes=(),
        tags=(),
        contributor=None,
        answer_state=None,
        answer_text=None,
        answer_text_en=None,
        answered_at=None,
        moderated_at=None,
        audio=False,
        audio_duration=None,
        contribution_id=1,
        decidim_id=None,
    )


@pytest.mark.parametrize(
    ("title", "problem"),
    [
        ("Plus de bancs au parc Nord", None),
        ("Seize caractères", None),  # 16: the shortest Decidim takes
        ("Quinze caractèr", "too short"),  # 15: the etiquette wants more than 15
        ("plus de bancs au parc Nord", "capital letter"),
        ("PLUS DE BANCS AU PARC", "capital letters"),
        ("Plus de bancs au parc !!", "punctuation"),
        ("Il faut " + "x" * 35 + " au parc", "35 or more letters"),
        ("Il faut " + "x" * 34 + " au parc", None),
        (("Un parc " + "vert " * 29)[:150], None),  # 150 characters
        (("Un parc " + "vert " * 29)[:151], "too long"),
        ("", "too short"),
    ],
)
def test_titles_as_decidim_judges_them(title: str, problem: str | None):
    errors = validation_errors(title, GOOD_BODY)
    if problem is None:
        assert errors == []
    else:
        assert any(problem in e for e in errors), errors


@pytest.mark.parametrize(
    "text",
    [
        "Il faut plus de bancs au parc. Et des arbres pour l'ombre !",
        "IL FAUT PLUS DE BANCS AU PARC !!! VRAIMENT",
        "bancs",
        "",
        "oui",
        "le parc " * 60,
        "Un mot " + "y" * 34 + " puis la suite, assez longue pour un titre.",
        "première ligne en minuscules\ndeuxième ligne aussi\n\n\n\ntroisième",
        "???!!! ¿¡ rien que des signes ¡¿ mais un texte quand même",
    ],
)
@pytest.mark.parametrize("channel", ["sms", "voice", "telegram", "email"])
def test_every_contribution_gets_a_title_and_body_decidim_accepts(text: str, channel: str):
    r = record(text, channel)
    title, body = proposal_title(r), proposal_body(r, PARIS)
    assert validation_errors(title, body) == [], (title, body)
    assert body.endswith("— réf. PARC-0042")
    assert "Recueilli " in body and "le 1er mars à 9 h 05, quartier Centre" in body
    assert len(body) <= BODY_MAX


def test_the_title_is_the_first_sentence_and_the_body_keeps_the_text():
    r = record("Il faut plus de bancs au parc. Et des arbres pour l'ombre !")
    assert proposal_title(r) == "Il faut plus de bancs au parc"  # a title, not a sentence
    assert proposal_body(r, PARIS).startswith(
        "Il faut plus de bancs au parc. Et des arbres pour l'ombre !\n\n"
    )


def test_a_short_text_is_titled_with_its_channel_and_shouting_is_calmed():
    assert proposal_title(record("bancs", "voice")) == (
        "Bancs (contribution par téléphone (répondeur))"
    )
    assert proposal_title(record("Bancs !", "sms", reference="X")) == "Bancs (contribution par SMS)"
    assert proposal_title(record(None)) == "Contribution reçue par SMS"
    shouted = record("IL FAUT PLUS DE BANCS AU PARC !!! VRAIMENT")
    assert proposal_title(shouted) == "Il faut plus de bancs au parc !"
    assert proposal_body(shouted, PARIS).startswith("Il faut plus de bancs au parc ! Vraiment")


def test_a_long_text_is_cut_at_a_word_for_the_component_and_the_reference_stays():
    r = record("Un banc de plus près de l'école. " * 40)
    title, body = proposal_title(r), proposal_body(r, PARIS, max_length=300)
    assert title == "Un banc de plus près de l'école"
    assert len(body) <= 300 and body.endswith("PARC-0042")
    assert "…\n\n" in body and " l'éc…" not in body


def test_english_campaigns_read_english():
    r = record("More benches in the park please", reference="PARK-0007")
    body = proposal_body(r, PARIS, "en")
    assert body.endswith("— ref. PARK-0007")
    assert body == (
        "More benches in the park please\n\n"
        "Received by SMS on March 1 at 9:05, Centre neighbourhood — ref. PARK-0007"
    )


def test_the_secret_stays_out_of_repr_and_the_url_must_be_https():
    settings = Settings(
        decidim_url="https://participer.example.org",
        decidim_api_key="key",
        decidim_api_secret="s3cr3t-value-for-the-test",
    )
    assert settings.decidim_configured
    assert "s3cr3t-value-for-the-test" not in repr(settings)
    with pytest.raises(SettingsError, match="https"):
        Settings(decidim_url="http://participer.example.org")
    with pytest.raises(SettingsError, match="root URL"):
        Settings(decidim_url="participer.example.org")
    assert Settings(decidim_url="http://127.0.0.1:3000").decidim_url
    loaded = Settings.load(
        {
            "GATEWAY_DECIDIM_URL": "https://participer.example.org",
            "GATEWAY_DECIDIM_API_KEY": "k",
            "GATEWAY_DECIDIM_API_SECRET": "s",
        }
    )
    assert loaded.decidim_configured and loaded.decidim_api_secret == "s"
