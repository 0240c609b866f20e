"""Database engine and sessions; migrations are applied through Alembic (gateway.migrations)."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from gateway import files

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class _WriteTurn:
    """The process's turn to write to one SQLite database (``_configure_sqlite``), held from
    ``BEGIN IMMEDIATE`` to the commit or rollback.

    ``gateway worker`` forks a child per job (RQ's work horse) while its sweeper thread may be
    in a transaction. The child would inherit a turn held by a thread it does not have (and
    wait out the 30 s timeout at every transaction), and SQLite's own record that this process
    holds the file's lock, which no one in the child will ever release ("database is locked").
    So a fork waits for the turn (no transaction of this process is open across it), and the
    child starts with a free turn; its pooled connections are dropped too (gateway.runtime)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held_for_fork = False
        _TURNS.add(self)


_TURNS: weakref.WeakSet[_WriteTurn] = weakref.WeakSet()
FORK_WAIT_SECONDS = 30  # as long as a transaction waits for its turn; then fork regardless


def _take_turns_before_fork() -> None:
    for turn in list(_TURNS):
        turn.held_for_fork = turn.lock.acquire(timeout=FORK_WAIT_SECONDS)


def _give_turns_back_after_fork() -> None:
    for turn in list(_TURNS):
        if turn.held_for_fork:
            turn.held_for_fork = False
            turn.lock.release()


def _free_turns_in_child() -> None:
    for turn in list(_TURNS):
        turn.lock, turn.held_for_fork = threading.Lock(), False


os.register_at_fork(
    before=_take_turns_before_fork,
    after_in_parent=_give_turns_back_after_fork,
    after_in_child=_free_turns_in_child,
)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
        if path and path != ":memory:" and not path.startswith("file:"):
            _private_database_file(Path(path))
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True, **kwargs)
        _configure_sqlite(engine)
        return engine
    # hide_parameters: a database error's text (logged, stored as a message's error, kept by
    # RQ in Redis) never carries the values bound to the statement, residents' words among them.
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)


# How long a writer waits for SQLite's write lock before "database is locked".
BUSY_TIMEOUT_MS = 30000
WRITE_WAIT = "gateway_write_wait"  # a connection's own, shorter wait (``waiting_at_most``)


@contextmanager
def waiting_at_most(engine: Engine, seconds: float) -> Iterator[Connection]:
    """A connection whose writes give up after ``seconds`` when the database is locked, instead
    of the usual 30 s: for a webhook, whose provider may give up after 15 s, a 503 it can
    retry is worth more than an answer it no longer waits for. SQLite: the busy timeout (and the
    wait for this process's write turn); on PostgreSQL the caller sets ``lock_timeout`` in its
    transaction (``SET LOCAL``)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            raw = connection.connection.driver_connection
            assert raw is not None
            connection.info[WRITE_WAIT] = seconds
            raw.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
            try:
                yield connection
            finally:
                connection.info.pop(WRITE_WAIT, None)
                raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            return
        yield connection


# Set on a connection while it writes webhooks: its commits leave the WAL's checkpoint to
# ``checkpoint`` (gateway.ingest runs it on a thread of its own), so that no webhook waits for
# the copy back into the database file and its two fsyncs.
NO_AUTOCHECKPOINT = "PRAGMA wal_autocheckpoint=0"
AUTOCHECKPOINT = "PRAGMA wal_autocheckpoint=1000"  # SQLite's default, every other connection's


@contextmanager
def leaving_checkpoints(connection: Connection) -> Iterator[None]:
    """SQLite: this connection's commits do not checkpoint the WAL (``checkpoint`` does, from
    another thread); nothing elsewhere. What a commit guarantees is unchanged: with
    synchronous=NORMAL it is in the WAL, safe from a crash of the process either way."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute(NO_AUTOCHECKPOINT)
    try:
        yield
    finally:
        try:
            raw.execute(AUTOCHECKPOINT)
        except sqlite3.Error:
            # Not given back to the pool without SQLite's own checkpoints.
            connection.invalidate()


def checkpoint(engine: Engine) -> int:
    """Copy what the WAL holds back into the database file without waiting for any reader or
    writer (a passive checkpoint); returns the WAL's frames left uncopied (0: all of it).
    SQLite only; runs beside a writer, which keeps appending to the WAL meanwhile."""
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        row = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        _busy, frames, copied = row if row is not None else (0, 0, 0)
        return max(int(frames) - int(copied), 0)


def _private_database_file(path: Path) -> None:
    """The database file is created owner-only before SQLite opens it: SQLite gives its -wal,
    -shm and -journal files the database file's own mode, so they are private too. Files made
    by an older version (0644) are tightened."""
    files.private_dir(path.parent)
    files.private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            files.private_file(companion)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling starts transactions lazily and as readers, which
    # under concurrent writers (web process, workers, CLI) fails with "database is locked"
    # instead of waiting. Take the write lock up front (BEGIN IMMEDIATE) and wait for it.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Deleted rows are overwritten, not left in free pages: an erased resident's data is
        # gone from the file, not only from the tables (gateway.residents).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    # SQLite's own wait for its write lock sleeps in growing steps (up to 100 ms), so two
    # busy writer threads of one process (webhook ingest and the in-process worker) can keep
    # missing each other's turn for a second or more. Threads of one process therefore queue
    # on a Python lock first, which hands over at once; SQLite still arbitrates between
    # processes, and correctness never depends on this lock (it only orders the waiting).
    turn = _WriteTurn()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if turn.lock.acquire(timeout=connection.info.get(WRITE_WAIT, BUSY_TIMEOUT_MS / 1000)):
            connection.info["write_turn"] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(connection)
            raise

    def _release(connection: Any) -> None:
        if connection.info.pop("write_turn", False):
            turn.lock.release()

    # SQLAlchemy's commit and rollback events come before the database does it: end the
    # transaction here, then give the turn back, so that nothing of it (the WAL's write lock,
    # a checkpoint) is still going on once the turn is free; a fork waits for the turn
    # (_WriteTurn). SQLAlchemy's own COMMIT or ROLLBACK that follows finds no transaction
    # open, which pysqlite answers by doing nothing. Should ours fail, the transaction is still
    # open and SQLAlchemy's own attempt raises the error as it always did.
    def _end(connection: Any, how: str) -> None:
        try:
            getattr(connection.connection.dbapi_connection, how)()
        except Exception as exc:
            log.debug("sqlite %s before its turn is given back: %s", how, type(exc).__name__)
        finally:
            _release(connection)

    def _commit(connection: Any) -> None:
        _end(connection, "commit")

    def _rollback(connection: Any) -> None:
        _end(connection, "rollback")

    event.listen(engine, "commit", _commit)
    event.listen(engine, "rollback", _rollback)


def make_read_engine(url: str) -> Engine | None:
    """For SQLite, an engine for read-only work that takes no write lock (None elsewhere, and
    for an in-memory database, which a second engine would not see).

    Every transaction of the main engine begins IMMEDIATE and queues on the process's write
    turn (above), readers included: a long read, such as a large campaign's open data built
    for an anonymous visitor, would hold webhooks back for as long as it runs. In WAL mode a
    reader in a deferred transaction blocks no writer and reads one consistent snapshot, and
    ``query_only`` makes sure nothing written through this engine goes unnoticed."""
    if not url.startswith("sqlite") or ":memory:" in url or "///" not in url:
        return None
    engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")  # deferred: a reader's snapshot, no lock taken

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def is_current(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current == head


class SchemaNotCurrent(RuntimeError):
    pass


def prepare(engine: Engine) -> None:
    """Make sure the schema is current before serving.

    SQLite (the embedded default, one machine) is migrated automatically. A shared server
    database is migrated only by an explicit ``gateway db upgrade``: several ``serve`` and
    ``worker`` processes starting together must not race to alter a schema other processes use.
    """
    if is_current(engine):
        optimize(engine)
        return
    if engine.dialect.name == "sqlite":
        log.info("applying database migrations")
        upgrade(engine)
        optimize(engine)
        return
    raise SchemaNotCurrent("the database schema is not current: run `gateway db upgrade` first")


_OPTIMIZED: dict[str, float] = {}
OPTIMIZE_EVERY = 3600.0


def optimize(engine: Engine, *, every: float = 0.0) -> None:
    """Refresh SQLite's query planner statistics, at most once per ``every`` seconds per
    process. Without them SQLite picks a worse index for some queue queries (a count over
    20,000 contributions: 30 ms instead of 3 ms). A full ANALYZE, because a sampled one
    (``analysis_limit``) misjudges the status index, the very one that matters; it reads
    each index once (about 0.1 s at 20,000 contributions). ``PRAGMA optimize`` alone does
    nothing on a fresh connection before SQLite 3.46. PostgreSQL's autovacuum
    keeps its own statistics: nothing to do there."""
    if engine.dialect.name != "sqlite":
        return
    key = str(engine.url)
    now = time.monotonic()
    if every and now - _OPTIMIZED.get(key, -every) < every:
        return
    _OPTIMIZED[key] = now
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
