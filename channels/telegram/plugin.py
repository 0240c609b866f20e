"""Telegram's Bot API, as one channel plugin (gateway.plugins)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from aiohttp import web

from channels.telegram.settings import TelegramSettings, of
from gateway import conversation as engine
from gateway.messages import Sender
from gateway.pacing import Limit, Pace
from gateway.plugins import Arrival, Buttons, ChannelPlugin, Interpretation
from gateway.runtime import Runtime
from gateway.settings import Settings


def _sender(settings: Settings) -> Sender:
    from channels.telegram.bot import TelegramSender

    return TelegramSender(of(settings).telegram_bot_token, of(settings).telegram_api_base)


def _routes(app: web.Application) -> None:
    from channels.telegram import webhook

    webhook.add_routes(app)


def _commands() -> Sequence[click.Command]:
    from channels.telegram.cli import telegram_group

    return (telegram_group,)


def _fetch_media(runtime: Runtime, message_id: int, last_attempt: bool) -> None:
    from channels.telegram import media

    media.fetch(runtime, message_id, last_attempt)


def _interpret(arrival: Arrival) -> Interpretation:
    from channels.telegram.interpret import interpret

    return interpret(arrival)


def _buttons(
    key: str, state: engine.State, titles: dict[str, str], language: str
) -> Buttons | None:
    from channels.telegram.commands import keyboard

    return keyboard(key, state, titles, language)


def _pace(settings: Settings) -> Pace:
    # The Bot API FAQ: about one message a second in a chat, about 30 a second in all.
    telegram = of(settings)
    return Pace(
        (
            Limit("recipient", telegram.telegram_messages_per_second_per_chat),
            Limit("account", telegram.telegram_messages_per_second),
        )
    )


def _doctor(settings: Settings) -> list[Any]:
    """`gateway doctor`: getMe with the bot's token (changes nothing; the token never shows)."""
    import requests

    from gateway.doctor import ok, problem, warning

    telegram = of(settings)
    url = f"{telegram.telegram_api_base.rstrip('/')}/bot{telegram.telegram_bot_token}/getMe"
    try:
        response = requests.get(url, timeout=10)  # not a download: getMe, as JSON
        answer = response.json()
    except (requests.RequestException, ValueError) as exc:
        return [warning("telegram", f"not reachable ({type(exc).__name__})", "check the network")]
    if response.status_code in (401, 404) or not answer.get("ok"):
        return [
            problem(
                "telegram",
                f"bot token refused ({response.status_code})",
                "check TELEGRAM_BOT_TOKEN (from @BotFather)",
            )
        ]
    username = answer.get("result", {}).get("username", "?")
    return [ok("telegram", f"token accepted: @{username}")]


plugin = ChannelPlugin(
    name="telegram",
    channels=("telegram",),
    settings=TelegramSettings,
    configured=lambda settings: of(settings).configured,
    sender=_sender,
    routes=_routes,
    commands=_commands,
    interpret=_interpret,
    buttons=_buttons,
    fetch_media=_fetch_media,
    # python-telegram-bot logs its API URL (with the bot's token) at DEBUG.
    quiet_loggers=("telegram",),
    pace=_pace,
    doctor=_doctor,
)
