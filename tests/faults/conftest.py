"""Fixtures of the fault suite: the two set-ups of `gateway serve` (tests/faults/serve_kit.py),
each test's own (a fresh PostgreSQL database and a Debian Redis it may stop, or a data folder
of its own), and a PostgreSQL cluster of the test's own for the scenarios that stop the
database. The worker scenarios keep their fixtures in tests/faults/worker_kit.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.twilio.tests.fake_api import FakeTwilio
from tests.faults.serve_kit import POSTGRESQL, SQLITE, PrivateCluster, Stack
from tests.fixtures import RedisServer, throwaway_postgres

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
    with throwaway_postgres(admin_url, "agora_faults") as url:
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
