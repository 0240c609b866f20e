"""Database work and moderation actions, run off the event loop.

Every console handler reads and writes through these: the session (and the blocking driver
calls behind it) lives in a worker thread, never on the loop that serves the other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from sqlalchemy.orm import Session

from gateway.console.keys import VIEWER
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import Done
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

T = TypeVar("T")


async def offload(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


async def read(request: web.Request, fn: Callable[[Session], T]) -> T:
    """``fn`` in a read-only session (nothing is committed)."""
    runtime = request.app[RUNTIME]

    def run() -> T:
        with runtime.sessions() as session:
            return fn(session)

    return await offload(run)


async def write(request: web.Request, fn: Callable[[Session], T]) -> T:
    """``fn`` in one transaction, committed if it returns, rolled back if it raises."""
    runtime = request.app[RUNTIME]

    def run() -> T:
        with runtime.sessions.begin() as session:
            return fn(session)

    return await offload(run)


async def act(request: web.Request, fn: Callable[[Runtime, Actor], Done]) -> Done:
    """A gateway.moderation.actions call as the logged-in moderator; ActionError propagates."""
    runtime = request.app[RUNTIME]
    actor = request[VIEWER].actor
    return await offload(lambda: fn(runtime, actor))
