"""The city's recorded answer on the phone (gateway.recorded_answers): a caller following their
contribution (star, the reference's number, #) and a landline caller called back hear the
state said, then the recording played with <Play> at a URL the app serves (fetched as Twilio
would: no login); without a recording, the answer's text is said as before. The call back is
placed through the fake Twilio Calls API and its TwiML requested through the signed webhook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from channels.twilio.tests.test_callbacks import twilio_requests
from channels.twilio.tests.test_voice_calls import (
    LANDLINE,
    fixture,
    follow,
    said,
    seed_contribution,
    twiml,
    verbs,
)
from gateway import callbacks
from gateway.i18n import translate
from gateway.models import Callback, Contribution
from gateway.moderation import answer_recordings, answers
from gateway.moderation.accounts import Actor
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME, SETTINGS
from tests.speech import spoken
from tests.test_callbacks import file_voice, publish

ALICE = Actor(name="alice", role="moderator")
ANSWER_TEXT = "Des bancs seront posés au printemps."
SPOKEN_FR = "Bonjour, ici la mairie. Des bancs seront posés au printemps dans le parc."
SPOKEN_EN = "Hello, this is the town hall. Benches will be put in the park in spring."
PARIS = ZoneInfo("Europe/Paris")


def contribution_id(runtime: Runtime, reference: str) -> int:
    with runtime.sessions() as session:
        found = session.scalar(select(Contribution.id).where(Contribution.reference == reference))
        assert found is not None
        return found


async def played(client: Any, url: str) -> tuple[int, str, bytes]:
    """Fetch a <Play> URL through the app, as Twilio does (it must be under PUBLIC_URL)."""
    base = client.app[SETTINGS].public_url.rstrip("/")
    assert url.startswith(base + "/audio/answers/"), url
    response = await client.get(urlsplit(url).path)
    return response.status, response.headers.get("Content-Type", ""), await response.read()


async def test_a_caller_following_a_contribution_hears_the_recorded_answer(client: Any):
    runtime = client.app[RUNTIME]
    seed_contribution(
        runtime,
        LANDLINE,
        "PARCVOIX-0042",
        status="published",
        answer_state="accepted",
        answer_text=ANSWER_TEXT,
    )
    cid = contribution_id(runtime, "PARCVOIX-0042")
    await asyncio.to_thread(
        answer_recordings.attach, runtime, ALICE, [cid], spoken(SPOKEN_FR), "fr"
    )

    root = await follow(client, LANDLINE, "42")
    assert verbs(root) == ["Say", "Say", "Play", "Gather", "Say", "Hangup"]
    status, intro = said(root)[:2]
    assert status == translate(
        "voice.followup_status",
        campaign="Rénovation du quartier du Parc",
        status=translate("followup.answer_state", state=translate("answer.state.accepted")),
    )
    assert intro == translate("voice.followup_answer_recorded")
    assert ANSWER_TEXT not in " ".join(said(root))  # played instead of said
    url = root[2].text or ""
    code, content_type, body = await played(client, url)
    assert (code, content_type) == (200, "audio/mpeg") and len(body) > 1000

    # A wrong token is not found; nor is the recording once the answer changes.
    wrong = url[:-5] + ("A" if url[-5] != "A" else "B") + ".mp3"
    assert (await played(client, wrong))[0] == 404
    await asyncio.to_thread(answers.answer, runtime, ALICE, [cid], "done", "Les bancs sont posés.")
    assert (await played(client, url))[0] == 404
    root = await follow(client, LANDLINE, "42")
    assert "Play" not in verbs(root)  # the new answer's text, said
    assert said(root)[1] == translate("voice.followup_answer", text="Les bancs sont posés.")


@pytest.mark.parametrize(
    ("recorded", "heard"),
    [({"fr": SPOKEN_FR, "en": SPOKEN_EN}, "fr"), ({"en": SPOKEN_EN}, "en")],
    ids=["in-the-callers-language", "the-only-one"],
)
async def test_the_recording_in_the_callers_language_or_the_only_one(
    client: Any, recorded: dict[str, str], heard: str
):
    runtime = client.app[RUNTIME]
    seed_contribution(
        runtime,
        LANDLINE,
        "PARCVOIX-0042",
        status="published",
        answer_state="accepted",
        answer_text=ANSWER_TEXT,
        answer_text_en="Benches will be put in spring.",
    )
    cid = contribution_id(runtime, "PARCVOIX-0042")
    for language, text in recorded.items():
        audio = spoken(text, language)
        await asyncio.to_thread(answer_recordings.attach, runtime, ALICE, [cid], audio, language)
    with runtime.sessions() as session:
        found = session.get(Contribution, cid)
        assert found is not None
        expected = found.answer_audio if heard == "fr" else found.answer_audio_en
    root = await follow(client, LANDLINE, "42")  # a French campaign: the call is in French
    (play,) = [verb for verb in root if verb.tag == "Play"]
    assert (play.text or "").endswith(f"/audio/answers/{expected}.mp3")


async def test_a_landline_caller_called_back_hears_the_recorded_answer(
    client: Any, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
):
    runtime = client.app[RUNTIME]
    ten_am = datetime(2026, 12, 8, 10, tzinfo=PARIS).astimezone(UTC)
    monkeypatch.setattr(callbacks, "now_utc", lambda: ten_am)
    cid = file_voice(runtime, LANDLINE, consent=True)
    publish(runtime, cid)
    await asyncio.to_thread(answers.answer, runtime, ALICE, [cid], "accepted", ANSWER_TEXT)
    # Recorded after the answer was given: the call back plays what there is when it is picked up.
    await asyncio.to_thread(
        answer_recordings.attach, runtime, ALICE, [cid], spoken(SPOKEN_FR), "fr"
    )
    with runtime.sessions() as session:
        rows = list(session.scalars(select(Callback).order_by(Callback.id)))
    assert [row.message_key for row in rows] == ["outcome.published", "answer.notice.accepted"]
    decision, answered = rows

    async def picked_up(callback_id: int) -> Any:
        assert await asyncio.to_thread(callbacks.place, runtime, callback_id) == "calling"
        placed = fake_twilio.calls[-1]
        form = fixture("gather_digits", CallSid=placed["sid"], To=LANDLINE)
        return await twiml(await twilio_requests(client, placed["Url"], form))

    # The call back of the decision says the decision: no recording there.
    root = await picked_up(decision.id)
    assert "Play" not in verbs(root)

    root = await picked_up(answered.id)
    assert verbs(root)[-3:] == ["Play", "Say", "Hangup"]
    status = translate("followup.answer_state", state=translate("answer.state.accepted"))
    assert said(root)[-2] == translate("voice.callback_answer_recorded", status=status)
    assert ANSWER_TEXT not in " ".join(said(root))
    url = root[-3].text or ""
    code, content_type, _body = await played(client, url)
    assert (code, content_type) == (200, "audio/mpeg")
