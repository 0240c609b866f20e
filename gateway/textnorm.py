"""Text normalisation shared by everything that reads what residents type.

Residents write from phones: upper or lower case, with or without accents
(many keyboards make accents awkward), with a colon or a comma stuck to the
first word. Matching must forgive all of that, with the standard library only.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence

# NFKD leaves these letters whole, so they would never match their spelled-out form.
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
# Elided articles ("l'université", "d'Abord") glue to the word that follows.
_ELISION = re.compile(r"\b[ldjcnmst]['’]", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+")
# Words that carry no meaning when someone names a place or a campaign.
_FILLERS = frozenset({"le", "la", "les", "l", "du", "de", "des", "d", "au", "aux", "the", "of"})


def clean(text: str) -> str:
    """Drop control characters (a broken phone can send them) and surrounding blanks.

    Line breaks and tabs stay: they are part of what the resident wrote.
    """
    return drop_controls(text).strip()


def drop_controls(text: str) -> str:
    """``text`` without its control characters (NUL, which PostgreSQL refuses and XML cannot
    carry; a carriage return; escapes), line breaks and tabs kept: what a moderator or an
    admin types or pastes in the console or sends to the API."""
    return "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs")
    )


def fold(text: str) -> str:
    """Lower case without accents: "ARRÊT", "arret" and "Arrêt" all give "arret"."""
    if text.isascii():  # nothing to decompose: the common case, several times faster
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.casefold()


def token(word: str) -> str:
    """A word as a command or keyword: folded, with punctuation around it removed.

    Punctuation inside stays, so a reference such as "PARC-0042" survives.
    """
    folded = fold(word)
    start, end = 0, len(folded)
    while start < end and not folded[start].isalnum():
        start += 1
    while end > start and not folded[end - 1].isalnum():
        end -= 1
    return folded[start:end]


# A word is a run of anything but blanks and the punctuation people glue to it.
_WORD = re.compile(r"[^\s:;,!?]++")
_SEPARATORS = re.compile(r"[\s:;,!?]*+")


def split_first_word(text: str) -> tuple[str, str]:
    """The first meaningful word as a token, and the rest of the text as written.

    A stray leading dash or quote is skipped; "Parc: des bancs" and "parc, des
    bancs" both give ("parc", "des bancs").

    Linear in the length of the text: the words are walked by position, and the rest is
    sliced once (copying the rest after each skipped dash made 1 MB of "- " take seconds).
    """
    for match in _WORD.finditer(text):
        word = token(match.group())
        if word:
            after = _SEPARATORS.match(text, match.end())
            rest = text[after.end() :] if after else text[match.end() :]
            return word, rest.strip()
    return "", ""


def words(text: str) -> list[str]:
    """The meaningful words of a short answer, folded, without articles."""
    unglued = _ELISION.sub(" ", fold(text))
    return [w for w in _NON_WORD.split(unglued) if w and w not in _FILLERS]


MAX_ANSWER_CHARS = 200  # an answer naming a menu's option ("Budget participatif, merci")


def best_match(answer: str, options: Sequence[str], *, max_words: int = 5) -> int | None:
    """Index of the option a short free answer most plausibly names, or None.

    Tries, in order: the same words; one side's words all contained in the
    other's ("centre ville" names "Centre"); every word a beginning of the
    option's words ("univ"); then a close spelling (difflib).
    An answer that could name two options names none: a wrong guess would
    misfile a contribution. Long answers are content, not a choice: more than
    ``max_words`` words, or more than ``MAX_ANSWER_CHARS`` characters (difflib's
    cost grows with the length, a megabyte took a second).
    """
    if len(answer) > MAX_ANSWER_CHARS:
        return None
    answer_words = words(answer)
    if not answer_words or len(answer_words) > max_words:
        return None
    option_words = [words(option) for option in options]
    joined = " ".join(answer_words)

    exact = [i for i, ow in enumerate(option_words) if ow and " ".join(ow) == joined]
    if len(exact) == 1:
        return exact[0]
    if exact:
        return None

    contained = [
        i
        for i, ow in enumerate(option_words)
        if ow and (set(ow) <= set(answer_words) or set(answer_words) <= set(ow))
    ]
    if len(contained) == 1:
        return contained[0]
    if contained:
        return None

    # "univ" for "Université": people shorten long names.
    prefixed = [
        i
        for i, ow in enumerate(option_words)
        if ow and all(len(a) >= 3 and any(w.startswith(a) for w in ow) for a in answer_words)
    ]
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        return None

    scores = [
        difflib.SequenceMatcher(None, joined, " ".join(ow)).ratio() if ow else 0.0
        for ow in option_words
    ]
    best = max(range(len(options)), key=scores.__getitem__, default=None)
    if best is None or scores[best] < 0.8:
        return None
    # A near tie means the spelling does not tell the options apart.
    if sum(1 for score in scores if score >= scores[best] - 0.05) > 1:
        return None
    return best
