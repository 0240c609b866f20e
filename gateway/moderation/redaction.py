"""Suggested redactions: what to hide in a resident's contribution before it is published.

Residents sign their messages, give their number "to be called back" or say where they live.
None of that belongs on a public page. ``suggest`` finds the spans a moderator would hide
(phone numbers, e-mail addresses, street addresses, names after an introduction) and
``apply`` replaces them with a placeholder such as "[téléphone]".

These are suggestions for a human, tuned French first: a missed span is worse than a span too
many, but hiding ordinary words ("je suis contre", "en 2024", "ligne 12") would make
moderators stop trusting them. Offsets are Python string indices (code points), so an emoji
counts as one character.

Linear time on any text: the console runs ``suggest`` on every contribution page and the live
board on every change, so a contribution of 200 KB of "12 rue " must not hold the interpreter
for seconds. Quantifiers that could give back what the next part of a pattern also matches
are possessive, and overlapping detections are resolved by one sorted sweep per kind.
"""

from __future__ import annotations

import heapq
import itertools
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

# A domain label: letters or digits, with "-" or "_" only between them.
_LABEL = r"[^\W_]++(?:[_\-]++[^\W_]++)*+"
_EMAIL = re.compile(rf"(?<![\w.+\-])[\w.+\-]++@{_LABEL}(?:\.{_LABEL})++")
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
    rf"(?<!\w)\d{{1,4}}(?:[ \t]?(?:bis|ter|quater)|[a-d])?(?!\w)[ \t]*+,?+[ \t]*+"
    rf"(?P<type>{_STREET_TYPES})(?!\w)",
    re.IGNORECASE,
)
# Street types that are also common words ("2 cours de yoga", "3 place de parking"): only an
# address when the name after them is capitalised ("cours Mirabeau", "place de la Mairie").
_AMBIGUOUS_TYPES = frozenset({"cours", "place", "route", "square"})
_ENGLISH_ADDRESS = re.compile(
    r"(?<!\w)\d{1,5}[a-dA-D]?(?:[ \t]++[A-Z][\w'’\-]*+){1,4}[ \t]++"
    r"(?:Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Drive|Way|Close|Court|Crescent|Terrace)"
    r"(?![\w])"
)
# Letter runs are atomic (a shorter run is followed by a letter, which the look-ahead refuses);
# the hyphenated parts may still be given back ("Jean-Pierre1": "Jean" is a word).
_STREET_WORD = re.compile(r"[ \t]++((?:[ldLD]['’])?[^\W\d_]++(?:-[^\W\d_]++)*|\d{1,4})(?![\w'’])")
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
        elided = len(word) >= 2 and word[0] in "ldLD" and word[1] in "'’"
        folded = fold(word)
        if folded in _STREET_CONNECTORS or word.isdigit():
            # Kept only if a name follows: "rue du 8 Mai", not "12 rue de".
            position = match.end()
            continue
        if (folded[2:] if elided else folded) in _AFTER_STREET:
            break
        capitalised = word[2 if elided else 0].isupper()
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


def _addresses(text: str, kept: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """The address spans to hide: sorted, overlapping neither ``kept`` nor each other.

    The same choice as sorting every detected address and sweeping (``_add_without_overlap``),
    without reading the street name of an address that starts inside one already taken: it
    would be dropped whatever its end, and in a list ("12 rue 12 rue 12 rue…") reading them
    all made most of the work.
    """
    french = ((m.start(), m) for m in _FRENCH_ADDRESS.finditer(text))
    english = ((m.start(), m) for m in _ENGLISH_ADDRESS.finditer(text))
    taken: list[tuple[int, int]] = []
    last_end = -1
    index = 0  # the first kept span that ends after the current start
    for start, same_start in itertools.groupby(
        heapq.merge(french, english, key=lambda item: item[0]), key=lambda item: item[0]
    ):
        if start < last_end:
            continue  # inside an address taken: dropped whatever its end
        ends: list[int] = []
        for _, match in same_start:
            if match.re is _ENGLISH_ADDRESS:
                ends.append(match.end())
                continue
            street_type = fold(match.group("type")).rstrip(".")
            end = _street_end(text, match.end(), street_type)
            if end is not None:
                ends.append(end)
        while index < len(kept) and kept[index][1] <= start:
            index += 1
        for end in sorted(ends):
            if start < last_end or (index < len(kept) and kept[index][0] < end):
                continue
            taken.append((start, end))
            last_end = end
    return taken


# --- names after an introduction --------------------------------------------------------

_STRONG_INTRODUCTIONS = re.compile(
    r"\b(?:je\s++m['’]\s*+appelle|je\s++me\s++nomme|mon\s++nom\s++(?:est|c['’]est)"
    # "moi c'est", "moi, c'est", "moi , c'est" (not "moi\s*,?\s+", quadratic on spaces)
    r"|moi(?:\s++|\s*+,\s++)c['’]est|sign[ée]e?|my\s++name\s++is)\b",
    re.IGNORECASE,
)
# "Je suis" and "I am" introduce far more opinions than names: see _weak_introductions.
_WEAK_INTRODUCTIONS = re.compile(r"\b(?:je\s++suis|i\s++am|i['’]m)\b", re.IGNORECASE)
_BEFORE_NAME = re.compile(r"[ \t]*+[:\-–—]?+[ \t]*+\n?+[ \t]*+")
_NAME_WORD = re.compile(r"[^\W\d_]++(?:-[^\W\d_]++)*+")
_ELIDED_PARTICLE = re.compile(r"[dD]['’](?=[^\W\d_])")
_BETWEEN_NAME_WORDS = re.compile(r"[ \t]++")
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
    emails = [(m.start(), m.end()) for m in _EMAIL.finditer(text)]
    phones = [
        (m.start(), m.end())
        for m in _PHONE.finditer(text)
        if _MIN_PHONE_DIGITS <= _phone_digits(m.group(0)) <= _MAX_PHONE_DIGITS
    ]
    kept: list[tuple[int, int, str]] = []  # sorted by start, never overlapping
    kept = _add_without_overlap(kept, emails, "email")
    kept = _add_without_overlap(kept, sorted(phones), "phone")
    kept = _add_without_overlap(kept, _addresses(text, kept), "address")
    kept = _add_without_overlap(kept, sorted(_names(text)), "name")
    return [Redaction(start, end, kind, text[start:end]) for start, end, kind in kept]


def _add_without_overlap(
    kept: list[tuple[int, int, str]], spans: list[tuple[int, int]], kind: str
) -> list[tuple[int, int, str]]:
    """``kept`` plus each of ``spans`` (sorted) that overlaps neither ``kept`` nor a span of
    ``spans`` taken before it; sorted by start.

    One sweep, not a comparison of every span with every kept one (quadratic: 30,000
    addresses took seconds). ``kept`` never overlaps itself, so its ends rise with its starts,
    and the only kept span a new one can overlap is the first that ends after it starts.
    """
    added: list[tuple[int, int, str]] = []
    index = 0
    last_end = -1  # the end of the last span of this kind taken
    for start, end in spans:
        while index < len(kept) and kept[index][1] <= start:
            index += 1
        if start < last_end or (index < len(kept) and kept[index][0] < end):
            continue
        added.append((start, end, kind))
        last_end = end
    return list(heapq.merge(kept, added))


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
