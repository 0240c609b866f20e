"""Contribution references (« PARC-0042 »): one counter per prefix, in the database, taken
under a row lock so that two workers never hand out the same number."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.models import ReferenceCounter

# The prefix of a contribution filed before a campaign was chosen.
UNASSIGNED_PREFIX = "AGORA"


def next_reference(session: Session, prefix: str) -> str:
    counter = session.get(ReferenceCounter, prefix, with_for_update=True)
    if counter is None:
        counter = ReferenceCounter(prefix=prefix, value=0)
        session.add(counter)
    counter.value += 1
    session.flush()
    return f"{prefix}-{counter.value:04d}"
