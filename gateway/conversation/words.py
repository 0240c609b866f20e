"""The engine's vocabulary and how a resident's words are read.

The command words (folded: STOP and the providers' opt-out words, START, AIDE, INFO, SUIVI,
OUBLIER, GROUPE, the languages (from the catalogues), the skip and politeness words), which of
them count only as the whole message, and the matching of text: whether a message is a
command, a menu's number, a contribution's reference typed loosely ("parc-42"), and a
resident's words cut short to be quoted back. Everything here is a function of text alone (and
of the catalogues' switch words, read once).
"""

from __future__ import annotations

import re

from gateway.i18n import switch_words
from gateway.textnorm import fold, words

# Command words, folded. The SMS providers' standard opt-out and opt-in words are
# included because the provider acts on them for the number whatever the gateway does.
OPT_OUT_WORDS = frozenset(
    {
        "stop",
        "arret",
        "arreter",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "optout",
        "revoke",
    }
)
OPT_IN_WORDS = frozenset({"start", "reprendre", "unstop"})
# "yes" re-subscribes at the SMS provider, so it must here too; but only when opted out,
# since otherwise it is an ordinary answer.
OPT_IN_WORDS_WHEN_OPTED_OUT = OPT_IN_WORDS | {"yes"}
HELP_WORDS = frozenset({"aide", "help"})
# Announcements (gateway.announcements): INFO asks for them, INFO STOP (or STOP INFO) ends
# them alone; STOP ends everything, them included.
ANNOUNCE_WORDS = frozenset({"info", "infos", "news"})
FOLLOW_UP_WORDS = frozenset({"suivi", "status", "statut"})
FORGET_WORDS = frozenset({"oublier", "forget"})
GROUP_WORDS = frozenset({"groupe", "group"})
SKIP_WORDS = frozenset({"0", "passer", "non", "aucun", "aucune", "rien", "skip", "no", "none"})
# Allowed after a command that must stand alone: "STOP merci", "aide svp".
POLITE_WORDS = frozenset(
    {
        "merci",
        "svp",
        "stp",
        "please",
        "pls",
        "thanks",
        "thank",
        "you",
        "il",
        "vous",
        "plait",
        "beaucoup",
        "bcp",
    }
)
# Commands that count only when they are the whole message (and the languages' words).
STANDALONE_WORDS = (
    OPT_OUT_WORDS | OPT_IN_WORDS_WHEN_OPTED_OUT | HELP_WORDS | ANNOUNCE_WORDS | FORGET_WORDS
)


def language_word(word: str) -> str | None:
    """The language a (folded) word switches to, or None. The words are each catalogue's
    ``language.switch_words`` (gateway.i18n.switch_words), so a new catalogue file brings
    its own ("ESPAÑOL")."""
    return switch_words().get(word)


ECHO_LENGTH = 40  # a resident's words quoted back in a reply are cut to this (SMS cost)

# Possessive quantifiers: letters, separators and digits never overlap, so giving any back
# cannot help a match. The old pattern ("0*(\d+)") backtracked over every split of a digit run:
# quadratic time, under the interpreter lock, on "SUIVI 000…0a".
_REFERENCE = re.compile(r"([a-z]++)?[\s\-_#/.]*+(\d++)")
# A reference is a campaign prefix (at most 12 letters), a dash and a few digits; a resident
# may add spaces ("PARC - 0042"). Anything longer is words, not a reference.
MAX_REFERENCE_LENGTH = 40
# No menu lists 10,000 options: a longer number is out of range, whatever it says (and int()
# refuses numbers of more than 4,300 digits).
MAX_MENU_DIGITS = 4
_NON_WORD = re.compile(r"[\W_]+")


def _parse_reference(text: str) -> tuple[str | None, int] | None:
    text = text.strip()
    if len(text) > MAX_REFERENCE_LENGTH:
        return None
    match = _REFERENCE.fullmatch(fold(text).strip())
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def looks_like_reference(text: str) -> bool:
    """One short word, or a keyword and a number ("PARC 42"): worth looking up."""
    if len(text.strip()) > MAX_REFERENCE_LENGTH:
        return False
    return len(text.split()) == 1 or _parse_reference(text) is not None


def same_reference(typed: str, reference: str) -> bool:
    """Forgiving comparison: "parc-42", "PARC 0042" and "42" all name PARC-0042."""
    if _NON_WORD.sub("", fold(typed)) == _NON_WORD.sub("", fold(reference)):
        return True
    wanted, actual = _parse_reference(typed), _parse_reference(reference)
    if wanted is None or actual is None:
        return False
    return wanted[1] == actual[1] and (wanted[0] is None or wanted[0] == actual[0])


def is_command(word: str, rest: str) -> bool:
    """Whether a message is a command rather than a contribution, as ``machine`` reads it."""
    standalone = word in STANDALONE_WORDS or language_word(word) is not None
    if word in GROUP_WORDS or (standalone and only_polite(rest)):
        return True
    if announcements_request(word, rest) is not None:
        return True
    return word in FOLLOW_UP_WORDS and (not rest or looks_like_reference(rest))


def menu_number(word: str) -> int | None:
    """The number a word is, for a menu's answer ("2", "02", "２"); None if it is not one.

    ``isdecimal``, not ``isdigit``: the Ethiopic "፩" is a digit to ``isdigit`` (folding
    leaves it as it is) but ``int`` refuses it.
    """
    if not word.isdecimal():
        return None
    significant = word.lstrip("0")
    if len(significant) > MAX_MENU_DIGITS:
        return 10**MAX_MENU_DIGITS  # beyond any menu
    return int(significant or "0")


def announcements_request(word: str, rest: str) -> bool | None:
    """What a message asks of announcements: True for INFO (alone, or with politeness), False
    for INFO STOP or STOP INFO, None when it is about something else."""
    if word in ANNOUNCE_WORDS:
        if only_polite(rest):
            return True
        said = words(rest)
        if said and said[0] in OPT_OUT_WORDS and only_polite(" ".join(said[1:])):
            return False
        return None
    if word in OPT_OUT_WORDS:
        said = words(rest)
        if said and said[0] in ANNOUNCE_WORDS and only_polite(" ".join(said[1:])):
            return False
    return None


def only_polite(rest: str) -> bool:
    return all(word in POLITE_WORDS for word in words(rest))


def echo(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ECHO_LENGTH else text[: ECHO_LENGTH - 1].rstrip() + "…"
