"""Outbound pacing: every message the gateway sends waits its turn at its provider's rate.

Providers limit how fast one sender may send: an SMS long code sends about one segment a
second (a short code, or a pool of numbers, more), a chat app's bot about one message a second
per chat and some tens a second in all, a mail server throttles a burst from one sender (the
rates and their sources: docs/operations.md, "Outbound pacing"). A burst of receipts after a
radio show, sent as fast as workers can, turns into the provider's 429s, retries and late
receipts; paced, it goes out at the provider's rate.

Each plugin declares its rates (``ChannelPlugin.pace``, read from its settings so a city can
raise them): a list of ``Limit``, each one bucket per sending identity (``sender``: an SMS
sending number or the provider's pool of numbers, an email address), per recipient
(``recipient``: a chat) or for the whole account (``account``), counted in messages or in SMS
segments.
The same declaration paces announcements (gateway.announcements): one source for one rate.

The buckets are in Redis, shared by every worker of every machine: a GCRA-like reservation
(``_SCRIPT``), atomic in one Lua script, on Redis's own clock. A send whose turn is near
(``MAX_SLEEP``) reserves it and sleeps until it; one whose turn is further reserves nothing and
is put back in the queue for then (workers.outbound), so that a worker is never held for long.
When Redis cannot be reached, a per-process bucket paces instead (``_Local``): less exact with
several workers, never unpaced.

No address is in Redis: a per-recipient bucket is named by the recipient's keyed hash (the
address's look-up hash, cut short), and lives only until its next turn (a few seconds).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Scope = Literal["sender", "recipient", "account"]
Unit = Literal["message", "segment"]

# A send whose turn comes within this many seconds sleeps until it; a later one is put back in
# the queue for then.
MAX_SLEEP = 1.0
PREFIX = "pace"


@dataclass(frozen=True)
class Limit:
    """One provider rule: at most ``rate`` units (messages, or SMS segments) a second, per
    sending identity, per recipient, or for the whole account."""

    scope: Scope
    rate: float
    unit: Unit = "message"


@dataclass(frozen=True)
class Pace:
    """What a plugin declares (``ChannelPlugin.pace``). ``sender``: the sending identity when
    it is not the message's own sender (a provider's pool of numbers picks it)."""

    limits: tuple[Limit, ...]
    sender: str | None = None

    def bulk_rate(self) -> float | None:
        """Messages a second to many different recipients (announcements): the slowest rule
        that is not per recipient (0: no such rule); a one-segment message each."""
        rates = [r.rate for r in self.limits if r.scope != "recipient" and r.rate > 0]
        return min(rates) if rates else None


@dataclass(frozen=True)
class Bucket:
    key: str  # the Redis key (no address in it)
    interval: float  # seconds a unit takes
    cost: int  # units this message costs


def _tag(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def buckets(
    provider: str,
    pace: Pace,
    *,
    sender: str | None,
    recipient_hash: str,
    segments: int,
) -> list[Bucket]:
    """The buckets one message takes a turn in. ``recipient_hash``: the recipient's keyed
    look-up hash (gateway.privacy), never the address."""
    found: list[Bucket] = []
    for limit in pace.limits:
        if limit.rate <= 0:  # 0: no limit of this kind
            continue
        if limit.scope == "sender":
            who = _tag(pace.sender or sender or "-")
        elif limit.scope == "recipient":
            who = recipient_hash[:16]
        else:
            who = "all"
        cost = max(1, segments) if limit.unit == "segment" else 1
        key = f"{PREFIX}:{provider}:{limit.scope}:{limit.unit}:{who}"
        found.append(Bucket(key, 1.0 / limit.rate, cost))
    return found


# KEYS: the buckets. ARGV[1]: the longest wait to reserve (ms); then per bucket: the
# interval (ms) and the cost. Each key holds the time (ms, Redis's clock) it is free again.
# Returns {reserved (1 or 0), wait in ms}: with 1, the message may go in ``wait`` ms and the
# buckets are taken until it has; with 0, nothing is taken (its turn is further than allowed).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local start = now
for i, key in ipairs(KEYS) do
  local free = tonumber(redis.call('GET', key) or '0') or 0
  if free > start then start = free end
end
local wait = start - now
if wait > tonumber(ARGV[1]) then
  return {0, tostring(wait)}
end
for i, key in ipairs(KEYS) do
  local free = start + tonumber(ARGV[2 * i]) * tonumber(ARGV[2 * i + 1])
  redis.call('SET', key, string.format('%.3f', free), 'PX', math.ceil(free - now) + 1000)
end
return {1, tostring(wait)}
"""


@dataclass(frozen=True)
class Turn:
    """A message's turn: ``wait`` seconds from now; ``reserved``: taken (sleep, then send),
    else put the message back in the queue for then."""

    reserved: bool
    wait: float


class _Local:
    """The same reservation in one process, on its monotonic clock: when Redis is down."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._free: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def reserve(self, taken: Sequence[Bucket], max_wait: float) -> Turn:
        with self._lock:
            now = self._clock()
            start = max([now, *(self._free.get(b.key, 0.0) for b in taken)])
            wait = start - now
            if wait > max_wait:
                return Turn(False, wait)
            for bucket in taken:
                self._free[bucket.key] = start + bucket.interval * bucket.cost
            # Forget the buckets that are free again (per-recipient ones add up).
            for key in [k for k, free in self._free.items() if free < now - 60]:
                del self._free[key]
            return Turn(True, wait)


class Pacer:
    """The turn-taker every send asks (workers.outbound): Redis's buckets, or this process's
    own when Redis cannot be reached."""

    def __init__(self, redis: Callable[[], Redis]) -> None:
        self._redis = redis
        self._local = _Local()
        self._degraded = False

    def reserve(self, taken: Sequence[Bucket], max_wait: float = MAX_SLEEP) -> Turn:
        if not taken:
            return Turn(True, 0.0)
        args: list[float | int] = [max_wait * 1000]
        for bucket in taken:
            args += [bucket.interval * 1000, bucket.cost]
        try:
            reserved, wait = self._redis().eval(_SCRIPT, len(taken), *(b.key for b in taken), *args)
        except (RedisError, OSError) as exc:
            if not self._degraded:
                log.warning("pacing: Redis unavailable, this process paces alone: %s", exc)
                self._degraded = True
            return self._local.reserve(taken, max_wait)
        if self._degraded:
            log.info("pacing: Redis is back, pacing is shared again")
            self._degraded = False
        return Turn(bool(int(reserved)), max(0.0, float(wait)) / 1000)
