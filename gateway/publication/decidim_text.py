"""A contribution as a Decidim proposal: a title and a body that pass Decidim's validation.

Decidim refuses a proposal whose title or body breaks its rules, and says so only after the
request: checking here first means a contribution that cannot pass is listed with the reason
instead of being sent. The rules, as Decidim's source has them:

- ``decidim-proposals/app/forms/decidim/proposals/proposal_wizard_create_step_form.rb`` and
  ``proposal_form.rb``: title and body present, title at most 150 characters, body at most
  the component's ``proposal_length`` setting (500 unless the administrator changed it);
- ``decidim-core/app/validators/etiquette_validator.rb``, applied to the title and the body:
  ``validate_length`` (``value.length > 15``: 16 characters at least, stricter than the
  15 the form's documentation says, so 16 here), ``validate_caps`` (fewer capitals A-Z than
  a quarter of the length, integer division, in the current source; some older releases
  allowed a third: the stricter rule is kept), ``validate_marks`` (no two of ``!?¡¿`` in a
  row), ``validate_long_words`` (no run of 35 characters of ``[A-z]``, which also spans
  ``[\\]^_```), ``validate_caps_first`` (no lower-case a-z at the start; older releases
  checked the start of every line, so every line of the body starts with a capital here).

Self-contained on purpose: ``gateway.publication.decidim_files`` (the import files) applies
the same rules and the two are to be unified.
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
LONG_WORD = re.compile(r"[A-z]{35,}")
MARKS = re.compile(r"[!?¡¿]{2,}")
CAPITALS = re.compile(r"[A-Z]")
LOWER_START = re.compile(r"^[a-z]", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
_SPACES = re.compile(r"[ \t\r\f\v]+")
ELLIPSIS = "…"


def _too_many_capitals(value: str) -> bool:
    if not value:
        return False
    return len(CAPITALS.findall(value)) >= len(value) // 4


def _upper_first(value: str) -> str:
    return value[:1].upper() + value[1:]


def _sentence_case(value: str) -> str:
    """A text typed in capitals (« IL FAUT PLUS DE BANCS !! »), as a sentence: Decidim refuses
    a proposal with too many capitals, and shouting is not what the resident is published for."""
    lowered = value.lower()
    return re.sub(r"(^|[.!?…]\s+|\n)(\w)", lambda m: m.group(1) + m.group(2).upper(), lowered)


def _tidy(value: str) -> str:
    """Runs of marks reduced to one, spaces collapsed, every line starting with a capital."""
    value = MARKS.sub(lambda m: m.group(0)[0], value)
    lines = [_SPACES.sub(" ", line).strip() for line in value.splitlines()]
    value = "\n".join(_upper_first(line) for line in lines)
    return re.sub(r"\n{3,}", "\n\n", value).strip()


def _cut(value: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word and marked with an ellipsis."""
    if len(value) <= limit:
        return value
    room = value[: limit - len(ELLIPSIS)]
    at = room.rfind(" ")
    if at > limit // 2:
        room = room[:at]
    return room.rstrip(" ,;:-—") + ELLIPSIS


def proposal_title(record: PublicRecord, language: str = "fr") -> str:
    """A title from the contribution's public text: its first sentence, or the start of the
    text when that is too short, or the text and its channel when the whole text is."""
    text = _tidy((record.text or "").replace("\n", " "))
    if _too_many_capitals(text):
        text = _sentence_case(text)
    parts = [p.strip() for p in _SENTENCE_END.split(text) if p.strip()]
    title = parts[0] if parts else ""
    if len(title) < TITLE_MIN:
        title = text
    title = _cut(title, TITLE_MAX)
    if len(title) < TITLE_MIN:
        channel = translate(f"public.provenance.channel.{record.channel}", language)
        key = "public.decidim.title_with_channel" if title else "public.decidim.title_empty"
        title = translate(key, language, text=title.rstrip(".!?… "), channel=channel)
    return _upper_first(title)


def proposal_body(
    record: PublicRecord, tz: ZoneInfo, language: str = "fr", max_length: int = BODY_MAX
) -> str:
    """The public text, then where it comes from and the gateway's reference, which is how a
    proposal is found again in Decidim (gateway.publication.decidim_api). A text too long for
    the component is cut at a word: the whole text stays in the campaign's open data."""
    footer = translate(
        "public.decidim.footer",
        language,
        provenance=_upper_first(provenance(record, language, tz)),
        reference=record.reference,
    )
    text = _tidy(record.text or "")
    if _too_many_capitals(text):
        text = _tidy(_sentence_case(text))
    room = max_length - len(footer) - 2
    text = _cut(text, max(room, 0)) if room > len(ELLIPSIS) else ""
    return f"{text}\n\n{footer}" if text else footer


def validation_errors(title: str, body: str, body_max: int = BODY_MAX) -> list[str]:
    """What Decidim would refuse in this title and body (empty: nothing), in the operator's
    words; the same rules as Decidim's (see the module's docstring)."""
    errors: list[str] = []
    for name, value, low, high in (
        ("title", title, TITLE_MIN, TITLE_MAX),
        ("body", body, BODY_MIN, body_max),
    ):
        if len(value) < low:
            errors.append(f"{name} is too short ({len(value)} characters, at least {low})")
        if len(value) > high:
            errors.append(f"{name} is too long ({len(value)} characters, at most {high})")
        if _too_many_capitals(value):
            errors.append(f"{name} has too many capital letters")
        if MARKS.search(value):
            errors.append(f"{name} has several punctuation marks in a row")
        if LONG_WORD.search(value):
            errors.append(f"{name} has a run of 35 or more letters without a space")
        if LOWER_START.search(value):
            errors.append(f"{name} must start with a capital letter")
    return errors
