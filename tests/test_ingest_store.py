"""``ingest.store`` writes its rows with a driver-level statement: what it stores must be what
the ORM reads back, on SQLite and PostgreSQL, for batches of any size, with duplicates within a
batch and across batches absorbed and a refused value quarantined without its neighbours."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from gateway import db, ingest
from gateway.models import InboundMessage, QuarantinedMessage
from gateway.privacy import inbound_raw, inbound_sender
from gateway.runtime import Runtime
from tests.helpers import incoming_sms


def rows(runtime: Runtime) -> list[InboundMessage]:
    with runtime.sessions() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def test_a_batch_larger_than_one_statement_is_stored_as_the_orm_reads_it(runtime: Runtime):
    received = datetime(2026, 3, 12, 17, 4, 5, 123456, tzinfo=UTC)
    messages = [
        replace(
            incoming_sms(f"PARC idée n°{i} : des bancs 🌳", sender=f"+336{i:08d}"),
            received_at=received,
            attachments=[{"url": f"https://example.org/{i}", "content_type": "image/jpeg"}],
            provider="twilio",
        )
        for i in range(150)  # three statements of at most 66 rows
    ]
    stored = ingest.store(runtime, messages)
    assert [s.duplicate for s in stored] == [False] * 150
    assert all(s.enqueued for s in stored)
    found = rows(runtime)
    assert [m.id for m in found] == [s.message_id for s in stored]
    for message, row in zip(messages, found, strict=True):
        assert row.provider_message_id == message.provider_message_id
        assert row.text == message.text
        assert row.recipient == message.recipient
        assert row.received_at == received
        assert row.attachments == message.attachments
        assert (row.kind, row.provider, row.state, row.attempts) == (
            "message",
            "twilio",
            "received",
            0,
        )
        assert row.sender_hash == runtime.vault.lookup_hash("sms", message.sender)
        assert row.sender_encrypted is not None and row.raw_encrypted is not None
        assert (
            runtime.vault.decrypt(
                row.sender_encrypted, inbound_sender("sms", row.provider_message_id)
            )
            == message.sender
        )
        assert message.sender.encode() not in row.raw_encrypted
        raw = runtime.vault.decrypt_bytes(
            row.raw_encrypted, inbound_raw("sms", row.provider_message_id)
        )
        assert json.loads(raw) == message.raw
    # One job for the group commit, named on every row it carries.
    assert len({row.job_id for row in found}) == 1
    assert found[0].job_id is not None


def test_duplicates_in_a_batch_and_across_batches_make_one_row_each(runtime: Runtime):
    first = incoming_sms("PARC des bancs", sender="+33612345601")
    second = incoming_sms("PARC des arbres", sender="+33612345602")
    stored = ingest.store(runtime, [first, second, first])
    assert [(s.duplicate, s.message_id is not None) for s in stored] == [
        (False, True),
        (False, True),
        (True, False),
    ]
    again = ingest.store(runtime, [second, incoming_sms("PARC une fontaine")])
    assert again[0].duplicate and again[0].message_id is None
    assert not again[1].duplicate
    assert [m.text for m in rows(runtime)] == [
        "PARC des bancs",
        "PARC des arbres",
        "PARC une fontaine",
    ]


def test_a_value_the_column_types_refuse_is_quarantined_and_its_batch_stored(runtime: Runtime):
    fine = incoming_sms("PARC des bancs", sender="+33612345601")
    # An attachment's field that is no JSON (a plugin's slip): the JSON column refuses it.
    odd = replace(
        incoming_sms("PARC une photo"), attachments=[{"taken": datetime(2026, 3, 12, tzinfo=UTC)}]
    )
    after = incoming_sms("PARC des arbres", sender="+33612345602")
    stored = ingest.store(runtime, [fine, odd, after])
    assert [s.quarantined for s in stored] == [False, True, False]
    assert [m.text for m in rows(runtime)] == ["PARC des bancs", "PARC des arbres"]
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(QuarantinedMessage)) == 1


async def test_webhook_commits_leave_the_wal_to_a_checkpoint_beside_them(
    runtime: Runtime, monkeypatch
):
    """SQLite: BatchingIngest's commits do not checkpoint the WAL themselves; it runs passive
    checkpoints on a thread of its own, and the connection gets SQLite's default back."""
    checkpoints: list[int] = []
    real = db.checkpoint

    def counted(engine: Engine) -> int:
        left = real(engine)
        checkpoints.append(left)
        return left

    monkeypatch.setattr(db, "checkpoint", counted)
    monkeypatch.setattr(ingest, "CHECKPOINT_EVERY", 0.0)
    batching = ingest.BatchingIngest(runtime)
    await batching.start()
    try:
        for round_ in range(3):
            await asyncio.gather(
                *(
                    batching.accept(incoming_sms(f"PARC {round_}-{i}", f"+3361111{i:04d}"))
                    for i in range(20)
                )
            )
    finally:
        await batching.stop()
    assert len(rows(runtime)) == 60
    if runtime.engine.dialect.name != "sqlite":
        assert checkpoints == []
        return
    assert checkpoints, "no checkpoint ran"
    assert db.checkpoint(runtime.engine) == 0  # everything committed is copied back
    with runtime.engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
