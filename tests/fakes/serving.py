"""Serving a fake provider's aiohttp app on loopback from a thread of its own, so that sync
tests, async tests and subprocesses (the gateway under test) can all reach it."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable

from aiohttp import web


class ThreadedServer:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, app: web.Application, port: int = 0, **runner_options: object) -> str:
        """Serve ``app`` on 127.0.0.1:``port`` (0: a free one); returns its base URL."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app, access_log=None, **runner_options)  # type: ignore[arg-type]
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(runner.setup())
                loop.run_until_complete(web.SockSite(runner, sock).start())
            except BaseException as exc:  # reported to start()'s caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self.loop, self._runner = loop, runner
        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread.join()
            loop.close()
            self._thread = self.loop = self._runner = None
            raise errors[0]
        return base_url

    def stop(self, before: Callable[[asyncio.AbstractEventLoop], None] | None = None) -> None:
        """Stop serving; ``before`` runs first (in the caller's thread) with the server's loop."""
        if self._thread is None or self.loop is None or self._runner is None:
            return
        if before is not None:
            before(self.loop)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self._thread = self.loop = self._runner = None
