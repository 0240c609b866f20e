"""The answering machine over Twilio Voice: what a caller hears (the TwiML Twilio is given) and
what is stored, at every step, from real-shaped Twilio payloads
(channels/twilio/fixtures/voice_*.json)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.twilio import voice
from gateway.enqueue import single_job
from gateway.i18n import translate
from gateway.models import Campaign, Contribution, VoiceCall
from gateway.privacy import voice_caller
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME, SETTINGS
from tests.helpers import count, inbound, raw_binding, sender_binding, sign

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CALLER = "+33612345678"
RADIO_NUMBER = "+33100000101"  # one campaign, audio greeting
PARC_NUMBER = "+33100000102"  # one campaign, greeting from the catalogue
SHARED_NUMBER = "+33100000103"  # two campaigns: the keypad menu
UNLISTED_NUMBER = "+33199999999"

CAMPAIGNS: dict[str, dict[str, Any]] = {
    "radio": {
        "title": "Émission du mardi",
        "question": "Que pensez-vous du marché ?",
        "status": "open",
        "phone_numbers": [RADIO_NUMBER],
        "voice": {"audio": "https://media.example.org/agora/accueil-radio.mp3"},
    },
    "parc-voix": {
        "title": "Rénovation du quartier du Parc",
        "question": "Que souhaitez-vous pour le futur parc ?",
        "status": "open",
        "phone_numbers": [PARC_NUMBER],
    },
    "quais": {
        "title": "Les quais de Seine",
        "question": "Comment aménager les quais ?",
        "status": "open",
        "phone_numbers": [SHARED_NUMBER],
        "voice": {"greeting": "Bienvenue sur la ligne des quais. Parlez après le bip."},
    },
    "vieux-pont": {
        "title": "Place du Vieux-Pont",
        "question": "Que faire de la place ?",
        "status": "open",
        "phone_numbers": [SHARED_NUMBER],
    },
    "ferme": {"title": "Consultation close", "status": "closed", "phone_numbers": [PARC_NUMBER]},
}


def write_campaigns(directory: Path, campaigns: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    # Numbered file names: read_files loads them sorted, so database ids follow this order.
    for index, (slug, spec) in enumerate(campaigns.items()):
        path = directory / f"{index:02d}-{slug}.yaml"
        path.write_text(json.dumps({"slug": slug, **spec}, ensure_ascii=False), encoding="utf-8")
    return directory


def fixture(name: str, **changes: str) -> dict[str, str]:
    case = json.loads((FIXTURES / f"voice_{name}.json").read_text(encoding="utf-8"))
    form = dict(case["request"]["form"])
    form.update(changes)
    return form


def call_form(to: str, call_sid: str = "CA" + "1" * 32, **changes: str) -> dict[str, str]:
    return fixture("incoming_call", To=to, Called=to, CallSid=call_sid, **changes)


@pytest.fixture
def make_client(
    aiohttp_client: Callable[[web.Application], Any], settings: Settings, tmp_path: Path
) -> Callable[..., Any]:
    async def make(
        campaigns: dict[str, dict[str, Any]] = CAMPAIGNS, **overrides: Any
    ) -> TestClient[Any, Any]:
        directory = write_campaigns(tmp_path / "campaigns", campaigns)
        app = create_app(settings.with_overrides(campaigns_dir=str(directory), **overrides))
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[TestClient[Any, Any]]:
    yield await make_client()


async def post_signed(client: TestClient[Any, Any], path_qs: str, form: dict[str, str]) -> Any:
    settings = client.app[SETTINGS]
    signature = sign(settings.twilio_auth_token, settings.public_url + path_qs, form)
    return await client.post(path_qs, data=form, headers={"X-Twilio-Signature": signature})


async def twiml(response: Any) -> ET.Element:
    assert response.status == 200, await response.text()
    assert response.content_type == "text/xml"
    # Our own server's answer, not untrusted input.
    root = ET.fromstring(await response.text())  # noqa: S314
    assert root.tag == "Response"
    return root


def verbs(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


def said(element: ET.Element) -> list[str]:
    return [say.text or "" for say in element.iter("Say")]


def spelled(element: ET.Element) -> str:
    """The characters a <Say> spells out (SSML say-as), in order."""
    return "".join(e.text or "" for e in element.iter("say-as"))


def calls(runtime: Runtime) -> list[VoiceCall]:
    with runtime.sessions() as session:
        return list(session.scalars(select(VoiceCall).order_by(VoiceCall.id)))


def campaign_id(runtime: Runtime, slug: str) -> int:
    with runtime.sessions() as session:
        found = session.scalar(select(Campaign.id).where(Campaign.slug == slug))
    assert found is not None
    return found


def assert_record_step(root: ET.Element, settings: Settings, max_length: int) -> None:
    (record,) = root.iter("Record")
    assert record.attrib == {
        "action": voice.RECORDED_PATH,
        "method": "POST",
        "maxLength": str(max_length),
        "playBeep": "true",
        "finishOnKey": "#",
        "timeout": "5",
        "trim": "trim-silence",
        "recordingStatusCallback": "https://gateway.example.org/webhooks/twilio/recording",
        "recordingStatusCallbackMethod": "POST",
        "recordingStatusCallbackEvent": "completed absent",
    }
    # What follows <Record> runs only when nothing was recorded: say so, then hang up.
    tail = list(root)[list(root).index(record) + 1 :]
    assert [t.tag for t in tail] == ["Say", "Hangup"]
    assert tail[0].text == translate("voice.nothing_recorded")
    assert tail[0].attrib["language"] == "fr-FR"


# -- the first webhook: the campaign by the number called -------------------------------------


async def test_call_to_a_campaign_number_hears_its_question_and_is_recorded(
    make_client: Callable[..., Any], settings: Settings
):
    client = await make_client(voice_max_recording_seconds=120)
    response = await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER))
    root = await twiml(response)
    assert verbs(root) == ["Gather", "Record", "Say", "Hangup"]
    # The greeting is said while a key may be pressed: 0 for the caller's own data, 9 for
    # English, offered in English.
    gather = root[0]
    assert gather.attrib["action"] == f"{voice.PRIVACY_PATH}?step=greeting"
    assert gather.attrib["numDigits"] == "1"
    greeting, follow_hint, hint, offer = list(gather)
    assert follow_hint.text == translate("voice.followup_hint")  # star: follow a contribution
    assert hint.text == translate("voice.privacy_hint")
    assert hint.text.endswith("tapez 0.")
    assert offer.text == "For English, press 9."
    assert (offer.attrib["language"], offer.attrib["voice"]) == ("en-GB", "Polly.Amy")
    assert greeting.attrib["language"] == "fr-FR"
    assert "Rénovation du quartier du Parc" in (greeting.text or "")
    assert "Que souhaitez-vous pour le futur parc ?" in (greeting.text or "")
    assert "bip" in (greeting.text or "")
    assert_record_step(root, settings, max_length=120)

    runtime = client.app[RUNTIME]
    (call,) = calls(runtime)
    assert call.call_sid == "CA" + "1" * 32
    assert call.called == PARC_NUMBER
    assert call.campaign_id == campaign_id(runtime, "parc-voix")
    assert call.caller_hash == runtime.vault.lookup_hash("voice", CALLER)
    assert call.caller_encrypted is not None
    assert CALLER.encode() not in call.caller_encrypted
    assert runtime.vault.decrypt(call.caller_encrypted, voice_caller(call.call_sid)) == CALLER
    assert call.broadcast_consent is None
    assert inbound(runtime) == []  # nothing to process until a recording exists


async def test_audio_greeting_is_played(client, settings):
    root = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(RADIO_NUMBER)))
    assert verbs(root) == ["Gather", "Record", "Say", "Hangup"]
    assert root[0][0].tag == "Play"
    assert root[0][0].text == "https://media.example.org/agora/accueil-radio.mp3"
    assert_record_step(root, settings, max_length=settings.voice_max_recording_seconds)


async def test_default_maximum_length_is_three_minutes(client, settings):
    root = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER)))
    assert next(root.iter("Record")).attrib["maxLength"] == "180"


async def test_repeated_first_webhook_keeps_one_call(client):
    for _ in range(2):
        await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER)))
    assert len(calls(client.app[RUNTIME])) == 1


async def test_unlisted_number_with_one_open_campaign_goes_to_it(make_client):
    client = await make_client({"parc-voix": CAMPAIGNS["parc-voix"], "ferme": CAMPAIGNS["ferme"]})
    root = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(UNLISTED_NUMBER)))
    assert verbs(root) == ["Gather", "Record", "Say", "Hangup"]
    assert "Rénovation du quartier du Parc" in said(root)[0]
    runtime = client.app[RUNTIME]
    assert calls(runtime)[0].campaign_id == campaign_id(runtime, "parc-voix")


async def test_unlisted_number_with_several_open_campaigns_gets_a_menu_of_all(client):
    root = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(UNLISTED_NUMBER)))
    assert verbs(root) == ["Gather", "Redirect"]
    lines = said(root)[1:]
    assert lines == [
        "Pour Émission du mardi, tapez 1.",
        "Pour Rénovation du quartier du Parc, tapez 2.",
        "Pour Les quais de Seine, tapez 3.",
        "Pour Place du Vieux-Pont, tapez 4.",
        translate("voice.followup_hint"),
        translate("voice.privacy_hint"),
        "For English, press 9.",
    ]


async def test_no_open_campaign_says_goodbye_and_hangs_up(make_client):
    client = await make_client({"ferme": CAMPAIGNS["ferme"]})
    root = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER)))
    assert verbs(root) == ["Say", "Hangup"]
    assert root[0].text == translate("voice.no_campaign")
    assert root[0].attrib["language"] == "fr-FR"
    (call,) = calls(client.app[RUNTIME])
    assert call.campaign_id is None


async def test_english_campaign_is_read_in_english(make_client):
    english = dict(CAMPAIGNS["parc-voix"], language="en")
    client = await make_client({"parc-voix": english})
    root = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER)))
    greeting, follow_hint, hint, offer = list(root[0])
    assert greeting.attrib["language"] == "en-GB" and hint.attrib["language"] == "en-GB"
    assert follow_hint.text == translate("voice.followup_hint", "en")
    assert (greeting.text or "").startswith("Hello")
    assert hint.text == translate("voice.privacy_hint", "en")
    # French is offered, in French.
    assert (offer.text, offer.attrib["language"]) == ("Pour le français, tapez 9.", "fr-FR")


# -- the keypad menu ------------------------------------------------------------------------------


async def test_shared_number_gets_a_menu_and_2_picks_the_second_campaign(client, settings):
    runtime = client.app[RUNTIME]
    root = await twiml(await post_signed(client, voice.VOICE_PATH, call_form(SHARED_NUMBER)))
    assert verbs(root) == ["Gather", "Redirect"]
    gather, redirect = root
    assert gather.attrib["numDigits"] == "1"
    assert gather.attrib["action"] == f"{voice.CHOOSE_PATH}?attempt=1"
    assert gather.attrib["method"] == "POST"
    assert int(gather.attrib["timeout"]) > 0
    assert said(gather) == [
        translate("voice.menu_intro"),
        "Pour Les quais de Seine, tapez 1.",
        "Pour Place du Vieux-Pont, tapez 2.",
        translate("voice.followup_hint"),
        translate("voice.privacy_hint"),
        "For English, press 9.",
    ]
    assert [say.attrib["language"] for say in gather.iter("Say")] == ["fr-FR"] * 5 + ["en-GB"]
    assert redirect.text == f"{voice.CHOOSE_PATH}?attempt=1"
    assert redirect.attrib["method"] == "POST"
    assert calls(runtime)[0].campaign_id is None  # not chosen yet

    form = fixture("gather_digits", To=SHARED_NUMBER, Called=SHARED_NUMBER, CallSid="CA" + "1" * 32)
    root = await twiml(await post_signed(client, f"{voice.CHOOSE_PATH}?attempt=1", form))
    assert verbs(root) == ["Gather", "Record", "Say", "Hangup"]
    assert "Place du Vieux-Pont" in said(root)[0]
    assert_record_step(root, settings, max_length=settings.voice_max_recording_seconds)
    assert calls(runtime)[0].campaign_id == campaign_id(runtime, "vieux-pont")


async def test_menu_choice_of_a_campaign_with_its_own_greeting(client):
    await twiml(await post_signed(client, voice.VOICE_PATH, call_form(SHARED_NUMBER)))
    form = fixture("gather_digits", To=SHARED_NUMBER, CallSid="CA" + "1" * 32, Digits="1")
    root = await twiml(await post_signed(client, f"{voice.CHOOSE_PATH}?attempt=1", form))
    assert said(root)[0] == "Bienvenue sur la ligne des quais. Parlez après le bip."


@pytest.mark.parametrize("digits", ["8", "7", "#", "12", None], ids=repr)
async def test_invalid_or_no_key_asks_again_then_says_goodbye(client, digits):
    await twiml(await post_signed(client, voice.VOICE_PATH, call_form(SHARED_NUMBER)))
    form = fixture("gather_digits", To=SHARED_NUMBER, CallSid="CA" + "1" * 32)
    if digits is None:  # the <Redirect> after a <Gather> that timed out
        del form["Digits"], form["FinishedOnKey"], form["msg"]
    else:
        form["Digits"] = digits

    root = await twiml(await post_signed(client, f"{voice.CHOOSE_PATH}?attempt=1", form))
    assert verbs(root) == ["Gather", "Redirect"]
    gather = root[0]
    assert gather.attrib["action"] == f"{voice.CHOOSE_PATH}?attempt=2"
    assert said(gather)[0] == translate("voice.menu_retry")
    assert said(gather)[1:] == [
        "Pour Les quais de Seine, tapez 1.",
        "Pour Place du Vieux-Pont, tapez 2.",
        translate("voice.followup_hint"),
        translate("voice.privacy_hint"),
        "For English, press 9.",
    ]

    root = await twiml(await post_signed(client, f"{voice.CHOOSE_PATH}?attempt=2", form))
    assert verbs(root) == ["Say", "Hangup"]
    assert root[0].text == translate("voice.menu_goodbye")
    assert calls(client.app[RUNTIME])[0].campaign_id is None


# -- after the recording: consent to broadcast -----------------------------------------------


async def test_after_recording_the_caller_is_asked_about_broadcast(client):
    form = fixture("record_action", To=PARC_NUMBER)
    root = await twiml(await post_signed(client, voice.RECORDED_PATH, form))
    assert verbs(root) == ["Gather", "Redirect"]
    gather, redirect = root
    assert gather.attrib["numDigits"] == "1"
    assert gather.attrib["action"] == voice.CONSENT_PATH
    assert gather.attrib["method"] == "POST"
    assert gather.attrib["timeout"] == "6"
    (question,) = gather.iter("Say")
    assert question.text == (
        "Acceptez-vous que votre message soit diffusé sur Radio Agora ? "
        "Tapez 1 pour oui, 2 pour non."
    )
    assert question.attrib["language"] == "fr-FR"
    # No key: the consent step is requested without Digits, which means no.
    assert redirect.text == voice.CONSENT_PATH
    assert redirect.attrib["method"] == "POST"


@pytest.mark.parametrize(
    ("digits", "consent"),
    [("1", True), ("2", False), (None, False), ("7", False), ("#", False)],
    ids=["1-yes", "2-no", "no-answer", "other-key", "hash"],
)
async def test_consent_is_stored_on_the_call_and_its_contribution(client, digits, consent):
    runtime = client.app[RUNTIME]
    call_sid = "CA" + "1" * 32
    await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER, call_sid)))
    with runtime.sessions.begin() as session:
        session.add(Contribution(reference="PARCV-0001", channel="voice", call_sid=call_sid))
        session.add(Contribution(reference="PARCV-0002", channel="voice", call_sid="CA" + "2" * 32))

    form = fixture("gather_digits", To=PARC_NUMBER, CallSid=call_sid)
    if digits is None:
        del form["Digits"], form["FinishedOnKey"], form["msg"]
    else:
        form["Digits"] = digits
    root = await twiml(await post_signed(client, voice.CONSENT_PATH, form))
    # Thanks, then the reference (the message's, filed already here) and a key to hear it
    # again, then goodbye.
    assert verbs(root) == ["Say", "Gather", "Say", "Hangup"]
    assert root[0].text == translate("voice.saved_yes" if consent else "voice.saved_no")
    assert spelled(root[1]) == "PARCV0001"

    assert calls(runtime)[0].broadcast_consent is consent
    with runtime.sessions() as session:
        rows = session.execute(select(Contribution.call_sid, Contribution.broadcast_consent))
        answers = {sid: answer for sid, answer in rows}
    assert answers == {call_sid: consent, "CA" + "2" * 32: None}  # another call: untouched


async def test_consent_for_an_unknown_call_still_thanks_the_caller(client):
    form = fixture("gather_digits", CallSid="CA" + "9" * 32, Digits="1")
    root = await twiml(await post_signed(client, voice.CONSENT_PATH, form))
    assert verbs(root) == ["Say", "Hangup"]
    assert calls(client.app[RUNTIME]) == []


# -- the recording status callback ------------------------------------------------------------


async def test_recording_is_stored_once_as_an_inbound_voice_message(client):
    runtime = client.app[RUNTIME]
    completed = fixture("recording_status_completed")
    call_sid, recording_sid = completed["CallSid"], completed["RecordingSid"]
    await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER, call_sid)))

    for _ in range(2):  # Twilio's retry of the same callback is absorbed
        response = await post_signed(client, voice.RECORDING_PATH, completed)
        root = await twiml(response)
        assert list(root) == []

    (message,) = inbound(runtime)
    assert message.channel == "voice"
    assert message.provider_message_id == recording_sid
    assert message.state == "received"
    assert message.text == ""
    assert message.recipient == PARC_NUMBER
    assert message.sender_encrypted is not None
    assert CALLER.encode() not in message.sender_encrypted
    assert runtime.vault.decrypt(message.sender_encrypted, sender_binding(message)) == CALLER
    assert message.sender_hash == runtime.vault.lookup_hash("voice", CALLER)
    assert message.attachments == [
        {
            "url": completed["RecordingUrl"],
            "content_type": "audio/wav",
            "status": "completed",
            "duration": "14",
            "call_sid": call_sid,
            "recording_sid": recording_sid,
            "error_code": None,
        }
    ]
    raw = json.loads(
        runtime.vault.decrypt_bytes(message.raw_encrypted or b"", raw_binding(message))
    )
    assert raw == completed
    # Enqueued once, on the queue ingest gives recordings (not the SMS conversations' one).
    queue_name, _, job_id = single_job("voice", message.id)
    assert runtime.queue(queue_name).job_ids == [job_id]


async def test_absent_recording_is_stored_too(client):
    runtime = client.app[RUNTIME]
    absent = fixture("recording_status_absent")
    await twiml(
        await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER, absent["CallSid"]))
    )
    await twiml(await post_signed(client, voice.RECORDING_PATH, absent))
    (message,) = inbound(runtime)
    (attachment,) = message.attachments
    assert attachment["status"] == "absent"
    assert attachment["duration"] == "0"
    assert attachment["error_code"] == "16102"


async def test_recording_of_an_unknown_call_is_stored_without_a_caller(client):
    runtime = client.app[RUNTIME]
    await twiml(
        await post_signed(client, voice.RECORDING_PATH, fixture("recording_status_completed"))
    )
    (message,) = inbound(runtime)
    assert runtime.vault.decrypt(message.sender_encrypted or b"", sender_binding(message)) == ""
    assert message.recipient is None


@pytest.mark.parametrize("missing", ["RecordingSid", "CallSid"])
async def test_recording_callback_without_its_ids_is_400(client, missing):
    form = fixture("recording_status_completed")
    del form[missing]
    response = await post_signed(client, voice.RECORDING_PATH, form)
    assert response.status == 400
    assert inbound(client.app[RUNTIME]) == []


async def test_call_webhook_without_call_sid_is_400(client):
    form = call_form(PARC_NUMBER)
    del form["CallSid"]
    response = await post_signed(client, voice.VOICE_PATH, form)
    assert response.status == 400
    assert calls(client.app[RUNTIME]) == []


# -- signatures -------------------------------------------------------------------------------

STEPS = [
    (voice.VOICE_PATH, "incoming_call"),
    (f"{voice.CHOOSE_PATH}?attempt=1", "gather_digits"),
    (voice.RECORDED_PATH, "record_action"),
    (voice.CONSENT_PATH, "gather_digits"),
    (voice.RECORDING_PATH, "recording_status_completed"),
]


@pytest.mark.parametrize(("path_qs", "name"), STEPS, ids=[s[0] for s in STEPS])
@pytest.mark.parametrize("forgery", ["unsigned", "wrong-url", "tampered", "other-query"])
async def test_unsigned_or_forged_requests_are_refused_and_nothing_stored(
    client, settings, path_qs, name, forgery
):
    runtime = client.app[RUNTIME]
    with runtime.sessions.begin() as session:
        session.add(Contribution(reference="PARCV-0001", channel="voice", call_sid="CA" + "1" * 32))
    form = fixture(name, CallSid="CA" + "1" * 32, To=PARC_NUMBER, Digits="1")
    headers: dict[str, str] = {}
    target = path_qs
    if forgery == "wrong-url":  # signed for the host the request reached, not PUBLIC_URL
        url = f"http://{client.host}:{client.port}{path_qs}"
        headers["X-Twilio-Signature"] = sign(settings.twilio_auth_token, url, form)
    elif forgery == "tampered":
        headers["X-Twilio-Signature"] = sign(
            settings.twilio_auth_token, settings.public_url + path_qs, form
        )
        form = dict(form, From="+33700000000")
    elif forgery == "other-query":  # the menu attempt is signed with the rest of the URL
        headers["X-Twilio-Signature"] = sign(
            settings.twilio_auth_token, settings.public_url + path_qs, form
        )
        target = path_qs + ("&" if "?" in path_qs else "?") + "attempt=9"
    response = await client.post(target, data=form, headers=headers)
    assert response.status == 403
    assert calls(runtime) == []
    assert inbound(runtime) == []
    with runtime.sessions() as session:
        assert session.scalar(select(Contribution.broadcast_consent)) is None
    assert count(runtime, VoiceCall) == 0


# -- the reference at the end of the call (issue 15: the landline loop) ---------------------------


async def test_the_caller_hears_their_reference_slowly_and_can_hear_it_again(client):
    runtime = client.app[RUNTIME]
    call_sid = "CA" + "1" * 32
    await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER, call_sid)))
    recorded = fixture("record_action", To=PARC_NUMBER, CallSid=call_sid)
    await twiml(await post_signed(client, voice.RECORDED_PATH, recorded))
    (call,) = calls(runtime)
    assert call.reference == "PARCVOIX-0001"  # taken when the message was recorded

    form = fixture("gather_digits", To=PARC_NUMBER, CallSid=call_sid, Digits="1")
    root = await twiml(await post_signed(client, voice.CONSENT_PATH, form))
    assert verbs(root) == ["Say", "Gather", "Say", "Hangup"]
    gather = root[1]
    # The fixture's caller is a mobile: announcements by SMS are offered (3).
    assert gather.attrib["action"] == f"{voice.REFERENCE_PATH}?saying=2&info=1"
    assert gather.attrib["numDigits"] == "1"
    (reference, again, info) = gather.findall("Say")
    assert info.text == translate("voice.announcements_offer")
    assert (reference.text or "").startswith(translate("voice.reference"))
    assert spelled(reference) == "PARCVOIX0001"  # one character at a time
    breaks = [b.attrib["time"] for b in reference.iter("break")]
    assert breaks.count(voice.DASH_PAUSE) == 1 and voice.CHARACTER_PAUSE in breaks
    assert again.text == translate("voice.reference_again")
    assert root[2].text == translate("voice.goodbye")

    # 1: said again, with the key offered once more; the last saying offers none.
    again_form = fixture("gather_digits", To=PARC_NUMBER, CallSid=call_sid, Digits="1")
    root = await twiml(await post_signed(client, f"{voice.REFERENCE_PATH}?saying=2", again_form))
    assert verbs(root) == ["Gather", "Say", "Hangup"]
    assert spelled(root[0]) == "PARCVOIX0001"
    assert root[0].attrib["action"] == f"{voice.REFERENCE_PATH}?saying=3"
    root = await twiml(await post_signed(client, f"{voice.REFERENCE_PATH}?saying=3", again_form))
    assert verbs(root) == ["Say", "Say", "Hangup"]
    assert spelled(root[0]) == "PARCVOIX0001"
    # Any other key, or none: goodbye.
    other = fixture("gather_digits", To=PARC_NUMBER, CallSid=call_sid, Digits="2")
    root = await twiml(await post_signed(client, f"{voice.REFERENCE_PATH}?saying=2", other))
    assert verbs(root) == ["Say", "Hangup"]
    assert root[0].text == translate("voice.goodbye")
    assert calls(runtime)[0].reference == "PARCVOIX-0001"  # the same, however often it is said


async def test_the_reference_is_said_in_the_campaigns_language(make_client):
    english = {**CAMPAIGNS["parc-voix"], "language": "en"}
    client = await make_client({"parc-voix": english})
    call_sid = "CA" + "1" * 32
    await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER, call_sid)))
    form = fixture("gather_digits", To=PARC_NUMBER, CallSid=call_sid, Digits="2")
    root = await twiml(await post_signed(client, voice.CONSENT_PATH, form))
    assert root[0].text == translate("voice.saved_no", "en")
    (reference, _again, _info) = root[1].findall("Say")
    assert reference.attrib["language"] == "en-GB"
    assert (reference.text or "").startswith(translate("voice.reference", "en"))


async def test_a_forged_request_for_the_reference_is_refused(client):
    form = fixture("gather_digits", To=PARC_NUMBER, CallSid="CA" + "1" * 32, Digits="1")
    response = await client.post(
        f"{voice.REFERENCE_PATH}?saying=2", data=form, headers={"X-Twilio-Signature": "forged"}
    )
    assert response.status == 403


# -- following a contribution by phone (issue 15: the landline loop) ------------------------------

LANDLINE = "+33147000001"
NEIGHBOUR = "+33147000002"


def seed_contribution(runtime: Runtime, number: str, reference: str, **fields: Any) -> None:
    """A contribution sent earlier from ``number`` (by a call or an SMS: one person)."""
    from gateway.models import Contributor

    with runtime.sessions.begin() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == "parc-voix"))
        assert campaign is not None
        person = Contributor(
            public_id=f"c-{reference.lower()}",
            channel="voice",
            address_hash=runtime.vault.lookup_hash("voice", number),
        )
        session.add(person)
        session.flush()
        session.add(
            Contribution(
                reference=reference,
                channel="voice",
                campaign_id=campaign.id,
                contributor_id=person.id,
                **fields,
            )
        )


async def follow(client: Any, caller: str, digits: str | None, path: str | None = None) -> Any:
    call_sid = "CA" + "7" * 32
    await twiml(
        await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER, call_sid, From=caller))
    )
    form = fixture("gather_digits", To=PARC_NUMBER, CallSid=call_sid, From=caller)
    if digits is None:
        del form["Digits"], form["FinishedOnKey"], form["msg"]
    else:
        form["Digits"] = digits
    return await twiml(await post_signed(client, path or f"{voice.FOLLOW_PATH}?attempt=1", form))


async def test_star_during_the_greeting_or_the_menu_asks_for_a_reference(client):
    await twiml(await post_signed(client, voice.VOICE_PATH, call_form(PARC_NUMBER)))
    form = fixture("gather_digits", To=PARC_NUMBER, CallSid="CA" + "1" * 32, Digits="*")
    root = await twiml(await post_signed(client, f"{voice.PRIVACY_PATH}?step=greeting", form))
    assert verbs(root) == ["Gather", "Redirect"]
    gather = root[0]
    assert gather.attrib["action"] == f"{voice.FOLLOW_PATH}?attempt=1"
    assert gather.attrib["finishOnKey"] == "#"
    assert said(gather) == [translate("voice.followup_ask")]

    await twiml(
        await post_signed(client, voice.VOICE_PATH, call_form(SHARED_NUMBER, "CA" + "2" * 32))
    )
    form = fixture("gather_digits", To=SHARED_NUMBER, CallSid="CA" + "2" * 32, Digits="*")
    root = await twiml(await post_signed(client, f"{voice.CHOOSE_PATH}?attempt=1", form))
    assert root[0].attrib["action"] == f"{voice.FOLLOW_PATH}?attempt=1"


async def test_a_landline_caller_hears_where_their_contribution_stands_and_the_answer(client):
    runtime = client.app[RUNTIME]
    seed_contribution(
        runtime,
        LANDLINE,
        "PARCVOIX-0042",
        status="published",
        answer_state="accepted",
        answer_text="Des bancs seront posés au printemps.",
    )
    seed_contribution(runtime, NEIGHBOUR, "PARCVOIX-0043", status="pending")
    root = await follow(client, LANDLINE, "42")
    assert verbs(root) == ["Say", "Say", "Gather", "Say", "Hangup"]
    status, answer = said(root)[:2]
    assert status == translate(
        "voice.followup_status",
        campaign="Rénovation du quartier du Parc",
        status=translate("followup.answer_state", state=translate("answer.state.accepted")),
    )
    assert answer == translate("voice.followup_answer", text="Des bancs seront posés au printemps.")
    assert root[2].attrib["action"] == f"{voice.FOLLOW_PATH}?step=again"
    assert said(root[2]) == [translate("voice.followup_more")]

    # A number keyed in never opens someone else's contribution.
    root = await follow(client, LANDLINE, "43")
    assert said(root)[0] == translate("voice.followup_not_found")


async def test_a_withheld_number_cannot_follow_anything(client):
    seed_contribution(client.app[RUNTIME], "anonymous", "PARCVOIX-0042", status="pending")
    root = await follow(client, "anonymous", "42")
    assert said(root)[0] == translate("voice.followup_hidden")


async def test_nothing_keyed_in_asks_once_more_then_goodbye(client):
    root = await follow(client, LANDLINE, None)
    assert root[0].attrib["action"] == f"{voice.FOLLOW_PATH}?attempt=2"
    root = await follow(client, LANDLINE, None, f"{voice.FOLLOW_PATH}?attempt=2")
    assert verbs(root) == ["Say", "Hangup"]
    assert root[0].text == translate("voice.goodbye")


@pytest.mark.parametrize("digits", ["abc", "123456789012"], ids=["not-digits", "too-long"])
async def test_what_is_not_a_reference_number_is_not_looked_up(client, digits):
    root = await follow(client, LANDLINE, digits)
    assert said(root)[0] == translate("voice.followup_not_found")


async def test_star_after_an_answer_asks_for_another_anything_else_ends_the_call(client):
    root = await follow(client, LANDLINE, "*", f"{voice.FOLLOW_PATH}?step=again")
    assert root[0].attrib["action"] == f"{voice.FOLLOW_PATH}?attempt=1"
    root = await follow(client, LANDLINE, "1", f"{voice.FOLLOW_PATH}?step=again")
    assert verbs(root) == ["Say", "Hangup"]
