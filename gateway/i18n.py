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
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from gateway.textnorm import fold

DEFAULT_LANGUAGE = "fr"
# Where the catalogues are read from; a test may point it at a folder with one more language
# (and clear the caches below: ``reload``).
LOCALES: Traversable = resources.files("gateway") / "locales"


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
    root = LOCALES
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
        for entry in LOCALES.iterdir()
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


@functools.cache
def switch_words() -> Mapping[str, str]:
    """The words a resident types to switch language, folded ("francais", "english"), to the
    language each names. Each catalogue lists its own (``language.switch_words``, separated by
    commas), so that a new catalogue file brings its words with it; a word two catalogues
    claim goes to the first, French first."""
    found: dict[str, str] = {}
    for language in languages():
        listed = catalogue(language).get("language.switch_words", "")
        for word in listed.split(","):
            folded = fold(word).strip()
            if folded and " " not in folded:
                found.setdefault(folded, language)
    return found


def switch_word(language: str) -> str:
    """The first word that switches to ``language`` (as a chat app's button types it)."""
    listed = catalogue(language).get("language.switch_words", "")
    return listed.split(",")[0].strip()


def other_languages(language: str) -> tuple[str, ...]:
    """The languages a resident reading ``language`` may be offered, French first."""
    return tuple(other for other in languages() if other != language)


def next_language(language: str) -> str:
    """The language after ``language`` in catalogue order, French after the last: what one
    key press on the answering machine switches to (with two languages, the other one)."""
    found = languages()
    if language not in found:
        return found[1] if len(found) > 1 else DEFAULT_LANGUAGE
    return found[(found.index(language) + 1) % len(found)]


def reload() -> None:
    """Forget what was read from ``LOCALES`` (after a test changes it)."""
    for cached in (catalogue, languages, switch_words):
        cached.cache_clear()
