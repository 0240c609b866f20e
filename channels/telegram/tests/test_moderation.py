"""Droit de suite over Telegram: a moderator's decision or answer reaches the resident in the
chat they wrote from, through the Bot API; a resident who blocked the bot is not written to."""

from __future__ import annotations

from channels.telegram.tests import updates as tg
from channels.telegram.tests.conftest import CHAT
from channels.telegram.tests.test_conversation import send
from gateway.moderation import actions
from gateway.moderation.accounts import Actor
from tests.helpers import contributions, drain

ALICE = Actor(name="alice", role="moderator")


def test_publication_rejection_and_answer_reach_the_telegram_chat(tg_runtime, fake_telegram):
    send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET une ludothèque"))
    send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET un terrain de basket"))
    first, second = contributions(tg_runtime)
    before = len(fake_telegram.sent)

    actions.decide(tg_runtime, ALICE, [first.id], "publish")
    actions.decide(tg_runtime, ALICE, [second.id], "reject", reason="hors du périmètre")
    actions.reply(tg_runtime, ALICE, first.id, "Le projet sera étudié en mars.")
    drain(tg_runtime)

    sent = fake_telegram.sent[before:]
    assert [s["chat_id"] for s in sent] == [CHAT, CHAT, CHAT]
    assert sent[0]["text"] == (
        f"Votre contribution {first.reference} est publiée. Merci de votre participation !"
    )
    assert f"{second.reference} n'a pas été retenue. Motif : hors du périmètre" in sent[1]["text"]
    assert "Le projet sera étudié en mars." in sent[2]["text"]


def test_no_notice_once_the_resident_blocked_the_bot(tg_runtime, fake_telegram):
    send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET des jeux d'eau"))
    (filed,) = contributions(tg_runtime)
    fake_telegram.fail_next("sendMessage", status=403)
    actions.reply(tg_runtime, ALICE, filed.id, "Merci !")
    drain(tg_runtime)  # 403: blocked, so opted out
    before = len(fake_telegram.sent)
    done = actions.decide(tg_runtime, ALICE, [filed.id], "publish")
    drain(tg_runtime)
    assert fake_telegram.sent[before:] == []
    assert done.outbound == []


def test_the_citys_answer_reaches_the_chat_and_suivi_returns_it(tg_runtime, fake_telegram):
    from gateway.moderation import answers

    send(tg_runtime, fake_telegram, tg.text(CHAT, "BUDGET une ludothèque au centre"))
    (filed,) = contributions(tg_runtime)
    actions.decide(tg_runtime, ALICE, [filed.id], "publish")
    drain(tg_runtime)
    before = len(fake_telegram.sent)
    answers.answer(tg_runtime, ALICE, [filed.id], "accepted", "La ludothèque ouvrira en 2027.")
    drain(tg_runtime)
    (notice,) = fake_telegram.sent[before:]
    assert notice["chat_id"] == CHAT
    assert filed.reference in notice["text"] and "La ludothèque ouvrira en 2027." in notice["text"]

    send(tg_runtime, fake_telegram, tg.text(CHAT, f"SUIVI {filed.reference}"))
    follow = "\n".join(s["text"] for s in fake_telegram.sent[before + 1 :])
    assert "acceptée" in follow and "La ludothèque ouvrira en 2027." in follow
