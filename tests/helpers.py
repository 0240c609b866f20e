"""Small helpers the tests share: signing like Twilio, draining queues like a worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from gateway import ingest
from gateway.messages import IncomingMessage
from gateway.models import Contribution, InboundMessage, OutboundMessage
from gateway.privacy import Binding, inbound_raw, inbound_sender
from gateway.runtime import Runtime
from workers import context
from workers.runner import ThreadWorker

_counter = iter(range(1, 10**9))

# What `contributions list --json` and the API promise (shared/ARCHITECTURE.md).
CONTRACT_FIELDS = frozenset(
    {
        "id",
        "reference",
        "campaign",
        "channel",
        "status",
        "text",
        "transcript",
        "audio",
        "kind",
        "neighbourhood",
        "category",
        "tags",
        "received_at",
        "contributor",
    }
)


def runtime_with(settings: Any, **overrides: Any) -> Runtime:
    """A runtime on the test's database with some settings changed, campaigns loaded."""
    from gateway import campaigns
    from tests.conftest import TEST_CAMPAIGNS

    rt = Runtime.open(
        settings.with_overrides(**overrides), migrate=settings.database_url.startswith("sqlite")
    )
    with rt.sessions.begin() as session:
        campaigns.upsert(session, campaigns.read_files([TEST_CAMPAIGNS]))
    return rt


def sign(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, dict(form)))


def sms_form(
    body: str, sender: str = "+33612345678", to: str = "+33100000001", sid: str | None = None
) -> dict[str, str]:
    sid = sid or f"SM{next(_counter):032x}"
    return {
        "ToCountry": "FR",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "FromCountry": "FR",
        "To": to,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def incoming_sms(
    body: str, sender: str = "+33612345678", to: str = "+33100000001", sid: str | None = None
) -> IncomingMessage:
    form = sms_form(body, sender, to, sid)
    return IncomingMessage(
        channel="sms",
        provider_message_id=form["MessageSid"],
        sender=sender,
        recipient=to,
        text=body,
        received_at=datetime.now(UTC),
        raw=form,
    )


class DrainWorker(ThreadWorker):
    """The gateway's own in-process worker (``gateway serve``'s), in the test's process: from
    any thread (no signal handlers, timeouts by timer), so an async test can drain with
    ``asyncio.to_thread(drain, rt)``; failures stored redacted, as in production."""


def drain(runtime: Runtime) -> None:
    """Run every queued job in this process, as `gateway worker --burst` would."""
    context.set_runtime(runtime)
    worker = DrainWorker(
        [runtime.queue(q) for q in ("inbound", "outbound", "default")],
        connection=runtime.redis,
    )
    for _ in range(4):
        worker.work(burst=True, logging_level="WARNING")


def send_sms(
    runtime: Runtime, body: str, sender: str = "+33612345678", to: str = "+33100000001"
) -> list[str]:
    """Store and process one SMS; return the texts of the replies it caused."""
    (stored,) = ingest.store(runtime, [incoming_sms(body, sender, to)])
    assert stored.message_id is not None
    drain(runtime)
    return replies_to(runtime, stored.message_id)


def replies_to(runtime: Runtime, message_id: int) -> list[str]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboundMessage.text)
                .where(OutboundMessage.inbound_message_id == message_id)
                .order_by(OutboundMessage.id)
            )
        )


def contributions(runtime: Runtime) -> list[Contribution]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Contribution).order_by(Contribution.id)).unique())


def count(runtime: Runtime, model: Any) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def inbound(runtime: Runtime) -> list[InboundMessage]:
    with runtime.sessions() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def sender_binding(message: InboundMessage) -> Binding:
    """The binding a stored message's sender address is encrypted with (gateway.privacy)."""
    return inbound_sender(message.channel, message.provider_message_id)


def raw_binding(message: InboundMessage) -> Binding:
    """The binding a stored message's raw payload is encrypted with (gateway.privacy)."""
    return inbound_raw(message.channel, message.provider_message_id)


def cli_env(settings: Any) -> dict[str, str]:
    """The environment a `gateway` command needs to work on a test's database and Redis."""
    return {
        "GATEWAY_DATA_DIR": settings.data_dir,
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_REDIS_URL": settings.redis_url,
        "GATEWAY_SECRET_KEY": settings.secret_key,
        "GATEWAY_CAMPAIGNS_DIR": settings.campaigns_dir,
    }


def best_time(
    run: Callable[[], object],
    ceiling: float,
    tries: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """The shortest of up to ``tries`` runs of ``run``, stopping at the first under
    ``ceiling``: a test that a bound holds (a parser stays linear, a refusal comes at once) on
    a machine shared with other test workers, where one run can be slowed several-fold by
    others; a slow algorithm is slow every time, and still fails."""
    elapsed = float("inf")
    for _ in range(tries):
        started = clock()
        run()
        elapsed = min(elapsed, clock() - started)
        if elapsed < ceiling:
            break
    return elapsed
