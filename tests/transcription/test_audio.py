"""Decoding the audio residents send, and refusing what cannot be audio, with stable codes."""

from __future__ import annotations

import http.server
import itertools
import math
import struct
import subprocess
import threading
import wave
from pathlib import Path

import av
import pytest

from tests.helpers import best_time
from tests.transcription.conftest import require_tool
from transcription import audio as audio_module
from transcription.audio import SAMPLE_RATE, Audio, AudioError, decode_to_pcm, has_speech_energy

FORMATS = ["wav16", "wav8-ulaw", "mp3", "mp3-8k", "ogg-opus", "m4a-aac"]
EXPECTED_FORMAT = {
    "wav16": "wav/pcm_s16le",
    "wav8-ulaw": "wav/pcm_mulaw",
    "mp3": "mp3/mp3float",
    "mp3-8k": "mp3/mp3float",
    "ogg-opus": "ogg/opus",
    "m4a-aac": "mov/aac",
}


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_channel_format_decodes_to_16k_mono(
    speech: dict[str, dict[str, Path]], fmt: str
) -> None:
    source = speech["playground"][fmt]
    expected = wav_seconds(speech["playground"]["wav16"])

    audio = decode_to_pcm(source)

    assert audio.sample_rate == SAMPLE_RATE
    assert audio.source_format == EXPECTED_FORMAT[fmt]
    assert len(audio.pcm) == round(audio.duration * SAMPLE_RATE) * 2
    # Lossy codecs add priming and padding, a few tens of milliseconds.
    assert audio.duration == pytest.approx(expected, abs=0.15)
    assert not audio.truncated
    assert has_speech_energy(audio)


def test_bytes_and_path_give_the_same_pcm(speech: dict[str, dict[str, Path]]) -> None:
    path = speech["playground"]["wav8-ulaw"]
    assert decode_to_pcm(path.read_bytes()).pcm == decode_to_pcm(path).pcm
    assert decode_to_pcm(str(path)).pcm == decode_to_pcm(path).pcm


def test_pcm_keeps_the_signal(tmp_path: Path) -> None:
    """A 1 kHz tone at 8 kHz comes out as a 1 kHz tone at 16 kHz, not noise."""
    source = tmp_path / "tone.wav"
    with wave.open(str(source), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(10000 * math.sin(2 * math.pi * 1000 * n / 8000)))
                for n in range(8000)
            )
        )
    audio = decode_to_pcm(source)
    samples = struct.unpack(f"<{len(audio.pcm) // 2}h", audio.pcm)
    middle = samples[4000:12000]
    crossings = sum(1 for a, b in itertools.pairwise(middle) if a < 0 <= b)
    assert crossings == pytest.approx(500, abs=3)  # 1000 Hz over half a second
    assert max(middle) == pytest.approx(10000, rel=0.05)


def test_zero_bytes_is_empty(tmp_path: Path) -> None:
    empty = tmp_path / "message.wav"
    empty.write_bytes(b"")
    for source in (b"", empty):
        with pytest.raises(AudioError) as caught:
            decode_to_pcm(source)
        assert caught.value.code == "empty"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as caught:
        decode_to_pcm(tmp_path / "gone.wav")
    assert caught.value.code == "not_found"


def test_text_file_named_wav_is_corrupt(tmp_path: Path) -> None:
    fake = tmp_path / "message.wav"
    fake.write_text("Bonjour, ceci n'est pas un fichier audio.\n" * 20, encoding="utf-8")
    with pytest.raises(AudioError) as caught:
        decode_to_pcm(fake)
    assert caught.value.code == "corrupt"


def test_header_cut_short_is_corrupt(speech: dict[str, dict[str, Path]]) -> None:
    with pytest.raises(AudioError) as caught:
        decode_to_pcm(speech["playground"]["wav16"].read_bytes()[:20])
    assert caught.value.code == "corrupt"


@pytest.mark.parametrize("fmt", ["wav16", "wav8-ulaw", "mp3", "ogg-opus"])
def test_truncated_file_keeps_what_decodes(speech: dict[str, dict[str, Path]], fmt: str) -> None:
    """A message cut off (hang-up, interrupted download) keeps the words before the cut."""
    whole = speech["playground"][fmt].read_bytes()
    full = decode_to_pcm(whole)

    cut = decode_to_pcm(whole[: len(whole) // 2])

    assert 0.25 * full.duration < cut.duration < 0.75 * full.duration
    # What was decoded is the start of the message, sample for sample for PCM.
    if fmt.startswith("wav"):
        assert full.pcm.startswith(cut.pcm[: len(cut.pcm) - 64])


def test_file_without_audio_stream(tmp_path: Path) -> None:
    video = tmp_path / "video-only.mkv"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("ffv1", rate=5)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(5):
            frame = av.VideoFrame(32, 32, "yuv420p")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(AudioError) as caught:
        decode_to_pcm(video)
    assert caught.value.code == "no_audio"


@pytest.fixture(scope="module")
def two_hour_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-hour telephone-quality recording (8 kHz µ-law, 58 MB of a 440 Hz tone).

    sox would take 40 s to synthesise 2 hours; one second from sox repeated
    7200 times is the same file, written in a fraction of a second.
    """
    sox = require_tool("sox")
    folder = tmp_path_factory.mktemp("long")
    second = folder / "one-second.raw"
    subprocess.run(
        [
            sox,
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "mu-law",
            "-t",
            "raw",
            str(second),
            "synth",
            "1",
            "sine",
            "440",
        ],
        check=True,
    )
    tone = second.read_bytes()
    assert len(tone) == 8000
    seconds = 7200
    data_size = len(tone) * seconds
    path = folder / "two-hours.wav"
    with open(path, "wb") as out:
        # RIFF header, "fmt " chunk (format 7 = µ-law, mono, 8 kHz, 8 bits), "data" chunk.
        out.write(b"RIFF" + struct.pack("<I", 4 + 8 + 16 + 8 + data_size) + b"WAVE")
        out.write(b"fmt " + struct.pack("<IHHIIHH", 16, 7, 1, 8000, 8000, 1, 8))
        out.write(b"data" + struct.pack("<I", data_size))
        block = tone * 600
        for _ in range(seconds // 600):
            out.write(block)
    return path


def test_the_two_hour_file_is_what_it_claims(two_hour_wav: Path) -> None:
    sox = require_tool("sox")
    info = subprocess.run(
        [sox, "--i", "-D", str(two_hour_wav)], check=True, capture_output=True, text=True
    )
    assert float(info.stdout) == 7200.0


def test_two_hour_file_is_refused_at_once(two_hour_wav: Path) -> None:
    def refuse() -> None:
        with pytest.raises(AudioError) as caught:
            decode_to_pcm(two_hour_wav)
        assert caught.value.code == "too_long"

    assert best_time(refuse, 1.0) < 1.0  # the best of up to three runs (tests.helpers)


def test_too_long_without_announced_duration_stops_at_the_limit(
    two_hour_wav: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Containers that announce no duration (or lie) are cut off while decoding."""
    monkeypatch.setattr(audio_module, "_announced_duration", lambda container, stream: None)

    def refuse() -> None:
        with pytest.raises(AudioError) as caught:
            decode_to_pcm(two_hour_wav, max_seconds=60)
        assert caught.value.code == "too_long"

    # Decoding all 2 hours takes several seconds; stopping at a minute takes a fraction.
    assert best_time(refuse, 1.0) < 1.0


def test_under_the_limit_is_accepted(speech: dict[str, dict[str, Path]]) -> None:
    audio = decode_to_pcm(speech["playground"]["wav16"], max_seconds=10)
    with pytest.raises(AudioError) as caught:
        decode_to_pcm(speech["playground"]["wav16"], max_seconds=1)
    assert audio.duration > 1
    assert caught.value.code == "too_long"


def test_silence_decodes_but_has_no_speech(tmp_path: Path) -> None:
    sox = require_tool("sox")
    silence = tmp_path / "hang-up.wav"
    subprocess.run(
        [sox, "-n", "-r", "8000", "-c", "1", "-e", "mu-law", str(silence), "trim", "0", "5"],
        check=True,
    )
    audio = decode_to_pcm(silence)
    assert audio.duration == pytest.approx(5.0, abs=0.01)
    assert not has_speech_energy(audio)


def test_line_hiss_and_a_click_are_not_speech(tmp_path: Path) -> None:
    sox = require_tool("sox")
    hiss = tmp_path / "hiss.wav"
    subprocess.run(
        [sox, "-n", "-r", "8000", "-c", "1", str(hiss), "synth", "5", "whitenoise", "vol", "0.003"],
        check=True,
    )
    assert not has_speech_energy(decode_to_pcm(hiss))
    # Half a second of loud sound is under the one second asked for.
    click = Audio(
        pcm=b"\x00\x40" * (SAMPLE_RATE // 2) + b"\x00\x00" * SAMPLE_RATE * 3,
        duration=3.5,
        source_format="test",
    )
    assert not has_speech_energy(click)
    assert has_speech_energy(click, min_seconds=0.4)


def test_a_playlist_cannot_make_the_decoder_read_other_files_or_urls(
    tmp_path: Path, speech: dict[str, dict[str, Path]]
) -> None:
    """An uploaded HLS playlist must not make FFmpeg open local files or URLs for us.

    Without the demuxer allow-list, FFmpeg follows a file named ``.m3u8`` and
    decodes another resident's recording from disk.
    """
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        playlist = tmp_path / "attachment.m3u8"
        playlist.write_text(
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n"
            f"#EXTINF:3,\n{speech['library']['mp3']}\n"
            f"#EXTINF:3,\nhttp://127.0.0.1:{port}/segment.mp3\n#EXT-X-ENDLIST\n",
            encoding="utf-8",
        )
        with pytest.raises(AudioError) as caught:
            decode_to_pcm(playlist)
        assert caught.value.code == "corrupt"
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []
