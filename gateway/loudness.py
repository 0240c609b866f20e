"""Speech to a loudness-normalised MP3, through PyAV's FFmpeg filters: Radio Agora's episodes
(gateway.publication.radio) and the city's recorded answers played to callers
(gateway.recorded_answers) are both made here.

The target is the podcast's (EBU R128: -16 LUFS integrated, true peak at most -1.5 dBTP):
measured, brought to the target and peak-limited, measured again, then ``loudnorm``'s linear
second pass with those measurements (see ``normalise``), and encoded to MP3 without any tag (no
ID3: nothing about the speaker travels with the file).
"""

from __future__ import annotations

import gc
import itertools
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

# The podcast target (EBU R128 s1 / AES TD1004 for streaming and podcasts).
TARGET_LUFS = -16.0
TRUE_PEAK_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0
SILENT_LUFS = -60.0
# The limiter's ceiling (sample peak, linear: -5.2 dBFS), kept below the true-peak ceiling so
# that inter-sample peaks and the MP3 encoder's overshoot stay under it.
LIMITER_CEILING = 0.55
# A phone line carries 8 kHz mono: 64 kbit/s mono MP3 at 44.1 kHz loses nothing of it, and
# every podcast app and studio player reads it.
SAMPLE_RATE = 44100
BIT_RATE = 64000
CONTENT_TYPE = "audio/mpeg"


class LoudnessError(Exception):
    """A recording that cannot be normalised (unreadable, no audio, silent)."""


# -- audio --------------------------------------------------------------------------------------

# Turning PyAV's log level up and down is process-wide: one measurement at a time.
_MEASURING = threading.Lock()


def _run_graph(
    container: Any,
    stream: Any,
    filters: Sequence[tuple[str, str]],
    consume: Callable[[Any], None],
) -> None:
    """Decode ``stream`` through ``filters``, handing each filtered frame to ``consume`` as it
    comes (a long message is never held whole in memory: loudnorm works at 192 kHz)."""
    import av
    import av.filter

    graph = av.filter.Graph()
    chain = [graph.add_abuffer(template=stream)]
    chain += [graph.add(name, args) for name, args in filters]
    chain.append(graph.add("abuffersink"))
    for upstream, downstream in itertools.pairwise(chain):
        upstream.link_to(downstream)
    graph.configure()

    def drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            consume(frame)

    for frame in container.decode(stream):
        graph.push(frame)
        drain()
    graph.push(None)
    drain()


def _loudnorm(measured: dict[str, str] | None) -> str:
    args = f"I={TARGET_LUFS}:TP={TRUE_PEAK_DBTP}:LRA={LOUDNESS_RANGE_LU}:print_format=json"
    if measured:
        args += (
            f":measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
            f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
            f":offset={measured['target_offset']}:linear=true"
        )
    return args


def _filter(
    source: Path,
    filters: Sequence[tuple[str, str]],
    consume: Callable[[Any], None] = lambda _frame: None,
) -> str:
    """Run ``source`` through ``filters`` into ``consume``; returns what ``loudnorm``
    reported (it prints its measurements to FFmpeg's log when its graph is freed, in this
    thread: PyAV's log capture for this thread collects them)."""
    import av
    import av.logging

    with _MEASURING:
        level, skip = av.logging.get_level(), av.logging.get_skip_repeated()
        av.logging.set_level(av.logging.INFO)
        av.logging.set_skip_repeated(False)  # the same report twice in a row is still needed
        try:
            with av.logging.Capture(local=True) as logs:
                try:
                    with av.open(str(source)) as container:
                        if not container.streams.audio:
                            raise LoudnessError("the recording has no audio")
                        _run_graph(container, container.streams.audio[0], filters, consume)
                except av.FFmpegError as exc:
                    raise LoudnessError(f"unreadable recording ({type(exc).__name__})") from exc
                if not any(name == "loudnorm" for _level, name, _text in logs):
                    gc.collect()  # a graph kept alive by a reference cycle reports when freed
        finally:
            av.logging.set_level(level)
            av.logging.set_skip_repeated(skip)
    return next((text for _level, name, text in logs if name == "loudnorm"), "")


def measure(source: Path, filters: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """``loudnorm``'s measuring pass over ``source`` through ``filters``: integrated loudness,
    true peak, loudness range, and the values its second pass takes."""
    report = _filter(source, [*filters, ("loudnorm", _loudnorm(None))])
    try:
        measured: dict[str, str] = json.loads(report)
    except ValueError as exc:
        raise LoudnessError("the loudness could not be measured") from exc
    try:
        loudness = float(measured["input_i"])
    except (KeyError, ValueError) as exc:
        raise LoudnessError("the loudness could not be measured") from exc
    # Below -60 LUFS there is no voice to bring up, only line noise (-inf: digital silence).
    if not loudness > SILENT_LUFS:
        raise LoudnessError("the recording is silent")
    return measured


def _levelling(measured: dict[str, str]) -> list[tuple[str, str]]:
    """The gain to the target, then a fast limiter. Speech down a phone line peaks some 18 dB
    above its loudness: at -16 LUFS its peaks would pass the -1.5 dBTP ceiling, and loudnorm
    would fall back to its dynamic mode, which lands short clips a full LU or more below the
    target. Limited first, the clip keeps a crest factor loudnorm can meet linearly."""
    gain = TARGET_LUFS - float(measured["input_i"])
    return [
        ("volume", f"{gain:.2f}dB"),
        ("alimiter", f"limit={LIMITER_CEILING}:attack=1:release=50:level=disabled"),
    ]


def normalise(source: Path, out: BinaryIO) -> float:
    """Write ``source`` to ``out`` as a loudness-normalised MP3 with no tags; returns its
    duration in seconds. Three passes over the recording (a voice message is short): measure,
    measure once levelled, then apply loudnorm with those measurements."""
    import av

    levelling = _levelling(measure(source))
    measured = measure(source, levelling)
    samples = 0
    # No ID3v2 tag (id3v2_version 0; ID3v1 is off by default): no title, no encoder, nothing
    # that could carry who called. The Xing header stays: it gives players the exact length.
    with av.open(out, "w", format="mp3", options={"id3v2_version": "0"}) as container:
        stream = container.add_stream("libmp3lame", rate=SAMPLE_RATE)
        if not isinstance(stream, av.AudioStream):  # for the type checker: it is audio
            raise LoudnessError("no MP3 encoder")
        stream.layout = "mono"
        stream.bit_rate = BIT_RATE

        def encode(frame: Any) -> None:
            nonlocal samples
            frame.pts = samples
            samples += frame.samples
            container.mux(stream.encode(frame))

        _filter(
            source,
            [
                *levelling,
                ("loudnorm", _loudnorm(measured)),
                # loudnorm works at 192 kHz; back to the encoder's rate and layout.
                ("aresample", str(SAMPLE_RATE)),
                ("aformat", f"sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=mono"),
            ],
            encode,
        )
        container.mux(stream.encode(None))
    return samples / SAMPLE_RATE


def mp3_duration(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        if container.duration is not None:
            return float(container.duration) / 1_000_000  # AV_TIME_BASE
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
    return 0.0
