"""Keeping each contribution's search text and text group current.

``refresh`` runs before every insert and update of a contribution (a mapper event, so no code
path that sets a text can forget it): it folds the text, transcript, public version and
reference into ``search_text`` for accent-blind search, and fingerprints the text.

``assign`` puts a contribution in a group: the group of an identical text (same fingerprint) in
the same campaign, else the group of a near-identical one (gateway.moderation.similarity),
else a group of its own. Only the first contribution of each group is compared against, among
the campaign's last ``CANDIDATES`` groups: a tract is copied within days, and comparing
against every past text would make filing slower as the campaign grows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from gateway.models import Contribution
from gateway.moderation import similarity
from gateway.textnorm import fold

CANDIDATES = 300


def search_text(c: Contribution) -> str:
    parts = (c.reference, c.text, c.transcript, c.public_text, c.neighbourhood)
    return fold(" ".join(p for p in parts if p))


def refresh(c: Contribution) -> None:
    c.search_text = search_text(c)
    c.fingerprint = similarity.fingerprint(c.text or "")


@event.listens_for(Contribution, "before_insert")
@event.listens_for(Contribution, "before_update")
def _before_write(_mapper: Any, _connection: Any, target: Contribution) -> None:
    refresh(target)


def assign(session: Session, contribution: Contribution) -> None:
    """Set ``group_id``; the contribution must have been flushed (it needs its id)."""
    refresh(contribution)
    if contribution.group_id == contribution.id and session.scalar(
        select(Contribution.id)
        .where(Contribution.group_id == contribution.id, Contribution.id != contribution.id)
        .limit(1)
    ):
        return  # others joined this group through its first text: it stays their group
    if not contribution.fingerprint:
        contribution.group_id = contribution.id
        return
    same_campaign = (
        Contribution.campaign_id == contribution.campaign_id
        if contribution.campaign_id is not None
        else Contribution.campaign_id.is_(None)
    )
    identical = session.scalar(
        select(Contribution.group_id)
        .where(
            same_campaign,
            Contribution.fingerprint == contribution.fingerprint,
            Contribution.id != contribution.id,
            Contribution.group_id.is_not(None),
        )
        .order_by(Contribution.id)
        .limit(1)
    )
    if identical is not None:
        contribution.group_id = identical
        return
    leaders = session.execute(
        select(Contribution.id, Contribution.text)
        .where(
            same_campaign,
            Contribution.group_id == Contribution.id,
            Contribution.id != contribution.id,
        )
        .order_by(Contribution.id.desc())
        .limit(CANDIDATES)
    ).all()
    found = similarity.find_group(contribution.text or "", [(i, t or "") for i, t in leaders])
    contribution.group_id = found if found is not None else contribution.id
