"""The layering holds: no import cycle among the project's modules (the import-linter
contracts in pyproject.toml check the layers; this checks every module against every other,
which acyclic_siblings, comparing siblings only, does not), and the core names no provider."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import grimp

PACKAGES = ("gateway", "channels", "workers", "transcription")
ROOT = Path(__file__).resolve().parent.parent


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import one another in a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(module: str) -> None:
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in graph.modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    assert len(graph.modules) > 100  # the graph is the project's
    assert strongly_connected(graph) == []


def test_the_finder_finds_a_cycle():
    """The check above can fail: two modules importing each other are found."""
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert strongly_connected(graph) == [["a.x", "a.y"]]


# Modules of the core that may name a provider, and why: in data, never in logic.
PROVIDER_NAMES_ALLOWED = {
    "gateway/migrations/versions/0004_telegram.py": "a migration: history, not logic",
    "gateway/i18n.py": "the message catalogue's channel-specific keys (telegram.*)",
}


def test_the_core_names_no_provider_in_its_logic():
    """What `grep -rliE "telegram|twilio|vonage|smtp|imap" gateway workers --include=*.py`
    lists is the allowed modules only: the core asks gateway.plugins, it never names one."""
    pattern = re.compile(r"telegram|twilio|vonage|smtp|imap", re.IGNORECASE)
    naming = sorted(
        str(path.relative_to(ROOT))
        for folder in ("gateway", "workers")
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    )
    assert naming == sorted(PROVIDER_NAMES_ALLOWED), "a core module names a provider"
