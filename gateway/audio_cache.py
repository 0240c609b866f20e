"""Where the normalised copies of recordings are kept for Radio Agora (the podcast's episodes
and the studio's clips, gateway.publication.radio), named by contribution: the erasure of a
person (gateway.residents) deletes them with the recording they were made from."""

from __future__ import annotations

import hashlib
from pathlib import Path

CACHE_FOLDER = "radio"


def cache_dir(data_path: Path) -> Path:
    return data_path / CACHE_FOLDER


def cache_path(data_path: Path, contribution_id: int, audio_path: str) -> Path:
    """Named by the contribution and its recording: a row id SQLite reuses after a deletion, or
    a recording replaced, never finds another voice's file."""
    digest = hashlib.sha256(audio_path.encode("utf-8")).hexdigest()[:16]
    return cache_dir(data_path) / f"{contribution_id}-{digest}.mp3"


def cached_files(data_path: Path, contribution_id: int) -> list[Path]:
    folder = cache_dir(data_path)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"{contribution_id}-*.mp3"))
