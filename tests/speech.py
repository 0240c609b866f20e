"""Audio for tests, made with the Debian tools the other audio tests use (espeak-ng, sox): real
speech as a city's agent would upload it, silence, a tone too long, and what is not audio."""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path

from tests.fixtures import require_tool


@functools.cache
def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="agora-speech-"))


@functools.cache
def spoken(text: str, language: str = "fr", *, extension: str = "wav") -> bytes:
    """``text`` said by espeak-ng in ``language``: a WAV as espeak writes it (22 kHz), or with
    ``extension`` "ogg"/"mp3" converted by sox, as a recorder app would save it."""
    folder = _folder()
    raw = folder / f"{abs(hash((text, language)))}.wav"
    subprocess.run([require_tool("espeak-ng"), "-v", language, "-w", str(raw), text], check=True)
    if extension == "wav":
        return raw.read_bytes()
    converted = raw.with_suffix(f".{extension}")
    subprocess.run([require_tool("sox"), str(raw), str(converted)], check=True)
    return converted.read_bytes()


@functools.cache
def silence(seconds: float = 3) -> bytes:
    path = _folder() / f"silence-{seconds}.wav"
    subprocess.run(
        [require_tool("sox"), "-n", "-r", "8000", "-c", "1", str(path), "trim", "0", str(seconds)],
        check=True,
    )
    return path.read_bytes()


@functools.cache
def tone(seconds: float) -> bytes:
    """A loud tone of ``seconds`` (8 kHz WAV): audio enough, for the length checks."""
    path = _folder() / f"tone-{seconds}.wav"
    subprocess.run(
        [
            require_tool("sox"),
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            str(path),
            "synth",
            str(seconds),
            "sine",
            "440",
        ],
        check=True,
    )
    return path.read_bytes()
