"""What a file residents send really is, from its first bytes: a label (a Content-Type header,
a file name) is only what the sender claims, and a program named photo.jpg is not a photo.

Used by the channels that keep files (email, MMS) so that one rule decides, for every
channel, which images, sounds and documents the gateway keeps.
"""

from __future__ import annotations

# Shown in the console, published after a moderator's check: raster images only (SVG can
# carry scripts).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
# The ISO base media brands of an audio file (M4A, 3GPP voice memos, MP4 audio).
_MP4_AUDIO_BRANDS = frozenset(
    {b"M4A ", b"M4B ", b"mp41", b"mp42", b"isom", b"iso2", b"3gp4", b"3gp5", b"3gp6", b"3gr6"}
)
# Spellings phones and providers use, and the one the gateway stores.
ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/heif": "image/heic",
    "application/ogg": "audio/ogg",
    "application/x-pdf": "application/pdf",
    "audio/mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/3gpp": "audio/3gpp",
    "audio/amr-nb": "audio/amr",
    "audio/x-aac": "audio/aac",
}


def normalise(content_type: str) -> str:
    """A Content-Type without its parameters, lower case, in the spelling the gateway stores."""
    bare = content_type.split(";", 1)[0].strip().lower()
    return ALIASES.get(bare, bare)


def sniff_image(data: bytes, declared: str = "") -> str | None:
    """The image type the bytes are (JPEG, PNG, GIF, WebP; HEIC when declared so), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if normalise(declared) == "image/heic" and data[4:8] == b"ftyp" and data[8:12] in _HEIC_BRANDS:
        return "image/heic"
    return None


def is_audio(data: bytes) -> bool:
    """Whether the bytes start as a sound file the transcription can decode does: WAV, MP3
    (with or without an ID3 tag), ADTS AAC, OGG, AMR, and M4A/3GPP (an ISO media file)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return True
    if data.startswith((b"ID3", b"OggS", b"#!AMR", b"fLaC")):
        return True
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:  # an MPEG/ADTS frame
        return True
    return data[4:8] == b"ftyp" and data[8:12] in _MP4_AUDIO_BRANDS


def is_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]
