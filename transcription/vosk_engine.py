"""The Vosk (Kaldi) engine: local, offline, one model shared by a whole worker process.

Why a module-level model cache, against the house rule of no module-level
state: a Vosk model is hundreds of MiB and takes one to two seconds to load,
while a voice message takes a fraction of that to transcribe. A worker
process must therefore load its model once and keep it for every job, not
once per job. The model is read-only once loaded: Vosk documents it as
shareable between threads (each stream gets its own ``KaldiRecognizer``), and
it survives ``fork``, so a parent can load it before forking workers and the
children share its pages. The cache holds models, never connections, and is
keyed by the model's resolved path.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import vosk

from transcription.audio import Audio
from transcription.engine import Transcript, Word
from transcription.models import ModelError

# Kaldi logs every model file it reads to stderr; the workers' own log is enough.
vosk.SetLogLevel(-1)

# ~4000 frames per AcceptWaveform call, as Vosk's examples do: small enough to
# get endpointed partial results, large enough that Python overhead is nil.
_CHUNK_BYTES = 4000 * 2

_models: dict[Path, vosk.Model] = {}
_models_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    # A fork while another thread held the lock would leave the child's copy
    # locked for ever; the cached models themselves are fine to inherit.
    global _models_lock
    _models_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def load_model(model_path: Path) -> vosk.Model:
    """The process's one ``vosk.Model`` for ``model_path``, loading it on first use.

    The lock is held while loading so that two threads asking at once load it
    once, not twice.
    """
    key = Path(model_path).resolve()
    with _models_lock:
        model = _models.get(key)
        if model is None:
            if not key.is_dir():
                raise ModelError(f"no Vosk model folder at {key}")
            try:
                model = vosk.Model(str(key))
            except Exception as exc:  # vosk raises a bare Exception on a bad model
                raise ModelError(f"could not load the Vosk model at {key}: {exc}") from exc
            _models[key] = model
        return model


class VoskEngine:
    """:class:`~transcription.engine.Engine` backed by Vosk.

    Creating an engine loads (or reuses) the model at once, so a worker fails
    at start-up, not on its first job, when the model is missing or broken.
    """

    def __init__(
        self, model_path: Path, name: str | None = None, language: str | None = None
    ) -> None:
        self.model_path = Path(model_path)
        self.name = name or self.model_path.name
        self.language = language
        self._model = load_model(self.model_path)

    def transcribe(self, audio: Audio, *, grammar: Sequence[str] | None = None) -> Transcript:
        if grammar:
            # "[unk]" lets words outside the list come out as unknown instead of
            # being forced onto the nearest listed word. (Models whose graph has
            # no "[unk]" ignore it.)
            phrases = json.dumps([*grammar, "[unk]"], ensure_ascii=False)
            recognizer = vosk.KaldiRecognizer(self._model, audio.sample_rate, phrases)
        else:
            recognizer = vosk.KaldiRecognizer(self._model, audio.sample_rate)
        recognizer.SetWords(True)

        results: list[dict[str, Any]] = []
        pcm = audio.pcm
        for offset in range(0, len(pcm), _CHUNK_BYTES):
            if recognizer.AcceptWaveform(pcm[offset : offset + _CHUNK_BYTES]):
                results.append(json.loads(recognizer.Result()))
        results.append(json.loads(recognizer.FinalResult()))

        words = tuple(
            Word(
                word=item["word"],
                start=float(item["start"]),
                end=float(item["end"]),
                confidence=float(item.get("conf", 1.0)),
            )
            for result in results
            for item in result.get("result", ())
            # Moderators read the text: an "[unk]" marker tells them nothing.
            if item.get("word") != "[unk]"
        )
        return Transcript(
            text=" ".join(w.word for w in words),
            words=words,
            model=self.name,
            language=self.language,
            duration=audio.duration,
        )
