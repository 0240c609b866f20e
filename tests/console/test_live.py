"""The live board: latest contributions on the page, then new and changed ones over
Server-Sent Events, from one shared poller, ended promptly when the server stops."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import select

from gateway import processing
from gateway.console.live import LIVE
from gateway.models import Contribution, InboundMessage
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.console import seed
from tests.console.conftest import Browser
from tests.helpers import sign, sms_form

EVENTS = "/moderation/live/events"


class Stream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []

    async def event(self, timeout: float = 3.0) -> dict[str, Any]:
        """The next event's data (comments such as heartbeats are noted and skipped)."""
        deadline = time.monotonic() + timeout
        data: list[str] = []
        fields: dict[str, str] = {}
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no event in time"
            line = (await asyncio.wait_for(self.response.content.readline(), remaining)).decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line == "":
                if data:
                    return {"fields": fields, **json.loads("\n".join(data))}
            else:
                name, _, value = line.partition(": ")
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value

    async def event_for(self, reference: str, timeout: float = 3.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = await self.event(max(0.01, deadline - time.monotonic()))
            if found["reference"] == reference:
                return found


@asynccontextmanager
async def stream(browser: Browser, **kwargs: Any) -> AsyncIterator[Stream]:
    async with browser.client.get(EVENTS, **kwargs) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-store"
        yield Stream(response)


async def file_sms(browser: Browser, rt: Runtime, settings: Settings, body: str) -> Contribution:
    """A resident's SMS through the real webhook and pipeline."""
    form = sms_form(body, sender="+33622222222", to="+33100000001")
    path = "/webhooks/twilio/sms"
    signature = sign(settings.twilio_auth_token, settings.public_url + path, form)
    async with browser.client.post(path, data=form, headers={"X-Twilio-Signature": signature}) as r:
        assert r.status == 200
    with rt.sessions() as session:
        message_id = session.scalar(select(InboundMessage.id).order_by(InboundMessage.id.desc()))
    assert message_id is not None
    await asyncio.get_running_loop().run_in_executor(
        None, processing.process_inbound, rt, message_id
    )
    with rt.sessions() as session:
        found = session.scalar(select(Contribution).order_by(Contribution.id.desc()))
        assert found is not None
        return found


async def test_a_new_sms_appears_on_the_board_within_seconds(rt, settings, moderator: Browser):
    async with stream(moderator) as events:
        started = time.monotonic()
        filed = await file_sms(moderator, rt, settings, "PARC Des arbres fruitiers partout")
        event = await events.event_for(filed.reference, timeout=3)
        assert time.monotonic() - started < 3
    assert event["id"] == filed.id
    assert event["channel"] == "sms" and event["campaign"] == "parc"
    assert event["text"] == "Des arbres fruitiers partout"
    assert event["status"] == "pending"
    assert event["transcript"] is None and event["transcription_status"] is None
    assert datetime.fromisoformat(event["received_at"]).tzinfo is not None
    assert event["labels"]["channel"] == "SMS" and event["labels"]["status"] == "En attente"
    assert events.comments[0] == "connected"


async def test_a_transcript_arriving_updates_the_board(rt, moderator: Browser):
    cid = seed.contribution(
        rt, "", channel="voice", transcription_status="pending", broadcast_consent=False
    )
    async with stream(moderator) as events:
        await asyncio.sleep(0.2)
        with rt.sessions.begin() as session:
            c = session.get(Contribution, cid)
            assert c is not None
            c.transcript = c.text = "Il manque un abri bus"
            c.transcription_status = "done"
        event = await events.event_for("PARC-0001")
    assert event["transcript"] == "Il manque un abri bus"
    assert event["transcription_status"] == "done"
    assert event["labels"]["broadcast"] == "Diffusion à l’antenne refusée."
    assert event["public_text"] is None


async def test_a_reconnecting_board_catches_up_from_its_last_event(rt, moderator: Browser):
    before = datetime.now(UTC) - timedelta(seconds=1)
    seed.contribution(rt, "Arrivée pendant la coupure")
    async with stream(moderator, headers={"Last-Event-ID": before.isoformat()}) as events:
        event = await events.event(timeout=1.5)
    assert event["reference"] == "PARC-0001"
    assert datetime.fromisoformat(event["fields"]["id"]) > before  # the next Last-Event-ID


async def test_one_poller_serves_every_board(rt, moderator: Browser, admin: Browser):
    async with stream(moderator) as first, stream(admin) as second:
        await asyncio.sleep(0.2)
        pollers = [t for t in asyncio.all_tasks() if t.get_name() == "console-live-poller"]
        assert len(pollers) == 1
        seed.contribution(rt, "Pour tout le monde")
        assert (await first.event())["reference"] == "PARC-0001"
        assert (await second.event())["reference"] == "PARC-0001"


async def test_heartbeats_keep_an_idle_stream_open(app, moderator: Browser):
    app[LIVE].heartbeat = 0.2
    async with stream(moderator) as events:
        lines: list[bytes] = []
        while lines.count(b": heartbeat\n") < 2:
            lines.append(await asyncio.wait_for(events.response.content.readline(), 1.5))
    assert not [line for line in lines if line.startswith(b"data:")]


async def test_open_streams_end_when_the_server_stops(server, moderator: Browser):
    async with stream(moderator) as events:
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await asyncio.wait_for(server.close(), timeout=5)
        assert time.monotonic() - started < 3
        rest = await asyncio.wait_for(events.response.content.read(), timeout=2)
        assert b"data:" not in rest


async def test_the_board_page_lists_the_latest_contributions(rt, moderator: Browser):
    seed.contribution(
        rt, "Premier, appelez le 06 12 34 56 78", public_text="Premier", status="published"
    )
    seed.contribution(
        rt, "", channel="voice", transcription_status="pending", broadcast_consent=True
    )
    dom = (await moderator.get("/moderation/live")).dom
    items = dom.select("#live-list article.live-item")
    assert [i.get("data-reference") for i in items] == ["PARC-0002", "PARC-0001"]
    assert items[0].get("data-channel") == "voice"
    assert items[0].one(".live-transcript").text == "Transcription en cours"
    assert items[0].one(".live-broadcast").text == "Diffusion à l’antenne acceptée."
    assert items[1].one(".live-text").text == "Premier"  # the public version, not the raw text
    assert "06 12 34 56 78" not in dom.text
    # What may be read on air: the public version, when there is one.
    public = items[1].one(".live-public")
    assert public.get("hidden") is None and public.one(".live-public__text").text == "Premier"
    assert items[0].one(".live-public").get("hidden") is not None
    assert dom.one("#live-status").get("data-state") == "closed"
    since = dom.one("#live-list").get("data-since") or ""
    assert datetime.fromisoformat(since).tzinfo is not None


SAID = "Je m'appelle Marie Dupont, rappelez-moi au 06 12 34 56 78 pour les bancs"
ON_AIR = "Je m'appelle [nom], rappelez-moi au [téléphone] pour les bancs"


async def test_the_board_masks_personal_data_until_there_is_a_public_version(
    rt, moderator: Browser
):
    sms = seed.contribution(rt, SAID)
    seed.contribution(
        rt,
        SAID,
        channel="voice",
        transcript=SAID,
        transcription_status="done",
        broadcast_consent=True,
    )
    seed.contribution(rt, "Des bancs à l'ombre, merci")
    dom = (await moderator.get("/moderation/live")).dom
    plain, call, written = dom.select("#live-list article.live-item")
    assert "06 12 34 56 78" not in dom.text and "Dupont" not in dom.text
    assert written.one(".live-text").text == ON_AIR
    assert written.one(".live-masked").get("hidden") is None
    assert written.one(".live-masked").text == "données personnelles masquées"
    assert call.one(".live-transcript").text == ON_AIR
    assert call.one(".live-masked").get("hidden") is None
    assert plain.one(".live-text").text == "Des bancs à l'ombre, merci"
    assert plain.one(".live-masked").get("hidden") is not None  # nothing was masked
    # Moderators still read what the resident said on the contribution page.
    page = (await moderator.get(f"/moderation/contributions/{sms}")).dom
    assert page.one("#contribution-text").text == SAID


async def test_the_board_s_events_carry_the_masked_text(rt, moderator: Browser):
    async with stream(moderator) as events:
        await asyncio.sleep(0.2)
        cid = seed.contribution(rt, SAID)
        event = await events.event_for("PARC-0001")
        assert event["text"] == ON_AIR and event["masked"] is True
        assert "06 12 34 56 78" not in json.dumps(event, ensure_ascii=False)
        with rt.sessions.begin() as session:
            c = session.get(Contribution, cid)
            assert c is not None
            c.public_text = "Des bancs, svp"
        event = await events.event_for("PARC-0001")
    # Once written, the public version is what is read on air, and nothing more is masked.
    assert event["public_text"] == "Des bancs, svp" and event["masked"] is False
