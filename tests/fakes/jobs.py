"""Jobs for the worker lifecycle tests, importable by a `gateway worker` subprocess through
PYTHONPATH. Each run appends a line to a log file, so that a test sees how often a job ran and
whether a run finished."""

from __future__ import annotations

import time
from pathlib import Path


def slow_the_first_time(log: str, seconds: float) -> int:
    """Sleeps ``seconds`` on its first run (long enough to be interrupted), returns at once on
    later runs: a job that was stopped and queued again is then seen to finish."""
    path = Path(log)
    lines = path.read_text().splitlines() if path.exists() else []
    runs = sum(1 for line in lines if line.startswith("started"))
    with path.open("a") as fh:
        fh.write(f"started {runs + 1}\n")
    if runs == 0:
        time.sleep(seconds)
    with path.open("a") as fh:
        fh.write(f"finished {runs + 1}\n")
    return runs + 1


def sleep(log: str, seconds: float) -> None:
    with Path(log).open("a") as fh:
        fh.write("started\n")
    time.sleep(seconds)
    with Path(log).open("a") as fh:
        fh.write("finished\n")
