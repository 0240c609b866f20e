"""POST /webhooks/telegram: what Telegram sends, what forgers and odd clients send, and what
survives. Every refusal is checked to store nothing; every accepted update to be stored once."""

from __future__ import annotations

import logging

import pytest

from channels.telegram.tests import updates as tg
from channels.telegram.tests.conftest import CHAT, SECRET, post_update
from gateway.webkeys import RUNTIME
from tests.helpers import inbound, sender_binding


async def test_text_update_is_stored_encrypted_and_enqueued_then_answered_200(client):
    update = tg.text(CHAT, "Il faut plus de bancs au parc")
    response = await post_update(client, update)
    assert response.status == 200
    assert await response.text() == ""
    runtime = client.app[RUNTIME]
    (message,) = inbound(runtime)
    assert (message.channel, message.kind) == ("telegram", "message")
    assert message.provider_message_id == str(update["update_id"])
    assert message.provider_ref == str(update["message"]["message_id"])
    assert message.text == "Il faut plus de bancs au parc"
    # The chat id is personal data: only its keyed hash and its ciphertext are stored.
    assert str(CHAT).encode() not in (message.sender_encrypted or b"")
    assert runtime.vault.decrypt(message.sender_encrypted, sender_binding(message)) == str(CHAT)
    assert message.sender_hash == runtime.vault.lookup_hash("telegram", str(CHAT))
    assert runtime.queue("inbound").job_ids == [f"inbound-{message.id}"]


@pytest.mark.parametrize(
    "secret", [None, "", "wrong-secret", SECRET + "x"], ids=["missing", "empty", "wrong", "longer"]
)
async def test_wrong_or_missing_secret_is_403_and_nothing_stored(client, secret, caplog):
    caplog.set_level(logging.WARNING)
    response = await post_update(client, tg.text(CHAT, "PARC bonjour"), secret=secret)
    assert response.status == 403
    assert inbound(client.app[RUNTIME]) == []
    assert "secret" in caplog.text


async def test_without_a_configured_secret_every_update_is_refused(
    aiohttp_client, tg_settings, caplog
):
    from gateway.web import create_app

    caplog.set_level(logging.ERROR)
    client = await aiohttp_client(
        create_app(tg_settings.with_overrides(telegram_webhook_secret=""))
    )
    response = await post_update(client, tg.text(CHAT, "PARC bonjour"), secret="")
    assert response.status == 403
    assert inbound(client.app[RUNTIME]) == []
    assert "TELEGRAM_WEBHOOK_SECRET" in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"update"',
        b"{}",
        b'{"update_id": "12"}',
        b'{"update_id": -1}',
        b'{"update_id": true}',
        b'{"update_id": 7, "message": {"text": "no chat, no date"}}',
    ],
    ids=[
        "broken",
        "undecodable",
        "array",
        "string",
        "no-update-id",
        "string-id",
        "negative-id",
        "boolean-id",
        "message-without-chat",
    ],
)
async def test_malformed_update_is_400_and_nothing_stored(client, body, caplog):
    caplog.set_level(logging.WARNING)
    response = await client.post(
        "/webhooks/telegram",
        data=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert inbound(client.app[RUNTIME]) == []
    assert "telegram webhook refused" in caplog.text


async def test_oversized_body_is_413(client):
    update = tg.text(CHAT, "x" * (client.app[RUNTIME].settings.max_webhook_bytes + 10))
    response = await post_update(client, update)
    assert response.status == 413
    assert inbound(client.app[RUNTIME]) == []


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 99},
        tg.my_chat_member(CHAT, status="kicked"),
        tg.channel_post(-1001234567890, "Annonce"),
        tg.from_bot(CHAT, "PARC je suis un robot"),
    ],
    ids=["empty", "blocked-the-bot", "channel-post", "from-a-bot"],
)
async def test_updates_without_a_resident_message_are_200_and_ignored(client, update, caplog):
    caplog.set_level(logging.INFO)
    response = await post_update(client, update)
    assert response.status == 200
    assert await response.text() == ""
    assert inbound(client.app[RUNTIME]) == []
    assert f"telegram update {update['update_id']}" in caplog.text


async def test_duplicate_update_id_is_stored_once(client):
    update = tg.text(CHAT, "PARC des jeux pour les petits")
    first = await post_update(client, update)
    again = await post_update(client, update)
    assert (first.status, again.status) == (200, 200)
    assert len(inbound(client.app[RUNTIME])) == 1


@pytest.mark.parametrize(
    "update",
    [
        tg.sticker(CHAT),
        tg.location(CHAT, 48.8924, 2.2071),
        tg.contact(CHAT, "+33612345678", "Camille"),
    ],
    ids=["sticker", "location", "contact"],
)
async def test_what_cannot_be_read_gets_a_polite_reply_and_nothing_is_stored(client, update):
    response = await post_update(client, update)
    assert response.status == 200
    answer = await response.json()
    assert answer["method"] == "sendMessage"
    assert answer["chat_id"] == CHAT
    assert "Je ne sais pas lire ce type de message" in answer["text"]
    assert inbound(client.app[RUNTIME]) == []


async def test_reply_language_follows_the_residents_telegram_language(client):
    update = tg.sticker(CHAT)
    update["message"]["from"]["language_code"] = "en-GB"
    answer = await (await post_update(client, update)).json()
    assert "I cannot read this kind of message" in answer["text"]


async def test_voice_note_over_the_size_cap_is_answered_and_not_stored(client):
    update = tg.voice(CHAT, "big-voice", file_size=20 * 1024 * 1024 + 1)
    response = await post_update(client, update)
    assert response.status == 200
    answer = await response.json()
    assert answer["method"] == "sendMessage"
    assert "20 Mo" in answer["text"]
    assert inbound(client.app[RUNTIME]) == []


async def test_oversized_voice_note_with_a_caption_keeps_the_caption(client):
    update = tg.voice(CHAT, "big-voice", file_size=30 * 1024 * 1024, caption="PARC mon avis")
    answer = await (await post_update(client, update)).json()
    assert "20 Mo" in answer["text"]
    (message,) = inbound(client.app[RUNTIME])
    assert message.text == "PARC mon avis"
    assert message.attachments == []


async def test_voice_note_is_stored_with_its_file_reference_not_downloaded(client):
    update = tg.voice(CHAT, "voice-file-1", duration=4, file_size=12_000)
    assert (await post_update(client, update)).status == 200
    (message,) = inbound(client.app[RUNTIME])
    (item,) = message.attachments
    assert item["kind"] == "voice"
    assert item["file_id"] == "voice-file-1"
    assert item["content_type"] == "audio/ogg"
    assert "path" not in item  # fetched by the worker, never in the webhook


async def test_group_message_gets_one_invitation_to_write_in_private(client):
    group = -4001234
    first = await post_update(client, tg.group_text(group, "PARC bonjour tout le monde"))
    answer = await first.json()
    assert answer["method"] == "sendMessage"
    assert answer["chat_id"] == group
    assert "message privé" in answer["text"]
    second = await post_update(client, tg.group_text(group, "encore"))
    assert second.status == 200
    assert await second.text() == ""  # told once: the group is not spammed
    assert inbound(client.app[RUNTIME]) == []


async def test_tapped_button_is_acknowledged_and_stored(client):
    update = tg.callback(CHAT, "m:2")
    response = await post_update(client, update)
    answer = await response.json()
    assert answer == {
        "method": "answerCallbackQuery",
        "callback_query_id": update["callback_query"]["id"],
    }
    (message,) = inbound(client.app[RUNTIME])
    assert (message.kind, message.text) == ("button", "m:2")


@pytest.mark.parametrize("data", ["delete_all", "m:", "k:../../etc", "x" * 70, ""])
async def test_unknown_button_data_is_acknowledged_with_a_note_and_not_stored(client, data):
    update = tg.callback(CHAT, "m:1")
    update["callback_query"]["data"] = data
    answer = await (await post_update(client, update)).json()
    assert answer["method"] == "answerCallbackQuery"
    assert "pas compris ce bouton" in answer["text"]
    assert inbound(client.app[RUNTIME]) == []


async def test_edit_is_stored_as_an_edit_of_its_message(client):
    original = tg.text(CHAT, "Il faut des bancs")
    await post_update(client, original)
    message_id = original["message"]["message_id"]
    await post_update(client, tg.edited_text(CHAT, message_id, "Il faut des bancs et de l'ombre"))
    first, edit = inbound(client.app[RUNTIME])
    assert (edit.kind, edit.provider_ref) == ("edit", str(message_id))
    assert edit.text == "Il faut des bancs et de l'ombre"
    assert first.text == "Il faut des bancs"


async def test_the_chat_id_and_the_token_never_reach_the_log(client, caplog, fake_telegram):
    caplog.set_level(logging.DEBUG)
    await post_update(client, tg.text(CHAT, "PARC bonjour, je suis au 0612345678"))
    await post_update(client, tg.sticker(CHAT))
    assert str(CHAT) not in caplog.text
    assert "0612345678" not in caplog.text
    assert fake_telegram.token not in caplog.text
