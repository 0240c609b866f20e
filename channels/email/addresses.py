"""Email addresses in header values (From, To, Cc, Reply-To...): each as its display name
and its bare lower-case address, parsed within bounds.

Display names are one line, at most ``MAX_NAME`` characters; an address without a local part
and a domain is "". Address lists longer than 64 KB (about a thousand recipients) are cut at an
address boundary before ``email.utils.getaddresses`` reads them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from email.utils import getaddresses

from channels.email.headers import MAX_HEADER_CHARS, REGISTRY, decode_words, one_line

MAX_NAME = 200  # a display name longer than this is not a name
_MAX_ADDRESS_LIST = 64 * 1024  # about a thousand recipients


def named_addresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name, bare lower-case address) for each address; "" for an unusable address.

    The registry's parser (RFC 5322 groups, comments, encoded words) reads values of a
    reasonable length; ``getaddresses`` (linear) reads longer ones and what the registry
    chokes on.
    """
    found: list[tuple[str, str]] = []
    for value in values:
        pairs: list[tuple[str, str]] = []
        if len(value) <= MAX_HEADER_CHARS:
            try:
                header = REGISTRY("to", value)
                pairs = [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]
            except Exception:
                pairs = []
        if not any(_bare(address) for _, address in pairs):
            if len(value) > _MAX_ADDRESS_LIST:  # cut at an address boundary
                value = value[: value.rfind(",", 0, _MAX_ADDRESS_LIST) + 1 or _MAX_ADDRESS_LIST]
            pairs = [(decode_words(name), address) for name, address in getaddresses([value])]
        elif "(" in value and not all(name for name, _ in pairs):
            # "m@example.org (Marie)": the old way of naming, a comment the registry drops.
            named = {address.lower(): name for name, address in getaddresses([value]) if name}
            pairs = [(name or named.get(address.lower(), ""), address) for name, address in pairs]
        for name, address in pairs:
            found.append((one_line(name[: MAX_NAME * 4])[:MAX_NAME], _bare(address)))
    return found


_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+(?:@[^\s@<>()\[\],;:\"\\]+)", re.UNICODE)


def _bare(address: str) -> str:
    """The address lower-cased when it has a local part and a domain, else ""."""
    address = address.strip().strip("<>").strip().lower()
    if len(address) > 254 or not _ADDRESS.fullmatch(address):
        return ""
    local, _, domain = address.rpartition("@")
    if not local or not domain or domain.startswith(".") or domain.endswith("."):
        return ""
    if any(unicodedata.category(ch)[0] == "C" for ch in address):
        return ""
    return address


def recipient_addresses(headers: dict[str, list[str]], names: Iterable[str]) -> tuple[str, ...]:
    """The usable addresses of the headers ``names``, each once, in order."""
    seen: dict[str, None] = {}
    for name in names:
        for _, address in named_addresses(headers.get(name, [])):
            if address:
                seen.setdefault(address, None)
    return tuple(seen)
