"""Announcements on Telegram: ``/info`` asks for them, ``/info stop`` ends them; a campaign that
opens is announced through the (fake) Bot API at the bot's pace, once per chat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from channels.telegram import commands
from channels.telegram.tests import updates as tg
from channels.telegram.tests.conftest import CHAT
from channels.telegram.tests.fake_api import FakeTelegram
from channels.telegram.tests.test_conversation import send
from gateway import announcements
from gateway.models import Campaign, Contributor, OutboundMessage
from gateway.moderation import campaigns as campaign_admin
from gateway.moderation.accounts import Actor
from gateway.runtime import Runtime
from workers import outbound

ADMIN = Actor(name="admin", role="admin")


def test_the_info_command_is_the_info_keyword():
    assert commands.from_text("/info") == commands.Input("INFO")
    assert commands.from_text("/info@agora_test_bot stop") == commands.Input("INFO stop")
    assert "info" in commands.MENU_COMMANDS


def opted_in(runtime: Runtime) -> list[bool]:
    with runtime.sessions() as session:
        return [c.announcements for c in session.scalars(select(Contributor))]


def test_info_on_telegram_opts_in_and_the_opening_is_announced_at_the_bots_pace(
    tg_runtime: Runtime, fake_telegram: FakeTelegram, monkeypatch
):
    # The confirmation, the data notice, and for a new resident the offer of English.
    (confirmed, *_rest) = send(tg_runtime, fake_telegram, tg.text(CHAT, "/info"))
    assert "INFO STOP" in confirmed["text"]
    send(tg_runtime, fake_telegram, tg.text(CHAT + 1, "/info"))
    assert opted_in(tg_runtime) == [True, True]
    now = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)  # 10:30 in Paris
    monkeypatch.setattr(outbound, "now_utc", lambda: now)
    with tg_runtime.sessions.begin() as session:
        velo = session.scalar(select(Campaign).where(Campaign.slug == "velo"))
        assert velo is not None
        assert announcements.campaign_opened(tg_runtime, session, velo, now) == 2
    with tg_runtime.sessions() as session:
        rows = list(
            session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.message_key == announcements.OPENED)
                .order_by(OutboundMessage.next_attempt_at)
            )
        )
    assert [r.channel for r in rows] == ["telegram", "telegram"]
    # The bot's pace (25 a second), not SMS's.
    assert rows[1].next_attempt_at - rows[0].next_attempt_at == timedelta(seconds=0.04)
    before = len(fake_telegram.sent)
    assert outbound.send(tg_runtime, rows[0].id) == "sent"
    assert outbound.send(tg_runtime, rows[1].id) == "skipped"  # 40 ms later
    (sent,) = fake_telegram.sent[before:]
    assert sent["text"].startswith("Nouvelle consultation : Plan vélo.")
    assert str(sent["chat_id"]) in {str(CHAT), str(CHAT + 1)}


def test_info_stop_on_telegram_ends_announcements_only(
    tg_runtime: Runtime, fake_telegram: FakeTelegram
):
    send(tg_runtime, fake_telegram, tg.text(CHAT, "/info"))
    (stopped,) = send(tg_runtime, fake_telegram, tg.text(CHAT, "/info stop"))
    assert "plus d'annonces" in stopped["text"]
    assert opted_in(tg_runtime) == [False]
    campaign_admin.set_campaign_status(tg_runtime, ADMIN, "velo", "open")
    with tg_runtime.sessions() as session:
        assert (
            session.scalars(select(OutboundMessage.message_key)).all().count(announcements.OPENED)
            == 0
        )
