"""Radio Agora: the podcast feed, the episodes' audio and the studio folder.

Real speech (espeak-ng, through a phone line's 8 kHz µ-law with sox) at very different
loudness, seeded as voice contributions with and without the caller's consent, published,
rejected or pending; the real app over HTTP (aiohttp's test client), on SQLite and PostgreSQL.
The feed is read back with feedparser as a podcast app reads it, the audio decoded back with
PyAV and measured with FFmpeg's EBU R128 meter, and every byte the public gets is searched
for the caller's number and the words the moderator took out.
"""

from __future__ import annotations

import asyncio
import csv
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import av
import av.filter
import av.logging
import feedparser
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from sqlalchemy import update

from gateway import audio_cache
from gateway.loudness import TARGET_LUFS, TRUE_PEAK_DBTP
from gateway.models import Contribution
from gateway.moderation import actions
from gateway.moderation.accounts import Actor
from gateway.publication import podcast, radio
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.console import seed
from tests.helpers import cli_env
from tests.privacy_scan import phone_forms

PUBLIC = "https://gateway.example.org"
CALLER = "+33612345678"
# What the caller said, the machine transcript, and the version the moderator published.
SAID = "Bonjour, ici Marie Dupont au 06 12 34 56 78, il faut des bancs et des arbres au parc."
PUBLIC_TEXT = "Bonjour, ici [nom], il faut des bancs et des arbres au parc."
SECRETS = ["Marie Dupont", "Dupont", *phone_forms(CALLER)]
ALICE = Actor(name="alice", role="moderator")
T0 = datetime(2026, 3, 12, 17, 4, tzinfo=UTC)


# -- audio helpers ------------------------------------------------------------------------------


def _run_filter(path: Path, name: str, args: str) -> list[tuple[int, str, str]]:
    """Decode ``path`` through one FFmpeg filter; returns what the filter logged."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.logging.Capture(local=True) as logs:
            with av.open(str(path)) as container:
                stream = container.streams.audio[0]
                graph = av.filter.Graph()
                source = graph.add_abuffer(template=stream)
                meter = graph.add(name, args)
                sink = graph.add("abuffersink")
                source.link_to(meter)
                meter.link_to(sink)
                graph.configure()
                for frame in container.decode(stream):
                    graph.push(frame)
                    _drain(graph)
                graph.push(None)
                _drain(graph)
                del graph, source, meter, sink  # the meter reports when freed
    finally:
        av.logging.set_level(level)
    return list(logs)


def _drain(graph: Any) -> None:
    while True:
        try:
            graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return


def loudness(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP), by FFmpeg's ebur128 meter."""
    text = "\n".join(
        message for _level, _name, message in _run_filter(path, "ebur128", "peak=true")
    )
    integrated = re.findall(r"I:\s+(-?[\d.]+) LUFS", text)
    peak = re.findall(r"Peak:\s+(-?[\d.]+) dBFS", text)
    assert integrated and peak, text
    return float(integrated[-1]), float(peak[-1])


def decoded_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
        rate = container.streams.audio[0].rate
    return samples / rate


# -- seeding --------------------------------------------------------------------------------------


def voice(
    rt: Runtime,
    audio: bytes,
    *,
    person: int,
    minutes: int,
    status: str = "published",
    consent: bool | None = True,
    neighbourhood: str | None = "Parc Nord",
    campaign: str = "parc",
) -> Contribution:
    cid = seed.contribution(
        rt,
        SAID,
        campaign=campaign,
        channel="voice",
        person=person,
        received_at=T0 + timedelta(minutes=minutes),
        audio=audio,
        transcript=SAID,
        public_text=PUBLIC_TEXT,
        status=status,
        broadcast_consent=consent,
        neighbourhood=neighbourhood,
        audio_duration=5.0,
        decision_reason="Hors sujet" if status == "rejected" else None,
    )
    return seed.get(rt, cid)


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], settings: Settings) -> TestClient[Any, Any]:
    app: web.Application = create_app(settings)
    return await aiohttp_client(app)


@pytest.fixture
def rt(client: TestClient[Any, Any]) -> Runtime:
    return client.app[RUNTIME]


@pytest.fixture
def caller(rt: Runtime) -> int:
    return seed.contributor(rt, CALLER, "voice")


async def get(client: TestClient[Any, Any], url: str, **kwargs: Any) -> tuple[int, Any, bytes]:
    path = url.removeprefix(PUBLIC)
    async with client.get(path, **kwargs) as response:
        return response.status, response.headers, await response.read()


def cached(rt: Runtime) -> list[Path]:
    folder = audio_cache.cache_dir(rt.settings.data_path)
    return sorted(folder.iterdir()) if folder.is_dir() else []


def episodes_cached(rt: Runtime) -> list[Path]:
    return [p for p in cached(rt) if p.suffix == ".mp3"]


# -- the feed ----------------------------------------------------------------------------------


async def test_the_feed_carries_only_broadcastable_voice_messages_normalised_to_podcast_loudness(
    client: TestClient[Any, Any], rt: Runtime, caller: int, voices: dict[str, bytes], tmp_path: Path
):
    quiet = voice(rt, voices["quiet"], person=caller, minutes=0)
    loud = voice(rt, voices["loud"], person=caller, minutes=5, neighbourhood=None)
    refused = voice(rt, voices["mid"], person=caller, minutes=1, consent=False)
    unasked = voice(rt, voices["mid"], person=caller, minutes=2, consent=None)
    rejected = voice(rt, voices["mid"], person=caller, minutes=3, status="rejected")
    pending = voice(rt, voices["mid"], person=caller, minutes=4, status="pending")
    texted = seed.contribution(
        rt, SAID, channel="sms", person=0, status="published", public_text=PUBLIC_TEXT
    )

    status, headers, body = await get(client, "/campaigns/parc/podcast.xml")
    assert status == 200
    assert headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "rss20"
    channel = feed.feed
    assert channel.title == "Radio Agora : Rénovation du quartier du Parc"
    assert channel.link == f"{PUBLIC}/campaigns/parc"
    assert channel.subtitle == "Que souhaitez-vous pour le futur parc ?"  # the description
    assert channel.language == "fr"
    assert channel.author == rt.settings.organisation  # itunes:author
    # Apple's current values are true/false (feedparser only knows the older yes/clean).
    assert _itunes(body, "channel/itunes:explicit") == ["false"]
    assert _itunes(body, "channel/item/itunes:explicit") == ["false", "false"]
    assert [t.term for t in channel.tags] == ["Government"]  # itunes:category
    category = ET.fromstring(body).find("channel/itunes:category", {"itunes": podcast.ITUNES})  # noqa: S314
    assert category is not None and category.attrib == {"text": "Government"}
    assert not (category.text or "").strip()

    # Newest first; nothing refused, unasked, rejected, pending or written.
    assert [e.title for e in feed.entries] == [
        loud.reference,
        f"{quiet.reference}, quartier Parc Nord",
    ]
    for entry, c, level in zip(feed.entries, (loud, quiet), ("loud", "quiet"), strict=True):
        assert entry.id == f"agora:parc:{c.reference}"
        assert entry.guidislink is False  # isPermaLink="false"
        assert parsedate_to_datetime(entry.published) == c.received_at
        assert entry.summary.startswith(PUBLIC_TEXT)
        assert "recueilli par téléphone (répondeur) le 12 mars à 18 h" in entry.summary
        (enclosure,) = entry.enclosures
        assert enclosure.href == f"{PUBLIC}/campaigns/parc/audio/{c.reference}.mp3"
        assert enclosure.type == "audio/mpeg"
        status, headers, audio = await get(client, enclosure.href)
        assert status == 200
        assert headers["Content-Type"] == "audio/mpeg"
        assert int(enclosure.length) == len(audio) == int(headers["Content-Length"])
        mp3 = tmp_path / f"{level}.mp3"
        mp3.write_bytes(audio)
        with av.open(str(mp3)) as container:
            assert container.format.name == "mp3"
            assert container.streams.audio[0].codec_context.codec.id == av.Codec("mp3").id
        seconds = decoded_seconds(mp3)
        hours, minutes, secs = (int(part) for part in entry.itunes_duration.split(":"))
        assert hours * 3600 + minutes * 60 + secs == pytest.approx(seconds, abs=1)
        wav_seconds = decoded_seconds(_write(tmp_path / f"{level}.wav", voices[level]))
        assert seconds == pytest.approx(wav_seconds, abs=0.1)
        integrated, peak = loudness(mp3)
        assert integrated == pytest.approx(TARGET_LUFS, abs=1.5), level
        assert peak <= TRUE_PEAK_DBTP + 0.5, level  # MP3 overshoot: half a dB at most

    # The same feed again: the same GUIDs and lengths, nothing encoded twice.
    before = {p: p.stat().st_mtime_ns for p in episodes_cached(rt)}
    assert len(before) == 2
    _status, _headers, again = await get(client, "/campaigns/parc/podcast.xml")
    assert [(e.id, e.enclosures[0].length) for e in feedparser.parse(again).entries] == [
        (e.id, e.enclosures[0].length) for e in feed.entries
    ]
    assert {p: p.stat().st_mtime_ns for p in episodes_cached(rt)} == before

    # The others answer exactly as a reference that does not exist.
    missing = await get(client, "/campaigns/parc/audio/PARC-9999.mp3")
    assert missing[0] == 404
    texted_reference = seed.get(rt, texted).reference
    for c in (refused.reference, unasked.reference, rejected.reference, pending.reference):
        status, _headers, body = await get(client, f"/campaigns/parc/audio/{c}.mp3")
        assert (status, body) == (missing[0], missing[2])
    status, _h, body = await get(client, f"/campaigns/parc/audio/{texted_reference}.mp3")
    assert (status, body) == (missing[0], missing[2])
    # Under another campaign's name, or a draft's: the same.
    for path in (
        f"/campaigns/budget/audio/{quiet.reference}.mp3",
        f"/campaigns/velo/audio/{quiet.reference}.mp3",
        f"/campaigns/nope/audio/{quiet.reference}.mp3",
    ):
        status, _h, body = await get(client, path)
        assert (status, body) == (missing[0], missing[2])
    assert len(episodes_cached(rt)) == 2  # nothing encoded for them


def _itunes(feed: bytes, path: str) -> list[str]:
    root = ET.fromstring(feed)  # noqa: S314 - the gateway's own feed
    return [e.text or "" for e in root.findall(path, {"itunes": podcast.ITUNES})]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_nothing_personal_in_the_feed_nor_in_the_audio_file(
    client: TestClient[Any, Any], rt: Runtime, caller: int, voices: dict[str, bytes], tmp_path: Path
):
    c = voice(rt, voices["mid"], person=caller, minutes=0)
    _status, _h, feed = await get(client, "/campaigns/parc/podcast.xml")
    status, _h, audio = await get(client, f"/campaigns/parc/audio/{c.reference}.mp3")
    assert status == 200 and PUBLIC_TEXT.encode() in feed  # the scan looks at real outputs
    for data in (feed, audio, *(p.read_bytes() for p in episodes_cached(rt))):
        for secret in [*SECRETS, SAID, rt.vault.lookup_hash("voice", CALLER)]:
            assert secret.encode() not in data
            assert secret.encode("utf-16-le") not in data
    # No tag at all: no ID3v2 at the start, no ID3v1 at the end, no metadata once decoded.
    assert not audio.startswith(b"ID3")
    assert audio[-128:-125] != b"TAG"
    with av.open(str(_write(tmp_path / "episode.mp3", audio))) as container:
        assert dict(container.metadata) == {}
        assert dict(container.streams.audio[0].metadata) == {}


async def test_a_campaign_with_nothing_to_broadcast_has_an_empty_valid_feed_and_a_draft_none(
    client: TestClient[Any, Any],
):
    status, _headers, body = await get(client, "/campaigns/budget/podcast.xml")
    assert status == 200
    feed = feedparser.parse(body)
    assert not feed.bozo and feed.version == "rss20"
    assert feed.entries == []
    assert feed.feed.title == "Radio Agora : Budget participatif"
    for slug in ("velo", "nope"):  # a draft is not announced; an unknown one does not exist
        status, _headers, _body = await get(client, f"/campaigns/{slug}/podcast.xml")
        assert status == 404


# -- serving ----------------------------------------------------------------------------------


async def test_podcast_apps_can_seek_range_requests_get_206(
    client: TestClient[Any, Any], rt: Runtime, caller: int, voices: dict[str, bytes]
):
    c = voice(rt, voices["mid"], person=caller, minutes=0)
    url = f"/campaigns/parc/audio/{c.reference}.mp3"
    _status, headers, whole = await get(client, url)
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, part = await get(client, url, headers={"Range": "bytes=100-1099"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    assert part == whole[100:1100]
    status, _headers, tail = await get(client, url, headers={"Range": "bytes=-300"})
    assert status == 206 and tail == whole[-300:]


async def test_simultaneous_first_requests_encode_once_and_all_get_the_whole_file(
    client: TestClient[Any, Any],
    rt: Runtime,
    caller: int,
    voices: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
):
    c = voice(rt, voices["loud"], person=caller, minutes=0)
    calls = []
    encode = radio.normalise

    def counting(source: Path, out: Any) -> float:
        calls.append(source)
        return encode(source, out)

    monkeypatch.setattr(radio, "normalise", counting)
    url = f"/campaigns/parc/audio/{c.reference}.mp3"
    answers = await asyncio.gather(*(get(client, url) for _ in range(4)))
    assert len(calls) == 1
    assert {status for status, _h, _b in answers} == {200}
    bodies = {body for _s, _h, body in answers}
    assert len(bodies) == 1
    (path,) = episodes_cached(rt)
    assert bodies == {path.read_bytes()}
    # Owner-only, and no temporary file left behind.
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in cached(rt) if p.suffix != ".mp3"] == [".lock"]


async def test_a_withdrawn_contribution_is_no_longer_heard_and_its_copy_is_deleted(
    client: TestClient[Any, Any], rt: Runtime, caller: int, voices: dict[str, bytes]
):
    kept, rejected, reopened, withdrawn = (
        voice(rt, voices["mid"], person=caller, minutes=n) for n in range(4)
    )
    for c in (kept, rejected, reopened, withdrawn):
        status, _h, _b = await get(client, f"/campaigns/parc/audio/{c.reference}.mp3")
        assert status == 200
    assert len(episodes_cached(rt)) == 4

    # A moderator's decision: the copy goes as soon as it is committed.
    actions.decide(rt, ALICE, [rejected.id], "reject", reason="Hors sujet")
    actions.decide(rt, ALICE, [reopened.id], "reopen")
    assert len(episodes_cached(rt)) == 2
    # The consent withdrawn by a bulk update (as the voice webhook stores it): the audio is
    # refused at once, and the copy goes at the next look at the feed.
    with rt.sessions.begin() as session:
        session.execute(
            update(Contribution)
            .where(Contribution.id == withdrawn.id)
            .values(broadcast_consent=False)
        )
    status, _h, _b = await get(client, f"/campaigns/parc/audio/{withdrawn.reference}.mp3")
    assert status == 404
    _status, _h, feed = await get(client, "/campaigns/parc/podcast.xml")
    assert [e.id for e in feedparser.parse(feed).entries] == [f"agora:parc:{kept.reference}"]
    (left,) = episodes_cached(rt)
    assert left == audio_cache.cache_path(rt.settings.data_path, kept.id, str(kept.audio_path))
    for c in (rejected, reopened, withdrawn):
        status, _h, _b = await get(client, f"/campaigns/parc/audio/{c.reference}.mp3")
        assert status == 404


def test_a_recording_that_cannot_be_decoded_or_is_silent_is_left_out_and_named(
    runtime: Runtime, voices: dict[str, bytes], tmp_path: Path
):
    person = seed.contributor(runtime, CALLER, "voice")
    good = voice(runtime, voices["mid"], person=person, minutes=0)
    broken = voice(runtime, b"RIFF\x00\x00\x00\x00WAVEnot audio", person=person, minutes=1)
    silent = voice(runtime, seed.WAV, person=person, minutes=2)  # nothing to bring up
    skipped: list[str] = []
    entries = radio.pack(
        runtime,
        _campaign(runtime, "parc"),
        tmp_path / "studio",
        on_error=lambda record, _exc: skipped.append(record.reference),
    )
    assert skipped == [broken.reference, silent.reference]
    assert [e.file for e in entries] == [f"001-{good.reference}.mp3"]


def _campaign(runtime: Runtime, slug: str) -> Any:
    from gateway.publication.records import public_campaign

    with runtime.sessions() as session:
        found = public_campaign(session, slug)
        assert found is not None
        session.expunge(found)
        return found


# -- the studio folder ----------------------------------------------------------------------------


def test_radio_pack_writes_the_clips_in_order_and_the_cue_sheet(
    runtime: Runtime, settings: Settings, voices: dict[str, bytes], tmp_path: Path
):
    from gateway.cli import main as cli

    person = seed.contributor(runtime, CALLER, "voice")
    # Received out of the order they were filed in.
    second = voice(runtime, voices["loud"], person=person, minutes=10, neighbourhood="Centre")
    first = voice(runtime, voices["quiet"], person=person, minutes=0)
    voice(runtime, voices["mid"], person=person, minutes=5, consent=False)
    voice(runtime, voices["mid"], person=person, minutes=6, status="rejected")
    formula = voice(runtime, voices["mid"], person=person, minutes=20, neighbourhood=None)
    with runtime.sessions.begin() as session:
        session.execute(
            update(Contribution)
            .where(Contribution.id == formula.id)
            .values(public_text='=HYPERLINK("http://evil.example","clic")')
        )
    studio = tmp_path / "studio"

    result = CliRunner().invoke(
        cli, ["radio", "pack", "--campaign", "parc", "--output", str(studio)], env=cli_env(settings)
    )

    assert result.exit_code == 0, result.output
    assert "3 clip(s)" in result.output
    names = [
        f"001-{first.reference}.mp3",
        f"002-{second.reference}.mp3",
        f"003-{formula.reference}.mp3",
    ]
    assert sorted(p.name for p in studio.iterdir()) == sorted([*names, "cues.csv"])
    raw = (studio / "cues.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte-order mark
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines(), delimiter=";"))
    assert rows[0] == ["file", "duration", "reference", "neighbourhood", "transcript"]
    assert [r[0] for r in rows[1:]] == names
    assert [r[2] for r in rows[1:]] == [first.reference, second.reference, formula.reference]
    assert [r[3] for r in rows[1:]] == ["Parc Nord", "Centre", ""]
    assert [r[4] for r in rows[1:]] == [
        PUBLIC_TEXT,
        PUBLIC_TEXT,
        '\'=HYPERLINK("http://evil.example","clic")',  # shown as text, never run
    ]
    for row in rows[1:]:
        clip = studio / row[0]
        assert float(row[1]) == pytest.approx(decoded_seconds(clip), abs=0.1)
        assert loudness(clip)[0] == pytest.approx(TARGET_LUFS, abs=1.5)
    for path in studio.iterdir():
        data = path.read_bytes()
        assert not any(s.encode() in data for s in [*SECRETS, SAID]), path.name

    # Written again into the same folder: refused (a clip withdrawn since must not linger).
    again = CliRunner().invoke(
        cli, ["radio", "pack", "--campaign", "parc", "--output", str(studio)], env=cli_env(settings)
    )
    assert again.exit_code != 0
    assert "not an empty folder" in again.output
    unknown = CliRunner().invoke(
        cli,
        ["radio", "pack", "--campaign", "nope", "--output", str(tmp_path / "x")],
        env=cli_env(settings),
    )
    assert unknown.exit_code != 0 and "no campaign 'nope'" in unknown.output


def test_forgetting_the_caller_deletes_the_radio_copy_before_the_erasure_commits(
    runtime: Runtime, voices: dict[str, bytes]
):
    from gateway import residents

    person = seed.contributor(runtime, CALLER, "voice")
    c = voice(runtime, voices["mid"], person=person, minutes=0)
    clip = radio.ensure_clip(runtime, c.id)
    assert clip is not None and clip.path.exists()
    with runtime.sessions.begin() as session:
        erased = residents.forget(
            session, runtime.settings.data_path, runtime.vault.lookup_hash("voice", CALLER)
        )
        # Gone with the recording, inside the erasure itself (not only once it commits).
        assert not clip.path.exists()
        assert erased.files == 2  # the recording and its copy
    assert radio.ensure_clip(runtime, c.id) is None


async def test_the_artwork_when_one_is_set_and_a_bad_address_refused_at_start(
    aiohttp_client: Callable[..., Any], settings: Settings
):
    from gateway.settings import SettingsError

    image = "https://participez.example.fr/radio-agora.jpg"
    client = await aiohttp_client(create_app(settings.with_overrides(podcast_image_url=image)))
    _status, _headers, body = await get(client, "/campaigns/parc/podcast.xml")
    root = ET.fromstring(body)  # noqa: S314 - the gateway's own feed
    itunes_image = root.find("channel/itunes:image", {"itunes": podcast.ITUNES})
    assert itunes_image is not None and itunes_image.get("href") == image
    assert root.findtext("channel/image/url") == image
    assert feedparser.parse(body).feed.image.href == image
    for bad in ("radio-agora.jpg", "ftp://example.org/a.jpg", "https:// example.org/a.jpg"):
        with pytest.raises(SettingsError, match="PODCAST_IMAGE_URL"):
            settings.with_overrides(podcast_image_url=bad)
