"""Contribution references (« PARC-0042 »): one counter per prefix, in the database, taken
under a row lock so that two workers never hand out the same number."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.models import ReferenceCounter

# The prefix of a contribution filed before a campaign was chosen.
UNASSIGNED_PREFIX = "AGORA"


def next_reference(session: Session, prefix: str) -> str:
    counter = session.get(ReferenceCounter, prefix, with_for_update=True)
    if counter is None:
        # A prefix's first reference: two workers may both find no row (a burst's first
        # messages, bench/burst.py). Each inserts it unless present, which on PostgreSQL waits
        # for the other's uncommitted row and then does nothing, and both take the row's lock;
        # a plain insert made the second one fail (UniqueViolation) and its message quarantined.
        session.execute(_insert_unless_present(session, prefix))
        counter = session.get(
            ReferenceCounter, prefix, with_for_update=True, populate_existing=True
        )
        assert counter is not None
    counter.value += 1
    session.flush()
    return f"{prefix}-{counter.value:04d}"


def _insert_unless_present(session: Session, prefix: str) -> Any:
    row = {"prefix": prefix, "value": 0}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(ReferenceCounter).values(row).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(ReferenceCounter).values(row).on_conflict_do_nothing()
    return insert(ReferenceCounter).values(row)  # pragma: no cover - the two backends only
