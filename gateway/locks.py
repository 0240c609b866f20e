"""Redis locks that name their holder, live briefly, and are given up by a dead process at once.

A lock that a crashed process left behind must not hold its sender's messages up: each lock is
set for ``LOCK_TTL`` seconds and renewed every ``RENEW_EVERY`` seconds by a keeper thread of
the holding process for as long as it is held, so that a holder that died (SIGKILL, power
loss, on any machine) lets go within ``LOCK_TTL`` without anyone waiting for a long timeout.
The lock's value names the holder (host, process id, and what tells that process from a later
one under the same id), so that at start-up a process deletes at once the locks held by a
process of its own host that no longer exists (``release_dead``): a restarted gateway does not
wait even ``LOCK_TTL``.

A host is known by its name (as RQ knows its workers): machines or containers that share a
Redis server must have distinct host names, which is their default.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from redis import Redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

PREFIX = "gateway:lock:"
# Seconds a lock lives without renewal: how long a dead holder on another machine can hold its
# sender up. The keeper renews at a third of it, so that two missed renewals are survivable.
LOCK_TTL = 30
RENEW_EVERY = 10
# A process whose only known trace is a start time in wall-clock terms (an RQ worker of another
# kind: its birth) is taken for another process under the same pid only if it started this
# much later; wall-clock times move when the clock is set.
_PID_REUSE_SLACK = 60.0


@dataclass(frozen=True)
class Holder:
    """One process on one machine: ``since`` tells it from any other process that has, had or
    will have the same pid (process_since)."""

    host: str
    pid: int
    since: str

    def token(self) -> str:
        # The random part keeps two locks of one process apart (redis-py compares tokens).
        return f"{self.host}|{self.pid}|{self.since}|{uuid.uuid4().hex}"

    @classmethod
    def parse(cls, token: bytes | str) -> Holder | None:
        text = token.decode(errors="replace") if isinstance(token, bytes) else token
        parts = text.split("|")
        if len(parts) != 4:
            return None
        try:
            return cls(parts[0], int(parts[1]), parts[2])
        except ValueError:
            return None


def host_name() -> str:
    return socket.gethostname()


_me: Holder | None = None


def this_process() -> Holder:
    global _me
    if _me is None or _me.pid != os.getpid():  # a forked child is another process
        _me = Holder(host_name(), os.getpid(), process_since(os.getpid()) or "?")
    return _me


_boot: str | None = None


def _boot_id() -> str:
    global _boot
    if _boot is None:
        try:
            _boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        except OSError:
            _boot = "-"
    return _boot


def process_since(pid: int) -> str | None:
    """What tells the process now running under ``pid`` from any other that ever had it: on
    Linux the boot and the process's start in clock ticks since boot, which setting the clock
    does not move; elsewhere its start time. None when there is no such process (a zombie has
    exited: it only waits for its parent to read its status). Raises psutil.AccessDenied for a
    process we may not inspect."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 of proc(5), the state; fields[19] is field 22, starttime.
        return None if fields[0] in ("Z", "X") else f"{_boot_id()}-{fields[19]}"
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        pass
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"{process.create_time():.2f}"
    except psutil.NoSuchProcess:  # ZombieProcess is one
        return None


def is_dead(
    host: str | None,
    pid: int | None,
    *,
    since: str | None = None,
    alive_since: float | None = None,
) -> bool:
    """Whether a process of this machine is known to be gone. False when it may be alive,
    which includes every process of another machine (we cannot look there).

    ``since``: the process's process_since as recorded (a lock's holder, a gateway worker):
    anything else under that pid is another process (the pid reused, say after a container
    restart). ``alive_since``: for a process known only by a wall-clock moment it was running
    (an RQ worker's birth): a process under that pid that started well after is another one.
    """
    if not host or host != host_name() or not pid:
        return False
    try:
        current = process_since(pid)
        if current is None:
            return True
        if since is not None:
            return current != since
        if alive_since is not None:
            return float(psutil.Process(pid).create_time()) > alive_since + _PID_REUSE_SLACK
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:  # exists, but not ours to inspect: assume it is the one
        return False
    return False


class _Keeper:
    """Renews this process's held locks; one daemon thread per process, started on first use
    (a forked child starts its own: threads do not survive fork). It looks every second and
    renews each lock RENEW_EVERY seconds after its last renewal: a lock held for a few
    milliseconds, the usual case, costs no renewal at all."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[Lock, float]] = {}
        # The tokens of the locks this process holds or is acquiring.
        self._claimed: set[str] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _this_process(self) -> None:
        if self._pid != os.getpid():  # called with the guard held
            self._held, self._claimed, self._thread = {}, set(), None
            self._pid = os.getpid()

    def claim(self, token: str, *, now: bool) -> None:
        with self._guard:
            self._this_process()
            if now:
                self._claimed.add(token)
            else:
                self._claimed.discard(token)

    def claimed(self) -> set[str]:
        with self._guard:
            self._this_process()
            return set(self._claimed)

    def add(self, lock: Lock) -> None:
        with self._guard:
            self._this_process()
            self._held[id(lock)] = (lock, time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lock-keeper", daemon=True)
                self._thread.start()

    def remove(self, lock: Lock) -> None:
        with self._guard:
            self._held.pop(id(lock), None)

    def held(self) -> list[Lock]:
        with self._guard:
            return [lock for lock, _ in self._held.values()] if self._pid == os.getpid() else []

    def _due(self) -> list[Lock]:
        now = time.monotonic()
        with self._guard:
            due = [(key, lock) for key, (lock, at) in self._held.items() if now - at >= RENEW_EVERY]
            for key, lock in due:
                self._held[key] = (lock, now)
        return [lock for _, lock in due]

    def _run(self) -> None:
        while True:
            time.sleep(min(1.0, RENEW_EVERY))
            for lock in self._due():
                try:
                    lock.extend(LOCK_TTL, replace_ttl=True)
                except LockError:
                    # Expired (Redis was unreachable longer than LOCK_TTL) or restarted empty:
                    # the holder finishes its short transaction; the release will say so.
                    log.warning("lock %s was lost while held", _name(lock))
                    self.remove(lock)
                except (RedisError, OSError) as exc:
                    log.warning("could not renew lock %s: %s", _name(lock), exc)


_keeper = _Keeper()


def _name(lock: Lock) -> str:
    name = lock.name.decode() if isinstance(lock.name, bytes) else str(lock.name)
    # The sender part of a lock's name is a keyed hash: a short tag is enough for a log.
    return name[:40]


class Busy(RuntimeError):
    """The lock stayed held by a live process for the whole wait."""


@contextmanager
def hold(redis: Redis, name: str, *, wait: float) -> Iterator[None]:
    """Hold the lock ``PREFIX + name`` for the duration of the block, waiting up to ``wait``
    seconds for it; raises Busy if it stays held."""
    # thread_local=False: the keeper renews it from its own thread, which must see the token.
    lock = redis.lock(
        PREFIX + name, timeout=LOCK_TTL, blocking_timeout=wait, sleep=0.05, thread_local=False
    )
    token = this_process().token()
    # Claimed before it is taken: release_dead, in another thread of this process, must never
    # take a lock being acquired here for one this process left behind.
    _keeper.claim(token, now=True)
    try:
        if not lock.acquire(token=token):
            raise Busy(name)
        _keeper.add(lock)
        try:
            yield
        finally:
            _keeper.remove(lock)
            try:
                lock.release()
            except LockError:
                log.warning("lock %s expired while held", _name(lock))
    finally:
        _keeper.claim(token, now=False)


def release_dead(redis: Redis) -> int:
    """Delete the locks whose holder is a process of this machine that no longer exists, or this
    process when it no longer holds them; returns how many. Safe to run at any time: a lock is
    deleted only if it still has the value read."""
    released = 0
    me, mine = this_process(), _keeper.claimed()
    for key in redis.scan_iter(match=PREFIX + "*", count=1000):
        token = redis.get(key)
        holder = Holder.parse(token) if token is not None else None
        if holder is None:
            continue
        if holder == me:
            # This very process, which no longer holds it: a thread of it died holding it
            # (Redis failed in the middle; a Redis restored from its append-only file kept it).
            value = token.decode(errors="replace") if isinstance(token, bytes) else token
            if value in mine:
                continue
        elif not is_dead(holder.host, holder.pid, since=holder.since):
            continue
        lock = redis.lock(key.decode() if isinstance(key, bytes) else key, thread_local=False)
        try:
            lock.do_release(token)  # compare-and-delete: never a lock taken since
        except LockError:
            continue
        released += 1
    if released:
        log.warning("released %d lock(s) left by a process that no longer exists", released)
    return released


def release_own() -> int:
    """Give up every lock this process holds (a process about to exit with a job abandoned in
    a thread: the next holder must not wait for the lock to expire)."""
    released = 0
    for lock in _keeper.held():
        _keeper.remove(lock)
        try:
            lock.release()
            released += 1
        except (LockError, RedisError, OSError):
            pass
    return released


# -- one person at a time ----------------------------------------------------------------


class SenderBusy(RuntimeError):
    """Another live worker held this sender's lock for the whole wait; the job is retried."""


# How long a job waits for its sender's lock: longer than a lock lives without renewal
# (LOCK_TTL), so that a lock left by a holder that died on another machine
# expires while we wait; a dead holder on this machine is cleared at start-up.
SENDER_LOCK_WAIT = 45


@contextmanager
def sender_lock(runtime: Runtime, channel: str, sender_hash: str) -> Iterator[None]:
    """One worker at a time per sender (messages in arrival order). The lock names its holder
    and is short-lived with renewal (gateway.locks): a crashed holder never holds it for long.

    The lock is the person's, whatever the channel: the look-up hash is one for a number that
    texts and calls (gateway.residents), so an OUBLIER by SMS and a voice message being filed
    never interleave. Its name is a digest of the hash, not the hash: Redis (and the embedded
    server's append-only file) never holds the value that finds a person's rows."""
    del channel  # the hash already says which address space it belongs to
    digest = hashlib.sha256(sender_hash.encode()).hexdigest()[:32]
    try:
        with hold(runtime.redis, f"person:{digest}", wait=SENDER_LOCK_WAIT):
            yield
    except Busy:
        from gateway.privacy import log_id

        raise SenderBusy(f"sender {log_id(sender_hash)} is busy") from None
