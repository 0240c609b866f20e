"""What the worker fault scenarios (``tests/faults/test_worker_*.py``) share: a gateway as an
operator runs it, with its workers as separate ``gateway worker`` processes that a test can
SIGKILL, SIGTERM and start again, on both set-ups:

- ``sqlite-embedded``: SQLite and the embedded Redis that ``gateway serve`` starts; the
  worker is a ``gateway worker`` beside it on the same machine (GATEWAY_EMBEDDED_WORKER off),
  which attaches to the embedded Redis by its socket. That is how a small city runs a worker
  it can restart without the web server; killing ``gateway serve`` itself (and its worker
  thread with it) is the web-server fault suite's case (``tests/faults/test_serve_*.py``).
- ``postgresql-redis``: PostgreSQL, Debian's redis-server (one of this test's own, so that a
  test can stop it) and ``gateway worker`` processes, as a city runs them at scale.

The test reads what happened straight from the database (outbound rows, contributions) and
from the fake Twilio (what was actually sent), never from the gateway's own account of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from channels.twilio.tests.fake_api import FakeTwilio
from tests.fixtures import RedisServer, _truncate_postgres
from tests.test_e2e_serve import Gateway, base_env

SETUPS = ["sqlite-embedded", "postgresql-redis"]
CITY = "+33100000001"  # the number residents text (the test campaigns' "parc")
# What an operator can count on when stopping a worker (docs/operations.md).
STOP_WITHIN = 10.0


@dataclass
class Rig:
    setup: str
    gateway: Gateway
    fake: FakeTwilio
    database_url: str
    redis_server: RedisServer | None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _engine: Engine | None = None
    _killed_redis: int = 0

    # -- processes ---------------------------------------------------------
    @property
    def redis(self) -> Redis:
        if self.redis_server is not None:
            return Redis.from_url(self.redis_server.url, socket_connect_timeout=1, socket_timeout=5)
        socket_path = Path(self.gateway.env["GATEWAY_DATA_DIR"]) / "redis" / "redis.sock"
        return Redis(unix_socket_path=str(socket_path), socket_connect_timeout=1, socket_timeout=5)

    def start_worker(self, *queues: str) -> subprocess.Popen[bytes]:
        """A ``gateway worker``, once it waits for jobs."""
        args = ["worker"] + [a for q in queues for a in ("--queues", q)]
        before = self.worker_names()
        process = self.gateway.start(*args)
        self.workers.append(process)
        self.wait_until(
            lambda: (self.worker_names() - before) and process.poll() is None,
            60,
            "the worker to wait for jobs",
        )
        return process

    def idle(self) -> bool:
        """A registered worker waits for jobs."""
        return b"idle" in [self.redis.hget(k, "state") for k in self.redis.smembers("rq:workers")]

    def stop_redis(self) -> None:
        """Redis goes away: Debian's server is stopped; the embedded one is SIGKILLed (its
        owner, ``gateway serve``, or a worker needing it then starts it again)."""
        if self.redis_server is not None:
            self.redis_server.stop()
            return
        pid = int(self._redis_pid_file().read_text())
        os.kill(pid, signal.SIGKILL)
        self._killed_redis = pid

    def start_redis(self) -> None:
        """Redis is back: Debian's server restarted; the embedded one, once a gateway process
        has started it again by itself."""
        if self.redis_server is not None:
            self.redis_server.start()
            return
        self.wait_until(
            lambda: (
                int(self._redis_pid_file().read_text()) != self._killed_redis and self.redis.ping()
            ),
            60,
            "the embedded Redis started again",
        )

    def _redis_pid_file(self) -> Path:
        return Path(self.gateway.env["GATEWAY_DATA_DIR"]) / "redis" / "redis.pid"

    def worker_names(self) -> set[bytes]:
        with contextlib.suppress(Exception):
            return set(self.redis.smembers("rq:workers"))
        return set()

    def kill(self, process: subprocess.Popen[bytes]) -> int:
        """SIGKILL to the worker and to its work horse (the child RQ forks for each job), as
        the kernel's OOM killer, ``systemctl kill -s KILL`` or a lost machine end them all;
        returns how many processes were killed."""
        horses = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGKILL)
        for horse in horses:
            with contextlib.suppress(psutil.NoSuchProcess):
                horse.kill()
        process.wait(10)
        psutil.wait_procs(horses, timeout=10)
        return 1 + len(horses)

    def terminate(self, process: subprocess.Popen[bytes]) -> float:
        """SIGTERM; returns the seconds the process took to exit (asserting it did, cleanly)."""
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(STOP_WITHIN + 20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("the worker ignored SIGTERM:\n" + self.logs()) from None
        took = time.monotonic() - started
        assert code == 0, self.logs()
        assert took < STOP_WITHIN, f"{took:.1f} s to stop:\n{self.logs()}"
        return took

    def logs(self) -> str:
        return self.gateway.logs()

    def wait_until(self, condition: Callable[[], Any], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # Redis restarting, the database locked
                if condition():
                    return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n{self.logs()}")

    # -- what happened -----------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.database_url)
        return self._engine

    def rows(self, query: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(query), params))

    def outbound(self) -> list[Any]:
        """Every outbound row: id, status, text, error, attempts, provider_message_id."""
        return self.rows(
            "SELECT id, status, text, error, attempts, provider_message_id "
            "FROM outbound_messages ORDER BY id"
        )

    def sent_to(self, number: str) -> Counter[str]:
        """What the fake Twilio accepted for ``number``: each text with its count."""
        return Counter(m["Body"] for m in self.fake.messages if m["To"] == number)

    def settled(self) -> bool:
        """No outbound row waiting or being sent."""
        return all(r.status not in ("queued", "sending") for r in self.outbound())

    def assert_each_reply_sent_once(self, numbers: list[str]) -> None:
        """Every outbound row is sent, and the fake took each text exactly once for each
        resident: nothing lost, nothing doubled."""
        rows = self.outbound()
        assert rows, "no reply at all"
        assert all(r.status == "sent" for r in rows), [(r.id, r.status, r.error) for r in rows]
        sids = [r.provider_message_id for r in rows]
        assert len(set(sids)) == len(sids), "two rows claim one message"
        accepted = {m["sid"] for m in self.fake.messages}
        assert set(sids) <= accepted, "a row marked sent with a message Twilio never took"
        total = 0
        for number in numbers:
            seen = self.sent_to(number)
            assert seen, f"nothing sent to resident {numbers.index(number)}"
            assert max(seen.values()) == 1, f"a reply doubled: {seen}"
            total += sum(seen.values())
        assert total == len(rows) == len(self.fake.messages), (total, len(rows))

    def api_token(self) -> str:
        return self.gateway.cli("tokens", "create", "faults", "--scope", "admin").strip()

    def close(self) -> None:
        with contextlib.suppress(AssertionError):  # a slow stop is not this suite's question
            self.gateway.stop()
        for process in self.gateway.processes:
            if process.poll() is None:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
        if self._engine is not None:
            self._engine.dispose()
        pid_file = Path(self.gateway.env["GATEWAY_DATA_DIR"]) / "redis" / "redis.pid"
        if pid_file.exists():  # an embedded Redis a killed process left running
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)


def sms(rig: Rig, sender: str, body: str) -> None:
    """A resident texts the city, as Twilio's webhook brings it."""
    from tests.helpers import sms_form

    response = rig.gateway.post_sms(sms_form(body, sender=sender, to=CITY))
    assert response.status_code == 200, response.text


@pytest.fixture(params=SETUPS)
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    """The gateway without a worker yet (``rig.start_worker()``); the fake Twilio is fresh."""
    fake = FakeTwilio().start()
    env = base_env(tmp_path, fake)
    env["GATEWAY_EMBEDDED_WORKER"] = "false"
    env["GATEWAY_TWILIO_FROM_NUMBER"] = CITY  # a voice message's SMS receipt is sent from it
    env["GATEWAY_OUTBOUND_MAX_ATTEMPTS"] = "3"  # a poison send gives up after 2 s + 4 s
    server: RedisServer | None = None
    if request.param == "postgresql-redis":
        if "postgres" not in request.keywords:
            request.applymarker(pytest.mark.postgres)
        database_url = request.getfixturevalue("postgres_url")
        _truncate_postgres(database_url)
        server = RedisServer(tmp_path)
        server.start()
        env["GATEWAY_DATABASE_URL"] = database_url
        env["GATEWAY_REDIS_URL"] = server.url
    else:
        database_url = f"sqlite:///{tmp_path / 'data' / 'gateway.sqlite3'}"
    gateway = Gateway(env, tmp_path)
    if server is not None:
        gateway.cli("db", "upgrade")
    rig = Rig(request.param, gateway, fake, database_url, server)
    gateway.start("serve")
    try:
        gateway.wait_healthy()
        yield rig
    finally:
        rig.close()
        fake.stop()
        if server is not None:
            server.stop()
