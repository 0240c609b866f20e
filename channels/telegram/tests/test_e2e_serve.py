"""The Telegram bot against a running `gateway serve` (embedded defaults: SQLite, embedded
Redis, in-process worker), with the fake Bot API in this process: real-shaped updates are
POSTed to the webhook, and the test finds the contributions and the replies the fake received
(chat id, text, keyboards). Then the same server's data through long polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from channels.telegram.tests import updates as tu
from channels.telegram.tests.conftest import SECRET
from channels.telegram.tests.fake_api import FakeTelegram
from channels.telegram.tests.test_media import korean_model, photos, speech_ogg  # noqa: F401 - fixtures
from channels.telegram.webhook import PATH, SECRET_HEADER
from tests.test_e2e_serve import Gateway, base_env

pytestmark = pytest.mark.e2e
RESIDENT = 515151


@pytest.fixture
def served(
    tmp_path: Path,
    korean_model: str,  # noqa: F811
    fake_twilio: Any,  # the base set-up's SMS provider (tests/fixtures.py): not this channel's
) -> Iterator[tuple[Gateway, FakeTelegram]]:
    with FakeTelegram() as telegram:
        env = base_env(tmp_path, fake_twilio)
        env.update(
            {
                "GATEWAY_TELEGRAM_BOT_TOKEN": telegram.token,
                "GATEWAY_TELEGRAM_WEBHOOK_SECRET": SECRET,
                "GATEWAY_TELEGRAM_API_BASE": telegram.base_url,
                "GATEWAY_VOSK_MODEL": korean_model,
            }
        )
        gateway = Gateway(env, tmp_path)
        gateway.start("serve")
        try:
            gateway.wait_healthy()
            yield gateway, telegram
        finally:
            gateway.stop()


def post(gateway: Gateway, update: dict[str, Any]) -> requests.Response:
    return requests.post(
        gateway.url + PATH, json=update, headers={SECRET_HEADER: SECRET}, timeout=10
    )


def until(check: Callable[[], Any], what: str, gateway: Gateway, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s\n" + gateway.logs())


def sent_to(fake: FakeTelegram, count: int) -> Callable[[], list[dict[str, Any]]]:
    def check() -> list[dict[str, Any]]:
        mine = [s for s in fake.sent if s.get("chat_id") == RESIDENT]
        return mine if len(mine) >= count else []

    return check


def keyboard(sent: dict[str, Any]) -> list[str]:
    markup = sent.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def test_updates_to_a_running_gateway_become_contributions_and_replies(
    served: tuple[Gateway, FakeTelegram],
    speech_ogg: bytes,  # noqa: F811
    photos: dict[str, bytes],  # noqa: F811
) -> None:
    gateway, fake = served
    # The deep link: the campaign's question, English offered with a button, then the data-use
    # notice (first contact).
    assert post(gateway, tu.text(RESIDENT, "/start parc")).status_code == 200
    question, offer, notice = until(sent_to(fake, 3), "question, offer and notice", gateway)
    assert question["text"].startswith("Rénovation du quartier du Parc :")
    assert keyboard(offer) == ["l:en"]
    assert "/oublier" in notice["text"]

    # A voice note whose speech is Korean (the test model's language), as OGG/Opus.
    voice_id = fake.add_file(speech_ogg, file_path="voice/file_1.oga")
    assert post(gateway, tu.voice(RESIDENT, voice_id, duration=3)).status_code == 200
    receipt, ask = until(sent_to(fake, 5), "receipt and neighbourhood question", gateway)[3:5]
    assert "/suivi PARC-0001" in receipt["text"]
    assert keyboard(ask) == ["q:1", "q:2", "q:3", "q:4", "q:0"]

    # A button press answers the question.
    press = tu.callback(RESIDENT, "q:2")
    answered = post(gateway, press)
    assert answered.json() == {
        "method": "answerCallbackQuery",
        "callback_query_id": press["callback_query"]["id"],
    }
    noted = until(sent_to(fake, 6), "neighbourhood noted", gateway)[5]
    assert noted["text"] == "Merci ! Quartier noté : Parc Sud."

    # A photo with its caption, with no campaign named: the menu comes as buttons.
    large = fake.add_file(photos["large"])
    small = fake.add_file(photos["small"])
    update = tu.photo(
        RESIDENT,
        [(small, 90, 60, len(photos["small"])), (large, 1280, 853, len(photos["large"]))],
        caption="Le banc devant l'école est cassé",
    )
    assert post(gateway, update).status_code == 200
    menu = until(sent_to(fake, 7), "campaign menu", gateway)[6]
    assert keyboard(menu) == ["m:1", "m:2"]
    post(gateway, tu.callback(RESIDENT, "m:2"))
    until(sent_to(fake, 8), "receipt of the photo", gateway)

    def transcribed() -> list[dict[str, Any]]:
        found = gateway.contributions()
        done = [c for c in found if c["transcript"]]
        return found if len(found) == 2 and done else []

    voice, photo = until(transcribed, "two contributions, the voice note transcribed", gateway)
    assert (voice["channel"], voice["campaign"], voice["neighbourhood"]) == (
        "telegram",
        "parc",
        "Parc Sud",
    )
    assert voice["audio"] is True
    assert voice["text"] == voice["transcript"]
    assert (photo["channel"], photo["campaign"], photo["text"]) == (
        "telegram",
        "parc",
        "Le banc devant l'école est cassé",
    )
    assert str(RESIDENT) not in str(voice["contributor"])
    kept = list((Path(gateway.env["GATEWAY_DATA_DIR"]) / "media" / "telegram").iterdir())
    assert [p.read_bytes() for p in kept] == [photos["large"]]


def test_long_polling_feeds_the_same_path(served: tuple[Gateway, FakeTelegram]) -> None:
    gateway, fake = served
    fake.push_update(tu.text(RESIDENT, "BUDGET un jardin partagé"))
    fake.push_update(tu.sticker(RESIDENT))
    output = gateway.cli("telegram", "poll", "--once", "--timeout", "0")
    assert "2 update(s) read" in output
    (filed,) = until(gateway.contributions, "the polled contribution", gateway)
    assert (filed["channel"], filed["campaign"], filed["text"]) == (
        "telegram",
        "budget",
        "un jardin partagé",
    )
    texts = [s["text"] for s in until(sent_to(fake, 3), "replies", gateway)]
    assert any("Je ne sais pas lire ce type de message" in t for t in texts)
    assert any("/suivi BUDGET-0001" in t for t in texts)
