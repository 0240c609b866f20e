"""Fixtures of the fault suite: the two set-ups of `gateway serve` (tests/faults/serve_kit.py),
each test's own (a fresh PostgreSQL database and a Debian Redis it may stop, or a data folder
of its own), and a PostgreSQL cluster of the test's own for the scenarios that stop the
database. The worker scenarios keep their fixtures in tests/faults/worker_kit.py."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from channels.twilio.tests.fake_api import FakeTwilio
from tests.faults.serve_kit import POSTGRESQL, SQLITE, PrivateCluster, Stack
from tests.fixtures import RedisServer

BOTH = [SQLITE, pytest.param(POSTGRESQL, marks=pytest.mark.postgres)]


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as f:
        yield f


@pytest.fixture
def debian_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Debian redis-server of the test's own: the test may stop it and start it again."""
    (tmp_path / "redis-server").mkdir()
    server = RedisServer(tmp_path / "redis-server")
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def _fresh_database(admin_url: str) -> Iterator[str]:
    name = f"agora_faults_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BOTH)
def stack(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeTwilio) -> Iterator[Stack]:
    """One of the two set-ups, not started yet (``stack.start()``), stopped after the test."""
    if request.param == SQLITE:
        built = Stack(SQLITE, tmp_path, fake)
        try:
            yield built
        finally:
            built.stop()
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    redis = request.getfixturevalue("debian_redis")
    with _fresh_database(admin_url) as url:
        built = Stack(POSTGRESQL, tmp_path, fake, database_url=url, redis=redis)
        try:
            yield built
        finally:
            built.stop()


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of the test's own, running, with an empty database."""
    cluster = PrivateCluster()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.remove()
