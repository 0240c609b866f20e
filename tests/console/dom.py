"""A small HTML tree with CSS-like selection, enough to check pages the way a moderator
looks at them (which element holds which text) without a browser or a third-party parser.

Selectors: compound parts (``tag#id.class[attr][attr=value]``) joined by spaces (descendant).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
_PART = re.compile(
    r"(?P<tag>[a-zA-Z][\w-]*)|#(?P<id>[\w-]+)|\.(?P<cls>[\w-]+)"
    r"|\[(?P<attr>[\w-]+)(?:=(?P<q>['\"]?)(?P<value>[^\]'\"]*)(?P=q))?\]"
)


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = None

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        """The text content, whitespace collapsed (what a reader sees)."""
        return " ".join("".join(self._texts()).split())

    @property
    def raw_text(self) -> str:
        """The text content exactly as written (line breaks kept)."""
        return "".join(self._texts())

    def _texts(self) -> Iterator[str]:
        for child in self.children:
            if isinstance(child, str):
                yield child
            elif child.tag not in ("script", "style", "template"):
                yield from child._texts()

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)

    def descendants(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.descendants()

    def select(self, selector: str) -> list[Node]:
        parts = selector.split()
        found = [n for n in self.descendants() if _matches(n, parts[-1])]
        return [n for n in found if _ancestors_match(n, parts[:-1])]

    def one(self, selector: str) -> Node:
        found = self.select(selector)
        assert len(found) == 1, f"{selector!r}: {len(found)} elements"
        return found[0]

    def first(self, selector: str) -> Node | None:
        found = self.select(selector)
        return found[0] if found else None


def _simple(part: str) -> list[tuple[str, str, str | None]]:
    tests: list[tuple[str, str, str | None]] = []
    position = 0
    while position < len(part):
        match = _PART.match(part, position)
        if match is None or match.end() == position:
            raise ValueError(f"unsupported selector {part!r}")
        if match.group("tag"):
            tests.append(("tag", match.group("tag").lower(), None))
        elif match.group("id"):
            tests.append(("attr", "id", match.group("id")))
        elif match.group("cls"):
            tests.append(("class", match.group("cls"), None))
        elif match.group("attr"):
            value = match.group("value") if match.group("value") is not None else None
            if value is None and "=" in match.group(0):
                value = ""
            tests.append(("attr", match.group("attr"), value))
        position = match.end()
    return tests


def _matches(node: Node, part: str) -> bool:
    for kind, name, value in _simple(part):
        if kind == "tag" and node.tag != name:
            return False
        if kind == "class" and name not in node.classes:
            return False
        if kind == "attr" and (
            name not in node.attrs or (value is not None and node.attrs[name] != value)
        ):
            return False
    return True


def _ancestors_match(node: Node, parts: list[str]) -> bool:
    if not parts:
        return True
    ancestor = node.parent
    while ancestor is not None:
        if _matches(ancestor, parts[-1]) and _ancestors_match(ancestor, parts[:-1]):
            return True
        ancestor = ancestor.parent
    return False


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v if v is not None else "" for k, v in attrs}, parent=self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v if v is not None else "" for k, v in attrs}, parent=self.current)
        self.current.children.append(node)

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root
