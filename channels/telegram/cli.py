"""`gateway telegram …`: register the webhook, or read updates by long polling.

``set-webhook`` tells Telegram to POST updates to ``PUBLIC_URL/webhooks/telegram`` with
``TELEGRAM_WEBHOOK_SECRET`` in a header (and sets the bot's command menu). ``poll`` is for an
install without a public HTTPS address: it removes the webhook and reads updates with getUpdates,
storing each one through the same path as the webhook (then the worker of ``gateway serve`` or
``gateway worker`` answers). Both only read the settings; they never print the token.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import click

from channels.telegram import commands, updates
from channels.telegram.settings import of
from gateway.settings import Settings

log = logging.getLogger(__name__)


def _settings() -> Settings:
    from gateway.cli.common import load_settings as load

    settings = load()
    if not of(settings).telegram_bot_token:
        raise click.ClickException("TELEGRAM_BOT_TOKEN is not set")
    return settings


def _bot(settings: Settings) -> Any:
    from channels.telegram.bot import make_bot

    return make_bot(of(settings).telegram_bot_token, of(settings).telegram_api_base)


def _fail(exc: Exception) -> click.ClickException:
    from gateway.privacy import redact

    return click.ClickException(redact(f"Telegram: {exc}"))


@click.group("telegram")
def telegram_group() -> None:
    """The Telegram bot: webhook registration and long polling."""


@telegram_group.command("set-webhook")
@click.option("--drop-pending", is_flag=True, help="Discard updates Telegram still holds.")
def set_webhook(drop_pending: bool) -> None:
    """Register PUBLIC_URL/webhooks/telegram with the secret, and the bot's command menu."""
    from telegram import BotCommand
    from telegram.error import TelegramError

    from channels.telegram.webhook import PATH

    settings = _settings()
    if not of(settings).telegram_webhook_secret:
        raise click.ClickException("TELEGRAM_WEBHOOK_SECRET is not set")
    url = settings.public_url.rstrip("/") + PATH
    if not url.startswith("https://"):
        click.echo(f"warning: Telegram only calls https:// URLs; {url} will be refused", err=True)

    async def run() -> str:
        from gateway.i18n import translate

        async with _bot(settings) as bot:
            await bot.set_webhook(
                url,
                secret_token=of(settings).telegram_webhook_secret,
                allowed_updates=list(updates.ALLOWED_UPDATES),
                drop_pending_updates=drop_pending,
            )
            await bot.set_my_commands(
                [
                    BotCommand(name, translate(f"telegram.command.{name}", "fr"))
                    for name in commands.MENU_COMMANDS
                ]
            )
            return str(bot.username)

    try:
        username = asyncio.run(run())
    except TelegramError as exc:
        raise _fail(exc) from exc
    click.echo(f"webhook set for @{username}: {url}")
    click.echo(f"deep link for a campaign: https://t.me/{username}?start=<slug>")


@telegram_group.command("delete-webhook")
def delete_webhook() -> None:
    """Stop Telegram from calling the webhook (updates then wait for `telegram poll`)."""
    from telegram.error import TelegramError

    settings = _settings()

    async def run() -> None:
        async with _bot(settings) as bot:
            await bot.delete_webhook()

    try:
        asyncio.run(run())
    except TelegramError as exc:
        raise _fail(exc) from exc
    click.echo("webhook deleted")


@telegram_group.command("info")
def info() -> None:
    """The bot's name and what Telegram knows of the webhook (URL, pending updates, errors)."""
    from telegram.error import TelegramError

    settings = _settings()

    async def run() -> tuple[str, Any]:
        async with _bot(settings) as bot:
            return str(bot.username), await bot.get_webhook_info()

    try:
        username, webhook = asyncio.run(run())
    except TelegramError as exc:
        raise _fail(exc) from exc
    click.echo(f"bot: @{username}")
    click.echo(f"webhook: {webhook.url or '(none: use telegram poll)'}")
    click.echo(f"pending updates: {webhook.pending_update_count}")
    if webhook.last_error_message:
        click.echo(f"last error: {webhook.last_error_message}")


@telegram_group.command("poll")
@click.option("--timeout", default=30, show_default=True, help="Long-polling wait, seconds.")
@click.option("--once", is_flag=True, help="Read what is waiting once, then exit.")
def poll(timeout: int, once: bool) -> None:
    """Read updates with getUpdates and store them as the webhook would."""
    from gateway.cli.common import open_runtime, service_logging

    _settings()  # refuses early without a token
    service_logging()
    runtime = open_runtime()
    try:
        count = asyncio.run(poll_updates(runtime, timeout=timeout, once=once))
    finally:
        runtime.close()
    click.echo(f"{count} update(s) read")


async def poll_updates(runtime: Any, *, timeout: int = 30, once: bool = False) -> int:
    """The long-polling loop; returns how many updates were read. Stops on SIGINT/SIGTERM."""
    from telegram.error import NetworkError, RetryAfter, TelegramError, TimedOut

    from channels.telegram.bot import raw_call, retry_after
    from channels.telegram.webhook import describe, first_group_notice, group_answer
    from gateway.ingest import store

    settings = runtime.settings
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stopping.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    read = 0
    offset: int | None = None
    async with _bot(settings) as bot:
        await bot.delete_webhook()
        log.info("telegram: polling as @%s", bot.username)
        while not stopping.is_set():
            try:
                batch = await raw_call(
                    bot,
                    "getUpdates",
                    {
                        "offset": offset,
                        "timeout": timeout,
                        "allowed_updates": list(updates.ALLOWED_UPDATES),
                    },
                    read_timeout=timeout + 15,
                )
            except RetryAfter as exc:
                await asyncio.sleep(retry_after(exc))
                continue
            except (TimedOut, NetworkError) as exc:
                log.warning("telegram: getUpdates failed (%s); trying again", type(exc).__name__)
                await asyncio.sleep(2)
                continue
            for data in batch or []:
                update_id = data.get("update_id") if isinstance(data, dict) else None
                if isinstance(update_id, int):
                    offset = update_id + 1
                try:
                    parsed = updates.parse(
                        data, max_file_bytes=of(settings).telegram_max_file_bytes
                    )
                except updates.InvalidUpdate as exc:
                    log.warning("telegram: update skipped: %s", exc)
                    continue
                read += 1
                answer = parsed.answer
                if parsed.message is not None:
                    # Not stored (database down): stop, so that Telegram keeps the update.
                    await loop.run_in_executor(None, store, runtime, [parsed.message])
                elif parsed.group_chat is not None and await loop.run_in_executor(
                    None, first_group_notice, runtime, parsed.group_chat
                ):
                    answer = group_answer(parsed.group_chat, parsed.language)
                log.info("telegram update %d: %s", parsed.update_id, describe(parsed))
                if answer is not None:
                    method = answer.pop("method")
                    try:
                        await raw_call(bot, method, answer)
                    except TelegramError as exc:
                        log.warning("telegram: %s failed (%s)", method, type(exc).__name__)
            if once:
                break
        if offset is not None:
            # Confirm the last batch, so that Telegram does not send it again next time.
            await raw_call(bot, "getUpdates", {"offset": offset, "timeout": 0})
    return read
