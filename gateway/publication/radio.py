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
import logging
import os
import shutil
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from gateway import files
from gateway.audio_cache import cache_dir, cache_path, cached_files
from gateway.loudness import LoudnessError, mp3_duration, normalise
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

# The podcast target and the encoding: gateway.loudness (the city's recorded answers too).
CONTENT_TYPE = "audio/mpeg"
CUE_COLUMNS = ("file", "duration", "reference", "neighbourhood", "transcript")


# A recording that cannot be turned into an episode (missing, unreadable, silent): the
# loudness module's error, under the name the radio's callers know.
RadioError = LoudnessError


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
