"""A text body's layout made regular: "\\n" newlines, no control characters, no trailing
spaces, no blank lines at the ends, and ``format=flowed`` (RFC 3676: Thunderbird, Apple Mail)
unwrapped.
"""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\ud800-\udfff]")


def tidy(text: str, *, flowed: bool = False, delsp: bool = False) -> str:
    """\\n newlines, no control characters, no trailing spaces, no blank lines at the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    text = _CONTROL.sub("", text.replace("\u2029", "\n"))
    if flowed:
        text = _unflow(text, delsp=delsp)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676 ``format=flowed`` (Thunderbird, Apple Mail): soft line breaks joined."""
    out: list[str] = []
    paragraph: list[str] = []
    depth = 0

    def flush() -> None:
        if paragraph:
            prefix = ">" * depth + (" " if depth else "")
            out.append(prefix + "".join(paragraph))
            paragraph.clear()

    for line in text.split("\n"):
        level = len(line) - len(line.lstrip(">"))
        content = line[level:]
        if content.startswith(" "):  # space-stuffing
            content = content[1:]
        if paragraph and level != depth:
            flush()
        depth = level
        soft = content.endswith(" ") and content.rstrip() != "--"
        paragraph.append(content[:-1] if soft and delsp else content)
        if not soft:
            flush()
    flush()
    return "\n".join(out)
