"""Adding a language is a catalogue file (docs/languages.md): with a Spanish catalogue dropped
beside French and English, and no code changed, ESPAÑOL switches by SMS, a new resident is
offered Spanish in Spanish, and the answering machine speaks Spanish in the catalogue's voice,
reached on keypad 9 after English."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

import gateway
from channels.twilio import voice
from channels.twilio.tests.test_voice_calls import (
    CALLER,
    PARC_NUMBER,
    call_form,
    fixture,
    post_signed,
    said,
    twiml,
)
from gateway import i18n
from gateway.models import Contributor, InboundMessage
from gateway.webkeys import RUNTIME
from tests.helpers import drain, replies_to, sms_form

SPANISH = {
    "language": {
        "changed": "Hecho, le escribiremos en español.",
        "name": "Español",
        "switch_words": "ESPANOL, ESPAÑOL, SPANISH",
        "invite": "¿Español? Responda ESPAÑOL",
    },
    "voice": {
        "say_language": "es-ES",
        "say_voice": "Polly.Lucia",
        "language_offer": "Para español, pulse 9.",
        "greeting": "Hola, ha llamado al contestador de la Agora permanente. Consulta: {title}.",
    },
}


@pytest.fixture(autouse=True)
def spanish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The gateway's catalogues plus es.yaml (English where not yet translated, as a
    translator's first draft would be: the missing keys fall back to French anyway)."""
    root = tmp_path / "locales"
    shutil.copytree(Path(gateway.__file__).parent / "locales", root)
    draft = yaml.safe_load((root / "en.yaml").read_text(encoding="utf-8"))
    for section, texts in SPANISH.items():
        draft[section].update(texts)
    (root / "es.yaml").write_text(yaml.safe_dump(draft, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALES", root)
    i18n.reload()
    yield root
    monkeypatch.undo()
    i18n.reload()


def test_the_new_file_is_a_language_with_its_words() -> None:
    assert i18n.languages() == ("fr", "en", "es")
    assert i18n.switch_words()["espanol"] == "es"
    assert i18n.next_language("en") == "es" and i18n.next_language("es") == "fr"


async def sms(client: Any, text: str) -> list[str]:
    response = await post_signed(
        client, "/webhooks/twilio/sms", sms_form(text, sender=CALLER, to=PARC_NUMBER)
    )
    assert response.status == 200
    runtime = client.app[RUNTIME]
    drain(runtime)
    with runtime.sessions() as session:
        last = session.scalars(select(InboundMessage.id).order_by(InboundMessage.id.desc())).first()
    assert last is not None
    return replies_to(runtime, last)


async def test_espanol_by_sms_switches_and_the_phone_speaks_spanish(client):
    first = await sms(client, "PARC Plus de bancs")
    offered = "\n".join(first)
    assert "English? Reply ENGLISH" in offered and "¿Español? Responda ESPAÑOL" in offered
    assert await sms(client, "Español") == ["Hecho, le escribiremos en español."]
    with client.app[RUNTIME].sessions() as session:
        assert session.scalars(select(Contributor.language)).all() == ["es"]

    root = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER)))
    greeting = root[0][0]
    assert (greeting.attrib["language"], greeting.attrib["voice"]) == ("es-ES", "Polly.Lucia")
    assert (greeting.text or "").startswith("Hola") and "Rénovation du quartier du Parc" in (
        greeting.text or ""
    )
    assert said(root[0])[-1] == "Pour le français, tapez 9."  # after Spanish, French


async def test_keypad_9_goes_to_english_then_to_spanish(client):
    await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER))
    path = f"{voice.PRIVACY_PATH}?step=greeting"
    form = fixture("gather_digits", CallSid="CA" + "1" * 32, To=PARC_NUMBER, Digits="9")
    english = await twiml(await post_signed(client, path, form))
    assert english[0][0].attrib["language"] == "en-GB"
    assert said(english[0])[-1] == "Para español, pulse 9."
    spanish = await twiml(await post_signed(client, path, form))
    assert {s.attrib["voice"] for s in spanish[0].iter("Say")} == {"Polly.Lucia", "Polly.Lea"}
    assert said(spanish[0])[0].startswith("Hola")
    with client.app[RUNTIME].sessions() as session:
        assert session.scalars(select(Contributor.language)).all() == ["es"]
