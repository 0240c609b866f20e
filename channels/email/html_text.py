"""HTML mail as the plain text a reader sees, in time linear in its length.

Head, script, style and other hidden elements are dropped, paragraphs and ``<br>`` become
line breaks, entities are decoded, links are reduced to their text, images disappear, and
blockquotes become ">" lines (so that a quoted reply in an HTML-only mail is cut like a plain
one, by channels.email.quotes).

Hostile input is bounded: ``html.parser`` (Python 3.11) takes quadratic time on some crafted
values (300 KB of "<a " takes minutes), so HTML goes through a linear pre-pass that escapes
every "<" not starting a well-formed tag before ``html.parser`` sees it. ``html.parser`` costs a
few microseconds a tag: HTML is converted tag by tag up to 200,000 characters and the rest has
its tags stripped (the words are kept, not the layout). Nested blockquotes count for 20 quote
levels at most, hidden elements (script, style...) for 100 nesting levels.
"""

from __future__ import annotations

import contextlib
import html as htmllib
import re
from html.parser import HTMLParser

# A well-formed tag, comment-like declaration or processing instruction, with possessive
# quantifiers: matching stops at the next "<" at worst, so tokenising is linear.
_TAG = re.compile(
    r"<(?:/?[A-Za-z][^\s/<>]*+(?:[^\"'<>]++|\"[^\"<]*+\"|'[^'<]*+')*+|![^<>]*+|\?[^<>]*+)>"
)
_HIDDEN = frozenset(
    {"head", "script", "style", "title", "template", "noscript", "svg", "object", "iframe"}
)
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "pre", "address"}
    | {"figure"}
)
_BLOCKS = frozenset(
    {"div", "li", "tr", "dt", "dd", "section", "article", "header", "footer", "nav", "aside"}
    | {"main", "form", "fieldset", "legend", "caption", "figcaption", "center", "hr", "option"}
)
_HTML_SPACE = re.compile(r"[ \t\n\r\f\v]+")
_MAX_HTML_CHARS = 200_000  # converted tag by tag; beyond, the tags are stripped (module doc)
_MAX_HIDDEN_DEPTH = 100  # nested hidden elements tracked
_MAX_QUOTE_DEPTH = 20  # nested blockquotes shown as ">" (a quote level each)
_LINE_SPACE = re.compile(r"[ \t\f\v\xa0]+")


def _safe_html(html: str) -> str:
    """Comments removed, every "<" that does not start a well-formed tag escaped.

    ``html.parser`` (Python 3.11) rescans unterminated constructs ("<a <a <a...",
    "<!--<!--...") from each "<": quadratic time on hostile mail. What reaches it here is
    only complete tags and text. An unclosed comment hides the rest, as in a browser.
    """
    out: list[str] = []
    position = 0
    while True:
        start = html.find("<", position)
        if start < 0:
            out.append(html[position:])
            break
        out.append(html[position:start])
        if html.startswith("<!--", start):
            end = html.find("-->", start + 4)
            if end < 0:
                break
            position = end + 3
            continue
        tag = _TAG.match(html, start)
        if tag is None:
            out.append("&lt;")
            position = start + 1
        else:
            out.append(tag.group())
            position = tag.end()
    return "".join(out)


class _HTMLText(HTMLParser):
    """HTML as the plain text a reader sees.

    Hidden elements (head, script, style...) are dropped; paragraphs and headings give a
    blank line, other blocks and ``<br>`` a line break; links keep their text (not the
    address), images disappear. Blockquotes become ">" lines, so that a quoted reply in an
    HTML-only mail is cut like a plain one.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str, bool]] = []  # (quote depth, text, preformatted)
        self._line: list[str] = []
        self._hidden: list[str] = []
        self._quote = 0
        self._pre = 0

    def _break(self) -> None:
        """``<br>``: the line ends, even an empty one (two ``<br>`` make a blank line)."""
        self.lines.append((self._quote, "".join(self._line), self._pre > 0))
        self._line = []

    def _block(self) -> None:
        """A block's edge: the line ends if it has text (nested divs make one break)."""
        if "".join(self._line).strip():
            self._break()
        self._line = []

    def _paragraph(self) -> None:
        """A paragraph's edge: one blank line."""
        self._block()
        if self.lines and self.lines[-1][1].strip():
            self.lines.append((self._quote, "", False))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # "<head>" left open: the body is still text
            self._hidden = [t for t in self._hidden if t != "head"]
        if tag in _HIDDEN:
            # Tracked to a depth: each end tag looks through the stack, and "<svg>" a hundred
            # thousand times would make that quadratic. Deeper ones end with their ancestors.
            if len(self._hidden) < _MAX_HIDDEN_DEPTH:
                self._hidden.append(tag)
            return
        if self._hidden:
            return
        if tag == "br":
            self._break()
        elif tag == "blockquote":
            self._paragraph()
            self._quote += 1
        elif tag in _PARAGRAPHS:
            self._paragraph()
        elif tag in _BLOCKS:
            self._block()
        if tag == "li":
            self._line.append("- ")
        elif tag in ("td", "th"):
            self._line.append(" ")
        elif tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            if tag in self._hidden:
                index = len(self._hidden) - 1 - self._hidden[::-1].index(tag)
                del self._hidden[index:]
            return
        if self._hidden:
            return
        if tag == "blockquote":
            self._paragraph()
            self._quote = max(0, self._quote - 1)
        elif tag == "pre":
            self._paragraph()
            self._pre = max(0, self._pre - 1)
        elif tag in _PARAGRAPHS:
            self._paragraph()
        elif tag in _BLOCKS and tag != "hr":
            self._block()

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if not self._pre:
            self._line.append(_HTML_SPACE.sub(" ", data))
            return
        first, *rest = data.replace("\r\n", "\n").split("\n")
        self._line.append(first)
        for piece in rest:
            self._break()
            self._line.append(piece)

    def text(self) -> str:
        self._break()
        out: list[str] = []
        for depth, content, pre in self.lines:
            depth = min(depth, _MAX_QUOTE_DEPTH)  # "<blockquote>" nested 10,000 times
            content = content.replace("\xa0", " ")
            content = content.rstrip() if pre else " ".join(content.split())
            line = (">" * depth + " " + content).rstrip() if depth else content
            if not content and out and out[-1] == line:
                continue  # nested blocks: one blank line, not five
            out.append(line)
        return "\n".join(out)


_INVISIBLE = dict.fromkeys([0x200B, 0x00AD, 0x2060, 0xFEFF])  # zero-width space, soft hyphen


def html_to_text(html: str) -> str:
    head, tail = _split_html(html)
    parser = _HTMLText()
    with contextlib.suppress(Exception):  # html.parser is tolerant; this is a last resort
        parser.feed(_safe_html(head))
        parser.close()
    text = parser.text()
    if tail:
        text = f"{text}\n{_strip_tags(tail)}"
    return text.translate(_INVISIBLE)


def _split_html(html: str) -> tuple[str, str]:
    """At most ``_MAX_HTML_CHARS`` to convert tag by tag, ending before a tag, and the rest."""
    if len(html) <= _MAX_HTML_CHARS:
        return html, ""
    cut = html.rfind("<", 0, _MAX_HTML_CHARS)
    if cut < 0:  # no tag to split
        cut = _MAX_HTML_CHARS
    return html[:cut], html[cut:]


def _strip_tags(html: str) -> str:
    """The words of HTML without its layout, in linear time: tags become spaces, entities are
    decoded, runs of blanks become one space, lines are kept."""
    text = htmllib.unescape(_TAG.sub(" ", _safe_html(html)))
    lines = (_LINE_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)
