"""Fixtures shared by the publication tests."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import require_tool


@pytest.fixture(scope="session")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """French speech as a phone line records it (8 kHz mono µ-law), whispered and shouted:
    about -45, -30 and -22 LUFS before normalisation."""
    espeak, sox = require_tool("espeak-ng"), require_tool("sox")
    folder = tmp_path_factory.mktemp("voices")
    raw = folder / "speech.wav"
    subprocess.run(
        [espeak, "-v", "fr", "-w", str(raw), "Il faut des bancs et des arbres au parc. " * 2],
        check=True,
    )
    made = {}
    for name, gain in {"quiet": "0.05", "mid": "0.3", "loud": "0.95"}.items():
        out = folder / f"{name}.wav"
        subprocess.run(
            [sox, str(raw), "-r", "8000", "-c", "1", "-e", "u-law", str(out), "vol", gain],
            check=True,
        )
        made[name] = out.read_bytes()
    return made
