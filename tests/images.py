"""Real images made for the tests: a JPEG from PyAV's bundled encoder, a PNG written by hand."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import av


def jpeg(width: int, height: int, shade: int) -> bytes:
    """A real JPEG (PyAV's bundled MJPEG encoder), a horizontal gradient."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    row = bytes((x * 7 + shade) % 256 for x in range(width * 3))
    plane.update((row + bytes(plane.line_size - len(row))) * height)
    packets = codec.encode(frame.reformat(format="yuvj420p")) + codec.encode(None)
    data = b"".join(bytes(p) for p in packets)
    assert data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9")
    return data


def png(width: int, height: int) -> bytes:
    """A real PNG, written by hand: 8-bit RGB, one filter byte per row, a gradient."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + bytes((x * 9 + y * 5) % 256 for x in range(width) for _ in range(3))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
