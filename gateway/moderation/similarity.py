"""Identical and near-identical texts: the tract that many residents copy and send.

A group lets moderators decide once for a hundred copies, and lets the dashboard count a
tract as what it is. Copies differ by case, accents, punctuation, an emoji, a changed word,
a signature: ``normalise`` erases the first differences, ``similarity`` measures the rest.

Two measures, by length. Up to ``EXACT_LENGTH`` normalised characters on both sides (every
tract seen so far, and nearly every contribution), the ratio of ``difflib.SequenceMatcher``:
twice the characters the two texts have in common, in order, over their total length. Its cost
grows with the product of the lengths (two 20 KB texts took 10 s, with the interpreter lock
held), so longer texts, and comparisons once ``EXACT_WORK`` is spent on one new text, use the
Dice coefficient of their character 8-grams (twice the 8-character pieces they share, counted
with repeats, over the pieces of both): linear, and within a few hundredths of the ratio on
copies, edited copies, signed copies and different proposals alike, so ``THRESHOLD`` means the
same. Unlike the ratio it does not see order beyond 8 characters: a tract with its sentences
shuffled still groups with the tract, which is what a moderator would do with it too.
Comparing bounded prefixes instead would have been cheaper still but blind to what differs
after them: letters that share a long template opening and then say different things would
have been grouped.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
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

# Longer normalised texts are compared by 8-gram Dice, not by SequenceMatcher (see above). At
# this length one exact comparison costs at most some 30 ms, typically 7 ms.
EXACT_LENGTH = 1000
# Exact comparisons for one new text stop at this many character pairs (the sum of the
# products of the lengths compared, some 0.15 s at worst): a campaign with hundreds of long
# leaders must not make filing one contribution take seconds.
EXACT_WORK = 4_000_000
GRAM = 8

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


def _length_bound(a: int, b: int) -> float:
    """The best either measure can give two texts of these lengths (what is not in the shorter
    text cannot be shared)."""
    return 2.0 * min(a, b) / (a + b)


def _grams(text: str) -> Counter[str]:
    return Counter(text[i : i + GRAM] for i in range(max(len(text) - GRAM + 1, 1)))


def _dice(a: Counter[str], b: Counter[str], cutoff: float) -> float:
    total = a.total() + b.total()
    shared = (a & b).total() if len(a) <= len(b) else (b & a).total()
    score = 2.0 * shared / total
    return score if score >= cutoff else 0.0


def _exact(a: str, b: str) -> bool:
    return len(a) <= EXACT_LENGTH and len(b) <= EXACT_LENGTH


def _matcher() -> SequenceMatcher[str]:
    # autojunk would treat every frequent letter of a text over 200 characters as noise,
    # which is most of a French text: the ratio of two copies would fall.
    return SequenceMatcher(None, autojunk=False)


def similarity(a: str, b: str, *, cutoff: float = THRESHOLD) -> float:
    """How alike two texts are once normalised, from 0 (nothing shared) to 1 (identical).

    Below ``cutoff`` the answer is 0.0: the exact figure would cost a full comparison that no
    caller deciding about a group needs. Pass ``cutoff=0`` for the exact figure of any pair:
    the ratio up to ``EXACT_LENGTH``, the 8-gram Dice coefficient beyond (see the module doc).
    Texts with no words are similar to nothing, not even to each other.
    """
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    if not _exact(na, nb):
        if _length_bound(len(na), len(nb)) < cutoff:
            return 0.0
        return _dice(_grams(na), _grams(nb), cutoff)
    matcher = _matcher()
    matcher.set_seqs(na, nb)
    return _ratio(matcher, cutoff)


def find_group(
    text: str, candidates: Iterable[tuple[int, str]], threshold: float = THRESHOLD
) -> int | None:
    """The group whose representative text ``text`` copies, or None for a text of its own.

    ``candidates`` are (group id, representative text) pairs. An identical text (after
    normalisation) wins at once; otherwise the most similar at or above ``threshold``, the
    first one listed on a tie. Short texts (under MIN_LENGTH) only join identical ones. Long
    texts, and every comparison after ``EXACT_WORK``, are measured by 8-gram Dice (module doc).
    """
    normalised = normalise(text)
    if not normalised:
        return None
    short = len(normalised) < MIN_LENGTH
    matcher: SequenceMatcher[str] | None = None
    grams: Counter[str] | None = None
    work_left = EXACT_WORK
    best_id: int | None = None
    best_score = 0.0
    for group_id, representative in candidates:
        other = normalise(representative)
        if other == normalised:
            return group_id
        if short or len(other) < MIN_LENGTH:
            continue
        if _length_bound(len(normalised), len(other)) < threshold:
            continue
        work = len(normalised) * len(other)
        if _exact(normalised, other) and work <= work_left:
            work_left -= work
            if matcher is None:
                matcher = _matcher()
                # SequenceMatcher indexes its second sequence: index the new text once.
                matcher.set_seq2(normalised)
            matcher.set_seq1(other)
            score = _ratio(matcher, threshold)
        else:
            if grams is None:
                grams = _grams(normalised)
            score = _dice(grams, _grams(other), threshold)
        if score > best_score:
            best_id, best_score = group_id, score
    return best_id
