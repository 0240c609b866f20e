"""Decode whatever audio the channels bring to the PCM that speech engines read.

Residents' audio arrives as Twilio recordings (WAV, 8 kHz µ-law or PCM, or
MP3), Telegram voice notes (OGG/Opus), e-mail attachments (M4A/AAC, MP3, …).
PyAV bundles FFmpeg, so no system ffmpeg is needed: everything is decoded and
resampled in-process to 16 kHz mono signed 16-bit little-endian PCM.

Decisions worth knowing:

* One exception type, :class:`AudioError`, with stable ``code`` values
  (``empty``, ``not_found``, ``corrupt``, ``no_audio``, ``too_long``) so that
  callers can record a transcription status without parsing messages.
* Silence or a hang-up is *not* an error here: the audio decodes fine, it just
  says nothing. Callers check :attr:`Audio.duration` and
  :func:`has_speech_energy` to record "no usable audio".
* A truncated file (a caller who hung up mid-upload, an interrupted download)
  keeps what decodes: the resident's first words are still worth reading. Only
  when nothing at all decodes is it ``corrupt``. :attr:`Audio.truncated` says
  when the decoder stopped on an error or produced clearly less than the
  container announced. (FFmpeg sizes a cut WAV from the file itself, so a WAV
  cut on a sample boundary just looks shorter, not truncated.)
* ``too_long`` is decided from the container's announced duration before any
  decoding, and, when the container does not announce one (or lies), by
  counting samples while decoding: decoding stops as soon as the limit is
  passed, so a 2-hour file never costs 2 hours of decoding or of memory.
* Untrusted input meets FFmpeg, which can do far more than decode audio: a
  playlist (HLS, concat, …) would make it open other files or URLs on our
  behalf. Only plain audio container demuxers are allowed and only local
  protocols, so a crafted upload can neither reach the network nor read files.
"""

from __future__ import annotations

import io
import math
import operator
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error

SAMPLE_RATE = 16000
_BYTES_PER_SAMPLE = 2

# Container demuxers a resident's audio can legitimately come in. Anything else
# (playlists, image sequences, network formats) is refused before it is parsed.
_ALLOWED_DEMUXERS = (
    "wav",
    "w64",
    "mp3",
    "ogg",
    "mov",  # FFmpeg's demuxer for MP4/M4A/3GP
    "matroska",  # also WebM, as browsers record it
    "flac",
    "aac",
    "amr",
    "aiff",
    "au",
    "caf",
)
_OPEN_OPTIONS = {
    "format_whitelist": ",".join(_ALLOWED_DEMUXERS),
    # "pipe" covers the in-memory file PyAV wraps around bytes input.
    "protocol_whitelist": "file,pipe",
}

# A decoder that produced this much less than the container announced is
# reported as truncated; below that is codec priming and rounding.
_TRUNCATION_TOLERANCE_S = 0.5


class AudioError(Exception):
    """Audio that cannot be turned into PCM; ``code`` is stable, ``message`` is for logs."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Audio:
    """Decoded audio: 16 kHz mono s16le PCM, whatever the source was."""

    pcm: bytes = field(repr=False)
    sample_rate: int = SAMPLE_RATE
    duration: float
    source_format: str  # e.g. "wav/pcm_mulaw", "ogg/opus": for logs and the moderators' view
    truncated: bool = False


def decode_to_pcm(source: bytes | str | Path, *, max_seconds: float = 900) -> Audio:
    """Decode ``source`` (file contents, or a path) to 16 kHz mono s16le PCM.

    Raises :class:`AudioError` with code ``empty``, ``not_found``, ``corrupt``,
    ``no_audio`` or ``too_long``.
    """
    if isinstance(source, bytes | bytearray):
        if not source:
            raise AudioError("empty", "the audio has zero bytes")
        opened: str | io.BytesIO = io.BytesIO(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise AudioError("not_found", f"no such file: {path}") from None
        if size == 0:
            raise AudioError("empty", f"the audio file has zero bytes: {path}")
        opened = str(path)

    try:
        container = av.open(opened, mode="r", options=_OPEN_OPTIONS)
    except av.error.FFmpegError as exc:
        raise AudioError("corrupt", f"not a readable audio file: {exc}") from exc
    except (EOFError, OSError) as exc:
        raise AudioError("corrupt", f"not a readable audio file: {exc}") from exc

    with container:
        if not container.streams.audio:
            raise AudioError("no_audio", f"the {container.format.name} file has no audio stream")
        stream = container.streams.audio[0]
        source_format = f"{container.format.name.split(',')[0]}/{stream.codec_context.name}"

        announced = _announced_duration(container, stream)
        if announced is not None and announced > max_seconds:
            raise AudioError(
                "too_long", f"{announced:.0f} s of audio, more than the {max_seconds:.0f} s allowed"
            )

        pcm, truncated = _decode(container, stream, max_seconds)

    if not pcm and truncated:
        raise AudioError("corrupt", "no audio could be decoded")
    duration = len(pcm) / (_BYTES_PER_SAMPLE * SAMPLE_RATE)
    if announced is not None and duration < announced - _TRUNCATION_TOLERANCE_S:
        truncated = True
    return Audio(pcm=pcm, duration=duration, source_format=source_format, truncated=truncated)


def _announced_duration(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decode(
    container: av.container.InputContainer, stream: av.AudioStream, max_seconds: float
) -> tuple[bytes, bool]:
    """Return (pcm, stopped_on_error). Raises ``too_long`` once past the limit."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    limit_bytes = math.ceil(max_seconds * SAMPLE_RATE) * _BYTES_PER_SAMPLE
    out = bytearray()

    def keep(frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            # Packed mono s16: the plane may carry alignment padding past the samples.
            out.extend(bytes(frame.planes[0])[: frame.samples * _BYTES_PER_SAMPLE])
        if len(out) > limit_bytes:
            raise AudioError(
                "too_long", f"more than the {max_seconds:.0f} s allowed (stopped decoding there)"
            )

    try:
        # demux() ends with empty packets whose decode() flushes the decoder.
        for packet in container.demux(stream):
            for frame in packet.decode():
                if isinstance(frame, av.AudioFrame):
                    keep(resampler.resample(frame))
    except (av.error.FFmpegError, EOFError):
        # A damaged or cut file: keep what decoded so far (see module doc).
        keep(resampler.resample(None))
        return bytes(out), True
    keep(resampler.resample(None))
    return bytes(out), False


# 20 ms windows: short enough to find speech between pauses, long enough that
# one click does not count as a word.
_WINDOWS_PER_SECOND = 50


def has_speech_energy(
    audio: Audio, *, min_seconds: float = 1.0, threshold_dbfs: float = -40.0
) -> bool:
    """True when at least ``min_seconds`` of 20 ms windows are louder than ``threshold_dbfs``.

    A cheap "is anyone talking" test for hang-ups, silence and line hiss, not
    voice activity detection: the windows need not be consecutive, since speech
    has pauses.
    """
    samples = array("h")
    samples.frombytes(audio.pcm[: len(audio.pcm) - len(audio.pcm) % _BYTES_PER_SAMPLE])
    # PCM is little-endian; array uses the machine's order.
    if array("h", [1]).tobytes() != b"\x01\x00":
        samples.byteswap()
    size = audio.sample_rate // _WINDOWS_PER_SECOND
    threshold = (32768.0 * 10 ** (threshold_dbfs / 20)) ** 2 * size
    windows_needed = math.ceil(min_seconds * _WINDOWS_PER_SECOND)
    loud = 0
    for start in range(0, len(samples) - size + 1, size):
        window = samples[start : start + size]
        # sum(map(mul)) runs in C: about 15 s of audio per second of CPU.
        if sum(map(operator.mul, window, window)) > threshold:
            loud += 1
            if loud >= windows_needed:
                return True
    return False
