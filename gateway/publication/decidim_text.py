"""A contribution as a Decidim proposal: a title and a body that pass Decidim's validation.

The one place where Decidim's rules live: the import files (``decidim_files``) and direct
publication (``decidim_api``) both build their titles and bodies here and check them with
``validation_errors``. Decidim refuses a proposal whose title or body breaks its rules (an
import file is refused whole for one bad row), and says so only after the request: checking
here first means a contribution that cannot pass is listed with the reason instead of sent.

The rules, as Decidim's source has them, the strictest across the versions the gateway
serves (0.24 and later):

- ``decidim-proposals/app/forms/decidim/proposals/proposal_wizard_create_step_form.rb``,
  ``proposal_form.rb`` and ``admin/proposal_form.rb``: title and body present, title at most
  150 characters, body at most the component's ``proposal_length`` setting (500 unless the
  administrator changed it; direct publication goes through these forms, the import files do
  not, so the files are not cut);
- ``decidim-core/app/validators/etiquette_validator.rb``, applied to the title and the body:
  ``validate_length`` (``value.length > 15``: 16 characters at least, stricter than the
  "15" that the forms' documentation and older releases say, so 16 here), ``validate_caps``
  (fewer capitals A-Z than a quarter of the length, integer division; 0.28 allows a half,
  the brief's "a third" sits between: the quarter is kept), ``validate_marks`` (no two of
  ``!?¡¿`` in a row), ``validate_long_words`` (no run of 35 characters of ``[A-z]``, which
  also spans ``[\\]^_```), ``validate_caps_first`` (``^[a-z]``: in Ruby ``^`` is the start of
  every line, so no line may start with a lower-case a-z).

A title must also start with a capital letter or a digit (the brief's rule, stricter than
Decidim's), so a leading quote, bullet or formula character is dropped from a derived title.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from gateway.i18n import translate
from gateway.publication.records import PublicRecord, provenance

TITLE_MIN = 16
TITLE_MAX = 150
BODY_MIN = 16
# Decidim's default for the component's ``proposal_length`` setting.
BODY_MAX = 500
LONG_WORD = re.compile(r"[A-z]{35,}")  # sic: Decidim's range
MARKS = re.compile(r"[!?¡¿]{2,}")
CAPITALS = re.compile(r"[A-Z]")
LOWER_START = re.compile(r"^[a-z]", re.MULTILINE)
ELLIPSIS = "…"
# A cell a spreadsheet would run as a formula: never a text's first character.
FORMULA_START = "=+-@\t\r\n"
# Nor, for a title (which must start with a capital letter), bullets, quotes or punctuation.
_TITLE_JUNK = FORMULA_START + " •–—*·\"'«»“”‘’.,;:!?¡¿…/\\_#~|"
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_SENTENCE_START = re.compile(r"(^|[.!?…]\s+|\n)(\w)")
_SPACES = re.compile(r"[ \t\r\f\v]+")


# --- the rules --------------------------------------------------------------------------


def shouting(value: str) -> bool:
    """Decidim's ``validate_caps``: a quarter or more of the characters are capitals A-Z."""
    caps = len(CAPITALS.findall(value))
    return caps > 0 and caps >= len(value) // 4


def etiquette_problems(value: str) -> list[str]:
    """Why Decidim's etiquette validator refuses ``value`` (its length rule apart)."""
    problems = []
    if shouting(value):
        problems.append("has too many capital letters (a quarter or more)")
    if MARKS.search(value):
        problems.append("has several punctuation marks in a row (!?¡¿)")
    if LONG_WORD.search(value):
        problems.append("has a run of 35 or more letters without a space")
    if LOWER_START.search(value):
        problems.append("must start with a capital letter (every line)")
    return problems


def _length_problems(name: str, value: str, low: int, high: int | None) -> list[str]:
    if len(value) < low:
        return [f"{name} is too short ({len(value)} characters, at least {low})"]
    if high is not None and len(value) > high:
        return [f"{name} is too long ({len(value)} characters, at most {high})"]
    return []


def title_problems(title: str) -> list[str]:
    problems = _length_problems("title", title, TITLE_MIN, TITLE_MAX)
    etiquette = etiquette_problems(title)
    if (
        title[:1]
        and not (title[:1].isupper() or title[:1].isdigit())
        and not any(p.startswith("must start") for p in etiquette)
    ):
        problems.append("title must start with a capital letter or a digit")
    return problems + [f"title {p}" for p in etiquette]


def body_problems(body: str, body_max: int | None = BODY_MAX) -> list[str]:
    problems = _length_problems("body", body, BODY_MIN, body_max)
    return problems + [f"body {p}" for p in etiquette_problems(body)]


def validation_errors(title: str, body: str, body_max: int | None = BODY_MAX) -> list[str]:
    """What Decidim would refuse in this title and body (empty: nothing), in the operator's
    words. ``body_max`` None: no upper bound (the import files)."""
    return title_problems(title) + body_problems(body, body_max)


# --- making a text pass -----------------------------------------------------------------


def _capitalise(value: str) -> str:
    return value[:1].upper() + value[1:]


def _sentence_case(value: str) -> str:
    """A text typed in capitals (« IL FAUT PLUS DE BANCS !! »), as a sentence: Decidim refuses
    a proposal with too many capitals, and shouting is not what the resident is published for."""
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), value.lower())


def tidy(text: str) -> str:
    """What may be corrected in a public text without changing what was said: spaces
    collapsed (paragraphs kept, one blank line at most), a leading formula character or
    bullet dropped (a spreadsheet would run ``=…``), ``!!!`` / ``??`` reduced to one mark, a
    text shouted in capitals put in sentence case, every line started with a capital."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    text = text.lstrip(FORMULA_START + " ").strip()
    text = MARKS.sub(lambda m: m.group(0)[0], text)
    if shouting(text):
        text = _sentence_case(text)
    return "\n".join(_capitalise(line) for line in text.split("\n"))


def cut(value: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word and marked with an ellipsis."""
    if len(value) <= limit:
        return value
    room = value[: limit - len(ELLIPSIS)]
    at = room.rfind(" ")
    if at > limit // 2:
        room = room[:at]
    return room.rstrip(" ,;:-–—") + ELLIPSIS


def derive_title(text: str) -> str:
    """A title from a contribution's public text: its first sentence (more when that is too
    short), cut at a word under 150 characters, capitalised, without a final full stop."""
    text = tidy(" ".join(text.split())).lstrip(_TITLE_JUNK).strip()
    title = ""
    for sentence in _SENTENCE_END.split(text):
        title = f"{title} {sentence}".strip()
        if len(title) >= TITLE_MIN:
            break
    title = cut(title, TITLE_MAX)
    if title.endswith(".") and not title.endswith(".."):
        title = title[:-1].rstrip()  # a title, not a sentence; ? and ! say something
    return _capitalise(title)


def proposal_title(record: PublicRecord, language: str = "fr") -> str:
    """The derived title, or, when the whole text is too short for one, the text and its
    channel (« Bancs (contribution par SMS) »)."""
    title = derive_title(record.text or "")
    if len(title) < TITLE_MIN:
        channel = translate(f"public.provenance.channel.{record.channel}", language)
        key = "public.decidim.title_with_channel" if title else "public.decidim.title_empty"
        title = translate(key, language, text=title.rstrip(".!?… "), channel=channel)
    return _capitalise(title)


def proposal_body(
    record: PublicRecord, tz: ZoneInfo, language: str = "fr", max_length: int | None = BODY_MAX
) -> str:
    """The public text, a blank line, where it comes from and the gateway's reference, which
    is how a proposal is found again in Decidim (``decidim_api``, ``decidim_files.read_export``).
    A text too long for ``max_length`` is cut at a word: the whole stays in the open data."""
    footer = translate(
        "public.decidim.footer",
        language,
        provenance=_capitalise(provenance(record, language, tz)),
        reference=record.reference,
    )
    text = tidy(record.text or "")
    if max_length is not None:
        room = max_length - len(footer) - 2
        text = cut(text, room) if room > len(ELLIPSIS) else ""
    return f"{text}\n\n{footer}" if text else footer
