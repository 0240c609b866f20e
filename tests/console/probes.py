"""Probes for what must not happen while a password is checked: a database transaction open
in the thread doing the check (SQLite's write lock is taken at BEGIN)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event


class OpenTransactions:
    """Counts the transactions each thread has open on an engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.counts: dict[int, int] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> OpenTransactions:
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "commit", self._end)
        event.listen(self.engine, "rollback", self._end)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "commit", self._end)
        event.remove(self.engine, "rollback", self._end)

    def _begin(self, _connection: object) -> None:
        with self.lock:
            me = threading.get_ident()
            self.counts[me] = self.counts.get(me, 0) + 1

    def _end(self, _connection: object) -> None:
        with self.lock:
            me = threading.get_ident()
            self.counts[me] = max(0, self.counts.get(me, 0) - 1)

    def in_this_thread(self) -> int:
        return self.counts.get(threading.get_ident(), 0)


class RecordingHasher:
    """The real Argon2 hasher, noting ``probe()`` at each verification."""

    def __init__(self, real: Any, probe: Callable[[], int]) -> None:
        self.real, self.probe = real, probe
        self.seen: list[int] = []

    def verify(self, stored: str, password: str) -> bool:
        self.seen.append(self.probe())
        return bool(self.real.verify(stored, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)
