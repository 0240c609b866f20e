"""The sweeper: what was stored but never queued gets queued; nothing waits forever.

It runs at worker start-up and then periodically (in ``gateway serve`` and ``gateway worker``).
Every step is idempotent, so several sweepers at once only waste a little work; a short Redis
lock keeps them from doing it at the same moment. It enqueues:
- inbound messages still ``received`` after a grace period whose job is not pending in Redis
  (Redis was down at ingest, or was restarted without its data);
- outbound messages ``queued`` and due (retries after backoff, or never enqueued);
- expired conversations, so that what they kept is filed.
Once a day, one sweeper purges what is past its retention period (gateway.retention).
And it takes back the sends interrupted mid-way, to be checked with the provider before any new
attempt (see workers.outbound).

What a dead process left behind (its started jobs, its locks) is taken back before the sweep by
workers.recovery, at start-up and with every full sweep, without waiting for any timeout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from sqlalchemy import or_, select

from gateway import callbacks, db, enqueue, recorded_answers, residents, retention
from gateway.clock import now_utc
from gateway.models import Conversation, InboundMessage, OutboundMessage
from gateway.queues import INBOUND, OUTBOUND, outbound_job_id
from gateway.runtime import Runtime
from workers.recovery import interrupted, live_workers, owner

log = logging.getLogger(__name__)

PENDING = {b"queued", b"started", b"deferred", b"scheduled"}
BATCH = 1000
STUCK_SENDING = timedelta(minutes=10)
# A safety net only: a message whose job Redis has called pending this long is enqueued again
# whatever Redis says. Jobs of dead processes are taken back at once (workers.recovery).
STALE_PENDING = timedelta(minutes=15)


@dataclass
class SweepReport:
    inbound: int = 0
    outbound: int = 0
    expired: int = 0
    interrupted: int = 0
    calls_purged: int = 0
    callbacks: int = 0  # call backs due, handed to a worker (gateway.callbacks)

    def __bool__(self) -> bool:
        return bool(
            self.inbound
            or self.outbound
            or self.expired
            or self.interrupted
            or self.calls_purged
            or self.callbacks
        )


def _pending_jobs(runtime: Runtime, job_ids: list[str]) -> set[str]:
    """The jobs Redis still holds as waiting or running.

    Not pending, although Redis says otherwise: a "queued" job that is in no queue (a worker
    popped it and died, or Redis restarted from its append-only file in between), and a
    "started" job whose worker is dead (workers.recovery.live_workers: gone from this machine,
    or its registration expired), which recovery puts back in its queue anyway."""
    with runtime.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(Job.key_for(job_id), ["status", "worker_name", "origin"])
        rows = pipe.execute()
    alive: set[str] | None = None
    pending = set()
    queued: list[tuple[str, bytes]] = []
    for job_id, (status, worker, origin) in zip(job_ids, rows, strict=True):
        if status not in PENDING:
            continue
        if status == b"queued" and origin:
            queued.append((job_id, origin))
            continue
        if status == b"started" and worker:
            if alive is None:
                alive = live_workers(runtime.redis)[0]
            if worker.decode() not in alive:
                continue
        pending.add(job_id)
    if queued:
        with runtime.redis.pipeline(transaction=False) as pipe:
            for job_id, origin in queued:
                pipe.lpos(Queue.redis_queue_namespace_prefix + origin.decode(), job_id)
            positions = pipe.execute()
        popped = []
        for (job_id, origin), pos in zip(queued, positions, strict=True):
            if pos is not None:
                pending.add(job_id)
            else:
                popped.append((job_id, origin))
        # Popped, yet still "queued": its worker has recorded the execution and is forking the
        # work horse, which marks the job started (rq.executions.prepare_execution); pending
        # while that worker lives. Or the worker died with it: not pending.
        taken: dict[str, dict[str, str]] = {}
        for job_id, origin in popped:
            name = origin.decode()
            if name not in taken:
                registry = StartedJobRegistry(name, connection=runtime.redis)
                taken[name] = dict(registry.get_job_and_execution_ids(cleanup=False))
            execution_id = taken[name].get(job_id)
            if execution_id is None:
                continue
            if alive is None:
                alive = live_workers(runtime.redis)[0]
            if owner(runtime.redis, Job(job_id, connection=runtime.redis), execution_id) in alive:
                pending.add(job_id)
    return pending


def sweep(runtime: Runtime, *, only_due_outbound: bool = False) -> SweepReport:
    report = SweepReport()
    db.optimize(runtime.engine, every=db.OPTIMIZE_EVERY)
    now = now_utc()
    grace = timedelta(seconds=runtime.settings.sweep_grace_seconds)
    with runtime.sessions() as session:
        due = session.execute(
            select(OutboundMessage.id, OutboundMessage.attempts)
            .where(
                OutboundMessage.status == "queued",
                or_(
                    OutboundMessage.next_attempt_at <= now,
                    # Never enqueued (Redis was down): left longer than inbound, since the
                    # decision's own job may be queued behind others and sends them in order.
                    (OutboundMessage.next_attempt_at.is_(None))
                    & (OutboundMessage.created_at <= now - grace * 6),
                ),
            )
            .limit(BATCH)
        ).all()
        inbound_ids: list[int] = []
        batch_jobs: dict[int, str] = {}
        channels: dict[int, str] = {}
        stale_ids: set[int] = set()
        expired: list[tuple[int, str]] = []
        due_callbacks: list[tuple[int, int]] = []
        if not only_due_outbound:
            inbound_rows = session.execute(
                select(InboundMessage.id, InboundMessage.job_id, InboundMessage.channel)
                .where(
                    InboundMessage.state == "received",
                    InboundMessage.received_at <= now - grace,
                )
                .order_by(InboundMessage.id)
                .limit(BATCH)
            ).all()
            inbound_ids = [r.id for r in inbound_rows]
            batch_jobs = {r.id: r.job_id for r in inbound_rows if r.job_id}
            channels = {r.id: r.channel for r in inbound_rows}
            # A job Redis still calls pending after this long lost its worker (killed with
            # Redis, say): enqueue again; processing is idempotent and serialised per sender.
            stale_ids = set(
                session.scalars(
                    select(InboundMessage.id)
                    .where(
                        InboundMessage.state == "received",
                        InboundMessage.received_at <= now - STALE_PENDING,
                    )
                    .limit(BATCH)
                )
            )
            due_callbacks = callbacks.due(session, now)
            expired = [
                (cid, (exp.strftime("%Y%m%d%H%M%S") if exp else "none"))
                for cid, exp in session.execute(
                    select(Conversation.id, Conversation.expires_at)
                    .where(Conversation.step != "idle", Conversation.expires_at <= now)
                    .limit(BATCH)
                )
            ]
    if not only_due_outbound:
        report.interrupted = _fail_interrupted(runtime, now)
        with runtime.sessions.begin() as session:
            # A call's record is kept while its call needs it, then goes (gateway.residents).
            report.calls_purged = residents.purge_calls(session, now)
        recorded_answers.prune(runtime)
        # Once a day, by one sweeper: what is past its retention period (gateway.retention).
        try:
            retention.daily(runtime, now)
        except (RedisError, OSError) as exc:
            log.warning("sweeper: retention purge not run, will try again: %s", exc)
    if not (due or inbound_ids or expired or due_callbacks):
        return report
    try:
        if inbound_ids:
            own_job = {i: enqueue.single_job(channels[i], i)[2] for i in inbound_ids}
            candidates = list(own_job.values())
            candidates += sorted(set(batch_jobs.values()))
            pending = _pending_jobs(runtime, candidates)
            todo = [
                i
                for i in inbound_ids
                if i in stale_ids
                or (own_job[i] not in pending and batch_jobs.get(i) not in pending)
            ]
            if todo and enqueue.inbound(runtime, [(i, channels[i]) for i in todo]):
                report.inbound = len(todo)
        if due:
            report.outbound = _enqueue_missing(
                runtime,
                OUTBOUND,
                "send_outbound",
                {oid: outbound_job_id(oid, attempts) for oid, attempts in due},
            )
        if due_callbacks:
            report.callbacks = _enqueue_missing(
                runtime,
                OUTBOUND,
                "place_callback",
                {cid: f"callback-{cid}-{attempts}" for cid, attempts in due_callbacks},
            )
        if expired:
            report.expired = _enqueue_missing(
                runtime,
                INBOUND,
                "expire_conversation",
                {cid: f"expire-{cid}-{stamp}" for cid, stamp in expired},
            )
    except (RedisError, OSError) as exc:
        log.warning("sweeper: Redis unavailable, will try again: %s", exc)
    if report:
        log.info("sweeper: %s", report)
    return report


def _enqueue_missing(runtime: Runtime, queue_name: str, job: str, job_ids: dict[int, str]) -> int:
    """Enqueue ``workers.jobs.<job>(key)`` for each key whose job is not already pending."""
    pending = _pending_jobs(runtime, list(job_ids.values()))
    todo = {key: job_id for key, job_id in job_ids.items() if job_id not in pending}
    return enqueue.many(runtime, queue_name, job, todo)


def _fail_interrupted(runtime: Runtime, now: object) -> int:
    """Sends claimed STUCK_SENDING ago and still ``sending``: their worker is gone."""
    return interrupted(
        runtime, [OutboundMessage.claimed_at <= now_utc() - STUCK_SENDING], "sweeper"
    )
