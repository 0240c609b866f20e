"""The answering machine's other language (issue 15, item 5): « For English, press 9 » in the
greeting and the campaign menu, said in English; 9 says it all again in English (the TwiML's
language and voice change), and the choice is the caller's from then on: their next call is in
English first, offering French, and an SMS choice is heard on the phone too."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from channels.twilio import voice
from channels.twilio.tests import test_voice_recordings as recordings
from channels.twilio.tests.fake_api import FakeTwilio
from channels.twilio.tests.test_voice_calls import (
    CALLER,
    PARC_NUMBER,
    SHARED_NUMBER,
    call_form,
    calls,
    fixture,
    post_signed,
    said,
    twiml,
    verbs,
)
from gateway import calls as calls_service
from gateway.i18n import translate
from gateway.models import Contributor, OutboundMessage
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME
from tests.helpers import contributions, drain, sms_form

FIRST_CALL, SECOND_CALL = "CA" + "1" * 32, "CA" + "2" * 32


def voices(root: Any) -> set[tuple[str, str]]:
    return {(s.attrib["language"], s.attrib["voice"]) for s in root.iter("Say")}


def languages_kept(runtime: Runtime) -> list[str]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Contributor.language)))


async def press(client: Any, path: str, digits: str, call_sid: str = FIRST_CALL, **form: str):
    changes = {"CallSid": call_sid, "To": PARC_NUMBER, "From": CALLER, **form, "Digits": digits}
    return await twiml(await post_signed(client, path, fixture("gather_digits", **changes)))


async def test_9_during_the_greeting_says_it_again_in_english_and_the_caller_keeps_it(client):
    runtime = client.app[RUNTIME]
    first = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER)))
    assert said(first[0])[-1] == "For English, press 9."
    assert languages_kept(runtime) == []  # nobody is remembered for calling

    english = await press(client, f"{voice.PRIVACY_PATH}?step=greeting", "9")
    assert verbs(english) == ["Gather", "Record", "Say", "Hangup"]
    greeting, follow_hint, hint, offer = list(english[0])
    assert (greeting.text or "").startswith("Hello, you have reached")
    assert "Rénovation du quartier du Parc" in (greeting.text or "")
    assert (hint.text, follow_hint.text) == (
        translate("voice.privacy_hint", "en"),
        translate("voice.followup_hint", "en"),
    )
    assert (offer.text, offer.attrib["language"], offer.attrib["voice"]) == (
        "Pour le français, tapez 9.",
        "fr-FR",
        "Polly.Lea",
    )
    assert voices(english) == {("en-GB", "Polly.Amy"), ("fr-FR", "Polly.Lea")}
    assert [s.attrib["language"] for s in english.iter("Say")] == ["en-GB"] * 3 + ["fr-FR"] + [
        "en-GB"
    ]
    (call,) = calls(runtime)
    assert call.language == "en"
    assert languages_kept(runtime) == ["en"]  # the caller's own row, their number encrypted

    # The rest of the call is in English: the broadcast question after the recording.
    consent = await twiml(
        await post_signed(
            client,
            voice.RECORDED_PATH,
            fixture("record_action", To=PARC_NUMBER, CallSid=FIRST_CALL),
        )
    )
    assert said(consent) == [translate("voice.consent", "en")]
    assert voices(consent) == {("en-GB", "Polly.Amy")}

    # Their next call: English first, French offered; 9 brings French back, for good.
    again = await twiml(
        await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER, SECOND_CALL))
    )
    assert said(again)[0].startswith("Hello")
    assert said(again[0])[-1] == "Pour le français, tapez 9."
    french = await press(client, f"{voice.PRIVACY_PATH}?step=greeting", "9", SECOND_CALL)
    assert said(french)[0].startswith("Bonjour")
    assert said(french[0])[3] == "For English, press 9."
    assert languages_kept(runtime) == ["fr"]


async def test_the_caller_row_holds_the_number_encrypted_only(client):
    await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER))
    await press(client, f"{voice.PRIVACY_PATH}?step=greeting", "9")
    runtime = client.app[RUNTIME]
    with runtime.sessions() as session:
        (row,) = session.scalars(select(Contributor))
        assert row.channel == "voice"
        assert row.address_hash == runtime.vault.lookup_hash("voice", CALLER)
        assert row.address_encrypted is not None and CALLER.encode() not in row.address_encrypted


async def test_9_in_the_campaign_menu_says_the_menu_again_in_english(client):
    await twiml(await post_signed(client, voice.VOICE_PATH, call_form(SHARED_NUMBER)))
    menu = await press(client, f"{voice.CHOOSE_PATH}?attempt=1", "9", To=SHARED_NUMBER)
    assert verbs(menu) == ["Gather", "Redirect"]
    assert menu[0].attrib["action"] == f"{voice.CHOOSE_PATH}?attempt=1"  # not a wrong answer
    assert said(menu) == [
        translate("voice.menu_intro", "en"),
        "For Les quais de Seine, press 1.",
        "For Place du Vieux-Pont, press 2.",
        translate("voice.followup_hint", "en"),
        translate("voice.privacy_hint", "en"),
        "Pour le français, tapez 9.",
    ]
    # A campaign with its own French greeting: the English caller hears the catalogue's, in
    # English, with the campaign's title and question.
    chosen = await press(client, f"{voice.CHOOSE_PATH}?attempt=1", "1", To=SHARED_NUMBER)
    greeting = said(chosen)[0]
    assert greeting.startswith("Hello") and "Les quais de Seine" in greeting
    assert "Bienvenue sur la ligne des quais" not in greeting


async def test_a_withheld_number_switches_the_call_but_remembers_no_one(client):
    await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER, From="anonymous"))
    english = await press(client, f"{voice.PRIVACY_PATH}?step=greeting", "9", From="anonymous")
    assert said(english)[0].startswith("Hello")
    assert calls(client.app[RUNTIME])[0].language == "en"
    assert languages_kept(client.app[RUNTIME]) == []


async def test_english_chosen_by_sms_is_heard_on_the_phone(client):
    runtime = client.app[RUNTIME]
    await post_signed(
        client, "/webhooks/twilio/sms", sms_form("ENGLISH", sender=CALLER, to=PARC_NUMBER)
    )
    drain(runtime)
    assert languages_kept(runtime) == ["en"]
    root = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER)))
    assert said(root)[0].startswith("Hello")
    assert said(root[0])[-1] == "Pour le français, tapez 9."


async def test_0_is_now_the_callers_own_data_and_9_no_longer_is(client):
    await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER))
    privacy = await press(client, f"{voice.PRIVACY_PATH}?step=greeting", "0")
    assert said(privacy) == [translate("voice.privacy_menu")]
    language = await press(client, f"{voice.PRIVACY_PATH}?step=greeting", "9")
    assert translate("voice.privacy_menu", "en") not in said(language)


async def test_erasure_by_keypad_removes_the_row_the_language_was_kept_on(client):
    runtime = client.app[RUNTIME]
    await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER))
    await press(client, f"{voice.PRIVACY_PATH}?step=greeting", "9")
    assert languages_kept(runtime) == ["en"]
    privacy = await press(client, f"{voice.PRIVACY_PATH}?step=greeting", "0")
    assert said(privacy) == [translate("voice.privacy_menu", "en")]  # in the caller's language
    await press(client, f"{voice.PRIVACY_PATH}?step=choice", "2")
    forgotten = await press(client, f"{voice.PRIVACY_PATH}?step=confirm", "2")
    assert said(forgotten) == [translate("voice.privacy_forgotten", "en")]
    drain(runtime)
    assert languages_kept(runtime) == []


def test_the_sms_receipt_of_a_message_left_in_english_is_in_english(
    runtime: Runtime, fake_twilio: FakeTwilio, speech_wav: bytes
):
    call_sid = "CA" + "1" * 32
    calls_service.start_call(runtime, call_sid, CALLER, recordings.PARC_NUMBER)
    assert calls_service.switch_language(runtime, call_sid) == "en"
    recordings.recording_callback(runtime, fake_twilio, speech_wav, call_sid=call_sid)
    drain(runtime)
    (filed,) = contributions(runtime)
    with runtime.sessions() as session:
        texts = list(
            session.scalars(
                select(OutboundMessage.text).where(OutboundMessage.contribution_id == filed.id)
            )
        )
    assert texts == [translate("receipt.default", "en", reference=filed.reference)]
