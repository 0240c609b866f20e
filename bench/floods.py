"""Flood limits' cost on the hot path: the two counts gateway.floods.measure makes per
processed message, on a large inbound table.

    python bench/floods.py sqlite:////tmp/floods.db
    python bench/floods.py postgresql+psycopg://agora:agora@127.0.0.1:5432/floods_bench

Creates the tables in the given (empty, throw-away) database, stores 200,000 messages (5,000
senders over 30 days, one flooder with a tenth of them in the last hour), times ``measure``
for 200 of them, prints the per-message time and the plan of the sender's count, then drops
the tables.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.orm import Session

from gateway import floods
from gateway.models import Base, InboundMessage
from gateway.settings import Settings

url = sys.argv[1]
engine = create_engine(url)
Base.metadata.drop_all(engine)
Base.metadata.create_all(engine)
now = datetime.now(UTC)
senders = [f"h{i:06d}" for i in range(5000)]
rows = [
    dict(
        channel="sms",
        provider_message_id=f"m{i}",
        sender_hash=random.choice(senders) if i % 10 else "flooder",
        text="x",
        attachments=[],
        received_at=now - timedelta(seconds=random.randint(0, 30 * 86400))
        if i % 10
        else now - timedelta(seconds=i % 3600),
        state="processed",
        attempts=0,
        kind="message",
    )
    for i in range(200_000)
]
with engine.begin() as c:
    for k in range(0, len(rows), 20000):
        c.execute(insert(InboundMessage), rows[k : k + 20000])
    if url.startswith("postgres"):
        c.execute(text("ANALYZE inbound_messages"))
    else:
        c.execute(text("ANALYZE"))
s = Settings(database_url=url)
with Session(engine) as session:
    msgs = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.sender_hash.in_(["flooder", senders[3]]))
        .limit(200)
    ).all()
    t = time.perf_counter()
    for m in msgs:
        floods.measure(session, s, m)
    dt = (time.perf_counter() - t) / len(msgs)
    print(url.split(":")[0], f"{dt * 1000:.2f} ms per message (two counts), {len(msgs)} samples")
    q = select(InboundMessage.id).where(
        InboundMessage.sender_hash == "flooder",
        InboundMessage.received_at > now - timedelta(minutes=1),
    )
    print(
        session.execute(
            text(
                "EXPLAIN "
                + ("QUERY PLAN " if url.startswith("sqlite") else "")
                + str(q.compile(engine, compile_kwargs={"literal_binds": True}))
            )
        ).all()
    )
Base.metadata.drop_all(engine)
