"""Shared fixtures: real Redis servers, real PostgreSQL and SQLite, a fake Twilio.

A pytest plugin, registered for the whole repository by the root ``conftest.py``
(``pytest_plugins``), so that the tests under ``tests/`` and those beside each channel
(``channels/<provider>/tests/``) get the same fixtures: a ``tests/conftest.py`` applies only
below ``tests/``.

Servers the tests need but cannot find are skipped locally with the reason, and are errors
under CI=true (CI installs them; a skip there would hide a missing install step).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import campaigns, db
from gateway.models import Base
from gateway.runtime import Runtime
from gateway.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent
TEST_CAMPAIGNS = REPO / "tests" / "campaigns"
DEFAULT_PG = "postgresql+psycopg://agora:agora@127.0.0.1:5432/postgres"


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """The path of a Debian tool the test needs (espeak-ng, sox, ...)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (apt-get install {name})")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway Debian redis-server on loopback that a test can stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("Debian's redis-server is not installed")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get("GATEWAY_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        engine = create_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        unavailable(f"PostgreSQL unreachable at {make_url(url).render_as_string()}: {exc}")
    return url


@contextlib.contextmanager
def throwaway_postgres(admin_url: str, prefix: str = "agora_test") -> Iterator[str]:
    """A new, empty PostgreSQL database on the server ``admin_url`` names, dropped afterwards
    (connections still open included): its URL. Tests, the fault suite and the benchmarks."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of our own for this test session, migrated once."""
    with throwaway_postgres(postgres_admin_url) as url:
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        yield url


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
        return
    url = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    yield url


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, redis_server: RedisServer, fake_twilio: FakeTwilio
) -> Settings:
    Redis.from_url(redis_server.url).flushdb()
    return Settings(
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        redis_url=redis_server.url,
        secret_key="test-secret-key-" + uuid.uuid4().hex,
        campaigns_dir=str(TEST_CAMPAIGNS),
        public_url="https://gateway.example.org",
        twilio_account_sid=fake_twilio.account_sid,
        twilio_auth_token=fake_twilio.auth_token,
        twilio_api_base=fake_twilio.base_url,
        twilio_from_number="+33100000009",
        sweep_grace_seconds=0,
        # The fakes do not limit unless told: tests of pacing turn it on (tests/test_pacing.py).
        outbound_pacing=False,
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.open(settings, migrate=settings.database_url.startswith("sqlite"))
    with rt.sessions.begin() as session:
        campaigns.upsert(session, campaigns.read_files([TEST_CAMPAIGNS]))
    yield rt
    rt.close()
