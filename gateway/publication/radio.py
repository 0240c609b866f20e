"""Radio Agora: the voice messages whose callers allowed a broadcast, ready to be heard.

Each episode is the caller's recording, loudness-normalised to the podcast target (EBU R128:
-16 LUFS integrated, true peak at most -1.5 dBTP) with FFmpeg's filters through PyAV: measured,
brought to the target and peak-limited, measured again, then ``loudnorm``'s linear second pass
with those measurements (see ``normalise``), and encoded to MP3 without any tag (no ID3:
nothing about the caller travels with the file).

The encoded file is cached under ``DATA_DIR/radio`` (owner-only), made once: the first request
(the feed, the audio URL or ``gateway radio pack``) encodes it under a lock shared by every
process on the data folder, into a temporary file renamed into place, so that two requests
never encode twice and nobody is ever served half a file. The cached file is the resident's
voice, so it lives only as long as the contribution is broadcastable:

- a moderation decision, a consent withdrawn or an erasure made through the ORM deletes it as
  soon as the change is committed (``watch``: a session hook, for the processes that serve the
  audio);
- the erasure (``gateway.residents.forget``) deletes it with the recordings, before it commits;
- whatever else changed a contribution (a bulk update, another process) is caught by ``prune``,
  which every feed request and every pack runs before reading the cache;
- and the audio URL checks ``broadcastable`` on every request, whatever the cache holds.

Contributions are read through ``gateway.publication.records``, like every public output.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import gc
import itertools
import json
import logging
import os
import shutil
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from gateway import files
from gateway.audio_cache import cache_dir, cache_path, cached_files
from gateway.models import Campaign, Contribution
from gateway.publication.records import (
    PublicFilter,
    PublicRecord,
    broadcastable,
    public_campaign,
    public_records,
)
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

# The podcast target (EBU R128 s1 / AES TD1004 for streaming and podcasts).
TARGET_LUFS = -16.0
TRUE_PEAK_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0
SILENT_LUFS = -60.0
# The limiter's ceiling (sample peak, linear: -5.2 dBFS), kept below the true-peak ceiling so
# that inter-sample peaks and the MP3 encoder's overshoot stay under it.
LIMITER_CEILING = 0.55
# A phone line carries 8 kHz mono: 64 kbit/s mono MP3 at 44.1 kHz loses nothing of it, and
# every podcast app and studio player reads it.
SAMPLE_RATE = 44100
BIT_RATE = 64000
CONTENT_TYPE = "audio/mpeg"
CUE_COLUMNS = ("file", "duration", "reference", "neighbourhood", "transcript")


class RadioError(Exception):
    """A recording that cannot be turned into an episode (missing, unreadable, silent)."""


@dataclass(frozen=True)
class Clip:
    """An encoded episode in the cache."""

    path: Path
    size: int  # bytes: the enclosure's length, the Content-Length served
    duration: float  # seconds


@dataclass(frozen=True)
class Episode:
    record: PublicRecord
    clip: Clip


# -- cache (its file names: gateway.audio_cache) ----------------------------------------------


@contextlib.contextmanager
def _cache_lock(data_path: Path) -> Iterator[None]:
    """One lock for the cache, between threads and processes sharing the data folder (flock
    locks belong to an open file, so two threads of one process exclude each other too)."""
    folder = files.private_dir(cache_dir(data_path))
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, files.PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def discard(data_path: Path, contribution_id: int) -> int:
    """Delete a contribution's cached episodes (it is no longer broadcastable); returns how
    many."""
    if not cache_dir(data_path).is_dir():
        return 0
    # Always under the lock, even with nothing cached: an encoding under way (its file not
    # renamed into place yet) finishes first, then is deleted.
    with _cache_lock(data_path):
        deleted = 0
        for path in cached_files(data_path, contribution_id):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                deleted += 1
    if deleted:
        log.info("radio: cached episode of contribution %s deleted", contribution_id)
    return deleted


def prune(runtime: Runtime) -> int:
    """Delete every cached episode whose contribution is no longer broadcastable (or no longer
    exists, or has another recording); returns how many."""
    data_path = runtime.settings.data_path
    folder = cache_dir(data_path)
    if not folder.is_dir():
        return 0
    cached: dict[int, list[Path]] = {}
    for path in folder.glob("*.mp3"):
        head = path.name.split("-", 1)[0]
        if head.isdigit():
            cached.setdefault(int(head), []).append(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # not ours: nothing but episodes belongs here
    if not cached:
        return 0
    with runtime.sessions() as session:
        rows = session.scalars(select(Contribution).where(Contribution.id.in_(cached)))
        keep = {
            cache_path(data_path, c.id, c.audio_path)
            for c in rows
            if broadcastable(c) and c.audio_path
        }
    stale = [p for paths in cached.values() for p in paths if p not in keep]
    if not stale:
        return 0
    with _cache_lock(data_path):
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    log.info("radio: %d cached episode(s) no longer broadcastable deleted", len(stale))
    return len(stale)


def _clip(path: Path) -> Clip:
    return Clip(path=path, size=path.stat().st_size, duration=mp3_duration(path))


def ensure_clip(runtime: Runtime, contribution_id: int) -> Clip | None:
    """The contribution's episode, encoded and cached on first use; None when it is not
    broadcastable (checked again under the lock: a decision committed meanwhile wins)."""
    data_path = runtime.settings.data_path
    with runtime.sessions() as session:
        found = session.get(Contribution, contribution_id)
        if found is None or not broadcastable(found) or not found.audio_path:
            return None
        audio_path = found.audio_path
    target = cache_path(data_path, contribution_id, audio_path)
    if target.exists():
        with contextlib.suppress(FileNotFoundError):  # deleted this instant: encode again
            return _clip(target)
    with _cache_lock(data_path):
        if target.exists():
            return _clip(target)
        with runtime.sessions() as session:
            fresh = session.get(Contribution, contribution_id)
            if fresh is None or not broadcastable(fresh) or fresh.audio_path != audio_path:
                return None
        source = (data_path / audio_path).resolve()
        if data_path.resolve() not in source.parents:
            raise RadioError("the recording's path leaves the data folder")
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            with files.open_private(partial) as out:
                normalise(source, out)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        log.info("radio: episode of contribution %s encoded", contribution_id)
        return _clip(target)


def broadcast_records(runtime: Runtime, session: Session, campaign: Campaign) -> list[PublicRecord]:
    """The campaign's public records that may be heard, oldest first (``records.audio`` is
    ``broadcastable``)."""
    return [
        r
        for r in public_records(
            session, campaign, runtime.vault, PublicFilter(channel="voice"), include_rejected=False
        )
        if r.audio
    ]


def episodes(
    runtime: Runtime,
    campaign: Campaign,
    *,
    on_error: Callable[[PublicRecord, Exception], None] | None = None,
) -> list[Episode]:
    """The campaign's broadcastable voice contributions with their encoded clips, oldest
    first. A recording that cannot be encoded is left out (``on_error`` hears of it).

    Opens its own sessions, one at a time: on SQLite every transaction takes the write lock
    (gateway.db), so a session held open around the encoding would lock out the next one."""
    prune(runtime)
    with runtime.sessions() as session:
        records = broadcast_records(runtime, session, campaign)
    found: list[Episode] = []
    for record in records:
        try:
            clip = ensure_clip(runtime, record.contribution_id)
        except (RadioError, OSError) as exc:
            log.warning("radio: %s left out: %s", record.reference, exc)
            if on_error is not None:
                on_error(record, exc)
            continue
        if clip is not None:
            found.append(Episode(record, clip))
    return found


def episode_for(runtime: Runtime, slug: str, reference: str) -> Clip | None:
    """The clip behind ``/campaigns/{slug}/audio/{reference}.mp3``, or None (unknown or draft
    campaign, unknown reference, not broadcastable, unreadable: one answer for all)."""
    with runtime.sessions() as session:
        campaign = public_campaign(session, slug)
        if campaign is None:
            return None
        record = next(
            (r for r in broadcast_records(runtime, session, campaign) if r.reference == reference),
            None,
        )
    if record is None:
        return None
    try:
        return ensure_clip(runtime, record.contribution_id)
    except (RadioError, OSError) as exc:
        log.warning("radio: %s cannot be served: %s", reference, exc)
        return None


# -- keeping the cache in step with the contributions -----------------------------------------

_WATCHED: weakref.WeakKeyDictionary[Engine, Path] = weakref.WeakKeyDictionary()
_PENDING = "radio.discard"


def watch(runtime: Runtime) -> None:
    """Delete a contribution's cached episode as soon as a change that makes it no longer
    broadcastable is committed through this runtime's sessions (the web app calls it)."""
    _WATCHED[runtime.engine] = runtime.settings.data_path


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, _context: Any) -> None:
    if not _WATCHED:
        return
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, Contribution) and obj.id is not None:
            if obj in session.deleted or not broadcastable(obj):
                session.info.setdefault(_PENDING, set()).add(obj.id)


@event.listens_for(Session, "after_commit")
def _discard_committed(session: Session) -> None:
    ids: set[int] = session.info.pop(_PENDING, set())
    if not ids:
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    data_path = _WATCHED.get(engine)
    if data_path is None:
        return
    for contribution_id in sorted(ids):
        try:
            discard(data_path, contribution_id)
        except OSError as exc:  # committed already; prune retries at the next feed
            log.error("radio: a cached episode could not be deleted (%s)", type(exc).__name__)


@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session) -> None:
    session.info.pop(_PENDING, None)


# -- audio --------------------------------------------------------------------------------------

# Turning PyAV's log level up and down is process-wide: one measurement at a time.
_MEASURING = threading.Lock()


def _run_graph(
    container: Any,
    stream: Any,
    filters: Sequence[tuple[str, str]],
    consume: Callable[[Any], None],
) -> None:
    """Decode ``stream`` through ``filters``, handing each filtered frame to ``consume`` as it
    comes (a long message is never held whole in memory: loudnorm works at 192 kHz)."""
    import av
    import av.filter

    graph = av.filter.Graph()
    chain = [graph.add_abuffer(template=stream)]
    chain += [graph.add(name, args) for name, args in filters]
    chain.append(graph.add("abuffersink"))
    for upstream, downstream in itertools.pairwise(chain):
        upstream.link_to(downstream)
    graph.configure()

    def drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            consume(frame)

    for frame in container.decode(stream):
        graph.push(frame)
        drain()
    graph.push(None)
    drain()


def _loudnorm(measured: dict[str, str] | None) -> str:
    args = f"I={TARGET_LUFS}:TP={TRUE_PEAK_DBTP}:LRA={LOUDNESS_RANGE_LU}:print_format=json"
    if measured:
        args += (
            f":measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
            f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
            f":offset={measured['target_offset']}:linear=true"
        )
    return args


def _filter(
    source: Path,
    filters: Sequence[tuple[str, str]],
    consume: Callable[[Any], None] = lambda _frame: None,
) -> str:
    """Run ``source`` through ``filters`` into ``consume``; returns what ``loudnorm``
    reported (it prints its measurements to FFmpeg's log when its graph is freed, in this
    thread: PyAV's log capture for this thread collects them)."""
    import av
    import av.logging

    with _MEASURING:
        level, skip = av.logging.get_level(), av.logging.get_skip_repeated()
        av.logging.set_level(av.logging.INFO)
        av.logging.set_skip_repeated(False)  # the same report twice in a row is still needed
        try:
            with av.logging.Capture(local=True) as logs:
                try:
                    with av.open(str(source)) as container:
                        if not container.streams.audio:
                            raise RadioError("the recording has no audio")
                        _run_graph(container, container.streams.audio[0], filters, consume)
                except av.FFmpegError as exc:
                    raise RadioError(f"unreadable recording ({type(exc).__name__})") from exc
                if not any(name == "loudnorm" for _level, name, _text in logs):
                    gc.collect()  # a graph kept alive by a reference cycle reports when freed
        finally:
            av.logging.set_level(level)
            av.logging.set_skip_repeated(skip)
    return next((text for _level, name, text in logs if name == "loudnorm"), "")


def measure(source: Path, filters: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """``loudnorm``'s measuring pass over ``source`` through ``filters``: integrated loudness,
    true peak, loudness range, and the values its second pass takes."""
    report = _filter(source, [*filters, ("loudnorm", _loudnorm(None))])
    try:
        measured: dict[str, str] = json.loads(report)
    except ValueError as exc:
        raise RadioError("the loudness could not be measured") from exc
    try:
        loudness = float(measured["input_i"])
    except (KeyError, ValueError) as exc:
        raise RadioError("the loudness could not be measured") from exc
    # Below -60 LUFS there is no voice to bring up, only line noise (-inf: digital silence).
    if not loudness > SILENT_LUFS:
        raise RadioError("the recording is silent")
    return measured


def _levelling(measured: dict[str, str]) -> list[tuple[str, str]]:
    """The gain to the target, then a fast limiter. Speech down a phone line peaks some 18 dB
    above its loudness: at -16 LUFS its peaks would pass the -1.5 dBTP ceiling, and loudnorm
    would fall back to its dynamic mode, which lands short clips a full LU or more below the
    target. Limited first, the clip keeps a crest factor loudnorm can meet linearly."""
    gain = TARGET_LUFS - float(measured["input_i"])
    return [
        ("volume", f"{gain:.2f}dB"),
        ("alimiter", f"limit={LIMITER_CEILING}:attack=1:release=50:level=disabled"),
    ]


def normalise(source: Path, out: BinaryIO) -> float:
    """Write ``source`` to ``out`` as a loudness-normalised MP3 with no tags; returns its
    duration in seconds. Three passes over the recording (a voice message is short): measure,
    measure once levelled, then apply loudnorm with those measurements."""
    import av

    levelling = _levelling(measure(source))
    measured = measure(source, levelling)
    samples = 0
    # No ID3v2 tag (id3v2_version 0; ID3v1 is off by default): no title, no encoder, nothing
    # that could carry who called. The Xing header stays: it gives players the exact length.
    with av.open(out, "w", format="mp3", options={"id3v2_version": "0"}) as container:
        stream = container.add_stream("libmp3lame", rate=SAMPLE_RATE)
        if not isinstance(stream, av.AudioStream):  # for the type checker: it is audio
            raise RadioError("no MP3 encoder")
        stream.layout = "mono"
        stream.bit_rate = BIT_RATE

        def encode(frame: Any) -> None:
            nonlocal samples
            frame.pts = samples
            samples += frame.samples
            container.mux(stream.encode(frame))

        _filter(
            source,
            [
                *levelling,
                ("loudnorm", _loudnorm(measured)),
                # loudnorm works at 192 kHz; back to the encoder's rate and layout.
                ("aresample", str(SAMPLE_RATE)),
                ("aformat", f"sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=mono"),
            ],
            encode,
        )
        container.mux(stream.encode(None))
    return samples / SAMPLE_RATE


def mp3_duration(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        if container.duration is not None:
            return float(container.duration) / 1_000_000  # AV_TIME_BASE
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
    return 0.0


# -- the studio folder --------------------------------------------------------------------------


@dataclass(frozen=True)
class PackEntry:
    file: str
    episode: Episode


def pack(
    runtime: Runtime,
    campaign: Campaign,
    output: Path,
    *,
    on_error: Callable[[PublicRecord, Exception], None] | None = None,
) -> list[PackEntry]:
    """Write the campaign's broadcastable clips into ``output`` (created; it must be empty, so
    that a clip withdrawn since an earlier pack is not left in it) in the order they were
    received, ``001-PARC-0042.mp3``…, and the cue sheet ``cues.csv``."""
    from gateway.publication.opendata import _cell  # the open-data CSV's formula guard

    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise RadioError(f"{output} is not an empty folder: choose a new one or empty it")
    found = episodes(runtime, campaign, on_error=on_error)
    files.private_dir(output)
    entries: list[PackEntry] = []
    for n, item in enumerate(found, start=1):
        name = f"{n:03d}-{item.record.reference}.mp3"
        shutil.copyfile(item.clip.path, output / name)
        entries.append(PackEntry(name, item))
    # The open-data CSV's convention: UTF-8 with a byte-order mark and ';', which French
    # spreadsheet software opens as it is.
    with (output / "cues.csv").open("w", encoding="utf-8-sig", newline="") as stream:
        writer = csv.writer(stream, delimiter=";", lineterminator="\r\n")
        writer.writerow(CUE_COLUMNS)
        for entry in entries:
            record = entry.episode.record
            writer.writerow(
                [
                    entry.file,
                    f"{entry.episode.clip.duration:.1f}",
                    record.reference,
                    _cell(record.neighbourhood or ""),
                    _cell(record.text or ""),
                ]
            )
    return entries
