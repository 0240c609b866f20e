"""Opt-out and erasure are about the person, on every channel of their address.

A resident who leaves a voice message and texts from the same number is one person: ``STOP``
by SMS silences the receipts of their calls and the notices about them, ``OUBLIER`` by SMS
erases their calls as well, and a caller with only a landline can ask for both on the
answering machine's keypad. After an erasure, every table, every file of the data folder and
the database, and Redis are searched for the person.

Through the real webhooks (signed like Twilio's), a real Redis queue drained like a worker, a
fake Twilio serving the recordings and receiving the SMS, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from channels.twilio import voice
from channels.twilio.tests import test_voice_recordings
from channels.twilio.tests.fake_api import FakeTwilio
from gateway import audio_cache
from gateway.i18n import translate
from gateway.models import Contribution, Contributor, InboundMessage, OutboundMessage, VoiceCall
from gateway.moderation import actions
from gateway.moderation.accounts import Actor
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME, SETTINGS
from tests.helpers import cli_env, contributions, drain, sign, sms_form
from tests.privacy_scan import in_database, in_files, in_redis, phone_forms

CALLER = "+33612345678"
LANDLINE_CALLER = "+33147000001"
PARC_NUMBER = "+33100000001"
ALICE = Actor(name="alice", role="moderator")
speech_wav = test_voice_recordings.speech_wav  # the fixture: Korean speech as a phone records it


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any], settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(settings))


async def post_signed(client: TestClient[Any, Any], path_qs: str, form: dict[str, str]) -> str:
    settings = client.app[SETTINGS]
    signature = sign(settings.twilio_auth_token, settings.public_url + path_qs, form)
    response = await client.post(path_qs, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 200, await response.text()
    return await response.text()


def call_form(caller: str, call_sid: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "in-progress",
        "Called": PARC_NUMBER,
        "Caller": caller,
        "Direction": "inbound",
        "From": caller,
        "To": PARC_NUMBER,
        **extra,
    }


async def leave_voice_message(
    client: TestClient[Any, Any], fake: FakeTwilio, audio: bytes, caller: str, n: int
) -> None:
    """A call through the webhooks: greeting, recording callback; then a worker files it."""
    call_sid, recording_sid = f"CA{n:032x}", f"RE{n:032x}"
    await post_signed(client, voice.VOICE_PATH, call_form(caller, call_sid))
    url = fake.add_recording(recording_sid, audio, "audio/wav")
    callback = {
        "AccountSid": fake.account_sid,
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingUrl": url,
        "RecordingStatus": "completed",
        "RecordingDuration": "3",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
    }
    await post_signed(client, voice.RECORDING_PATH, callback)
    drain(client.app[RUNTIME])


async def text(client: TestClient[Any, Any], body: str, sender: str = CALLER) -> None:
    await post_signed(client, "/webhooks/twilio/sms", sms_form(body, sender=sender, to=PARC_NUMBER))
    drain(client.app[RUNTIME])


async def keypad(client: TestClient[Any, Any], caller: str, n: int, *keys: str) -> list[str]:
    """A call in which the caller presses 0 during the greeting, then ``keys``; returns what
    the caller hears after each key."""
    call_sid = f"CA{n:032x}"
    heard = [await post_signed(client, voice.VOICE_PATH, call_form(caller, call_sid))]
    steps = ["greeting", "choice", "confirm"]
    for step, key in zip(steps, (voice.PRIVACY_KEY, *keys), strict=False):
        path = f"{voice.PRIVACY_PATH}?step={step}"
        heard.append(await post_signed(client, path, call_form(caller, call_sid, Digits=key)))
    drain(client.app[RUNTIME])
    return heard


def said(twiml: str) -> list[str]:
    root = ET.fromstring(twiml)  # noqa: S314 - our own server's answer
    return [say.text or "" for say in root.iter("Say")]


def rows(runtime: Runtime, model: Any) -> list[Any]:
    with runtime.sessions() as session:
        return list(session.scalars(select(model)).unique())


def no_caller_kept(runtime: Runtime) -> bool:
    return all(
        c.caller_hash is None and c.caller_encrypted is None for c in rows(runtime, VoiceCall)
    )


def person_traces(runtime: Runtime, number: str, public_ids: list[str], root: Path) -> list[str]:
    needles = [*phone_forms(number), runtime.vault.lookup_hash("sms", number), *public_ids]
    return [
        *in_database(runtime, needles),
        *(f"file {p}" for p in in_files(root, needles)),
        *(f"redis {k}" for k in in_redis(runtime.redis, needles)),
    ]


async def test_OUBLIER_by_SMS_erases_the_callers_voice_messages_too(
    client: TestClient[Any, Any], fake_twilio: FakeTwilio, speech_wav: bytes, tmp_path: Path
):
    runtime = client.app[RUNTIME]
    await leave_voice_message(client, fake_twilio, speech_wav, CALLER, 1)
    await text(client, "PARC Il faut plus de bancs")
    voice_c, sms_c = sorted(contributions(runtime), key=lambda c: c.id)
    assert (voice_c.channel, sms_c.channel) == ("voice", "sms")
    audio = runtime.settings.data_path / str(voice_c.audio_path)
    assert audio.exists()
    # Published with the caller's consent and heard once: Radio Agora's normalised copy.
    with runtime.sessions.begin() as session:
        session.execute(
            update(Contribution).where(Contribution.id == voice_c.id).values(broadcast_consent=True)
        )
    actions.decide(runtime, ALICE, [voice_c.id], "publish")
    episode = await client.get(f"/campaigns/parc/audio/{voice_c.reference}.mp3")
    assert episode.status == 200 and len(await episode.read()) > 0
    radio_copy = audio_cache.cached_files(runtime.settings.data_path, voice_c.id)
    assert len(radio_copy) == 1 and radio_copy[0].exists()
    public_ids = sorted({c.contributor.public_id for c in (voice_c, sms_c) if c.contributor})
    assert len(public_ids) == 2  # one row per channel, one person
    # The same person by SMS follows the voice message's reference.
    await text(client, f"SUIVI {voice_c.reference}")
    assert any(voice_c.reference in m["Body"] for m in fake_twilio.messages[-1:])
    before = person_traces(runtime, CALLER, public_ids, tmp_path)
    assert any(t.startswith("contributors.") for t in before), before  # the scan finds them
    assert any(t.startswith("inbound_messages.") for t in before), before

    await text(client, "OUBLIER")

    confirmation = fake_twilio.messages[-1]
    assert confirmation["To"] == CALLER
    assert confirmation["Body"] == translate("forget.confirmed")
    assert rows(runtime, Contributor) == []
    assert no_caller_kept(runtime)
    assert not audio.exists()
    assert not radio_copy[0].exists()
    assert audio_cache.cached_files(runtime.settings.data_path, voice_c.id) == []
    gone = await client.get(f"/campaigns/parc/audio/{voice_c.reference}.mp3")
    assert gone.status == 404
    # The contributions stay, as what was said, detached and without the voice.
    kept = {c.id: c for c in contributions(runtime)}
    assert set(kept) == {voice_c.id, sms_c.id}
    assert all(c.contributor_id is None for c in kept.values())
    assert kept[voice_c.id].audio_path is None
    assert kept[voice_c.id].transcript == voice_c.transcript
    # Nothing of the person left anywhere: tables, data folder and database files, Redis.
    assert person_traces(runtime, CALLER, public_ids, tmp_path) == []

    # A moderator's decision on the voice message now reaches no one.
    sent = len(fake_twilio.messages)
    done = actions.decide(runtime, ALICE, [voice_c.id, sms_c.id], "publish")
    assert done.outbound == []
    drain(runtime)
    assert len(fake_twilio.messages) == sent
    # Texting again is a new contact: SUIVI no longer finds the old voice message.
    await text(client, f"SUIVI {voice_c.reference}")
    assert voice_c.reference not in fake_twilio.messages[-1]["Body"]


async def test_STOP_by_SMS_silences_the_callers_receipts_and_notices(
    client: TestClient[Any, Any], fake_twilio: FakeTwilio, speech_wav: bytes
):
    runtime = client.app[RUNTIME]
    await leave_voice_message(client, fake_twilio, speech_wav, CALLER, 1)
    (first,) = contributions(runtime)
    assert [m["To"] for m in fake_twilio.messages] == [CALLER]  # the receipt
    await text(client, "STOP")
    assert fake_twilio.messages[-1]["Body"] == translate("stop.confirmed")
    sent = len(fake_twilio.messages)

    await leave_voice_message(client, fake_twilio, speech_wav, CALLER, 2)
    assert len(contributions(runtime)) == 2  # filed as ever
    actions.decide(runtime, ALICE, [c.id for c in contributions(runtime)], "publish")
    drain(runtime)
    assert len(fake_twilio.messages) == sent  # no receipt, no notice
    assert all(c.opted_out for c in rows(runtime, Contributor))
    assert {c.channel for c in rows(runtime, Contributor)} == {"sms", "voice"}

    await text(client, "START")  # back: for the person again
    assert not any(c.opted_out for c in rows(runtime, Contributor))
    actions.decide(runtime, ALICE, [first.id], "reject", reason="Hors sujet")
    drain(runtime)
    assert fake_twilio.messages[-1]["To"] == CALLER
    assert "Hors sujet" in fake_twilio.messages[-1]["Body"]


async def test_a_landline_caller_erases_their_data_by_keypad(
    client: TestClient[Any, Any], fake_twilio: FakeTwilio, speech_wav: bytes, tmp_path: Path
):
    runtime = client.app[RUNTIME]
    await leave_voice_message(client, fake_twilio, speech_wav, LANDLINE_CALLER, 1)
    (c,) = contributions(runtime)
    assert fake_twilio.messages == []  # a landline gets no SMS
    public_ids = [c.contributor.public_id] if c.contributor else []

    heard = await keypad(client, LANDLINE_CALLER, 2, "2", "2")

    assert said(heard[1]) == [translate("voice.privacy_menu")]
    assert said(heard[2]) == [translate("voice.privacy_confirm")]
    assert said(heard[3]) == [translate("voice.privacy_forgotten")]
    assert rows(runtime, Contributor) == [] and no_caller_kept(runtime)
    (kept,) = contributions(runtime)
    assert kept.contributor_id is None and kept.audio_path is None
    assert person_traces(runtime, LANDLINE_CALLER, public_ids, tmp_path) == []
    # The request itself is kept as a bare row (its id absorbs a retry), nothing personal.
    (request,) = [m for m in rows(runtime, InboundMessage) if m.kind == "forget"]
    assert request.sender_hash is None and request.raw_encrypted is None


async def test_keypad_erasure_needs_the_same_key_twice(
    client: TestClient[Any, Any], fake_twilio: FakeTwilio, speech_wav: bytes
):
    runtime = client.app[RUNTIME]
    await leave_voice_message(client, fake_twilio, speech_wav, LANDLINE_CALLER, 1)
    heard = await keypad(client, LANDLINE_CALLER, 2, "2", "1")
    assert said(heard[3]) == [translate("voice.privacy_cancelled")]
    (c,) = contributions(runtime)
    assert c.contributor_id is not None and c.audio_path
    calls = sorted(rows(runtime, VoiceCall), key=lambda call: call.id)
    assert [call.caller_hash is None for call in calls] == [True, False]  # filed; the keypad's
    assert not [m for m in rows(runtime, InboundMessage) if m.kind in ("forget", "stop")]


async def test_keypad_opt_out_silences_the_next_receipt(
    client: TestClient[Any, Any], fake_twilio: FakeTwilio, speech_wav: bytes
):
    runtime = client.app[RUNTIME]
    heard = await keypad(client, CALLER, 1, "1")  # a first-time caller opts out at once
    assert said(heard[2]) == [translate("voice.privacy_stopped")]
    await leave_voice_message(client, fake_twilio, speech_wav, CALLER, 2)
    assert len(contributions(runtime)) == 1
    drain(runtime)
    assert fake_twilio.messages == []
    # And the person is opted out by SMS as well: a text gets no answer but STOP's.
    await text(client, "PARC Des arbres")
    assert fake_twilio.messages == []


async def test_a_key_other_than_9_during_the_greeting_goes_on_to_the_beep(
    client: TestClient[Any, Any],
):
    call_sid = "CA" + "a" * 32
    await post_signed(client, voice.VOICE_PATH, call_form(CALLER, call_sid))
    twiml = await post_signed(
        client, f"{voice.PRIVACY_PATH}?step=greeting", call_form(CALLER, call_sid, Digits="1")
    )
    root = ET.fromstring(twiml)  # noqa: S314
    assert [child.tag for child in root] == ["Say", "Record", "Say", "Hangup"]
    assert said(twiml)[0] == translate("voice.after_beep")


async def test_a_decision_is_texted_to_a_caller_from_the_campaigns_mobile_number(
    aiohttp_client: Callable[[web.Application], Any],
    settings: Settings,
    fake_twilio: FakeTwilio,
    speech_wav: bytes,
    tmp_path: Path,
):
    """Default settings: no TWILIO_FROM_NUMBER. The caller dialled the campaign's landline
    number (voice only); its SMS come from the campaign's mobile number, receipt and notices
    alike. With no number that can send SMS, the notice is recorded as failed, visibly."""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "parc.yaml").write_text(
        "slug: parc\ntitle: Parc\nquestion: Que faire ?\nkeywords: [PARC]\nstatus: open\n"
        'phone_numbers: ["+33100000001", "+33644000001"]\n'
    )
    (campaigns / "quais.yaml").write_text(
        "slug: quais\ntitle: Quais\nquestion: Et les quais ?\nkeywords: [QUAIS]\n"
        'status: open\nphone_numbers: ["+33100000077"]\n'
    )
    client = await aiohttp_client(
        create_app(settings.with_overrides(twilio_from_number="", campaigns_dir=str(campaigns)))
    )
    runtime = client.app[RUNTIME]
    await leave_voice_message(client, fake_twilio, speech_wav, CALLER, 1)
    (parc,) = contributions(runtime)
    assert [(m["From"], m["To"]) for m in fake_twilio.messages] == [("+33644000001", CALLER)]
    actions.decide(runtime, ALICE, [parc.id], "publish")
    drain(runtime)
    assert fake_twilio.messages[-1]["From"] == "+33644000001"
    assert parc.reference in fake_twilio.messages[-1]["Body"]

    # A campaign with a voice-only number and nowhere to send SMS from: visible, not dropped.
    form = call_form("+33698000002", "CA" + "b" * 32)
    form["To"] = form["Called"] = "+33100000077"
    await post_signed(client, voice.VOICE_PATH, form)
    url = fake_twilio.add_recording("RE" + "b" * 32, speech_wav, "audio/wav")
    await post_signed(
        client,
        voice.RECORDING_PATH,
        {
            "AccountSid": fake_twilio.account_sid,
            "CallSid": "CA" + "b" * 32,
            "RecordingSid": "RE" + "b" * 32,
            "RecordingUrl": url,
            "RecordingStatus": "completed",
            "RecordingDuration": "3",
        },
    )
    drain(runtime)
    quais = next(c for c in contributions(runtime) if c.id != parc.id)
    actions.decide(runtime, ALICE, [quais.id], "publish")
    with runtime.sessions() as session:
        notice = session.scalar(
            select(OutboundMessage).where(
                OutboundMessage.contribution_id == quais.id,
                OutboundMessage.message_key == "outcome.published",
            )
        )
    assert notice is not None and notice.status == "failed"
    assert notice.error == actions.NOTICE_PROBLEMS["no_sender"]
    assert notice.recipient_encrypted is None


def test_a_calls_record_forgets_the_caller_once_filed_and_goes_after_two_days(
    runtime: Runtime,
):
    from datetime import timedelta

    from gateway import residents
    from gateway.clock import now_utc

    now = now_utc()
    with runtime.sessions.begin() as session:
        for sid, age in (("CA" + "c" * 32, timedelta(days=3)), ("CA" + "d" * 32, timedelta(0))):
            session.add(VoiceCall(call_sid=sid, called=PARC_NUMBER, started_at=now - age))
    from workers.sweeper import sweep

    assert sweep(runtime).calls_purged == 1  # the sweeper's full pass does it
    assert [c.call_sid for c in rows(runtime, VoiceCall)] == ["CA" + "d" * 32]
    with runtime.sessions.begin() as session:
        assert residents.purge_calls(session, now) == 0


def test_an_operator_erases_a_resident_from_the_command_line(runtime: Runtime, settings: Settings):
    from click.testing import CliRunner

    from gateway.cli import main as cli
    from tests.helpers import send_sms

    send_sms(runtime, "PARC Des fleurs", CALLER, PARC_NUMBER)
    env = cli_env(settings)
    # The address from standard input: never in the shell's history, never printed.
    result = CliRunner().invoke(
        cli,
        ["residents", "forget", "--channel", "voice", "--yes", "-"],
        input="06 12 34 56 78\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "1 contribution(s) detached" in result.output
    assert "06 12 34 56 78" not in result.output and CALLER not in result.output
    assert rows(runtime, Contributor) == []
    again = CliRunner().invoke(
        cli, ["residents", "forget", "--channel", "sms", "--yes", CALLER], env=env
    )
    assert again.exit_code == 0 and "nothing known" in again.output


@pytest.mark.parametrize(
    ("channel", "typed", "expected"),
    [
        ("sms", "06 12 34 56 78", "+33612345678"),
        ("voice", "01.47.00.00.01", "+33147000001"),
        ("sms", "+33 6 12 34 56 78", "+33612345678"),
        ("sms", "+44 20 7946 0958", "+442079460958"),
        ("email", " Marie@Example.org ", "Marie@Example.org"),
        ("telegram", "424242", "424242"),
    ],
)
def test_addresses_typed_by_an_admin_are_read_as_providers_send_them(
    channel: str, typed: str, expected: str
):
    from gateway.residents import typed_address

    assert typed_address(channel, typed) == expected


def test_one_lock_per_person_whatever_the_channel(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
):
    """A voice message being filed and an OUBLIER by SMS from the same number never run at
    once; another resident is not held up; the lock's name does not carry the look-up hash."""
    from gateway import locks

    monkeypatch.setattr(locks, "SENDER_LOCK_WAIT", 0.3)
    person = runtime.vault.lookup_hash("voice", CALLER)
    assert person == runtime.vault.lookup_hash("sms", CALLER)
    with locks.sender_lock(runtime, "voice", person):
        with pytest.raises(locks.SenderBusy):
            with locks.sender_lock(runtime, "sms", person):
                pass
        with locks.sender_lock(runtime, "sms", runtime.vault.lookup_hash("sms", "+33699")):
            pass
        assert in_redis(runtime.redis, [person]) == []
