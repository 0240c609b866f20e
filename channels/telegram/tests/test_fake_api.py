"""The fake Telegram Bot API, checked through python-telegram-bot and on the wire."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    constants,
    error,
)
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from channels.telegram.tests import updates as tu
from channels.telegram.tests.fake_api import DEFAULT_TOKEN, MAX_POLL_WAIT, FakeTelegram

# PTB 22 warns when a duration (Voice.duration, RetryAfter.retry_after ...) is read as
# an int: they become datetime.timedelta in a future major (opt in: PTB_TIMEDELTA=1).
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

RESIDENT = 424242
SUPERGROUP = -1001234567890
OGG = b"OggS\x00\x02" + bytes(range(256)) * 4
KEYBOARD = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton("Oui", callback_data="vote:yes")],
        [InlineKeyboardButton("Non", callback_data="vote:no")],
    ]
)
KEYBOARD_JSON = {
    "inline_keyboard": [
        [{"text": "Oui", "callback_data": "vote:yes"}],
        [{"text": "Non", "callback_data": "vote:no"}],
    ]
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as running:
        yield running


@pytest.fixture
def tg(fake: FakeTelegram) -> FakeTelegram:
    fake.reset()
    fake.max_poll_wait = MAX_POLL_WAIT
    return fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    """An initialized PTB Bot on the fake; the getMe of initialize() is forgotten."""
    async with Bot(
        tg.token, base_url=f"{tg.base_url}/bot", base_file_url=f"{tg.base_url}/file/bot"
    ) as running:
        tg.reset()
        yield running


def _api(fake: FakeTelegram, method: str) -> str:
    return f"{fake.base_url}/bot{fake.token}/{method}"


def _says(text: str) -> str:
    """A ``match=`` pattern for ``text``, in any case (PTB re-capitalizes descriptions)."""
    return "(?i)" + re.escape(text)


def _seconds(value: int | float | dtm.timedelta) -> float:
    """A PTB 22 duration: int by default, timedelta under PTB_TIMEDELTA=1."""
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


# -- through python-telegram-bot -----------------------------------------------


async def test_initialize_calls_get_me(tg: FakeTelegram) -> None:
    async with tg.ptb_bot() as bot:
        assert bot.bot.id == tg.bot_id == 123456789
        assert bot.username == "agora_test_bot" == tg.bot_username
        assert bot.bot.is_bot is True
        assert bot.bot.can_join_groups is True
        assert bot.bot.can_read_all_group_messages is False
        assert bot.bot.supports_inline_queries is False
    assert tg.calls == [{"method": "getMe", "params": {}}]


async def test_send_message_with_inline_keyboard(tg: FakeTelegram, bot: Bot) -> None:
    message = await bot.send_message(RESIDENT, "Êtes-vous d'accord ?", reply_markup=KEYBOARD)
    second = await bot.send_message(RESIDENT, "Merci !")

    assert tg.calls[0] == {
        "method": "sendMessage",
        "params": {
            "chat_id": RESIDENT,
            "text": "Êtes-vous d'accord ?",
            "reply_markup": KEYBOARD_JSON,
        },
    }
    assert tg.sent == [call["params"] for call in tg.calls]
    assert message.message_id + 1 == second.message_id
    assert message.text == "Êtes-vous d'accord ?"
    assert message.chat.id == RESIDENT and message.chat.type == constants.ChatType.PRIVATE
    assert message.chat.first_name == "Camille"
    assert message.from_user is not None and message.from_user.id == tg.bot_id
    assert message.from_user.is_bot and message.from_user.username == "agora_test_bot"
    assert message.reply_markup == KEYBOARD
    assert second.reply_markup is None
    assert abs(message.date.timestamp() - time.time()) < 5
    assert tg.sent_messages[0]["reply_markup"] == KEYBOARD_JSON


async def test_send_message_validation(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(error.BadRequest, match=_says("message text is empty")):
        await bot.send_message(RESIDENT, "  ")
    with pytest.raises(error.BadRequest, match=_says("message is too long")):
        await bot.send_message(RESIDENT, "a" * 4097)
    assert (await bot.send_message(RESIDENT, "é" * 4096)).text == "é" * 4096
    assert len(tg.sent) == 1 and len(tg.calls) == 3


async def test_rate_limit_raises_retry_after(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage")
    with pytest.raises(error.RetryAfter) as caught:
        await bot.send_message(RESIDENT, "Bonjour")
    assert _seconds(caught.value.retry_after) == 3
    # One failure only: the retry goes through.
    assert (await bot.send_message(RESIDENT, "Bonjour")).text == "Bonjour"
    assert [c["method"] for c in tg.calls] == ["sendMessage", "sendMessage"]
    assert len(tg.sent) == 1


async def test_retry_after_as_timedelta(
    tg: FakeTelegram, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    tg.fail_next("sendmessage", retry_after=17)
    with pytest.raises(error.RetryAfter) as caught:
        await bot.send_message(RESIDENT, "Bonjour")
    assert caught.value.retry_after == dtm.timedelta(seconds=17)


async def test_blocked_user_raises_forbidden(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage", 403)
    with pytest.raises(error.Forbidden, match=_says("bot was blocked by the user")):
        await bot.send_message(RESIDENT, "Bonjour")


async def test_get_file_and_download(tg: FakeTelegram, bot: Bot) -> None:
    file_id = tg.add_file(OGG)
    telegram_file = await bot.get_file(file_id)

    assert telegram_file.file_id == file_id
    assert telegram_file.file_size == len(OGG)
    assert telegram_file.file_unique_id == tu.file_unique_id(file_id)
    # PTB prefixes the file_path of getFile with base_file_url + token.
    assert telegram_file.file_path is not None
    assert telegram_file.file_path.startswith(f"{tg.base_url}/file/bot{tg.token}/voice/file_")
    assert telegram_file.file_path.endswith(".oga")
    assert bytes(await telegram_file.download_as_bytearray()) == OGG
    assert len(tg.downloads) == 1 and tg.downloads[0].startswith("voice/")


async def test_get_file_errors(tg: FakeTelegram, bot: Bot) -> None:
    big = tg.add_file(b"%PDF-1.7", file_size=20 * 1024 * 1024 + 1)
    with pytest.raises(error.BadRequest, match=_says("file is too big")):
        await bot.get_file(big)
    with pytest.raises(error.BadRequest, match=_says("invalid file_id")):
        await bot.get_file("AwACAgQAAxkBAAIunknown")
    at_limit = tg.add_file(b"x", file_id="exactly-20MB", file_size=20 * 1024 * 1024)
    assert (await bot.get_file(at_limit)).file_size == 20 * 1024 * 1024


async def test_webhook_round_trip(tg: FakeTelegram, bot: Bot) -> None:
    tg.push_update(tu.text(RESIDENT, "avant"))
    url = "https://gateway.example.org/telegram/webhook"
    assert await bot.set_webhook(
        url,
        secret_token="s3cret_token-1",
        allowed_updates=["message", "callback_query"],
        drop_pending_updates=True,
        max_connections=10,
    )
    assert tg.webhook == {
        "url": url,
        "secret_token": "s3cret_token-1",
        "allowed_updates": ["message", "callback_query"],
        "drop_pending_updates": True,
        "max_connections": 10,
    }
    tg.push_update(tu.text(RESIDENT, "après"))
    assert tg.push_update(tu.my_chat_member(RESIDENT)) is None  # not in allowed_updates

    info = await bot.get_webhook_info()
    assert info.url == url
    assert info.has_custom_certificate is False
    assert info.pending_update_count == 1  # the first one was dropped
    assert info.allowed_updates == ("message", "callback_query")
    assert info.max_connections == 10

    with pytest.raises(error.Conflict, match=_says("webhook is active")):
        await bot.get_updates()

    assert await bot.delete_webhook()
    assert tg.webhook is None
    assert (await bot.get_webhook_info()).url == ""
    assert [u.message.text for u in await bot.get_updates() if u.message] == ["après"]


async def test_set_webhook_rules(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(error.BadRequest, match=_says("https url must be provided")):
        await bot.set_webhook("http://gateway.example.org/telegram")
    with pytest.raises(error.BadRequest, match=_says("ports 80, 88, 443 or 8443")):
        await bot.set_webhook("https://gateway.example.org:8080/telegram")
    with pytest.raises(error.BadRequest, match=_says("secret token")):
        await bot.set_webhook("https://gateway.example.org/telegram", secret_token="a b")
    assert tg.webhook is None


async def test_get_updates_honours_offset(tg: FakeTelegram, bot: Bot) -> None:
    first, second, third = (tg.push_update(tu.text(RESIDENT, t)) for t in ("un", "deux", "trois"))
    assert first and second and third

    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [
        first["update_id"],
        second["update_id"],
        third["update_id"],
    ]
    assert [u.message.text for u in updates if u.message] == ["un", "deux", "trois"]
    # Not confirmed yet: served again.
    assert len(await bot.get_updates(limit=2)) == 2

    again = await bot.get_updates(offset=second["update_id"])
    assert [u.update_id for u in again] == [second["update_id"], third["update_id"]]
    assert [u["update_id"] for u in tg.pending_updates] == [second["update_id"], third["update_id"]]

    assert await bot.get_updates(offset=third["update_id"] + 1) == ()
    assert tg.pending_updates == []
    assert tg.calls_of("getUpdates")[-1] == {"offset": third["update_id"] + 1}


async def test_get_updates_negative_offset_keeps_the_last(tg: FakeTelegram, bot: Bot) -> None:
    for word in ("un", "deux", "trois"):
        tg.push_update(tu.text(RESIDENT, word))
    updates = await bot.get_updates(offset=-1)
    assert [u.message.text for u in updates if u.message] == ["trois"]
    assert len(tg.pending_updates) == 1


async def test_get_updates_long_polls(tg: FakeTelegram, bot: Bot) -> None:
    update = tu.callback(RESIDENT, "vote:yes")
    asyncio.get_running_loop().call_later(0.2, tg.push_update, update)
    started = time.monotonic()
    updates = await bot.get_updates(timeout=1)
    assert time.monotonic() - started < 0.9
    assert len(updates) == 1 and updates[0].callback_query is not None
    assert updates[0].callback_query.data == "vote:yes"


async def test_get_updates_waits_at_most_timeout_and_the_cap(tg: FakeTelegram, bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 1.6

    tg.max_poll_wait = 0.2
    started = time.monotonic()
    assert await bot.get_updates(timeout=30) == ()
    assert time.monotonic() - started < 0.8


async def test_get_updates_allowed_updates(tg: FakeTelegram, bot: Bot) -> None:
    tg.push_update(tu.callback(RESIDENT, "queued-before"))  # delivered: predates the filter
    assert len(await bot.get_updates(allowed_updates=["message"])) == 1
    assert tg.push_update(tu.callback(RESIDENT, "vote:no")) is None
    assert tg.push_update(tu.text(RESIDENT, "ok")) is not None
    assert tg.calls_of("getUpdates")[0] == {"allowed_updates": ["message"]}
    # By default, chat_member updates are not delivered; my_chat_member are.
    tg.reset()
    chat_member = {"chat_member": tu.my_chat_member(-4001)["my_chat_member"]}
    assert tg.push_update(chat_member) is None
    assert tg.push_update(tu.my_chat_member(RESIDENT)) is not None


async def test_get_updates_conflicts_with_webhook(tg: FakeTelegram, bot: Bot) -> None:
    await bot.set_webhook("https://gateway.example.org:8443/telegram")
    with pytest.raises(error.Conflict) as caught:
        await bot.get_updates(timeout=1)
    assert "deletewebhook" in str(caught.value).lower()


async def test_wrong_token_is_invalid(tg: FakeTelegram) -> None:
    bot = Bot(
        "123456789:AAEsomeoneElsesToken_0123456789abcd",
        base_url=f"{tg.base_url}/bot",
        base_file_url=f"{tg.base_url}/file/bot",
    )
    with pytest.raises(error.InvalidToken):
        await bot.initialize()
    await bot.shutdown()
    assert tg.calls == []


async def test_unknown_method_is_end_point_not_found(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(error.EndPointNotFound):
        await bot.do_api_request("sendCarrierPigeon", api_kwargs={"chat_id": RESIDENT})
    assert tg.calls == [{"method": "sendCarrierPigeon", "params": {"chat_id": RESIDENT}}]


async def test_callback_answer_edit_and_chat_action(tg: FakeTelegram, bot: Bot) -> None:
    update = tu.callback(RESIDENT, "vote:yes")
    query_id = update["callback_query"]["id"]
    assert await bot.answer_callback_query(query_id, text="Merci, vote enregistré")
    assert tg.callback_answers == [
        {"callback_query_id": query_id, "text": "Merci, vote enregistré"}
    ]

    sent = await bot.send_message(RESIDENT, "Votre choix ?", reply_markup=KEYBOARD)
    edited = await bot.edit_message_reply_markup(RESIDENT, sent.message_id, reply_markup=None)
    assert isinstance(edited, type(sent))
    assert edited.message_id == sent.message_id and edited.text == "Votre choix ?"
    assert edited.reply_markup is None and edited.edit_date is not None
    with pytest.raises(error.BadRequest, match=_says("message is not modified")):
        await bot.edit_message_reply_markup(RESIDENT, sent.message_id, reply_markup=None)
    # A message the fake never sent (e.g. the one of a callback builder) is edited too.
    bot_message_id = update["callback_query"]["message"]["message_id"]
    other = await bot.edit_message_reply_markup(RESIDENT, bot_message_id, reply_markup=KEYBOARD)
    assert isinstance(other, Message) and other.reply_markup == KEYBOARD
    assert await bot.edit_message_reply_markup(inline_message_id="BAAAAO8", reply_markup=KEYBOARD)

    assert await bot.send_chat_action(RESIDENT, constants.ChatAction.TYPING)
    with pytest.raises(error.BadRequest, match=_says("wrong parameter action")):
        await bot.send_chat_action(RESIDENT, "dancing")


async def test_parse_modes(tg: FakeTelegram, bot: Bot) -> None:
    html = await bot.send_message(
        RESIDENT,
        "<b>Merci</b> &amp; <i>à bientôt</i> 🎉 <a href='https://ville.fr'>ici</a>",
        parse_mode=constants.ParseMode.HTML,
    )
    assert html.text == "Merci & à bientôt 🎉 ici"
    assert [(e.type, e.offset, e.length) for e in html.entities] == [
        ("bold", 0, 5),
        ("italic", 8, 9),
        ("text_link", 21, 3),  # the emoji is two UTF-16 units
    ]
    assert html.entities[2].url == "https://ville.fr"
    assert tg.sent[0]["text"].startswith("<b>")  # the params are kept as sent
    with pytest.raises(error.BadRequest, match=_says('unsupported start tag "br"')):
        await bot.send_message(RESIDENT, "ligne<br>suivante", parse_mode="HTML")
    with pytest.raises(error.BadRequest, match=_says("can't find end tag")):
        await bot.send_message(RESIDENT, "<b>Merci", parse_mode="HTML")

    with pytest.raises(error.BadRequest, match=_says("character '.' is reserved")):
        await bot.send_message(RESIDENT, "*Merci*. À bientôt", parse_mode="MarkdownV2")
    markdown = await bot.send_message(RESIDENT, r"*Merci*\. À bientôt\!", parse_mode="MarkdownV2")
    assert markdown.text == "Merci. À bientôt!"


async def test_chats_are_learned_from_pushed_updates(tg: FakeTelegram, bot: Bot) -> None:
    tg.push_update(tu.group_text(SUPERGROUP, "Bonjour", type="supergroup"))
    message = await bot.send_message(SUPERGROUP, "Bienvenue")
    assert message.chat.type == constants.ChatType.SUPERGROUP
    assert message.chat.title == tu.GROUP_TITLE


async def test_voice_update_end_to_end(tg: FakeTelegram, bot: Bot) -> None:
    """What a polling gateway does: receive a voice note, fetch the audio, answer."""
    tg.push_update(tu.voice(RESIDENT, tg.add_file(OGG), duration=4, file_size=len(OGG)))
    (update,) = await bot.get_updates(timeout=1)
    assert update.message is not None and update.message.voice is not None
    audio = await (await update.message.voice.get_file()).download_as_bytearray()
    assert bytes(audio) == OGG
    await update.message.reply_text("Merci, votre message vocal est bien reçu.")
    assert tg.sent[0]["chat_id"] == RESIDENT
    await bot.get_updates(offset=update.update_id + 1)
    assert tg.pending_updates == []


async def test_ptb_application_polls_and_replies(tg: FakeTelegram) -> None:
    """PTB's own polling loop (Application + Updater), as a polling gateway runs it."""
    app = (
        Application.builder()
        .token(tg.token)
        .base_url(f"{tg.base_url}/bot")
        .base_file_url(f"{tg.base_url}/file/bot")
        .build()
    )

    async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(f"Reçu : {update.message.text}")

    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, reply))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        pushed = tg.push_update(tu.text(RESIDENT, "Plus de bancs au parc"))
        sent = await asyncio.to_thread(tg.wait_for_sent, 1, 3.0)
        await app.updater.stop()
        await app.stop()

    assert pushed is not None
    assert sent == [{"chat_id": RESIDENT, "text": "Reçu : Plus de bancs au parc"}]
    assert [c["method"] for c in tg.calls[:3]] == ["getMe", "deleteWebhook", "getUpdates"]
    assert tg.calls_of("getUpdates")[-1]["offset"] == pushed["update_id"] + 1
    assert tg.pending_updates == []


async def test_stopping_the_fake_ends_long_polls() -> None:
    fake = FakeTelegram().start()
    async with fake.ptb_bot() as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=2))
        while not fake.calls_of("getUpdates"):
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.to_thread(fake.stop)
        assert await poll == ()
        assert time.monotonic() - started < 0.5


# -- on the wire -----------------------------------------------------------------


def test_wire_format_get_json_and_form(tg: FakeTelegram) -> None:
    me = requests.get(_api(tg, "getMe"), timeout=5)
    assert me.status_code == 200 and me.headers["Content-Type"].startswith("application/json")
    assert me.json() == {"ok": True, "result": tg.bot_user}

    by_json = requests.post(
        _api(tg, "sendMessage"),
        json={"chat_id": 7, "text": "Salut", "reply_markup": KEYBOARD_JSON},
        timeout=5,
    ).json()
    assert by_json["ok"] is True and by_json["result"]["reply_markup"] == KEYBOARD_JSON

    by_form = requests.post(
        _api(tg, "SENDMESSAGE"),  # method names are case-insensitive
        data={"chat_id": "7", "text": "123", "reply_markup": json.dumps(KEYBOARD_JSON)},
        timeout=5,
    ).json()
    assert by_form["result"]["text"] == "123"
    assert by_form["result"]["message_id"] == by_json["result"]["message_id"] + 1

    by_query = requests.get(
        _api(tg, "sendChatAction"), params={"chat_id": "7", "action": "typing"}, timeout=5
    )
    assert by_query.json() == {"ok": True, "result": True}

    assert tg.calls[1:] == [
        {
            "method": "sendMessage",
            "params": {"chat_id": 7, "text": "Salut", "reply_markup": KEYBOARD_JSON},
        },
        {
            "method": "sendMessage",
            "params": {"chat_id": 7, "text": "123", "reply_markup": KEYBOARD_JSON},
        },
        {"method": "sendChatAction", "params": {"chat_id": 7, "action": "typing"}},
    ]


def test_wire_format_multipart(tg: FakeTelegram) -> None:
    answer = requests.post(
        _api(tg, "setWebhook"),
        data={"url": "https://gateway.example.org/tg", "drop_pending_updates": "true"},
        files={"certificate": ("cert.pem", b"-----BEGIN CERTIFICATE-----\n", "application/x-pem")},
        timeout=5,
    ).json()
    assert answer == {"ok": True, "result": True, "description": "Webhook was set"}
    params = tg.calls[0]["params"]
    assert params["drop_pending_updates"] is True
    assert params["certificate"]["data"].startswith(b"-----BEGIN")
    info = requests.get(_api(tg, "getWebhookInfo"), timeout=5).json()["result"]
    assert info["has_custom_certificate"] is True


def test_wire_format_errors(tg: FakeTelegram) -> None:
    def post(method: str, token: str = tg.token, **data: Any) -> tuple[int, dict[str, Any]]:
        response = requests.post(f"{tg.base_url}/bot{token}/{method}", data=data, timeout=5)
        return response.status_code, response.json()

    assert post("getMe", token="123456789:wrong") == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert post("getMeNow") == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert post("sendMessage", chat_id="7") == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"},
    )
    assert post("sendMessage", text="x")[1]["description"] == "Bad Request: chat_id is empty"
    assert post("sendMessage", chat_id="7", text="x" * 4097)[1]["description"] == (
        "Bad Request: message is too long"
    )
    assert post("sendMessage", chat_id="7", text="x", reply_markup="{nope")[1]["description"] == (
        "Bad Request: can't parse reply keyboard markup JSON object"
    )
    too_long_data = {"inline_keyboard": [[{"text": "A", "callback_data": "é" * 33}]]}
    assert (
        post("sendMessage", chat_id="7", text="x", reply_markup=json.dumps(too_long_data))[1][
            "description"
        ]
        == "Bad Request: BUTTON_DATA_INVALID"
    )
    tg.fail_next("sendMessage", 429, retry_after=5)
    assert post("sendMessage", chat_id="7", text="x") == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 5",
            "parameters": {"retry_after": 5},
        },
    )
    tg.fail_next("sendMessage", 403)
    assert post("sendMessage", chat_id="7", text="x") == (
        403,
        {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
    )
    tg.fail_next("getFile", 500, "Internal Server Error: restart")
    assert post("getFile", file_id="x")[0] == 500
    assert tg.sent == []


def test_file_download_urls(tg: FakeTelegram) -> None:
    tg.add_file(b"\xff\xd8\xff\xe0photo", file_path="photos/file_9.jpg")
    good = requests.get(f"{tg.base_url}/file/bot{tg.token}/photos/file_9.jpg", timeout=5)
    assert good.status_code == 200 and good.content == b"\xff\xd8\xff\xe0photo"
    assert good.headers["Content-Type"] == "image/jpeg"
    wrong_token = requests.get(f"{tg.base_url}/file/bot1:x/photos/file_9.jpg", timeout=5)
    assert wrong_token.status_code == 401
    missing = requests.get(f"{tg.base_url}/file/bot{tg.token}/photos/nope.jpg", timeout=5)
    assert missing.status_code == 404 and missing.json()["description"] == "Not Found"
    assert tg.downloads == ["photos/file_9.jpg"]


def test_wait_for_sent(tg: FakeTelegram) -> None:
    def later() -> None:
        time.sleep(0.1)
        requests.post(_api(tg, "sendMessage"), data={"chat_id": 5, "text": "Bonjour"}, timeout=5)

    thread = threading.Thread(target=later)
    thread.start()
    assert tg.wait_for_sent(1, timeout=3) == [{"chat_id": 5, "text": "Bonjour"}]
    thread.join()
    with pytest.raises(AssertionError, match="1 message"):
        tg.wait_for_sent(2, timeout=0.1)


def test_reset_forgets_everything_but_files(tg: FakeTelegram) -> None:
    file_id = tg.add_file(b"data")
    requests.post(_api(tg, "sendMessage"), data={"chat_id": 5, "text": "x"}, timeout=5)
    tg.push_update(tu.text(5, "y"))
    tg.fail_next("getMe")
    tg.reset()
    assert tg.calls == tg.sent == tg.pending_updates == tg.downloads == []
    assert requests.get(_api(tg, "getMe"), timeout=5).status_code == 200
    answer = requests.post(_api(tg, "getFile"), data={"file_id": file_id}, timeout=5).json()
    assert answer["result"]["file_size"] == 4


def test_runs_as_a_subprocess() -> None:
    root = Path(__file__).resolve().parents[3]
    with subprocess.Popen(
        [sys.executable, "-m", "channels.telegram.tests.fake_api", "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            started = json.loads(process.stdout.readline())
            url = f"{started['base_url']}/bot{started['token']}/getMe"
            assert requests.get(url, timeout=5).json()["result"]["username"] == "agora_test_bot"
        finally:
            process.terminate()
            process.wait(10)
    assert process.returncode == 0


# -- update builders -------------------------------------------------------------


def _message(update: Update) -> Message:
    assert update.message is not None
    return update.message


def _check_text(update: Update) -> None:
    message = _message(update)
    assert message.text == "/start campagne-velo"
    assert message.chat.type == "private" and message.chat.id == RESIDENT
    assert message.from_user is not None and message.from_user.id == RESIDENT
    assert message.from_user.language_code == "fr" and not message.from_user.is_bot
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bot_command", 0, 6)]
    assert message.parse_entities() == {message.entities[0]: "/start"}


def _check_text_plain(update: Update) -> None:
    message = _message(update)
    assert message.text == "Il faut plus de pistes" and message.entities == ()
    assert message.from_user is not None
    assert (message.from_user.id, message.from_user.language_code) == (99, "en")


def _check_edited_text(update: Update) -> None:
    assert update.message is None and update.edited_message is not None
    edited = update.edited_message
    assert edited.message_id == 55 and edited.text == "corrigé"
    assert edited.edit_date is not None and edited.edit_date > edited.date


def _check_voice(update: Update) -> None:
    voice = _message(update).voice
    assert voice is not None
    assert voice.file_id == "voice-file" and voice.mime_type == "audio/ogg"
    assert _seconds(voice.duration) == 3 and voice.file_size
    assert voice.file_unique_id == tu.file_unique_id("voice-file")
    assert _message(update).caption is None


def _check_audio(update: Update) -> None:
    audio = _message(update).audio
    assert audio is not None
    assert (audio.file_id, audio.mime_type, audio.file_name) == (
        "audio-file",
        "audio/mpeg",
        "message.mp3",
    )
    assert _seconds(audio.duration) == 12 and audio.file_size == 16_000 * 12


def _check_photo(update: Update) -> None:
    message = _message(update)
    assert len(message.photo) == 2
    largest = message.photo[-1]
    assert (largest.file_id, largest.width, largest.height, largest.file_size) == (
        "photo-big",
        1280,
        960,
        154_000,
    )
    assert message.caption == "Le banc cassé"


def _check_document(update: Update) -> None:
    document = _message(update).document
    assert document is not None
    assert (document.file_name, document.mime_type, document.file_size) == (
        "avis.pdf",
        "application/pdf",
        1234,
    )
    assert _message(update).caption == "Mon avis"


def _check_sticker(update: Update) -> None:
    sticker = _message(update).sticker
    assert sticker is not None and sticker.type == "regular" and sticker.emoji == "👍"
    assert sticker.thumbnail is not None and not sticker.is_animated


def _check_location(update: Update) -> None:
    location = _message(update).location
    assert location is not None
    assert (location.latitude, location.longitude) == (45.7772, 4.8277)


def _check_contact(update: Update) -> None:
    contact = _message(update).contact
    assert contact is not None and contact.phone_number == "+33612345678"
    assert contact.first_name == "Camille" and contact.user_id == RESIDENT


def _check_callback(update: Update) -> None:
    query = update.callback_query
    assert query is not None and query.data == "vote:yes" and isinstance(query.id, str)
    assert query.from_user.id == RESIDENT and query.chat_instance
    assert isinstance(query.message, Message) and query.message.message_id == 77
    assert query.message.chat.id == RESIDENT
    assert query.message.from_user is not None and query.message.from_user.id == tu.BOT_ID
    assert update.effective_chat is not None and update.effective_chat.id == RESIDENT


def _check_group_text(update: Update) -> None:
    message = _message(update)
    assert message.chat.type == "group" and message.chat.title == tu.GROUP_TITLE
    assert message.from_user is not None and message.from_user.id > 0


def _check_supergroup_text(update: Update) -> None:
    message = _message(update)
    assert message.chat.type == "supergroup" and message.chat.id == SUPERGROUP
    assert message.entities[0].length == len("/avis@agora_test_bot")


def _check_channel_post(update: Update) -> None:
    post = update.channel_post
    assert update.message is None and post is not None
    assert post.chat.type == "channel" and post.chat.id == -1009876543210
    assert post.from_user is None and post.sender_chat == post.chat
    assert post.text == "Réunion publique jeudi"


def _check_from_bot(update: Update) -> None:
    sender = _message(update).from_user
    assert sender is not None and sender.is_bot and sender.id != tu.BOT_ID


def _check_my_chat_member(update: Update) -> None:
    change = update.my_chat_member
    assert change is not None and change.chat.id == RESIDENT
    assert change.old_chat_member.status == "member"
    assert change.new_chat_member.status == "kicked"
    assert change.new_chat_member.user.id == tu.BOT_ID and change.from_user.id == RESIDENT


def _check_unblocked(update: Update) -> None:
    change = update.my_chat_member
    assert change is not None
    assert change.old_chat_member.status == "kicked"
    assert change.new_chat_member.status == "member"


BUILDERS: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[Update], None]]] = {
    "text": (lambda: tu.text(RESIDENT, "/start campagne-velo"), _check_text),
    "text_plain": (
        lambda: tu.text(RESIDENT, "Il faut plus de pistes", user_id=99, language_code="en"),
        _check_text_plain,
    ),
    "edited_text": (lambda: tu.edited_text(RESIDENT, 55, "corrigé"), _check_edited_text),
    "voice": (lambda: tu.voice(RESIDENT, "voice-file"), _check_voice),
    "audio": (lambda: tu.audio(RESIDENT, "audio-file", duration=12), _check_audio),
    "photo": (
        lambda: tu.photo(
            RESIDENT,
            [("photo-small", 320, 240, 9_000), ("photo-big", 1280, 960, 154_000)],
            caption="Le banc cassé",
        ),
        _check_photo,
    ),
    "document": (
        lambda: tu.document(
            RESIDENT,
            "doc-file",
            mime_type="application/pdf",
            file_name="avis.pdf",
            file_size=1234,
            caption="Mon avis",
        ),
        _check_document,
    ),
    "sticker": (lambda: tu.sticker(RESIDENT), _check_sticker),
    "location": (lambda: tu.location(RESIDENT, 45.7772, 4.8277), _check_location),
    "contact": (
        lambda: tu.contact(RESIDENT, "+33612345678", "Camille", user_id=RESIDENT),
        _check_contact,
    ),
    "callback": (lambda: tu.callback(RESIDENT, "vote:yes", message_id=77), _check_callback),
    "group_text": (lambda: tu.group_text(-4001, "Bonjour le groupe"), _check_group_text),
    "supergroup_text": (
        lambda: tu.group_text(SUPERGROUP, "/avis@agora_test_bot oui", type="supergroup"),
        _check_supergroup_text,
    ),
    "channel_post": (
        lambda: tu.channel_post(-1009876543210, "Réunion publique jeudi"),
        _check_channel_post,
    ),
    "from_bot": (lambda: tu.from_bot(-4001, "Je suis un bot"), _check_from_bot),
    "my_chat_member": (lambda: tu.my_chat_member(RESIDENT), _check_my_chat_member),
    "my_chat_member_unblocked": (
        lambda: tu.my_chat_member(RESIDENT, "member"),
        _check_unblocked,
    ),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_builders_parse_with_ptb(name: str) -> None:
    build, check = BUILDERS[name]
    payload = build()
    assert json.loads(json.dumps(payload)) == payload  # plain JSON data
    update = Update.de_json(payload, Bot(DEFAULT_TOKEN))
    assert update.update_id == payload["update_id"]
    check(update)
    body = payload[tu.update_type(payload)]
    date = body["date"] if "date" in body else body["message"]["date"]  # a callback_query has none
    assert isinstance(date, int) and abs(date - time.time()) < 600


def test_builder_counters_increase() -> None:
    first, second = tu.text(1, "a"), tu.voice(1, "f")
    assert second["update_id"] == first["update_id"] + 1
    assert second["message"]["message_id"] > first["message"]["message_id"]
    assert tu.next_update_id() == second["update_id"] + 1
    with pytest.raises(ValueError, match="negative"):
        tu.group_text(5, "x")
    with pytest.raises(ValueError, match="status"):
        tu.my_chat_member(5, "administrator")
