"""A provider's sending limit as the fakes enforce it (channels/*/tests/fake_api.py).

A generic cell rate algorithm, as providers meter: each key (a sending number, a chat, the
whole account) is free again ``cost / rate`` seconds after a message it admitted; a message that
comes before that is refused (the fake answers 429 in its provider's wire format). A
``tolerance`` admits a message that comes that much early: the gap between the moment a
gateway's worker sends and the moment the request reaches the fake (a thread switch, a busy
machine) is not a burst, and the real providers' meters are no stricter.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Meter:
    rate: float  # units a second
    tolerance: float = 0.5  # seconds
    clock: Callable[[], float] = time.monotonic
    _free: dict[str, float] = field(default_factory=dict)


def admit(lock: threading.Condition, taken: Sequence[tuple[Meter, str, int]]) -> int | None:
    """Whether a message costing ``cost`` in each ``(meter, key, cost)`` may go now: None
    when it may (and it is counted in each), else the whole seconds until it may (nothing is
    counted)."""
    with lock:
        waits = []
        for meter, key, _ in taken:
            now = meter.clock()
            free = meter._free.get(key, now)
            if free - meter.tolerance > now:
                waits.append(free - now)
        if waits:
            return max(1, math.ceil(max(waits)))
        for meter, key, cost in taken:
            now = meter.clock()
            meter._free[key] = max(meter._free.get(key, now), now) + cost / meter.rate
        return None
