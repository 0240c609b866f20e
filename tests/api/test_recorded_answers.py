"""The city's answer recorded, through the API (gateway.moderation.answer_recordings): real
speech (espeak-ng) uploaded as a raw body or a form, served at an unguessable URL that Twilio
can fetch, replaced, removed, taken off when the answer changes or its author is erased; and
what is not a usable recording refused with a clear answer, nothing stored. On SQLite and
PostgreSQL, with the real app."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import time
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from gateway import recorded_answers
from gateway.runtime import Runtime
from tests.api.client import PARC_NUMBER, Api, events, sms, stored
from tests.api.conftest import make_token
from tests.helpers import send_sms
from tests.speech import silence, spoken, tone
from workers.sweeper import sweep

ANSWER = {"state": "accepted", "text": "Des bancs seront posés au printemps."}
SPOKEN = "Bonjour, ici la mairie. Des bancs seront posés au printemps dans le parc."
SPOKEN_EN = "Hello, this is the town hall. Benches will be put in the park in spring."


def files_of(runtime: Runtime) -> list[Path]:
    folder = recorded_answers.folder(runtime.settings.data_path)
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def answered(api: Api, runtime: Runtime, text: str = "Des bancs", sender: str = "") -> int:
    contribution = sms(runtime, text, sender or "+33612345678")
    assert (
        await api.post(f"/contributions/{contribution.id}/decision", {"action": "publish"})
    ).status == 200
    assert (await api.post(f"/contributions/{contribution.id}/answer", ANSWER)).status == 200
    return contribution.id


async def upload(
    api: Api, cid: int, audio: bytes, content_type: str = "audio/wav", query: str = ""
) -> Any:
    return await api.call(
        "POST",
        f"/contributions/{cid}/answer/audio{query}",
        raw=audio,
        headers={"Content-Type": content_type},
    )


async def fetch(client: TestClient[Any, Any], path: str) -> Any:
    """What Twilio gets when it fetches the URL for <Play>: no login, no token but the URL's."""
    response = await client.get(path)
    return response.status, response.headers.get("Content-Type", ""), await response.read()


def duration(mp3: bytes) -> float:
    with av.open(io.BytesIO(mp3)) as container:
        assert container.format.name == "mp3"
        return sum(float(frame.samples) / frame.sample_rate for frame in container.decode(audio=0))


async def test_a_recorded_answer_is_stored_served_and_logged(
    api: Api, client: TestClient[Any, Any], runtime: Runtime
):
    cid = await answered(api, runtime)
    reply = await upload(api, cid, spoken(SPOKEN))
    assert reply.status == 200, reply.text
    assert reply.body["changed"] == [cid]
    token = stored(runtime, cid).answer_audio
    assert token and recorded_answers.TOKEN.match(token)
    assert stored(runtime, cid).answer_audio_en is None
    (path,) = files_of(runtime)
    assert path.name == f"{token}.mp3"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # the city's voice is not the world's

    status, content_type, body = await fetch(client, f"/audio/answers/{token}.mp3")
    assert (status, content_type) == (200, "audio/mpeg")
    assert 3 < duration(body) < 8  # the whole sentence, made into MP3
    assert body[:3] != b"ID3"  # no tag

    # A wrong token, a made-up one, anything else: 404, alike.
    for wrong in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 32, "..%2Fgateway"):
        assert (await fetch(client, f"/audio/answers/{wrong}.mp3"))[0] == 404

    (event,) = [e for e in events(runtime) if e.action == "answer_recording"]
    assert event.after is not None and event.after["recorded"] is True


async def test_a_form_upload_in_english_and_the_only_one_rule(api: Api, runtime: Runtime):
    cid = await answered(api, runtime)
    form = FormData()
    form.add_field("language", "en")
    form.add_field(
        "audio",
        spoken(SPOKEN_EN, "en", extension="ogg"),
        filename="answer.ogg",
        content_type="audio/ogg",
    )
    response = await api.client.post(
        f"/api/v1/contributions/{cid}/answer/audio",
        data=form,
        headers={"Authorization": f"Bearer {api.token}"},
    )
    assert response.status == 200, await response.text()
    found = stored(runtime, cid)
    assert found.answer_audio is None and found.answer_audio_en
    assert recorded_answers.in_language(found.answer_audio, found.answer_audio_en, "fr") == (
        found.answer_audio_en
    )  # a French caller hears the only recording there is


async def test_replacing_removing_or_changing_the_answer_deletes_the_file(
    api: Api, client: TestClient[Any, Any], runtime: Runtime
):
    cid = await answered(api, runtime)
    assert (await upload(api, cid, spoken(SPOKEN))).status == 200
    first = stored(runtime, cid).answer_audio
    assert (await upload(api, cid, spoken(SPOKEN + " Merci."))).status == 200
    second = stored(runtime, cid).answer_audio
    assert second != first
    assert [p.name for p in files_of(runtime)] == [f"{second}.mp3"]
    assert (await fetch(client, f"/audio/answers/{first}.mp3"))[0] == 404

    # The same answer sent again (a retried call) keeps the recording.
    assert (await api.post(f"/contributions/{cid}/answer", ANSWER)).status == 200
    assert stored(runtime, cid).answer_audio == second

    # A changed answer: the recording no longer reads it.
    changed = {**ANSWER, "text": "Des bancs et des arbres seront posés au printemps."}
    assert (await api.post(f"/contributions/{cid}/answer", changed)).status == 200
    assert stored(runtime, cid).answer_audio is None
    assert files_of(runtime) == []
    assert (await fetch(client, f"/audio/answers/{second}.mp3"))[0] == 404

    assert (await upload(api, cid, spoken(SPOKEN))).status == 200
    third = stored(runtime, cid).answer_audio
    removed = await api.call("DELETE", f"/contributions/{cid}/answer/audio")
    assert removed.status == 200 and removed.body["changed"] == [cid]
    assert stored(runtime, cid).answer_audio is None and files_of(runtime) == []
    assert (await fetch(client, f"/audio/answers/{third}.mp3"))[0] == 404
    again = await api.call("DELETE", f"/contributions/{cid}/answer/audio")
    assert again.status == 200 and again.body["changed"] == []  # nothing left: no change


@pytest.mark.parametrize(
    ("audio", "status", "code"),
    [
        (lambda: b"", 422, "console.errors.recording_empty"),
        (lambda: b"RIFF this is not audio at all " * 50, 422, "console.errors.recording_corrupt"),
        (lambda: spoken(SPOKEN)[:44], 422, "console.errors.recording_no_audio"),  # a bare header
        (lambda: silence(3), 422, "console.errors.recording_silent"),
        (lambda: tone(recorded_answers.MAX_SECONDS + 5), 422, "console.errors.recording_too_long"),
        (
            lambda: b"\0" * (recorded_answers.MAX_BYTES + 1),
            413,
            "console.errors.recording_too_large",
        ),
        (lambda: b"\0" * (recorded_answers.MAX_BYTES + 200_000), 413, "payload_too_large"),
    ],
    ids=["empty", "not-audio", "header-only", "silent", "too-long", "too-large", "over-the-limit"],
)
async def test_what_is_not_a_usable_recording_is_refused_and_nothing_is_lost(
    api: Api, client: TestClient[Any, Any], runtime: Runtime, audio: Any, status: int, code: str
):
    cid = await answered(api, runtime)
    assert (await upload(api, cid, spoken(SPOKEN))).status == 200
    kept = stored(runtime, cid).answer_audio
    reply = await upload(api, cid, audio(), "application/octet-stream")
    assert reply.status == status, reply.text
    assert reply.error == code
    assert stored(runtime, cid).answer_audio == kept  # the good recording stays
    assert [p.name for p in files_of(runtime)] == [f"{kept}.mp3"]  # no leftover
    assert (await fetch(client, f"/audio/answers/{kept}.mp3"))[0] == 200


async def test_no_recording_without_an_answer_nor_from_a_read_token(
    api: Api, client: TestClient[Any, Any], runtime: Runtime
):
    pending = sms(runtime, "Des bancs", "+33612345678")
    reply = await upload(api, pending.id, spoken(SPOKEN))
    assert (reply.status, reply.error) == (409, "console.errors.recording_needs_answer")
    cid = await answered(api, runtime, "Des arbres", "+33622222222")
    wrong = await upload(api, cid, spoken(SPOKEN), query="?language=de")
    assert (wrong.status, wrong.error) == (400, "console.errors.bad_recording_language")
    reader = Api(client, make_token(runtime, "opendata", scope="read"))
    assert (await upload(reader, cid, spoken(SPOKEN))).status == 403
    answerer = Api(client, make_token(runtime, "elu", scope="answer"))
    assert (await upload(answerer, cid, spoken(SPOKEN))).status == 200
    assert (await upload(api, 4242, spoken(SPOKEN))).status == 404
    assert len(files_of(runtime)) == 1


async def test_a_group_shares_one_file_kept_until_its_last_member_is_erased(
    api: Api, admin_api: Api, client: TestClient[Any, Any], runtime: Runtime
):
    numbers = ("+33611111111", "+33622222222")
    tract = [sms(runtime, "Non au parking sur la place", n).id for n in numbers]
    group = stored(runtime, tract[0]).group_id
    assert group is not None and stored(runtime, tract[1]).group_id == group
    for cid in tract:
        await api.post(f"/contributions/{cid}/decision", {"action": "publish"})
    assert (await api.post(f"/groups/{group}/answer", ANSWER)).status == 200
    reply = await api.call(
        "POST",
        f"/groups/{group}/answer/audio",
        raw=spoken(SPOKEN),
        headers={"Content-Type": "audio/wav"},
    )
    assert reply.status == 200, reply.text
    tokens = {stored(runtime, cid).answer_audio for cid in tract}
    assert len(tokens) == 1 and None not in tokens
    (token,) = tokens
    assert len(files_of(runtime)) == 1

    # The first author asks to be forgotten: their contribution loses it, the other keeps it.
    forget = {"channel": "sms", "address": numbers[0]}
    assert (await admin_api.post("/residents/forget", forget)).status == 200
    assert stored(runtime, tract[0]).answer_audio is None
    assert stored(runtime, tract[1]).answer_audio == token
    assert (await fetch(client, f"/audio/answers/{token}.mp3"))[0] == 200
    # The last one: the file goes.
    forget = {"channel": "sms", "address": numbers[1]}
    assert (await admin_api.post("/residents/forget", forget)).status == 200
    assert stored(runtime, tract[1]).answer_audio is None
    assert files_of(runtime) == []
    assert (await fetch(client, f"/audio/answers/{token}.mp3"))[0] == 404

    unknown = await api.call("DELETE", "/groups/4242/answer/audio")
    assert unknown.status == 404


async def test_written_channels_keep_the_text(api: Api, runtime: Runtime):
    """SUIVI by SMS quotes the answer's text, recording or not; no audio is ever texted."""
    resident = "+33633333333"
    cid = await answered(api, runtime, "Des bancs près des jeux", resident)
    assert (await upload(api, cid, spoken(SPOKEN))).status == 200
    reference = stored(runtime, cid).reference
    replies = "\n".join(send_sms(runtime, f"SUIVI {reference}", resident, PARC_NUMBER))
    assert ANSWER["text"] in replies
    assert "/audio/answers/" not in replies


async def test_the_sweeper_deletes_only_old_files_nobody_refers_to(api: Api, runtime: Runtime):
    """A process killed between the upload and its commit leaves a file: the sweeper takes it
    once it is an hour old, and never a recording in use or an upload in flight."""
    cid = await answered(api, runtime)
    assert (await upload(api, cid, spoken(SPOKEN))).status == 200
    (kept,) = files_of(runtime)
    folder = recorded_answers.folder(runtime.settings.data_path)
    orphan = folder / ("o" * 32 + ".mp3")
    leftover = folder / (".p" + "q" * 31 + ".part")
    fresh = folder / ("f" * 32 + ".mp3")
    for path in (orphan, leftover, fresh):
        path.write_bytes(b"\xff\xfb" + b"\0" * 100)
    hours_ago = time.time() - 2 * 3600
    for path in (kept, orphan, leftover):
        os.utime(path, (hours_ago, hours_ago))
    await asyncio.to_thread(sweep, runtime)
    assert files_of(runtime) == sorted([kept, fresh])
