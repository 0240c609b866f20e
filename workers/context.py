"""The runtime of a worker process, built once and shared by every job it runs.

RQ calls jobs as plain functions; they find the process's resources here. ``gateway worker``
and ``gateway serve`` set it at start-up; a job run elsewhere builds it from the environment.
"""

from __future__ import annotations

import threading

from gateway.runtime import Runtime
from gateway.settings import Settings

_lock = threading.Lock()
_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    with _lock:
        _runtime = runtime


def get_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime.open(Settings.load())
        return _runtime
