"""`gateway worker` forks a child per job (RQ's work horse) while its sweeper thread may be in a
transaction. On SQLite every transaction first takes the process's write turn (gateway.db): a
child must not inherit a turn held by a thread it does not have, or every transaction of every
job waits out the turn's 30 s timeout (found by bench/burst.py: two workers on SQLite stalled)."""

from __future__ import annotations

import os
import threading
import traceback
from pathlib import Path

from sqlalchemy import text

from gateway import db


def test_a_child_forked_while_a_thread_writes_gets_its_own_write_turn(tmp_path: Path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'fork.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    inside, leave = threading.Event(), threading.Event()

    def sweeper() -> None:  # a thread of the parent, in a transaction at the fork
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO notes (body) VALUES ('parent')"))
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=sweeper)
    thread.start()
    assert inside.wait(30)
    read, write = os.pipe()
    # The fork waits for the sweeper's transaction to end (the turn): let it end soon.
    threading.Timer(0.5, leave.set).start()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            engine.dispose(close=False)  # as gateway.runtime does after a fork
            with engine.begin() as connection:
                took_turn = bool(connection.info.get("write_turn"))
                connection.execute(text("INSERT INTO notes (body) VALUES ('child')"))
            os.write(write, b"turn" if took_turn else b"no turn")
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write)
    thread.join(30)
    answer = os.read(read, 100)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # Without a fresh turn the child's acquire times out (30 s) and it writes without it;
    # forked inside the sweeper's transaction, its BEGIN IMMEDIATE fails (database is locked).
    assert answer == b"turn"
    with engine.connect() as connection:
        bodies = sorted(connection.execute(text("SELECT body FROM notes")).scalars())
    assert bodies == ["child", "parent"]
    engine.dispose()
