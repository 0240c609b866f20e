"""Storage unavailable: what a webhook answers when the database (or Redis, where a webhook
needs it) cannot take what a provider delivered, and how the incident is logged.

Every channel answers the same way, through ``storage_unavailable``: 503 with ``Retry-After``
(``RETRY_AFTER_SECONDS``), so that a provider that retries does so soon, and one that reads the
header waits that long. Nothing was stored: the provider's retry is the message's only copy,
and the unique key on (channel, provider message id) absorbs a retry of what was stored after
all (docs/operations.md, "When something fails").

An outage refuses every webhook for as long as it lasts: it is logged once when it starts and
once when a webhook is answered again (``middleware``), with the number refused meanwhile,
never once per request, and never with what the request held (only the error's type)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

# Short: a database restart or a lock held by a migration lasts seconds, and a provider may give a
# webhook 15 s in all, retries included.
RETRY_AFTER_SECONDS = 5
# A refusal this long after the previous one starts a new incident (logged again).
INCIDENT_GAP_SECONDS = 60.0


class _Incident:
    """The current outage in this process (a log throttle: it holds no connection)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: float | None = None
        self.last = 0.0
        self.refused = 0

    def refuse(self, now: float) -> tuple[bool, int]:
        """Count one refusal; (whether it starts an incident, refusals of the one it ends)."""
        with self.lock:
            ended = 0
            new = self.started is None or now - self.last > INCIDENT_GAP_SECONDS
            if new:
                ended = self.refused if self.started is not None else 0
                self.started, self.refused = now, 0
            self.refused += 1
            self.last = now
            return new, ended

    def recover(self, now: float) -> tuple[int, float] | None:
        """Close the incident, if one is open: (refusals, seconds it lasted)."""
        with self.lock:
            if self.started is None:
                return None
            summary = (self.refused, now - self.started)
            self.started, self.refused = None, 0
            return summary


_incident = _Incident()


def note(where: str, exc: BaseException) -> None:
    """Record that ``where`` could not store what it received (logged once per incident)."""
    new, ended = _incident.refuse(time.monotonic())
    if ended:
        log.warning("storage outage: %d delivery(ies) refused in the previous incident", ended)
    if new:
        log.error(
            "storage unavailable (%s in %s): deliveries are refused with 503 and "
            "Retry-After: %d until it is back (logged once per incident)",
            type(exc).__name__,
            where,
            RETRY_AFTER_SECONDS,
        )
    else:
        log.debug("storage still unavailable (%s in %s)", type(exc).__name__, where)


def storage_unavailable(where: str, exc: BaseException) -> web.HTTPServiceUnavailable:
    """The answer to a webhook whose delivery could not be stored: raise it ``from exc``."""
    note(where, exc)
    return web.HTTPServiceUnavailable(
        text="storage unavailable", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def recovered() -> None:
    """A delivery was stored again: close the incident, if one is open, and say so."""
    summary = _incident.recover(time.monotonic())
    if summary is not None:
        refused, lasted = summary
        log.warning(
            "storage available again: %d delivery(ies) refused over %.0f s (providers retry them)",
            refused,
            lasted,
        )


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Closes an incident at the first webhook answered 2xx after it."""
    response = await handler(request)
    if _incident.started is not None and request.path.startswith("/webhooks/"):
        if 200 <= response.status < 300:
            recovered()
    return response
