"""Suggested redactions: what to hide in a resident's contribution before it is published.

Residents sign their messages, give their number "to be called back" or say where they live.
None of that belongs on a public page. ``suggest`` finds the spans a moderator would hide
(phone numbers, e-mail addresses, street addresses, names after an introduction) and
``apply`` replaces them with a placeholder such as "[téléphone]".

These are suggestions for a human, tuned French first: a missed span is worse than a span too
many, but hiding ordinary words ("je suis contre", "en 2024", "ligne 12") would make
moderators stop trusting them. Offsets are Python string indices (code points), so an emoji
counts as one character.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.i18n import translate
from gateway.textnorm import fold

KINDS = ("email", "phone", "address", "name")


def placeholder(kind: str, language: str = "fr") -> str:
    """The marker that replaces a redacted span in the public version ("[téléphone]"), from
    the message catalogue (``redaction.<kind>``) in the contribution's language."""
    return translate(f"redaction.{kind}", language)


@dataclass(frozen=True)
class Redaction:
    """A span of the text to hide: ``text[start:end] == self.text``."""

    start: int
    end: int
    kind: str
    text: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown redaction kind {self.kind!r}")
        if not 0 <= self.start < self.end or self.end - self.start != len(self.text):
            raise ValueError(f"bad redaction span {self.start}..{self.end}")


# --- e-mail addresses and phone numbers -------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+\-])[\w.+\-]+@[^\W_](?:[\w\-]*[^\W_])?(?:\.[^\W_](?:[\w\-]*[^\W_])?)+",
)
# French numbers written the usual ways (06 12 34 56 78, 06.12.34.56.78, 0612345678,
# +33 6 12 34 56 78, 0033 6...), then any international number; _phone_digits then keeps
# only spans with 8 to 15 digits, so years and amounts are never taken for numbers.
_PHONE = re.compile(
    r"""
    (?<![\w+])
    (?:
        (?:\+|00)33[ .\-]?(?:\(0\)[ .\-]?)?[1-9](?:[ .\-]?\d{2}){4}
      | 0[1-9](?P<b>[ .\-]?)\d{2}(?:(?P=b)\d{2}){3}
      | (?:\+|00)[1-9](?:[ .\-]?\d){7,14}
    )
    (?![\w@])
    """,
    re.VERBOSE,
)
_MIN_PHONE_DIGITS = 8
_MAX_PHONE_DIGITS = 15


def _phone_digits(span: str) -> int:
    digits = sum(ch.isdigit() for ch in span)
    # "00" is a dialling prefix, not part of the E.164 number.
    return digits - 2 if span.startswith("00") else digits


# --- street addresses -------------------------------------------------------------------

_STREET_TYPES = (
    r"rue|avenue|av\.|av|ave\.|ave|boulevard|bd\.|bd|bvd|blvd|all[ée]e|impasse|place|chemin"
    r"|route|quai|cours|square|r[ée]sidence"
)
_FRENCH_ADDRESS = re.compile(
    rf"(?<!\w)\d{{1,4}}(?:[ \t]?(?:bis|ter|quater)|[a-d])?(?!\w)[ \t]*,?[ \t]*"
    rf"(?P<type>{_STREET_TYPES})(?!\w)",
    re.IGNORECASE,
)
# Street types that are also common words ("2 cours de yoga", "3 place de parking"): only an
# address when the name after them is capitalised ("cours Mirabeau", "place de la Mairie").
_AMBIGUOUS_TYPES = frozenset({"cours", "place", "route", "square"})
_ENGLISH_ADDRESS = re.compile(
    r"(?<!\w)\d{1,5}[a-dA-D]?(?:[ \t]+[A-Z][\w'’\-]*){1,4}[ \t]+"
    r"(?:Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Drive|Way|Close|Court|Crescent|Terrace)"
    r"(?![\w])"
)
_STREET_WORD = re.compile(r"[ \t]+((?:[ldLD]['’])?[^\W\d_]+(?:-[^\W\d_]+)*|\d{1,4})(?![\w'’])")
_STREET_CONNECTORS = frozenset({"de", "du", "des", "la", "le", "les", "l", "d", "aux", "au"})
# Words that end a street name: the sentence goes on after the address.
_AFTER_STREET = frozenset(
    """
    il elle ils elles on y a est sont c ce cet cette ces ca qui que quoi et ou mais donc car
    pour par avec sans dans je j tu nous vous ne n pas plus tres trop depuis devant derriere
    pres merci svp stp bonjour me se mon ma mes notre nos son sa ses leur leurs tous tout toute
    toutes quand comme si aussi encore deja jamais toujours ont avait etait sera fait faut
    peut doit manque vers entre chez apres avant
    the is are and or but for with in on at it there we i please thanks near next
    """.split()
)
_MAX_STREET_WORDS = 6


def _street_end(text: str, start: int, street_type: str) -> int | None:
    """Where the street name after ``text[:start]`` ends, or None without a name."""
    end: int | None = None
    first_capitalised: bool | None = None
    position = start
    for _ in range(_MAX_STREET_WORDS):
        match = _STREET_WORD.match(text, position)
        if match is None:
            break
        word = match.group(1)
        core = re.sub(r"^[ldLD]['’]", "", word)
        folded = fold(word)
        if folded in _STREET_CONNECTORS or word.isdigit():
            # Kept only if a name follows: "rue du 8 Mai", not "12 rue de".
            position = match.end()
            continue
        if fold(core) in _AFTER_STREET:
            break
        capitalised = core[0].isupper()
        if first_capitalised is None:
            if not capitalised and street_type in _AMBIGUOUS_TYPES:
                return None
            first_capitalised = capitalised
        elif not capitalised and first_capitalised:
            # Someone who capitalises "Lilas" also capitalises the rest of the street name.
            break
        end = match.end()
        position = match.end()
    return end


def _addresses(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _FRENCH_ADDRESS.finditer(text):
        street_type = fold(match.group("type")).rstrip(".")
        end = _street_end(text, match.end(), street_type)
        if end is not None:
            spans.append((match.start(), end))
    spans.extend((m.start(), m.end()) for m in _ENGLISH_ADDRESS.finditer(text))
    return spans


# --- names after an introduction --------------------------------------------------------

_STRONG_INTRODUCTIONS = re.compile(
    r"\b(?:je\s+m['’]\s*appelle|je\s+me\s+nomme|mon\s+nom\s+(?:est|c['’]est)"
    r"|moi\s*,?\s+c['’]est|sign[ée]e?|my\s+name\s+is)\b",
    re.IGNORECASE,
)
# "Je suis" and "I am" introduce far more opinions than names: see _weak_introductions.
_WEAK_INTRODUCTIONS = re.compile(r"\b(?:je\s+suis|i\s+am|i['’]m)\b", re.IGNORECASE)
_BEFORE_NAME = re.compile(r"[ \t]*[:\-–—]?[ \t]*\n?[ \t]*")
_NAME_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_ELIDED_PARTICLE = re.compile(r"[dD]['’](?=[^\W\d_])")
_BETWEEN_NAME_WORDS = re.compile(r"[ \t]+")
_PARTICLES = frozenset({"de", "du", "des", "le", "la", "van", "von", "da", "di", "del"})
# Capitalised words that follow an introduction without being a name, mostly from messages
# typed in capitals ("JE SUIS CONTRE", "MOI C'EST NON").
_NOT_NAMES = frozenset(
    """
    contre pour pas tres trop plus assez vraiment tout toute tous accord daccord favorable
    defavorable content contente ravi ravie desole desolee habitant habitante riverain
    riveraine parent maman papa mere pere retraite retraitee etudiant etudiante ici un une
    des en a au aux et ou mais donc ne n j je il elle on nous vous c ca qui que merci bonjour
    svp oui non sur dans avec sans
    the an not against for and or very so in from at here happy sorry ok okay yes no
    """.split()
)
_MAX_NAME_WORDS = 3


def _name_span(text: str, after_introduction: int) -> tuple[int, int] | None:
    """The name of 1 to 3 capitalised words right after an introduction, if there is one."""
    before = _BEFORE_NAME.match(text, after_introduction)
    start = position = before.end() if before else after_introduction
    names = 0
    end: int | None = None
    while names < _MAX_NAME_WORDS:
        if names and (particle := _ELIDED_PARTICLE.match(text, position)):
            position = particle.end()  # "Giscard d'Estaing": the name goes on
            continue
        match = _NAME_WORD.match(text, position)
        if match is None or text.startswith(("'", "’"), match.end()):
            break  # "Marie J'habite": an elided pronoun starts the next sentence
        word = match.group(0)
        folded = fold(word)
        if folded in _PARTICLES and (names or word[0].isupper()):
            pass  # "Marie de La Tour", "Le Goff": kept only if a name word follows
        elif word[0].isupper() and folded not in _NOT_NAMES:
            names += 1
            end = match.end()
        else:
            break
        gap = _BETWEEN_NAME_WORDS.match(text, match.end())
        if gap is None:
            break
        position = gap.end()
    return (start, end) if end is not None else None


def _names(text: str) -> list[tuple[int, int]]:
    introductions = list(_STRONG_INTRODUCTIONS.finditer(text))
    # In a message typed in capitals nothing tells "JE SUIS MARIE" from "JE SUIS CONTENT".
    introductions += [m for m in _WEAK_INTRODUCTIONS.finditer(text) if not m.group(0).isupper()]
    spans = (_name_span(text, m.end()) for m in introductions)
    return [span for span in spans if span is not None]


# --- public API -------------------------------------------------------------------------


def suggest(text: str) -> list[Redaction]:
    """The spans a moderator would hide before publishing ``text``, sorted, never overlapping.

    Where two detections overlap, the more certain kind wins: e-mail, then phone, address, name.
    """
    found: dict[str, list[tuple[int, int]]] = {
        "email": [(m.start(), m.end()) for m in _EMAIL.finditer(text)],
        "phone": [
            (m.start(), m.end())
            for m in _PHONE.finditer(text)
            if _MIN_PHONE_DIGITS <= _phone_digits(m.group(0)) <= _MAX_PHONE_DIGITS
        ],
        "address": _addresses(text),
        "name": _names(text),
    }
    kept: list[Redaction] = []
    for kind in KINDS:
        for start, end in sorted(found[kind]):
            if any(start < other.end and other.start < end for other in kept):
                continue
            kept.append(Redaction(start, end, kind, text[start:end]))
    return sorted(kept, key=lambda r: r.start)


def apply(text: str, redactions: Sequence[Redaction] | None = None, language: str = "fr") -> str:
    """``text`` with each span replaced by its placeholder in ``language`` (French if unknown).

    Without ``redactions``, the suggested ones are applied. Raises ValueError if a span does
    not fit ``text`` (computed on another version of it) or if two spans overlap.
    """
    if redactions is None:
        redactions = suggest(text)
    parts: list[str] = []
    position = 0
    for redaction in sorted(redactions, key=lambda r: r.start):
        if redaction.start < position:
            raise ValueError(f"overlapping redactions at {redaction.start}")
        if text[redaction.start : redaction.end] != redaction.text:
            raise ValueError(f"redaction {redaction.start}..{redaction.end} does not fit the text")
        parts.append(text[position : redaction.start])
        parts.append(placeholder(redaction.kind, language))
        position = redaction.end
    parts.append(text[position:])
    return "".join(parts)
