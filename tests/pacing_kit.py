"""Outbound pacing's test kit (tests/test_pacing.py, channels/telegram/tests/test_pacing.py):
replies queued as the gateway queues them, and a worker that sends them until none is left,
in this process or in another (``python -m tests.pacing_kit SETTINGS_JSON IDS_JSON``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise

from sqlalchemy import select

from gateway.clock import now_utc
from gateway.models import Contributor, OutboundMessage
from gateway.outbox import outbound_row
from gateway.privacy import contributor_address, new_contributor_id
from gateway.runtime import Runtime
from gateway.settings import Settings
from workers import outbound


def queue_replies(
    runtime: Runtime,
    channel: str,
    replies: Sequence[tuple[str, str]],
    sender: str | None = None,
    key: str = "receipt",
) -> list[int]:
    """One queued row per ``(address, text)``, in order; one resident per address."""
    now = now_utc()
    ids: list[int] = []
    people: dict[str, Contributor] = {}
    with runtime.sessions.begin() as session:
        for n, (address, text) in enumerate(replies):
            contributor = people.get(address)
            if contributor is None:
                address_hash = runtime.vault.lookup_hash(channel, address)
                contributor = Contributor(
                    public_id=new_contributor_id(),
                    channel=channel,
                    address_hash=address_hash,
                    address_encrypted=runtime.vault.encrypt(
                        address, contributor_address(channel, address_hash)
                    ),
                )
                session.add(contributor)
                session.flush()
                people[address] = contributor
            row = outbound_row(
                vault=runtime.vault,
                decision_key=f"pacing-{contributor.id}-{n}-{now.timestamp()}",
                channel=channel,
                contributor=contributor,
                inbound_id=None,
                contribution_id=None,
                sender=sender,
                key=key,
                text=text,
                now=now,
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
    return ids


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def statuses(runtime: Runtime, ids: Sequence[int]) -> list[str]:
    with runtime.sessions() as session:
        found = dict(
            session.execute(
                select(OutboundMessage.id, OutboundMessage.status).where(
                    OutboundMessage.id.in_(ids)
                )
            ).all()
        )
    return [found[i] for i in ids]


def warm(runtime: Runtime) -> None:
    """Load what a provider's library imports on its first use (Twilio's REST domains, a
    tenth of a second) before the clock starts: a first request slowed by imports reaches the
    fake late, and the next one, on time, would seem to come early."""
    client = getattr(runtime.sender("sms"), "_client", None)
    if client is not None:
        _ = client.messages


def drain(runtime: Runtime, ids: Sequence[int], timeout: float) -> None:
    """Send the rows as a worker and its sweeper would, until each is sent or failed: each
    due row in order, again when a row put back for its turn falls due."""
    warm(runtime)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime.sessions() as session:
            rows = session.execute(
                select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.next_attempt_at)
                .where(OutboundMessage.id.in_(ids))
                .order_by(OutboundMessage.id)
            ).all()
        if all(r.status not in ("queued", "sending") for r in rows):
            return
        now = now_utc()
        due = [
            r.id
            for r in rows
            if r.status == "queued"
            and (r.next_attempt_at is None or _aware(r.next_attempt_at) <= now)
        ]
        for outbound_id in due:
            outbound.send(runtime, outbound_id)
        if not due:
            time.sleep(0.02)
    raise TimeoutError(f"not all sent within {timeout} s: {statuses(runtime, ids)}")


def spans(times: Sequence[float]) -> float:
    """From the first to the last."""
    return max(times) - min(times) if times else 0.0


def gaps(times: Sequence[float]) -> list[float]:
    return [b - a for a, b in pairwise(sorted(times))]


def main(argv: list[str]) -> None:
    settings = Settings(**json.loads(argv[0]))
    runtime = Runtime.open(settings, migrate=False)
    try:
        drain(runtime, json.loads(argv[1]), timeout=float(argv[2]))
    finally:
        runtime.close()


if __name__ == "__main__":
    main(sys.argv[1:])
