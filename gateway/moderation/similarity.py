"""Identical and near-identical texts: the tract that many residents copy and send.

A group lets moderators decide once for a hundred copies, and lets the dashboard count a
tract as what it is. Copies differ by case, accents, punctuation, an emoji, a changed word,
a signature: ``normalise`` erases the first differences, ``similarity`` measures the rest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from difflib import SequenceMatcher

from gateway.textnorm import fold

# At 0.85 a copy still groups with a word replaced (0.98 on a 240-character tract) or with a
# signature of up to a third of the tract's length appended (2L / (2L + s) >= 0.85), while
# two residents' own proposals on one theme, written in their own words with the same
# vocabulary ("des bancs au parc de la Tête d'Or"), score around 0.45 to 0.65. Lower values
# start merging distinct proposals that reuse a tract's opening sentence.
THRESHOLD = 0.85

# One changed word turns a short text into another opinion ("plus de bancs" and "pas de
# bancs" score 0.88), and short answers ("oui", "d'accord") are not tracts: below this many
# normalised characters, only identical texts group.
MIN_LENGTH = 20

_NOT_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Lower case, without accents, punctuation or emoji, words separated by single spaces."""
    return _NOT_WORD.sub(" ", fold(text)).strip()


def fingerprint(text: str) -> str:
    """A short hash identical for texts that normalise alike; "" for a text with no words."""
    normalised = normalise(text)
    if not normalised:
        return ""
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:32]


def _ratio(matcher: SequenceMatcher[str], cutoff: float) -> float:
    # Each bound is cheaper than the next and never below the true ratio, so a pair that
    # fails one cannot reach the cutoff: very different texts never get to ratio().
    if matcher.real_quick_ratio() < cutoff or matcher.quick_ratio() < cutoff:
        return 0.0
    ratio = matcher.ratio()
    return ratio if ratio >= cutoff else 0.0


def _matcher() -> SequenceMatcher[str]:
    # autojunk would treat every frequent letter of a text over 200 characters as noise,
    # which is most of a French text: the ratio of two copies would fall.
    return SequenceMatcher(None, autojunk=False)


def similarity(a: str, b: str, *, cutoff: float = THRESHOLD) -> float:
    """How alike two texts are once normalised, from 0 (nothing shared) to 1 (identical).

    Below ``cutoff`` the answer is 0.0: the exact figure would cost a full comparison that no
    caller deciding about a group needs. Pass ``cutoff=0`` for the exact ratio of any pair.
    Texts with no words are similar to nothing, not even to each other.
    """
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    matcher = _matcher()
    matcher.set_seqs(na, nb)
    return _ratio(matcher, cutoff)


def find_group(
    text: str, candidates: Iterable[tuple[int, str]], threshold: float = THRESHOLD
) -> int | None:
    """The group whose representative text ``text`` copies, or None for a text of its own.

    ``candidates`` are (group id, representative text) pairs. An identical text (after
    normalisation) wins at once; otherwise the most similar at or above ``threshold``, the
    first one listed on a tie. Short texts (under MIN_LENGTH) only join identical ones.
    """
    normalised = normalise(text)
    if not normalised:
        return None
    short = len(normalised) < MIN_LENGTH
    matcher = _matcher()
    # SequenceMatcher indexes its second sequence: index the new text once for all candidates.
    matcher.set_seq2(normalised)
    best_id: int | None = None
    best_score = 0.0
    for group_id, representative in candidates:
        other = normalise(representative)
        if other == normalised:
            return group_id
        if short or len(other) < MIN_LENGTH:
            continue
        matcher.set_seq1(other)
        score = _ratio(matcher, threshold)
        if score > best_score:
            best_id, best_score = group_id, score
    return best_id
