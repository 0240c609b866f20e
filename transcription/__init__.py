"""Local transcription of residents' voice messages: decode any audio, run Vosk, no cloud.

``decode_to_pcm`` turns WAV, MP3, OGG/Opus, M4A, … into 16 kHz mono PCM;
an ``Engine`` (``VoskEngine``) turns that into a ``Transcript`` with words,
timings, confidences and the model's name; ``models`` finds and installs the
Vosk models. ``VoskEngine`` is imported lazily so that code which only decodes
audio or lists models does not load Vosk's native library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transcription.audio import Audio, AudioError, decode_to_pcm, has_speech_energy
from transcription.engine import Engine, Transcript, Word
from transcription.models import (
    KNOWN_MODELS,
    ModelError,
    ModelInfo,
    find_models,
    install,
    install_from_zip,
    resolve,
)

if TYPE_CHECKING:
    from transcription.vosk_engine import VoskEngine

__all__ = [
    "KNOWN_MODELS",
    "Audio",
    "AudioError",
    "Engine",
    "ModelError",
    "ModelInfo",
    "Transcript",
    "VoskEngine",
    "Word",
    "decode_to_pcm",
    "find_models",
    "has_speech_energy",
    "install",
    "install_from_zip",
    "resolve",
]


def __getattr__(name: str) -> Any:
    if name == "VoskEngine":
        from transcription.vosk_engine import VoskEngine

        return VoskEngine
    raise AttributeError(f"module 'transcription' has no attribute {name!r}")
