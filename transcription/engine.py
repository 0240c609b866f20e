"""What any speech engine gives the gateway: a transcript with words, timings, confidences.

Vosk is the engine the gateway ships; the interface is small so another local
engine can replace it without the workers or the moderation console changing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from transcription.audio import Audio


@dataclass(frozen=True)
class Word:
    """One recognised word; times in seconds from the start of the audio."""

    word: str
    start: float
    end: float
    confidence: float  # 0..1: lets the console flag doubtful passages to listen to


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[Word, ...]
    model: str  # the model's name, so a transcript can be redone or compared later
    language: str | None
    duration: float  # seconds of audio transcribed

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, as stored with the contribution."""
        return {
            "text": self.text,
            "words": [
                {"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence}
                for w in self.words
            ],
            "model": self.model,
            "language": self.language,
            "duration": self.duration,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transcript:
        return cls(
            text=str(data["text"]),
            words=tuple(
                Word(
                    word=str(w["word"]),
                    start=float(w["start"]),
                    end=float(w["end"]),
                    confidence=float(w["confidence"]),
                )
                for w in data.get("words", ())
            ),
            model=str(data["model"]),
            language=data.get("language"),
            duration=float(data.get("duration", 0.0)),
        )


class Engine(Protocol):
    """A local speech-to-text engine.

    ``grammar`` restricts recognition to the given words or phrases (for
    example a keypad-less menu, or tests); engines without that ability may
    ignore it.
    """

    name: str

    def transcribe(self, audio: Audio, *, grammar: Sequence[str] | None = None) -> Transcript: ...
