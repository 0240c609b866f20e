"""A prefix's first reference taken by two workers at once (the first messages of a burst, found
by bench/burst.py on PostgreSQL): both get a number, different, and neither fails."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.orm import Session

from gateway import db
from gateway.references import next_reference


@pytest.mark.postgres
def test_two_workers_take_a_new_prefixs_first_references_at_once(postgres_url: str):
    engine = db.make_engine(postgres_url)
    prefix = f"T{time.time_ns() % 10**8}"
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def second_worker() -> None:
        try:
            with Session(engine) as session, session.begin():
                got["second"] = next_reference(session, prefix)
        except BaseException as exc:
            errors.append(exc)

    with Session(engine) as session, session.begin():
        got["first"] = next_reference(session, prefix)  # the row inserted, not yet committed
        other = threading.Thread(target=second_worker)
        other.start()
        time.sleep(1)  # the second finds no committed row and inserts too, then waits
    other.join(30)
    engine.dispose()
    assert errors == []
    assert got == {"first": f"{prefix}-0001", "second": f"{prefix}-0002"}


def test_the_first_reference_on_sqlite(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'refs.sqlite3'}")
    db.upgrade(engine)
    with Session(engine) as session, session.begin():
        assert next_reference(session, "PARC") == "PARC-0001"
        assert next_reference(session, "PARC") == "PARC-0002"
    engine.dispose()
