"""The city's answer recorded: an elected official or an agent reading the answer, played to
callers instead of the answer's text said by text to speech.

An upload is checked by decoding it (``transcription.audio``: only plain audio containers,
no playlist, no network), refused when empty, unreadable, over ``MAX_BYTES``, over
``MAX_SECONDS`` or silent, then made into a loudness-normalised MP3 with no tag
(``gateway.loudness``, as Radio Agora's episodes are), which a voice provider plays. The
normaliser only ever reads the WAV made here from the decoded samples, never the upload.

The file is ``DATA_DIR/answers/<token>.mp3``, owner-only; the token (32 random URL-safe
characters) is in the contribution's ``answer_audio`` (French) or ``answer_audio_en``
(English) column, and names the file at ``/audio/answers/<token>.mp3``, a URL without login
that the voice provider fetches: nobody can guess it, and it answers 404 once no contribution
refers to the token (a recording replaced, removed, or its answer changed), whatever is on
disk. A group's answer shares one file between its members; a file is deleted once no
contribution refers to it any more.

Nothing here knows who may record an answer or logs it: that is
gateway.moderation.answer_recordings.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway import files
from gateway.loudness import LoudnessError, normalise
from gateway.models import Contribution
from gateway.runtime import Runtime
from gateway.settings import Settings
from transcription.audio import AudioError, decode_to_pcm, has_speech_energy

log = logging.getLogger(__name__)

FOLDER = "answers"
# A reasoned answer read aloud is a minute or two; three minutes is the most a caller listens
# to. 10 MB holds three minutes of any ordinary recording (a 320 kbit/s MP3: 7 MB).
MAX_SECONDS = 180
MAX_BYTES = 10 * 1024 * 1024
# As the console and the API's refusals say them.
LIMITS = {"seconds": MAX_SECONDS, "megabytes": MAX_BYTES // (1024 * 1024)}
# Under a second of voice is not an answer: a click, a recording started by mistake.
MIN_SPEECH_SECONDS = 1.0
URL_PATH = "/audio/answers/{token}.mp3"
CONTENT_TYPE = "audio/mpeg"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
LANGUAGES = ("fr", "en")


class RecordingRefused(ValueError):
    """An upload that cannot become a recorded answer; ``code`` names the reason (``empty``,
    ``too_large``, ``corrupt``, ``no_audio``, ``too_long``, ``silent``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Recording:
    """A recorded answer to play on a call: the address the voice provider fetches."""

    url: str


@dataclass(frozen=True)
class Prepared:
    token: str
    duration: float  # seconds, as encoded


def folder(data_path: Path) -> Path:
    return data_path / FOLDER


def path_of(data_path: Path, token: str) -> Path | None:
    """The file of ``token``; None for anything that is not a token (a path, a dot)."""
    if not TOKEN.match(token or ""):
        return None
    return folder(data_path) / f"{token}.mp3"


def url_for(settings: Settings, token: str) -> str:
    """The address the voice provider fetches to play it (under PUBLIC_URL)."""
    return settings.public_url.rstrip("/") + URL_PATH.format(token=token)


def console_url(token: str) -> str:
    """The same file for the console's player: a path on the console's own host."""
    return URL_PATH.format(token=token)


def in_language(fr: str | None, en: str | None, language: str) -> str | None:
    """The recording a caller hears: the one in their language, else the only one there is."""
    if language == "en" and en:
        return en
    if language != "en" and fr:
        return fr
    return fr or en


def prepare(data_path: Path, data: bytes) -> Prepared:
    """Check an upload and store it as the MP3 callers hear; raises RecordingRefused. The
    file belongs to nobody until a contribution's column names its token: ``discard`` it if
    the transaction that would have named it fails."""
    if not data:
        raise RecordingRefused("empty", "the recording is empty")
    if len(data) > MAX_BYTES:
        raise RecordingRefused("too_large", f"the recording is over {MAX_BYTES} bytes")
    try:
        audio = decode_to_pcm(data, max_seconds=MAX_SECONDS)
    except AudioError as exc:
        code = exc.code if exc.code in ("too_long", "no_audio") else "corrupt"
        raise RecordingRefused(code, exc.message) from exc
    if audio.duration == 0:  # a header and nothing after it
        raise RecordingRefused("no_audio", "the file holds no sound")
    if not has_speech_energy(audio, min_seconds=MIN_SPEECH_SECONDS):
        raise RecordingRefused("silent", "the recording has no voice in it")
    target_folder = files.private_dir(folder(data_path))
    token = secrets.token_urlsafe(24)  # 32 characters, 192 bits
    source = target_folder / f".{token}.wav"
    partial = target_folder / f".{token}.part"
    target = target_folder / f"{token}.mp3"
    try:
        # The normaliser reads our own WAV of the decoded samples, never the upload itself.
        with files.open_private(source) as raw, wave.open(raw, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(audio.sample_rate)
            wav.writeframes(audio.pcm)
        with files.open_private(partial) as out:
            duration = normalise(source, out)
        os.replace(partial, target)  # nobody is ever served half a file
    except LoudnessError as exc:
        raise RecordingRefused("silent", str(exc)) from exc
    finally:
        for leftover in (source, partial):
            leftover.unlink(missing_ok=True)
    log.info("recorded answer stored (%.1f s)", duration)
    return Prepared(token=token, duration=duration)


def referenced(session: Session, token: str) -> bool:
    """Whether a contribution still refers to ``token`` (the file may be served)."""
    if not TOKEN.match(token or ""):
        return False
    return (
        session.scalar(
            select(Contribution.id)
            .where(or_(Contribution.answer_audio == token, Contribution.answer_audio_en == token))
            .limit(1)
        )
        is not None
    )


def unreferenced(session: Session, tokens: Iterable[str | None]) -> set[str]:
    """Of ``tokens``, those no contribution refers to any more (as this session sees it)."""
    return {token for token in tokens if token and not referenced(session, token)}


def strip(contribution: Contribution) -> list[str]:
    """Take the recordings off ``contribution``; returns their tokens, for ``unreferenced``."""
    dropped = [t for t in (contribution.answer_audio, contribution.answer_audio_en) if t]
    contribution.answer_audio = contribution.answer_audio_en = None
    return dropped


def relative_paths(tokens: Iterable[str]) -> set[str]:
    """The files of ``tokens`` relative to the data folder (for gateway.residents'
    erasure, which deletes its files in one go)."""
    return {f"{FOLDER}/{token}.mp3" for token in tokens if TOKEN.match(token)}


def discard(data_path: Path, tokens: Iterable[str]) -> int:
    """Delete the files of ``tokens`` (call once no contribution refers to them)."""
    deleted = 0
    for token in tokens:
        path = path_of(data_path, token)
        if path is None:
            continue
        try:
            path.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("a recorded answer could not be deleted (%s)", type(exc).__name__)
    return deleted


def serveable(session: Session, data_path: Path, token: str) -> Path | None:
    """The file behind ``/audio/answers/<token>.mp3``, or None (not a token, no contribution
    refers to it, no file): one answer for all, so that nothing is learnt from it."""
    path = path_of(data_path, token)
    if path is None or not referenced(session, token) or not path.is_file():
        return None
    return path


def discard_unreferenced(runtime: Runtime, tokens: Iterable[str]) -> int:
    """After a commit that took recordings off contributions: delete the files no contribution
    refers to any more (a group's file stays while one member keeps it)."""
    tokens = [t for t in tokens if t]
    if not tokens:
        return 0
    with runtime.sessions() as session:
        gone = unreferenced(session, tokens)
    return discard(runtime.settings.data_path, gone)


# A file younger than this may be an upload whose transaction has not committed yet.
ORPHAN_AGE = timedelta(hours=1)


def prune(runtime: Runtime, now: datetime | None = None) -> int:
    """Delete what no contribution refers to and is older than ORPHAN_AGE: a file left by a
    process killed between the upload and its commit, or whose deletion failed, and the
    temporary files of an encoding cut short. The sweeper (workers.sweeper) runs it."""
    directory = folder(runtime.settings.data_path)
    if not directory.is_dir():
        return 0
    cutoff = ((now or datetime.now(UTC)) - ORPHAN_AGE).timestamp()
    old: dict[str, list[Path]] = {}
    for path in directory.iterdir():
        try:
            if path.stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue
        token = path.name.lstrip(".").split(".", 1)[0]
        old.setdefault(token, []).append(path)
    if not old:
        return 0
    tokens = sorted(old)
    kept: set[str] = set()
    with runtime.sessions() as session:
        for i in range(0, len(tokens), 500):
            batch = tokens[i : i + 500]
            for fr, en in session.execute(
                select(Contribution.answer_audio, Contribution.answer_audio_en).where(
                    or_(
                        Contribution.answer_audio.in_(batch),
                        Contribution.answer_audio_en.in_(batch),
                    )
                )
            ):
                kept.update(t for t in (fr, en) if t)
    gone = [path for token in tokens if token not in kept for path in old[token]]
    for path in gone:
        path.unlink(missing_ok=True)
    if gone:
        log.info("recorded answers: %d file(s) no contribution refers to deleted", len(gone))
    return len(gone)
