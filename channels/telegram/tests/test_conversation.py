"""The conversation over Telegram, end to end: update → store → worker → engine → replies sent
through the (fake) Bot API with their buttons. The same engine as SMS; what differs is the
commands, the buttons, the wording of a few replies, edits, and the media."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from channels.telegram import updates
from channels.telegram.tests import updates as tg
from channels.telegram.tests.conftest import CHAT, outbound_rows
from channels.telegram.tests.fake_api import FakeTelegram
from gateway import ingest
from gateway.models import Contribution, Contributor, InboundMessage, OutboundMessage
from gateway.runtime import Runtime
from tests.helpers import contributions, drain


def send(runtime: Runtime, fake: FakeTelegram, *batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Store updates as the webhook does, run the worker; returns what the bot sent."""
    before = len(fake.sent)
    messages = [updates.parse(u).message for u in batch]
    assert all(m is not None for m in messages)
    ingest.store(runtime, [m for m in messages if m is not None])
    drain(runtime)
    return fake.sent[before:]


def texts(sent: list[dict[str, Any]]) -> list[str]:
    return [s["text"] for s in sent]


def buttons(sent: dict[str, Any]) -> list[tuple[str, str]]:
    markup = sent.get("reply_markup") or {}
    return [
        (b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", []) for b in row
    ]


def test_start_welcomes_with_the_open_campaigns_as_buttons_and_the_notice(
    tg_runtime, fake_telegram
):
    sent = send(tg_runtime, fake_telegram, tg.text(CHAT, "/start"))
    welcome, _offer, notice = sent
    assert welcome["chat_id"] == CHAT
    assert welcome["text"].startswith("Bonjour ! Écrivez votre idée")
    assert buttons(welcome) == [
        ("Budget participatif", "k:budget"),
        ("Rénovation du quartier du Parc", "k:parc"),
    ]
    assert "Identifiant Telegram chiffré" in notice["text"]
    assert "/oublier" in notice["text"]


def test_deep_link_opens_the_campaign_and_the_neighbourhood_comes_as_buttons(
    tg_runtime, fake_telegram
):
    (question, _offer, _notice) = send(tg_runtime, fake_telegram, tg.text(CHAT, "/start parc"))
    assert question["text"] == (
        "Rénovation du quartier du Parc : Que souhaitez-vous pour le futur parc ?"
    )
    receipt, ask = send(tg_runtime, fake_telegram, tg.text(CHAT, "Des bancs à l'ombre"))
    (filed,) = contributions(tg_runtime)
    assert (filed.channel, filed.campaign.slug, filed.text) == (
        "telegram",
        "parc",
        "Des bancs à l'ombre",
    )
    assert f"/suivi {filed.reference}" in receipt["text"]
    assert "Touchez un bouton" in ask["text"]
    assert buttons(ask) == [
        ("Parc Nord", "q:1"),
        ("Parc Sud", "q:2"),
        ("Centre", "q:3"),
        ("Université", "q:4"),
        ("Passer", "q:0"),
    ]
    (noted,) = send(tg_runtime, fake_telegram, tg.callback(CHAT, "q:2"))
    assert noted["text"] == "Merci ! Quartier noté : Parc Sud."
    (filed,) = contributions(tg_runtime)
    assert filed.neighbourhood == "Parc Sud"


def test_deep_link_accepts_a_keyword_and_a_welcome_button_is_the_same(tg_runtime, fake_telegram):
    (question, _offer, _notice) = send(tg_runtime, fake_telegram, tg.text(CHAT, "/start BUDGET"))
    assert question["text"].startswith("Budget participatif :")
    (again,) = send(tg_runtime, fake_telegram, tg.callback(CHAT, "k:budget"))
    assert again["text"] == question["text"]


def test_text_without_campaign_gets_the_menu_as_buttons_and_a_tap_files_it(
    tg_runtime, fake_telegram
):
    menu, _offer, _notice = send(tg_runtime, fake_telegram, tg.text(CHAT, "Plus de poubelles"))
    assert buttons(menu) == [
        ("1. Budget participatif", "m:1"),
        ("2. Rénovation du quartier du Parc", "m:2"),
    ]
    assert contributions(tg_runtime) == []
    sent = send(tg_runtime, fake_telegram, tg.callback(CHAT, "m:1"))
    (filed,) = contributions(tg_runtime)
    assert (filed.campaign.slug, filed.text) == ("budget", "Plus de poubelles")
    assert filed.reference in sent[0]["text"]


def test_a_stale_button_changes_nothing_and_says_so(tg_runtime, fake_telegram):
    send(tg_runtime, fake_telegram, tg.text(CHAT, "/start parc"))
    send(tg_runtime, fake_telegram, tg.text(CHAT, "Un kiosque"))
    send(tg_runtime, fake_telegram, tg.callback(CHAT, "q:1"))  # answered: the question is closed
    (stale,) = send(tg_runtime, fake_telegram, tg.callback(CHAT, "q:3"))
    assert "n'est plus d'actualité" in stale["text"]
    (stale_menu,) = send(tg_runtime, fake_telegram, tg.callback(CHAT, "m:1"))
    assert "n'est plus d'actualité" in stale_menu["text"]
    (filed,) = contributions(tg_runtime)
    assert filed.neighbourhood == "Parc Nord"


def test_commands_stop_start_suivi_aide_and_oublier(tg_runtime, fake_telegram):
    send(tg_runtime, fake_telegram, tg.text(CHAT, "/start parc"))
    send(tg_runtime, fake_telegram, tg.text(CHAT, "Des jeux d'eau"))
    send(tg_runtime, fake_telegram, tg.callback(CHAT, "q:0"))
    (filed,) = contributions(tg_runtime)
    (status,) = send(tg_runtime, fake_telegram, tg.text(CHAT, f"/suivi {filed.reference}"))
    assert status["text"].startswith(f"{filed.reference} (Rénovation du quartier du Parc)")
    (helped,) = send(tg_runtime, fake_telegram, tg.text(CHAT, "/aide@agora_test_bot"))
    assert "/suivi" in helped["text"] and "/oublier" in helped["text"]
    (stopped,) = send(tg_runtime, fake_telegram, tg.text(CHAT, "/stop"))
    assert "Pour revenir : /start" in stopped["text"]
    assert send(tg_runtime, fake_telegram, tg.text(CHAT, "Un message ignoré ?")) == []
    (back,) = send(tg_runtime, fake_telegram, tg.text(CHAT, "/start"))
    assert back["text"].startswith("Bon retour parmi nous")
    (forgotten,) = send(tg_runtime, fake_telegram, tg.text(CHAT, "/oublier"))
    assert "identifiant Telegram seront effacés" in forgotten["text"]
    with tg_runtime.sessions() as session:
        assert session.scalars(select(Contributor)).all() == []
        kept = session.scalars(select(Contribution)).unique().all()
        # Kept, detached from the resident (while opted out, a text that names no campaign
        # among two open ones was not filed, as by SMS).
        assert [(c.text, c.contributor_id) for c in kept] == [("Des jeux d'eau", None)]
        left = [
            (m.id, m.kind, m.text[:20], m.received_at, m.state)
            for m in session.scalars(select(InboundMessage))
            if m.sender_encrypted is not None
        ]
        assert left == []


def test_an_edit_before_the_text_is_read_replaces_it(tg_runtime, fake_telegram):
    original = tg.text(CHAT, "PARC des bancs")
    edit = tg.edited_text(CHAT, original["message"]["message_id"], "PARC des bancs et des arbres")
    send(tg_runtime, fake_telegram, original, edit)
    (filed,) = contributions(tg_runtime)
    assert filed.text == "des bancs et des arbres"


def test_an_edit_while_the_campaign_menu_is_open_replaces_the_kept_text(tg_runtime, fake_telegram):
    original = tg.text(CHAT, "Des toilettes publiques")
    send(tg_runtime, fake_telegram, original)
    edit = tg.edited_text(CHAT, original["message"]["message_id"], "Des toilettes propres")
    (noted,) = send(tg_runtime, fake_telegram, edit)
    assert noted["text"] == "C'est noté, votre message modifié remplace le précédent."
    send(tg_runtime, fake_telegram, tg.callback(CHAT, "m:2"))
    (filed,) = contributions(tg_runtime)
    assert filed.text == "Des toilettes propres"


def test_an_edit_after_filing_changes_nothing_and_says_so(tg_runtime, fake_telegram):
    original = tg.text(CHAT, "BUDGET une ludothèque")
    send(tg_runtime, fake_telegram, original)
    edit = tg.edited_text(CHAT, original["message"]["message_id"], "BUDGET une médiathèque")
    (late,) = send(tg_runtime, fake_telegram, edit)
    assert "la modification n'est pas prise en compte" in late["text"]
    (filed,) = contributions(tg_runtime)
    assert filed.text == "une ludothèque"


def test_telegram_429_is_retried_after_the_delay_it_gives(tg_runtime, fake_telegram):
    fake_telegram.fail_next("sendMessage", status=429, retry_after=7)
    send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET un skatepark"))
    rows = outbound_rows(tg_runtime)
    first = rows[0]
    assert first.status == "queued"
    assert first.next_attempt_at is not None and first.created_at is not None
    delay = first.next_attempt_at - first.created_at
    assert timedelta(seconds=6) < delay < timedelta(seconds=30)
    assert "429" in (first.error or "")
    assert fake_telegram.token not in (first.error or "")


def test_a_resident_who_blocked_the_bot_is_opted_out(tg_runtime, fake_telegram):
    fake_telegram.fail_next("sendMessage", status=403)
    send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET un jardin partagé"))
    with tg_runtime.sessions() as session:
        (contributor,) = session.scalars(select(Contributor)).all()
        assert contributor.opted_out
        first = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).first()
        assert first is not None
        assert first.status == "failed"
        assert first.recipient_encrypted is None
    (filed,) = contributions(tg_runtime)
    assert filed.text == "un jardin partagé"  # blocked or not, the contribution is kept


def test_duplicate_updates_make_one_contribution(tg_runtime, fake_telegram):
    update = tg.text(CHAT, "BUDGET des fontaines")
    send(tg_runtime, fake_telegram, update, update)
    send(tg_runtime, fake_telegram, update)
    assert len(contributions(tg_runtime)) == 1


def test_english_speakers_can_switch_and_get_english_telegram_wording(tg_runtime, fake_telegram):
    send(tg_runtime, fake_telegram, tg.text(CHAT, "/english"))
    (receipt,) = send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET a climbing wall"))
    assert receipt["text"].startswith("Thank you! Contribution recorded")
    assert "/suivi" in receipt["text"]


def test_the_first_reply_offers_english_as_a_button_and_a_tap_switches_for_good(
    tg_runtime, fake_telegram
):
    receipt, offer, notice = send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET des fontaines"))
    assert receipt["text"].startswith("Merci ! Contribution enregistrée")
    assert offer["text"] == "English? Tap the button, or /english"
    assert buttons(offer) == [("English", "l:en")]
    assert "Identifiant Telegram chiffré" in notice["text"]
    (changed,) = send(tg_runtime, fake_telegram, tg.callback(CHAT, "l:en"))
    assert changed["text"] == "Done, we will now write to you in English."
    # Remembered: the next reply is in English, and offers nothing any more.
    (receipt,) = send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET a climbing wall"))
    assert receipt["text"].startswith("Thank you! Contribution recorded")
    with tg_runtime.sessions() as session:
        assert session.scalars(select(Contributor.language)).all() == ["en"]


def test_a_language_button_for_no_catalogue_changes_nothing_and_says_so(tg_runtime, fake_telegram):
    send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET des fontaines"))
    (answer,) = send(tg_runtime, fake_telegram, tg.callback(CHAT, "l:de"))
    assert answer["text"] == "Je n'ai pas compris ce bouton. Écrivez votre message ou /aide."
    with tg_runtime.sessions() as session:
        assert session.scalars(select(Contributor.language)).all() == ["fr"]
    assert len(contributions(tg_runtime)) == 1  # the button is not content


def test_the_french_command_switches_back(tg_runtime, fake_telegram):
    send(tg_runtime, fake_telegram, tg.text(CHAT, "/english"))
    (changed,) = send(tg_runtime, fake_telegram, tg.text(CHAT, "/francais"))
    assert changed["text"] == "C'est noté, nous vous écrirons désormais en français."
