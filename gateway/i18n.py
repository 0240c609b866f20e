"""The message catalogue: every string a resident reads, French first.

Catalogues are YAML files in ``gateway/locales/``, one per language, nested
mappings whose leaf paths are the dotted keys ("receipt.default"). What moderators
read lives beside them in ``gateway/locales/console/<language>.yaml`` (keys under
``console.``), and what the public reads (public pages, open data, the podcast, the
report) in ``gateway/locales/public/<language>.yaml`` (keys under ``public.``), merged into
the same catalogue. French is the
reference: a language or a key missing elsewhere falls back to it, so a
half-translated catalogue never leaves a resident without an answer.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

DEFAULT_LANGUAGE = "fr"


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{key}."))
        else:
            flat[key] = str(value)
    return flat


@functools.cache
def catalogue(language: str) -> Mapping[str, str]:
    """All messages of one language, by dotted key (read from disk once)."""
    root = resources.files("gateway") / "locales"
    merged: dict[str, str] = {}
    for source in (
        root / f"{language}.yaml",
        root / "console" / f"{language}.yaml",
        root / "public" / f"{language}.yaml",
    ):
        if source.is_file():
            merged.update(_flatten(yaml.safe_load(source.read_text(encoding="utf-8")) or {}))
    return merged


@functools.cache
def languages() -> tuple[str, ...]:
    """The languages with a catalogue, French first."""
    found = sorted(
        entry.name.removesuffix(".yaml")
        for entry in (resources.files("gateway") / "locales").iterdir()
        if entry.name.endswith(".yaml")
    )
    return (DEFAULT_LANGUAGE, *(name for name in found if name != DEFAULT_LANGUAGE))


def translate(key: str, language: str = DEFAULT_LANGUAGE, **params: object) -> str:
    """The message for ``key`` in ``language``, its {placeholders} filled from ``params``.

    Raises KeyError for a key that French does not have either: that is a bug
    in the caller, not something to paper over with an empty SMS.
    """
    template = catalogue(language).get(key) if language in languages() else None
    if template is None:
        template = catalogue(DEFAULT_LANGUAGE)[key]
    return template.format_map(params)


def translate_for(
    channel: str, key: str, language: str = DEFAULT_LANGUAGE, **params: object
) -> str:
    """``translate``, preferring the channel's own wording (``telegram.receipt.default`` over
    ``receipt.default``) where the catalogue has one: a chat app has commands and buttons
    where SMS has keywords."""
    variant = f"{channel}.{key}"
    if variant in catalogue(DEFAULT_LANGUAGE):
        return translate(variant, language, **params)
    return translate(key, language, **params)
