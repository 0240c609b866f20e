"""Hostile-input benchmark: every parser of residents' words on the 1 MB inputs of
tests/test_pathological_inputs.py, against the same parser on 1 MB of ordinary French.

    python bench/pathological.py [--rounds 5] [--only SUBSTRING]
    python bench/pathological.py --before REV [--timeout 30] [--only SUBSTRING]

For each case of the test's table (parser x hostile input), runs the parser on the hostile
input and, alternating with it, the same parser on the baseline: 1 MB of ordinary French text
(for the email parser, a plain email of 1 MB of it). Reports the median time of each over the
rounds and their ratio: a linear parser reads hostile text about as fast as prose (a ratio of a
few units), a quadratic one shows ratios in the hundreds or never ends.

``--before REV`` runs each case once with the parsing modules as they were at git revision REV
(gateway/textnorm.py, gateway/conversation.py, gateway/moderation/redaction.py,
gateway/moderation/similarity.py and the email parser's modules in channels/email/, which were
one file, channels/email/message.py, before they were split; read with ``git show``), each in a
process of its own stopped after ``--timeout`` seconds, to show what the table measured before.
Nothing else of the working tree changes.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Replaced by --before, in this order (each may import the ones before it).
EMAIL_PARSING_MODULES = tuple(
    (f"channels.email.{name}", f"channels/email/{name}.py")
    for name in (
        "charsets",
        "headers",
        "addresses",
        "message_ids",
        "automatic",
        "plain_text",
        "html_text",
        "quotes",
        "mime_parts",
        "attachments",
        "body",
        "parsing",
    )
)
# The conversation engine, a package since it was split: its modules in the order they import
# one another, then the package itself (at an older revision, its one module stands in).
ENGINE_MODULES = (
    *(
        (f"gateway.conversation.{name}", f"gateway/conversation/{name}.py")
        for name in (
            "model",
            "words",
            "campaigns",
            "turn",
            "questions",
            "followup",
            "steps",
            "machine",
        )
    ),
    ("gateway.conversation", "gateway/conversation/__init__.py"),
)
ENGINE_BEFORE_SPLIT = (("gateway.conversation", "gateway/conversation.py"),)
PARSING_MODULES = (
    ("gateway.textnorm", "gateway/textnorm.py"),
    *ENGINE_MODULES,
    ("gateway.moderation.redaction", "gateway/moderation/redaction.py"),
    ("gateway.moderation.similarity", "gateway/moderation/similarity.py"),
    *EMAIL_PARSING_MODULES,
)
# At a revision from before the email parser was split, its one module stands in for
# channels.email.parsing (the table calls only its ``parse``); the other modules stay current.
EMAIL_PARSER_BEFORE_SPLIT = ("channels.email.parsing", "channels/email/message.py")


def _exists(revision: str, path: str) -> bool:
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{revision}:{path}"], cwd=ROOT, capture_output=True
    )
    return found.returncode == 0


def modules_at(revision: str) -> tuple[tuple[str, str], ...]:
    """The parsing modules to read at ``revision``, by name and path."""
    modules = PARSING_MODULES
    if not _exists(revision, "channels/email/parsing.py"):
        modules = (*modules[: -len(EMAIL_PARSING_MODULES)], EMAIL_PARSER_BEFORE_SPLIT)
    if not _exists(revision, "gateway/conversation/__init__.py"):
        modules = tuple(m for m in modules if m not in ENGINE_MODULES)
        modules = (modules[0], *ENGINE_BEFORE_SPLIT, *modules[1:])
    return modules


def install_modules_from(revision: str) -> None:
    """Put the parsing modules of ``revision`` in sys.modules under their own names, before
    anything imports them."""
    import channels.email  # noqa: F401
    import gateway.moderation  # noqa: F401  (the packages themselves stay current)

    modules = modules_at(revision)
    if ENGINE_MODULES[-1] in modules:
        # The package's modules import one another as gateway.conversation.<name>: the package
        # must be in sys.modules, as an empty shell, before they run (its own code runs last).
        shell = types.ModuleType("gateway.conversation")
        shell.__path__ = [str(ROOT / "gateway" / "conversation")]
        sys.modules["gateway.conversation"] = shell
    for name, path in modules:
        source = subprocess.run(
            ["git", "show", f"{revision}:{path}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if path.endswith("/__init__.py"):
            module = sys.modules[name]  # the shell made above
        else:
            spec = importlib.util.spec_from_loader(name, loader=None, origin=str(ROOT / path))
            assert spec is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
        module.__file__ = str(ROOT / path)
        exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)  # noqa: S102
        package, _, attribute = name.rpartition(".")
        setattr(sys.modules[package], attribute, module)


def table() -> tuple[list[Any], Any]:
    from tests import test_pathological_inputs as t

    return t.CASES, t


def given(t: types.ModuleType, case: Any) -> Any:
    return t.raw_email(case.input) if case.email else t.text(case.input)


def baseline(t: types.ModuleType, case: Any) -> Any:
    return t.raw_email("plain_french") if case.email else t.text("french")


def timed(run: Any, value: Any) -> float:
    started = time.perf_counter()
    run(value)
    return time.perf_counter() - started


def measure(rounds: int, only: str) -> None:
    cases, t = table()
    print(f"{'case':52} {'median s':>9} {'french s':>9} {'ratio':>7}")
    for case in cases:
        if only not in case.id:
            continue
        hostile, ordinary = given(t, case), baseline(t, case)
        ours, prose = [], []
        for _ in range(rounds):  # alternating: a noisy neighbour hits both alike
            prose.append(timed(case.run, ordinary))
            ours.append(timed(case.run, hostile))
        a, b = statistics.median(ours), statistics.median(prose)
        print(f"{case.id:52} {a:9.3f} {b:9.3f} {a / max(b, 1e-6):7.1f}", flush=True)


def one_case(case_id: str, revision: str) -> None:
    install_modules_from(revision)
    cases, t = table()
    (case,) = [c for c in cases if c.id == case_id]
    print(f"{timed(case.run, given(t, case)):.3f}", flush=True)


def before(revision: str, timeout: float, only: str) -> None:
    cases, _ = table()
    print(f"parsing modules of {revision}, each case in its own process, {timeout:.0f} s at most")
    print(f"{'case':52} {'seconds':>9}")
    for case in cases:
        if only not in case.id:
            continue
        command = [sys.executable, __file__, "--case", case.id, "--before", revision]
        try:
            done = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, timeout=timeout + 30
            )
        except subprocess.TimeoutExpired:
            print(f"{case.id:52} {'> ' + str(int(timeout)):>9}", flush=True)
            continue
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            error = (done.stderr.strip().splitlines() or ["?"])[-1][:60]
            print(f"{case.id:52} {'error':>9}  {error}", flush=True)
            continue
        seconds = float(lines[-1])
        shown = f"{seconds:.3f}" if seconds <= timeout else f"> {int(timeout)}"
        print(f"{case.id:52} {shown:>9}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="cases whose id contains this")
    parser.add_argument("--before", metavar="REV", help="time the parsers of this revision")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in a child process
    args = parser.parse_args()
    if args.case:
        one_case(args.case, args.before)
    elif args.before:
        before(args.before, args.timeout, args.only)
    else:
        measure(args.rounds, args.only)


if __name__ == "__main__":
    main()
