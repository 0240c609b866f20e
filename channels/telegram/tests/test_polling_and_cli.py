"""`gateway telegram …` against the fake Bot API: long polling (the same path as the webhook,
for installs without a public HTTPS address), registering and removing the webhook, and the
bot token kept out of what the commands print and what the gateway logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from channels.telegram import commands, updates
from channels.telegram.cli import poll_updates
from channels.telegram.tests import updates as tu
from channels.telegram.tests.conftest import CHAT, SECRET, post_update
from channels.telegram.tests.fake_api import FakeTelegram
from gateway import logs
from gateway.cli import main
from gateway.i18n import translate
from gateway.models import OutboundMessage
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.fixtures import TEST_CAMPAIGNS
from tests.helpers import DrainWorker, contributions, inbound
from workers import context

PUBLIC_URL = "https://gateway.example.org"
WEBHOOK_URL = f"{PUBLIC_URL}/webhooks/telegram"
GROUP = -4_001


BurstWorker = DrainWorker  # tests.helpers.drain's worker, which runs in any thread


def _work(runtime: Runtime) -> None:
    context.set_runtime(runtime)
    queues = [runtime.queue(q) for q in ("inbound", "outbound", "default")]
    worker = BurstWorker(queues, connection=runtime.redis)
    for _ in range(4):
        worker.work(burst=True, logging_level="WARNING")


async def drain(runtime: Runtime) -> None:
    """tests.helpers.drain off the event loop: the worker's Telegram client runs its own loop,
    which cannot run in a thread that has one already (a worker thread never has)."""
    await asyncio.to_thread(_work, runtime)


# -- long polling --------------------------------------------------------------------------


async def test_poll_once_stores_answers_and_confirms_the_updates(
    fake_telegram: FakeTelegram, tg_runtime: Runtime
):
    # A webhook left over from an earlier set-up: getUpdates is refused (409) while it is set.
    async with fake_telegram.ptb_bot() as bot:
        await bot.set_webhook(WEBHOOK_URL, secret_token=SECRET)
    assert fake_telegram.webhook is not None
    before = len(fake_telegram.calls)

    text = tu.text(CHAT, "Il faudrait plus d'arbres rue Victor Hugo")
    pushed = [
        text,
        text,  # Telegram delivering the same update twice
        tu.sticker(CHAT),
        tu.callback(CHAT, "vote:oui"),  # not one of our buttons
        tu.group_text(GROUP, "Bonjour à tous"),
    ]
    for update in pushed:
        assert fake_telegram.push_update(update) is not None

    read = await poll_updates(tg_runtime, timeout=0, once=True)

    assert read == len(pushed)
    calls = fake_telegram.calls[before:]
    names = [c["method"] for c in calls]
    assert names[:3] == ["getMe", "deleteWebhook", "getUpdates"]
    assert fake_telegram.webhook is None
    last = calls[-1]
    assert last["method"] == "getUpdates"
    assert last["params"]["offset"] == pushed[-1]["update_id"] + 1  # the batch is confirmed
    assert fake_telegram.pending_updates == []
    assert calls[2]["params"]["allowed_updates"] == list(updates.ALLOWED_UPDATES)

    (stored,) = inbound(tg_runtime)  # the text, once
    assert stored.channel == "telegram" and stored.provider_message_id == str(text["update_id"])
    assert stored.text == "Il faudrait plus d'arbres rue Victor Hugo"

    # Answered at once by the loop itself: the sticker, the button, the group.
    assert fake_telegram.sent == [
        {"chat_id": CHAT, "text": translate("telegram.unsupported", "fr")},
        {"chat_id": GROUP, "text": translate("telegram.private_only", "fr")},
    ]
    (answer,) = fake_telegram.calls_of("answerCallbackQuery")
    assert answer["callback_query_id"] == pushed[3]["callback_query"]["id"]
    assert answer["text"] == translate("telegram.unknown_button", "fr")

    await drain(tg_runtime)
    replies = [s for s in fake_telegram.sent[2:] if s["chat_id"] == CHAT]
    assert replies, fake_telegram.sent
    # Two open campaigns: the resident is asked which one, with a button for each.
    menu = replies[0]
    assert menu["text"].startswith("Merci ! Pour quelle consultation ?")
    buttons = [row[0]["callback_data"] for row in menu["reply_markup"]["inline_keyboard"]]
    assert buttons == ["m:1", "m:2"]
    with tg_runtime.sessions() as session:
        rows = list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))
    assert rows and all(r.status == "sent" and r.channel == "telegram" for r in rows)
    assert contributions(tg_runtime) == []  # waiting for the campaign to be chosen

    # Polling again reads nothing new: the updates were confirmed.
    assert await poll_updates(tg_runtime, timeout=0, once=True) == 0
    assert len(inbound(tg_runtime)) == 1


async def test_poll_survives_a_failing_getupdates_and_reads_the_batch_once(
    fake_telegram: FakeTelegram, tg_runtime: Runtime
):
    update = tu.text(CHAT, "PARC Un terrain de basket")
    fake_telegram.push_update(update)
    fake_telegram.fail_next("getUpdates", status=502)

    read = await asyncio.wait_for(poll_updates(tg_runtime, timeout=0, once=True), 20)

    assert read == 1
    offsets = [c.get("offset") for c in fake_telegram.calls_of("getUpdates")]
    assert offsets == [None, None, update["update_id"] + 1]  # failed, read, confirmed
    (stored,) = inbound(tg_runtime)
    assert stored.text == "PARC Un terrain de basket"
    await drain(tg_runtime)
    (c,) = contributions(tg_runtime)
    assert c.text == "Un terrain de basket" and c.channel == "telegram"
    assert any(f"/suivi {c.reference}" in s["text"] for s in fake_telegram.sent)


# -- the commands ----------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`gateway …` configures logging for the process (root handler, levels): undo it, so that
    later tests keep pytest's own capture."""
    root = logging.getLogger()
    level = root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "aiohttp.access")}
    yield
    for handler in root.handlers[:]:
        if any(isinstance(f, logs.RedactingFilter) for f in handler.filters):
            root.removeHandler(handler)  # the gateway's own, bound to a stream now gone
    root.setLevel(level)
    for name, saved in quiet.items():
        logging.getLogger(name).setLevel(saved)


Invoke = Callable[..., Result]


def cli_env(settings: Settings | None = None, **values: str) -> dict[str, str | None]:
    """GATEWAY_* variables for `gateway`, from ``settings`` and/or given values."""
    env: dict[str, str | None] = {}
    if settings is not None:
        for name, value in settings.values().items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            env[f"GATEWAY_{name.upper()}"] = text
    env.update({f"GATEWAY_{k.upper()}": v for k, v in values.items()})
    return env


@pytest.fixture
def gateway(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., Result]]:
    """`gateway <args>` in-process, with only the GATEWAY_* variables given."""
    import os

    for key in list(os.environ):
        if key.startswith("GATEWAY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no ./gateway.env from anywhere else

    def run(*args: str, env: dict[str, str | None]) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    yield run


@pytest.fixture
def bot_env(fake_telegram: FakeTelegram, tmp_path: Path) -> dict[str, str | None]:
    return cli_env(
        data_dir=str(tmp_path / "data"),
        campaigns_dir=str(TEST_CAMPAIGNS),
        public_url=PUBLIC_URL,
        telegram_bot_token=fake_telegram.token,
        telegram_webhook_secret=SECRET,
        telegram_api_base=fake_telegram.base_url,
        log_level="DEBUG",  # the library logs its URLs (with the token) at DEBUG
    )


def assert_no_token(result: Result, fake: FakeTelegram) -> None:
    secret_part = fake.token.split(":", 1)[1]
    assert fake.token not in result.output and secret_part not in result.output


def test_set_webhook_registers_the_url_secret_updates_and_commands(
    gateway: Invoke, bot_env: dict[str, str | None], fake_telegram: FakeTelegram
):
    fake_telegram.push_update(tu.text(CHAT, "waiting since before the webhook"))
    result = gateway("--log-level", "DEBUG", "telegram", "set-webhook", env=bot_env)

    assert result.exit_code == 0, result.output
    assert f"webhook set for @{tu.BOT_USERNAME}: {WEBHOOK_URL}" in result.output
    assert f"https://t.me/{tu.BOT_USERNAME}?start=<slug>" in result.output
    webhook = fake_telegram.webhook
    assert webhook is not None
    assert webhook["url"] == WEBHOOK_URL
    assert webhook["secret_token"] == SECRET
    assert webhook["allowed_updates"] == ["message", "edited_message", "callback_query"]
    assert webhook.get("drop_pending_updates") in (None, False)
    assert len(fake_telegram.pending_updates) == 1  # kept without --drop-pending
    (menu,) = fake_telegram.calls_of("setMyCommands")
    assert [c["command"] for c in menu["commands"]] == list(commands.MENU_COMMANDS)
    assert {"start", "suivi", "aide", "stop", "oublier"} <= set(commands.MENU_COMMANDS)
    assert [c["description"] for c in menu["commands"]] == [
        translate(f"telegram.command.{name}", "fr") for name in commands.MENU_COMMANDS
    ]
    # Even at DEBUG: the library's URL lines are held back (telegram logger at INFO) and the
    # gateway's handler masks anything shaped like a token.
    assert "DEBUG" in result.output
    assert_no_token(result, fake_telegram)

    result = gateway("telegram", "set-webhook", "--drop-pending", env=bot_env)
    assert result.exit_code == 0, result.output
    assert fake_telegram.pending_updates == []


def test_info_shows_the_webhook_and_delete_webhook_clears_it(
    gateway: Invoke, bot_env: dict[str, str | None], fake_telegram: FakeTelegram
):
    assert gateway("telegram", "set-webhook", env=bot_env).exit_code == 0

    result = gateway("telegram", "info", env=bot_env)
    assert result.exit_code == 0, result.output
    assert f"bot: @{tu.BOT_USERNAME}" in result.output
    assert f"webhook: {WEBHOOK_URL}" in result.output
    assert "pending updates: 0" in result.output
    assert_no_token(result, fake_telegram)

    result = gateway("telegram", "delete-webhook", env=bot_env)
    assert result.exit_code == 0, result.output
    assert "webhook deleted" in result.output
    assert fake_telegram.webhook is None
    assert_no_token(result, fake_telegram)

    result = gateway("telegram", "info", env=bot_env)
    assert result.exit_code == 0, result.output
    assert "webhook: (none: use telegram poll)" in result.output


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("telegram_webhook_secret", "TELEGRAM_WEBHOOK_SECRET is not set"),
        ("telegram_bot_token", "TELEGRAM_BOT_TOKEN is not set"),
    ],
    ids=["no-secret", "no-token"],
)
def test_set_webhook_refuses_clearly_without_its_settings(
    gateway: Invoke,
    bot_env: dict[str, str | None],
    fake_telegram: FakeTelegram,
    missing: str,
    message: str,
):
    env = dict(bot_env)
    del env[f"GATEWAY_{missing.upper()}"]
    result = gateway("telegram", "set-webhook", env=env)
    assert result.exit_code != 0
    assert f"Error: {message}" in result.output
    assert "Traceback" not in result.output
    assert fake_telegram.calls_of("setWebhook") == [] and fake_telegram.webhook is None
    assert_no_token(result, fake_telegram)


@pytest.mark.parametrize("command", ["info", "delete-webhook", "poll"])
def test_every_telegram_command_refuses_without_a_token(
    gateway: Invoke, bot_env: dict[str, str | None], fake_telegram: FakeTelegram, command: str
):
    env = {k: v for k, v in bot_env.items() if k != "GATEWAY_TELEGRAM_BOT_TOKEN"}
    result = gateway("telegram", command, env=env)
    assert result.exit_code != 0
    assert "Error: TELEGRAM_BOT_TOKEN is not set" in result.output
    assert fake_telegram.calls == []


def test_set_webhook_reports_telegrams_refusal_without_the_token(
    gateway: Invoke, bot_env: dict[str, str | None], fake_telegram: FakeTelegram
):
    env = dict(bot_env, GATEWAY_PUBLIC_URL="http://gateway.example.org")
    result = gateway("telegram", "set-webhook", env=env)
    assert result.exit_code != 0
    assert "warning: Telegram only calls https:// URLs" in result.output
    assert "Error: Telegram:" in result.output
    assert "https url must be provided" in result.output.lower()  # Telegram's own words
    assert fake_telegram.webhook is None
    assert_no_token(result, fake_telegram)


def test_poll_command_reads_and_stores_what_is_waiting(
    gateway: Invoke, tg_settings: Settings, tg_runtime: Runtime, fake_telegram: FakeTelegram
):
    update = tu.text(CHAT, "PARC Des toilettes publiques")
    fake_telegram.push_update(update)
    env = cli_env(tg_settings, log_level="WARNING")

    result = gateway("telegram", "poll", "--once", "--timeout", "0", env=env)

    assert result.exit_code == 0, result.output
    assert "1 update(s) read" in result.output
    (stored,) = inbound(tg_runtime)
    assert stored.provider_message_id == str(update["update_id"])
    assert stored.text == "PARC Des toilettes publiques"
    assert fake_telegram.pending_updates == []
    assert_no_token(result, fake_telegram)


# -- the token and the logs ----------------------------------------------------------------


OWN_LOGGERS = ("gateway", "workers", "channels")


async def test_a_failing_send_logs_nothing_of_the_token(
    client: Any,
    fake_telegram: FakeTelegram,
    tg_runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
):
    caplog.set_level(logging.DEBUG)
    logs.configure("DEBUG")  # as `gateway --log-level DEBUG worker` does; writes to stderr
    root = logging.getLogger()
    root.addHandler(caplog.handler)  # configure() replaced the root handlers: capture again
    fake_telegram.fail_next("sendMessage", status=500, times=5)
    response = await post_update(client, tu.text(CHAT, "PARC Des fontaines à eau"))
    assert response.status == 200
    await drain(tg_runtime)

    with tg_runtime.sessions() as session:
        rows = list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))
    failed = [r for r in rows if r.attempts and r.status == "queued"]
    assert failed, [(r.status, r.error) for r in rows]  # sends failed and wait for a retry
    assert all(r.error and "Internal Server Error" in r.error for r in failed)
    assert not any(fake_telegram.token in (r.error or "") for r in rows)
    assert "attempt 1 failed (Telegram: Internal Server Error)" in caplog.text

    secret_part = fake_telegram.token.split(":", 1)[1]
    # What the gateway's own code logs, at every level, never carries the token.
    own = [r for r in caplog.records if r.name.split(".")[0] in OWN_LOGGERS]
    assert own
    assert not [r.getMessage() for r in own if secret_part in r.getMessage()]
    # The log as the gateway writes it (its handler masks what libraries log at DEBUG: the
    # library announces its Bot API URL, token included, when it starts).
    written = capsys.readouterr().err
    assert "sendMessage" in written or "Internal Server Error" in written
    assert fake_telegram.token not in written and secret_part not in written
