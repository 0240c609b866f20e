"""What of a body is not the resident's own words, cut: quoted replies, the previous messages
below a reply, signatures and mobile footers; a forwarded message is kept without its header
block.

``cut`` works on a body already decoded and tidied (channels.email.body), given the mail's
subject (a forward's subject changes how Outlook's blocks read):

  * Lines starting with ">" are dropped.
  * An attribution ("Le lun. 3 mars 2025 à 10:00, Marie <m@x.fr> a écrit :", "On ... wrote:",
    wrapped over up to three lines as Gmail does) must contain a digit (a date) or end with
    an address. Followed by a ">" quote, the attribution and the quote are dropped and what
    follows the quote is kept (a resident who answers below the quote keeps their words).
    Followed by unquoted text, everything from it onward is cut if it names an address,
    else it is a resident's sentence ("Le 3 mars, le maire a écrit :") and stays.
  * "-----Original Message-----", "-------- Message d'origine --------", a line of
    underscores before "De :", and an Outlook block ("De :" then "Envoyé :" or "Sent:"
    within four lines; "De : <address>" then "Date :") cut everything from there onward.
    A pasted letter ("De : Marie Dupont / Date : 3 mars") is not a reply header.
  * A forwarded message ("---------- Forwarded message ---------", "-------- Message
    transféré --------", "Début du message réexpédié :", "Begin forwarded message:") is what
    the resident wants to share: its header block (De/From/Date/Objet/Subject/À/To/Cc...
    lines) is dropped, its body kept, after the resident's own words and a blank line.
    Apple Mail quotes forwarded bodies: they are unquoted. Outlook and Samsung write
    forwards exactly like replies: when the subject says forward ("TR :", "Fwd:", "Fw:",
    "WG:"...), their blocks and separators introduce a kept forward instead of a cut.
  * The signature, from a line that is exactly "-- " or "--", is cut up to the next forward
    marker (Gmail puts the signature above the forwarded message).
  * Mobile footers ("Envoyé de mon iPhone", "Envoyé depuis mon smartphone Samsung Galaxy",
    "Sent from my iPhone", "Téléchargez Outlook pour Android"...) are dropped when they end
    the resident's text or a forwarded message, never in the middle of the text.
  * Leading and trailing blank lines go, more than two blank lines in a row become two. If
    all this leaves nothing while the mail had text, the whole text is returned: a
    resident's words are never lost.

Hostile input is bounded: the cutter costs a few microseconds a line, so quotes, signatures and
forwards are looked for in the first 200,000 characters of the text, and beyond only quoted
lines are dropped. Patterns are possessive where two could match the same spaces.
"""

from __future__ import annotations

import functools
import itertools
import re

from gateway.textnorm import fold

_ATTRIBUTION_LINES = 3  # Gmail wraps a long attribution over two or three lines

# Python's \s matches the no-break spaces French typography puts before ":". Quantifiers are
# possessive where two could match the same spaces: no backtracking on hostile lines.
_WROTE = r"(?:a\s++[ée]crit|wrote|schrieb|escribi[óo]|ha\s++scritto|escreveu|schreef)"
_ATTRIBUTION = re.compile(
    rf"^(?:le|on|am|el|il|em|op)\s.{{4,300}}?\s{_WROTE}\s*+:?\s*+$", re.IGNORECASE
)
# "Marie Dupont <marie@example.org> a écrit :" (Thunderbird's attribution without a date).
_ATTRIBUTION_ADDRESS = re.compile(
    rf"^.{{0,200}}?<[^<>\s@]{{1,200}}@[^<>\s@]{{1,200}}>\s++{_WROTE}\s*+:?\s*+$", re.IGNORECASE
)
_ATTRIBUTION_START = re.compile(r"^(?:le|on|am|el|il|em|op)\s", re.IGNORECASE)
_REPLY_SEPARATOR = re.compile(
    r"^-{2,}+\s*+(?:original message|message d['’]origine|ursprüngliche nachricht"
    r"|mensaje original|messaggio originale|mensagem original|oorspronkelijk bericht)\s*+-*+$",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^_{10,}+$")
_FORWARD = re.compile(
    r"^(?:-{2,}+\s*+(?:forwarded message|message transf[ée]r[ée]|mensaje reenviado"
    r"|weitergeleitete nachricht|messaggio inoltrato)\s*+-*+"
    r"|d[ée]but du message (?:r[ée]exp[ée]di[ée]|transf[ée]r[ée])\s*+:?"
    r"|begin forwarded message\s*+:?)$",
    re.IGNORECASE,
)
_HEADER_NAMES = (
    r"de|from|envoy[ée]|sent|date|[àa]|to|pour|cc|cci|bcc|objet|subject|sujet"
    r"|r[ée]pondre\s[àa]|reply-to|importance|priorit[ée]|pi[èe]ces?\sjointes?|attachments?"
)
_COLON = r"\s*+(?:\*\s*+)?:"  # "De :", "De:", "*De :*" (Outlook's bold as plain text)
_HEADER_LINE = re.compile(rf"^\*?(?:{_HEADER_NAMES}){_COLON}", re.IGNORECASE)
_OUTLOOK_FROM = re.compile(rf"^\*?(?:de|from){_COLON}", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(rf"^\*?(?:envoy[ée]|sent|date){_COLON}", re.IGNORECASE)
_OUTLOOK_SENT_ONLY = re.compile(rf"^\*?(?:envoy[ée]|sent){_COLON}", re.IGNORECASE)
_OUTLOOK_ONE_LINE = re.compile(
    rf"^\*?(?:de|from){_COLON}.{{1,300}}?\s\*?(?:envoy[ée]|sent){_COLON}", re.IGNORECASE
)
# Mobile and webmail footers: a device or a product follows, not any words ("Envoyé par
# courrier le 3 mars." is a resident's sentence).
_DEVICES = (
    r"mon|ma|mes|un|une|l['’]application|l['’]appli|la\smessagerie|yahoo|outlook|courrier"
    r"|mail|gmail|orange|sfr|free|proton|samsung|huawei|xiaomi|iphone|ipad|android|galaxy"
)
_FOOTER = re.compile(
    rf"^(?:envoy[ée]e?\s(?:de|depuis|à\spartir\sde|a\spartir\sde|avec|via)\s(?:{_DEVICES})\b.{{0,80}}"
    r"|sent\s(?:from|with|via|using)\s(?:my|yahoo|outlook|mail|gmail|proton|aol|samsung"
    r"|blackberry|the\s)\b.{0,80}"
    r"|(?:get|download)\soutlook\sfor\s.{2,40}"
    r"|(?:t[ée]l[ée]charge[zr]|obtenez|obtenir)\soutlook\spour\s.{2,40})$",
    re.IGNORECASE,
)
# "TR : ...", "Fwd: ...", "Re: Fw: ...": the mail forwards something.
_FORWARD_SUBJECT = re.compile(
    r"^(?:[a-z]{1,5}\s*+(?:\[\d+\])?\s*+:\s*+)*?(?:fwd?|tr|trans|transf|wg|rv|enc)\s*+:"
)
_BLANKS = re.compile(r"\n{4,}")
_LONG_LINE = 400  # longer lines are not attributions nor header lines worth matching


_QUOTE_PREFIX = re.compile(r"[ \t]*+(?:>[ \t]*+)*+")
_MAX_UNQUOTE = 20  # quote levels a forwarded message can sit in
_MAX_CUT_CHARS = 200_000  # quotes and signatures are looked for this far (see the module doc)
_QUOTED = re.compile(r"[ \t]*+>")


def _quote_depth(line: str) -> int:
    """How many ">" start the line ("> > text" and ">> text" are both 2)."""
    prefix = _QUOTE_PREFIX.match(line)
    return prefix.group().count(">") if prefix else 0


@functools.lru_cache(maxsize=_MAX_UNQUOTE + 1)
def _unquoting(levels: int) -> re.Pattern[str]:
    return re.compile(rf"(?:[ \t]*+> ?){{0,{levels}}}")


def _unquote(line: str, levels: int) -> str:
    """The line without its first ``levels`` quote markers (and the space after each)."""
    if not levels:
        return line
    prefix = _unquoting(min(levels, _MAX_UNQUOTE)).match(line)
    return line[prefix.end() :] if prefix else line


class _Cutter:
    """One body's lines, walked once: quotes dropped, forwards kept, signatures cut.

    The text is split into segments: the resident's own text, then one per forwarded
    message (kept without its header block). Mobile footers are dropped at the end of
    each segment.
    """

    def __init__(self, text: str, *, forward_subject: bool) -> None:
        self.lines = text.split("\n")
        self.forward_subject = forward_subject
        self.segments: list[list[str]] = [[]]
        self.unquote = 0  # quote levels the current forwarded message sits in

    def _line(self, index: int) -> str:
        return _unquote(self.lines[index], self.unquote).strip()

    def _attribution(self, index: int) -> int:
        """How many lines an attribution starting at ``index`` takes (0: none)."""
        joined = self._line(index)
        if len(joined) > _LONG_LINE:
            return 0
        for count in range(1, _ATTRIBUTION_LINES + 1):
            if count > 1:
                following = index + count - 1
                if following >= len(self.lines) or not _ATTRIBUTION_START.match(joined):
                    return 0
                extra = self._line(following)
                if len(extra) > _LONG_LINE:
                    return 0
                joined += " " + extra
            dated = _ATTRIBUTION.match(joined) and any(ch.isdigit() for ch in joined)
            if dated or _ATTRIBUTION_ADDRESS.match(joined):
                return count
        return 0

    def _reply_cut(self, index: int) -> bool:
        """A separator or an Outlook header block: the previous messages start here."""
        line = self._line(index)
        if len(line) > _LONG_LINE:
            return False
        if _REPLY_SEPARATOR.match(line) or _OUTLOOK_ONE_LINE.match(line):
            return True
        if not (_OUTLOOK_FROM.match(line) or _UNDERSCORES.match(line)):
            return False
        following = [self._line(i) for i in range(index + 1, min(index + 5, len(self.lines)))]
        if _OUTLOOK_FROM.match(line):
            # "Envoyé :" is Outlook's own; "Date :" could start a letter a resident pasted
            # ("De : Marie Dupont / Date : 3 mars"), so it needs an address after "De :".
            if any(_OUTLOOK_SENT_ONLY.match(other) for other in following):
                return True
            return "@" in line and any(_OUTLOOK_SENT.match(other) for other in following)
        return bool(_OUTLOOK_FROM.match(next((o for o in following if o), "")))

    def _quoted_next(self, index: int) -> bool:
        """Whether the next non-blank line from ``index`` is quoted."""
        for position in range(index, len(self.lines)):
            line = self._line(position)
            if line:
                return line.startswith(">")
        return False

    def cut(self) -> str:
        state = "text"  # "text", "headers" (of a forwarded message) or "skip" (a signature)
        header_seen = False
        index = 0
        examined = 0
        while index < len(self.lines):
            line = _unquote(self.lines[index], self.unquote)
            examined += len(line) + 1
            if examined > _MAX_CUT_CHARS:
                # Each line costs a few microseconds here: beyond this point only quoted lines
                # are dropped (one test a line), everything else is kept as it is.
                self._keep_unquoted(index)
                break
            stripped = line.strip()
            if not stripped and state != "headers":
                # A blank line is neither a marker nor an attribution (one test, not ten).
                if state == "text":
                    self.segments[-1].append(line)
                index += 1
                continue
            depth = _quote_depth(line)
            if len(stripped) <= _LONG_LINE and _FORWARD.match(_unquote(stripped, depth).strip()):
                self.segments.append([])
                state, header_seen = "headers", False
                self.unquote = min(self.unquote + depth, _MAX_UNQUOTE)
                index += 1
                continue
            if state == "headers":
                if not stripped:
                    state = "text" if header_seen else state
                    index += 1
                    continue
                if depth and not header_seen and self.unquote < _MAX_UNQUOTE:
                    # The forwarded message is quoted (Apple Mail): unquote it.
                    self.unquote = min(self.unquote + depth, _MAX_UNQUOTE)
                    continue
                previous = self._line(index - 1) if index else ""
                if len(stripped) <= _LONG_LINE and (
                    _HEADER_LINE.match(stripped)
                    or _UNDERSCORES.match(stripped)
                    or _REPLY_SEPARATOR.match(stripped)
                    or (header_seen and (previous.endswith(",") or line[:1] in (" ", "\t")))
                ):
                    header_seen = True
                    index += 1
                    continue
                state = "text"
            if depth == 0 and self._reply_cut(index):
                if not self.forward_subject:
                    break
                # Outlook and Samsung forward as they reply: the block is a forward's header.
                self.segments.append([])
                state, header_seen = "headers", False
                if not _OUTLOOK_FROM.match(stripped):
                    index += 1  # the separator line itself
                continue
            if state == "skip" or depth:
                index += 1
                continue
            taken = self._attribution(index)
            if taken:
                if self._quoted_next(index + taken):
                    index += taken  # the quote's lines go one by one, what follows stays
                    continue
                attribution = " ".join(self._line(i) for i in range(index, index + taken))
                if "@" in attribution:
                    break  # the previous message follows unquoted: nothing after is ours
                # Without a quote nor an address, it is a resident's sentence ("Le 3 mars,
                # le maire a écrit :"): kept.
            if line.rstrip() == "--":
                state = "skip"
                index += 1
                continue
            self.segments[-1].append(line)
            index += 1
        return self._join()

    def _keep_unquoted(self, index: int) -> None:
        for raw in itertools.islice(self.lines, index, None):
            line = _unquote(raw, self.unquote)
            if not _QUOTED.match(line):
                self.segments[-1].append(line)

    def _join(self) -> str:
        kept: list[str] = []
        for segment in self.segments:
            while segment and (
                not segment[-1].strip()
                or _FOOTER.match(segment[-1].strip()[:_LONG_LINE])
                or _UNDERSCORES.match(segment[-1].strip()[:_LONG_LINE])
            ):
                segment.pop()
            text = "\n".join(segment).strip("\n")
            if text.strip():
                kept.append(text)
        return _BLANKS.sub("\n\n\n", "\n\n".join(kept))


def cut(original: str, subject: str) -> str:
    """The resident's words of a tidied body (the module doc says what goes)."""
    forward = bool(_FORWARD_SUBJECT.match(fold(subject)))
    text = _Cutter(original, forward_subject=forward).cut()
    if not text.strip() and original.strip():
        return _BLANKS.sub("\n\n\n", original)  # never lose a resident's words
    return text
