"""The fault suite's kit for `gateway serve` (tests/faults/test_serve_*.py): a set-up's
processes (``Stack``), residents' messages that can be delivered again as a provider retries
them (``Message``, ``Deliveries``), and the one check every scenario ends with
(``exactly_once``): each message filed once, none twice, nothing half-written, and each
resident's receipt sent once, counted per provider message id and per recipient.

Two set-ups, as operators run the gateway:
- ``sqlite-embedded``: SQLite, the embedded Redis and `gateway serve`'s own worker;
- ``postgresql-redis``: a fresh PostgreSQL database, a Debian `redis-server` on loopback,
  `gateway serve` and a separate `gateway worker`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import outages
from gateway.models import Contribution, InboundMessage, OutboundMessage
from tests.fixtures import RedisServer, free_port, unavailable
from tests.helpers import sms_form
from tests.processes import Gateway, base_env

SQLITE = "sqlite-embedded"
POSTGRESQL = "postgresql-redis"
SETUPS = (SQLITE, POSTGRESQL)
CAMPAIGN_NUMBER = "+33100000001"  # the parc campaign's number (tests/campaigns)
RETRY_AFTER = str(outages.RETRY_AFTER_SECONDS)


class Stack:
    """One set-up's processes, and what a test needs to look inside them."""

    def __init__(
        self,
        kind: str,
        tmp_path: Path,
        fake: FakeTwilio,
        *,
        database_url: str | None = None,
        redis: RedisServer | None = None,
    ) -> None:
        self.kind = kind
        self.fake = fake
        self.data = tmp_path / "data"
        env = base_env(tmp_path, fake)  # paced as a short code: faults, not pacing, here
        if kind == POSTGRESQL:
            assert database_url is not None and redis is not None
            env["GATEWAY_DATABASE_URL"] = database_url
            env["GATEWAY_REDIS_URL"] = redis.url
        self.database_url = database_url or f"sqlite:///{self.data / 'gateway.sqlite3'}"
        self.redis = redis
        self.gateway = Gateway(env, tmp_path)
        self.serve: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self._engine: Engine | None = None

    @property
    def embedded(self) -> bool:
        return self.kind == SQLITE

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.database_url, pool_pre_ping=True)
        return self._engine

    def start(self) -> None:
        if not self.embedded:
            self.gateway.cli("db", "upgrade")
        self.serve = self.gateway.start("serve")
        if not self.embedded:
            self.worker = self.gateway.start("worker")
        self.gateway.wait_healthy()

    def restart_serve(self) -> None:
        self.serve = self.gateway.start("serve")
        self.gateway.wait_healthy()

    def another_web_process(self) -> str:
        """A second `gateway serve` on its own port, sharing the database and Redis (on the
        embedded set-up, the data folder: its SQLite file and its Redis server)."""
        port = free_port()
        env = dict(self.gateway.env, GATEWAY_PORT=str(port))
        self.gateway.start("serve", env=env)
        url = f"http://127.0.0.1:{port}"
        self.gateway.wait_healthy(url=url)
        return url

    def redis_client(self) -> Redis:
        if self.redis is not None:
            return Redis.from_url(self.redis.url, socket_timeout=5)
        return Redis(unix_socket_path=str(self.data / "redis" / "redis.sock"), socket_timeout=5)

    def embedded_redis_pid(self) -> int:
        return int((self.data / "redis" / "redis.pid").read_text())

    def stop_redis(self) -> None:
        """Redis goes away: Debian's server is stopped; the embedded one is killed (the
        gateway brings it back by itself)."""
        if self.redis is not None:
            self.redis.stop()
        else:
            os.kill(self.embedded_redis_pid(), signal.SIGKILL)

    def start_redis(self, timeout: float = 60) -> None:
        """Redis is back: Debian's is started again (systemd would); the embedded one is
        waited for, as the running gateway revives it."""
        if self.redis is not None:
            self.redis.start()
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                client = self.redis_client()
                try:
                    if client.ping():
                        return
                finally:
                    client.close()
            time.sleep(0.2)
        raise AssertionError("the embedded Redis was not revived:\n" + self.gateway.logs())

    def stop(self) -> None:
        try:
            self.gateway.stop()
        finally:
            if self._engine is not None:
                self._engine.dispose()
            if self.embedded:
                # A Redis a killed `gateway serve` left must not outlive the test.
                with contextlib.suppress(OSError, ValueError):
                    os.kill(self.embedded_redis_pid(), signal.SIGKILL)


@dataclass(frozen=True)
class Message:
    """One resident's SMS, as Twilio delivers it, every time with the same MessageSid."""

    sid: str
    sender: str
    text: str

    @property
    def form(self) -> dict[str, str]:
        return sms_form(f"PARC {self.text}", sender=self.sender, to=CAMPAIGN_NUMBER, sid=self.sid)


def residents_messages(n: int, what: str) -> list[Message]:
    """``n`` residents, one message each, with texts no other message of the test carries."""
    run = uuid.uuid4().hex[:8]
    return [
        Message(sid=f"SM{run}{i:024x}", sender=f"+3365{i:07d}", text=f"{what} {run} numéro {i}")
        for i in range(n)
    ]


@dataclass
class Deliveries:
    """Webhook deliveries and their answers, per message; what a provider would retry."""

    stack: Stack
    timeout: float = 60
    answers: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, message: Message, url: str | None = None) -> str:
        """Delivers once; returns the answer: "200", "503+Retry-After", or what went wrong."""
        try:
            response = self.stack.gateway.post_sms(message.form, self.timeout, url)
        except requests.RequestException as exc:
            answer = type(exc).__name__
        else:
            answer = str(response.status_code)
            if response.status_code == 503:
                retry = response.headers.get("Retry-After")
                answer = "503+Retry-After" if retry == RETRY_AFTER else f"503 (Retry-After {retry})"
            elif response.status_code == 200 and "<Response></Response>" not in response.text:
                answer = "200 without TwiML"
        with self._lock:
            self.answers.setdefault(message.sid, []).append(answer)
        return answer

    def burst(
        self,
        messages: list[Message],
        *,
        threads: int = 8,
        during: Callable[[int], None] | None = None,
        pace: float = 0.0,
    ) -> None:
        """Delivers every message once, ``threads`` at a time; ``during(i)`` runs in this
        thread before message ``i`` is handed over (where a test stops something)."""
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for i, message in enumerate(messages):
                if during is not None:
                    during(i)
                pool.submit(self.deliver, message)
                if pace:
                    time.sleep(pace)

    def acknowledged(self, message: Message) -> bool:
        with self._lock:
            return "200" in self.answers.get(message.sid, [])

    def unexpected(self, allowed: Iterable[str] = ("200", "503+Retry-After")) -> dict[str, Any]:
        """The answers a provider cannot act on (a 500, a 503 without Retry-After, a timeout)."""
        ok = set(allowed)
        with self._lock:
            return {
                sid: answers
                for sid, answers in self.answers.items()
                if any(a not in ok for a in answers)
            }

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(a for answers in self.answers.values() for a in answers)

    def redeliver(self, messages: list[Message], within: float = 120) -> int:
        """Delivers again, as the provider retries, every message not acknowledged yet, until
        each is (one pass every Retry-After seconds at most). Returns the deliveries made."""
        deadline = time.monotonic() + within
        made = 0
        while True:
            waiting = [m for m in messages if not self.acknowledged(m)]
            if not waiting:
                return made
            assert time.monotonic() < deadline, (
                f"{len(waiting)} message(s) still refused after {within:.0f} s: "
                f"{self.counts()}\n" + self.stack.gateway.logs()
            )
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(self.deliver, waiting))
            made += len(waiting)
            if any(not self.acknowledged(m) for m in waiting):
                time.sleep(1)


@dataclass
class Ledger:
    """What the database and the fake provider hold about the test's messages."""

    inbound: dict[str, list[str]]  # MessageSid -> the states of its inbound rows
    contributions: Counter[str]  # a message's text -> contributions carrying it
    receipts: dict[str, list[str]]  # a message's text -> its receipts' statuses
    sent: Counter[str]  # a recipient -> receipts the provider was asked to send
    unfinished: int  # outbound rows still queued or being sent
    inbound_rows: int
    contribution_rows: int


def ledger(stack: Stack) -> Ledger:
    with stack.engine.connect() as connection:
        inbound: dict[str, list[str]] = {}
        for sid, state in connection.execute(
            select(InboundMessage.provider_message_id, InboundMessage.state).where(
                InboundMessage.channel == "sms"
            )
        ):
            inbound.setdefault(sid, []).append(state)
        texts = {
            row.id: str(row.text)
            for row in connection.execute(select(Contribution.id, Contribution.text))
        }
        receipts: dict[str, list[str]] = {}
        for contribution_id, status in connection.execute(
            select(OutboundMessage.contribution_id, OutboundMessage.status).where(
                OutboundMessage.message_key == "receipt.default"
            )
        ):
            if contribution_id in texts:
                receipts.setdefault(texts[contribution_id], []).append(status)
        unfinished = connection.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.status.in_(("queued", "sending")))
        )
        inbound_rows = connection.scalar(select(func.count()).select_from(InboundMessage))
    sent = Counter(m["To"] for m in stack.fake.messages if "PARC-" in m["Body"])
    return Ledger(
        inbound=inbound,
        contributions=Counter(texts.values()),
        receipts=receipts,
        sent=sent,
        unfinished=int(unfinished or 0),
        inbound_rows=int(inbound_rows or 0),
        contribution_rows=len(texts),
    )


def _settled(found: Ledger, messages: list[Message]) -> bool:
    return (
        all(
            found.contributions[m.text]
            and found.receipts.get(m.text)
            and found.sent[m.sender]
            and found.inbound.get(m.sid) == ["processed"]
            for m in messages
        )
        and not found.unfinished
    )


def exactly_once(stack: Stack, messages: list[Message], within: float = 360) -> Ledger:
    """Waits until every message is filed and its receipt sent (a deadline, not a timing: a
    worker on a busy 2-core CI machine works through ~500 replies slowly), then checks that each was
    filed once, none twice, each receipt queued and sent once, and nothing half-written: one
    inbound row per message, processed, with its contribution, and no receipt left queued."""
    deadline = time.monotonic() + within
    found = ledger(stack)
    while not _settled(found, messages) and time.monotonic() < deadline:
        time.sleep(0.5)
        with contextlib.suppress(Exception):  # the database busy or coming back: look again
            found = ledger(stack)
    time.sleep(3)  # a doubled job, a second receipt, would show now
    found = ledger(stack)
    lost = [m.text for m in messages if not found.contributions[m.text]]
    doubled = {m.text: n for m in messages if (n := found.contributions[m.text]) > 1}
    assert not lost, f"{len(lost)} message(s) lost, e.g. {lost[:3]}\n" + stack.gateway.logs()
    assert not doubled, f"filed more than once: {doubled}"
    half = {m.sid: s for m in messages if (s := found.inbound.get(m.sid)) != ["processed"]}
    assert not half, f"inbound rows not processed (or not one per message): {half}"
    assert found.inbound_rows == len(messages), "inbound rows that are not the test's messages"
    assert found.contribution_rows == len(messages), "contributions that are not the messages'"
    queued = {m.text: r for m in messages if (r := found.receipts.get(m.text)) != ["sent"]}
    assert not queued, f"receipts not queued and sent once: {queued}\n" + stack.gateway.logs()
    assert found.unfinished == 0
    wrong = {m.sender: n for m in messages if (n := found.sent[m.sender]) != 1}
    assert not wrong, f"receipts sent to a resident other than once: {wrong}"
    assert set(found.sent) == {m.sender for m in messages}, "a receipt to someone else"
    return found


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Runs the calls in threads released together (a barrier), returns their results."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


class PrivateCluster:
    """A PostgreSQL cluster of the test's own (Debian's initdb and pg_ctl, in a temporary
    folder, on a free loopback port), that the test may stop and start: never the machine's
    shared cluster. PostgreSQL refuses to run as root: as root, it runs as ``postgres``."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found and shutil.which("initdb") is None:
            unavailable("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        self.bin = Path(found[-1]).parent if found else Path(str(shutil.which("initdb"))).parent
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="agora-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.directory, "postgres", "postgres")
        self.pgdata = self.directory / "data"
        self.log = self.directory / "postgresql.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://agora@127.0.0.1:{self.port}/agora"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def create(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            "agora",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.start()
        self._run(
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "agora",
            "agora",
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.pgdata),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
