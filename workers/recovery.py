"""Taking back at once what a dead process left behind: its locks, its jobs, its sends.

A process that dies without warning (SIGKILL, out of memory, power loss) leaves in Redis its
worker registration, the jobs it had started (RQ's StartedJobRegistry, status ``started``) and
the per-sender locks it held. Left alone, RQ gives such a job up only when its registry entry
expires (the job's timeout plus a minute), and then marks it failed. Here a process of this
machine that no longer exists is recognised as dead at once (its pid is gone, or belongs to
another process: gateway.locks.is_dead; or it is this very process, which no longer runs that
worker or holds that lock), and a worker of any machine is dead when its registration expired
(it beats every second while alive). ``recover`` runs at the
start-up of ``gateway serve`` (embedded worker) and ``gateway worker``, before the first sweep,
and then with every full sweep:

- locks held by dead processes of this machine are deleted (a lock of a dead process of
  another machine expires by itself within gateway.locks.LOCK_TTL);
- jobs started by dead workers are put back at the front of their queue: every job is
  idempotent, so running one again is safe;
- outbound messages that such a job had claimed (``sending``) go back to ``queued`` marked
  ``RECONCILING``, before their job is queued again: the process may have died after the
  provider accepted the message, so the next attempt asks the provider first and sends only
  if it does not have it; a provider that cannot be asked gets it marked failed, delivery
  unknown (workers.outbound). The sweeper would conclude the same after STUCK_SENDING; knowing
  the process is dead, there is nothing to wait for;
- the dead workers' registrations are removed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import as_text, utcparse
from rq.worker_registration import REDIS_WORKER_KEYS, WORKERS_BY_QUEUE_KEY
from sqlalchemy import update

from gateway import locks
from gateway.models import OutboundMessage
from gateway.queues import QUEUES
from gateway.runtime import Runtime
from workers.outbound import INTERRUPTED, RECONCILING

log = logging.getLogger(__name__)

WORKER_PREFIX = "rq:worker:"
# Written by our workers beside RQ's fields: gateway.locks.process_since of the worker's process.
PROCESS_FIELD = "gateway_process"
_SENDS = {"workers.jobs.send_outbound", "workers.jobs.send_outbound_batch"}


@dataclass
class RecoveryReport:
    locks: int = 0
    workers: int = 0
    jobs: int = 0
    interrupted: int = 0

    def __bool__(self) -> bool:
        return bool(self.locks or self.workers or self.jobs or self.interrupted)


# The workers this process runs now. A registration that names this very process but none of
# them is a worker this process ran before (Redis failed while it worked: it could not
# unregister, and a Redis restored from its append-only file brings it back): dead.
_own: set[str] = set()
_own_guard = threading.Lock()


def running(name: str, *, now: bool) -> None:
    """Note that this process runs (or no longer runs) the worker ``name``."""
    with _own_guard:
        if now:
            _own.add(name)
        else:
            _own.discard(name)


def live_workers(connection: Redis) -> tuple[set[str], set[str]]:
    """(names of the registered workers that may be alive, keys of those known dead)."""
    keys = sorted(as_text(k) for k in connection.smembers(REDIS_WORKER_KEYS))
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, ["hostname", "pid", "birth", "death", PROCESS_FIELD])
        rows = pipe.execute()
    alive: set[str] = set()
    dead: set[str] = set()
    for key, (host, pid, birth, death, since) in zip(keys, rows, strict=True):
        if (host is None and pid is None) or death is not None:  # expired, or stopped
            dead.add(key)
            continue
        try:
            number = int(pid) if pid else None
            born = utcparse(as_text(birth)).timestamp() if birth else None
        except ValueError:
            number, born = None, None
        name = key[len(WORKER_PREFIX) :]
        me = locks.this_process()
        if since is not None and (as_text(host), number, as_text(since)) == (
            me.host,
            me.pid,
            me.since,
        ):
            with _own_guard:
                gone = name not in _own
        else:
            gone = locks.is_dead(
                as_text(host) if host else None,
                number,
                since=as_text(since) if since else None,
                alive_since=born,
            )
        if gone:
            dead.add(key)
        else:
            alive.add(name)
    return alive, dead


def owner(connection: Redis, job: Job, execution_id: str) -> str | None:
    """The worker that started this execution of ``job``. RQ writes it with the execution, in
    the same transaction as the StartedJobRegistry entry (rq.executions.prepare_execution); the
    job's own ``worker_name`` is written only later, by the work horse once forked
    (prepare_job_execution). Read from the job, a job a live worker had just taken looked like
    nobody's for the length of a fork, and was queued again while it ran: two workers ran it
    at once (seen by tests/test_city_scale.py). The job's field is the fallback for an
    execution whose record already expired."""
    try:
        name = Execution.fetch(execution_id, job.id, connection).worker_name
    except ValueError:  # no such execution record (expired with its heartbeat)
        name = ""
    return name or job.worker_name


def requeue(connection: Redis, job: Job, queue: Queue, execution_id: str | None = None) -> None:
    """Put a started job back at the front of its queue, as if it had never been taken."""
    with connection.pipeline() as pipe:
        pipe.multi()  # one transaction; RQ's enqueue_job expects it begun
        if execution_id:
            Execution(execution_id, job.id, connection).delete(job=job, pipeline=pipe)
        job.started_at = None
        job.ended_at = None
        queue.enqueue_job(job, pipeline=pipe, at_front=True)
        pipe.execute()


def recover(runtime: Runtime) -> RecoveryReport:
    """See the module's docstring. Never raises for Redis: an unreachable Redis has nothing to
    recover yet, and the caller tries again later."""
    report = RecoveryReport()
    redis = runtime.redis
    try:
        report.locks = locks.release_dead(redis)
        queue_names = set(QUEUES) | {
            as_text(k).removeprefix(Queue.redis_queue_namespace_prefix)
            for k in redis.smembers(Queue.redis_queues_keys)
        }
        # The started jobs first, then the workers: a worker registers before it takes a job,
        # so a job seen started has a worker that the later look finds, unless it is dead.
        started = [
            (name, job_id, execution_id)
            for name in sorted(queue_names)
            for job_id, execution_id in StartedJobRegistry(
                name, connection=redis
            ).get_job_and_execution_ids(cleanup=False)
        ]
        alive, dead = live_workers(redis)
        sends: list[int] = []
        orphans: list[tuple[Job, str, str]] = []
        for name, job_id, execution_id in started:
            try:
                job = Job.fetch(job_id, connection=redis)
            except NoSuchJobError:
                continue
            if owner(redis, job, execution_id) in alive:
                continue
            entry = f"{job_id}:{execution_id}"
            if redis.zscore(StartedJobRegistry(name, connection=redis).key, entry) is None:
                continue  # taken back meanwhile (another process's recovery)
            sends.extend(interrupted_sends(job))
            orphans.append((job, name, execution_id))
        # The interrupted sends are queued again first, so that their job, once queued, finds
        # them ready to be checked with the provider.
        if sends:
            report.interrupted = take_back_interrupted(runtime, sends)
        for job, name, execution_id in orphans:
            requeue(redis, job, Queue(name, connection=redis), execution_id)
            report.jobs += 1
            log.warning(
                "job %s was running in a process that no longer exists; queued again", job.id
            )
        if dead:
            with redis.pipeline(transaction=False) as pipe:
                for key in dead:
                    pipe.srem(REDIS_WORKER_KEYS, key)
                    for name in queue_names:
                        pipe.srem(WORKERS_BY_QUEUE_KEY % name, key)
                    pipe.delete(key)
                pipe.execute()
            report.workers = len(dead)
    except (RedisError, OSError) as exc:
        log.warning("recovery: Redis unavailable, will try again: %s", exc)
        return report
    if report:
        log.info("recovery: %s", report)
    return report


def interrupted_sends(job: Job) -> list[int]:
    """The outbound messages a send job names (none for another job)."""
    if job.func_name not in _SENDS:
        return []
    try:
        (arg,) = job.args
    except (ValueError, TypeError):
        return []
    ids = arg if isinstance(arg, list) else [arg]
    return [i for i in ids if isinstance(i, int)]


def take_back_interrupted(runtime: Runtime, outbound_ids: list[int]) -> int:
    """The given sends claimed (``sending``) by a process now dead: back to ``queued``, to be
    checked with the provider before any new attempt (workers.outbound)."""
    return interrupted(runtime, [OutboundMessage.id.in_(outbound_ids)], "recovery")


def interrupted(runtime: Runtime, where: list[Any], who: str) -> int:
    """Sends left ``sending`` (matching ``where``) go back to ``queued``, marked RECONCILING;
    one already without its recipient (erased meanwhile) is failed."""
    with runtime.sessions.begin() as session:
        taken = session.execute(
            update(OutboundMessage)
            .where(
                *where,
                OutboundMessage.status == "sending",
                OutboundMessage.recipient_encrypted.is_not(None),
            )
            .values(status="queued", next_attempt_at=None, error=RECONCILING)
        ).rowcount  # type: ignore[attr-defined]
        lost = session.execute(
            update(OutboundMessage)
            .where(*where, OutboundMessage.status == "sending")
            .values(status="failed", error=INTERRUPTED)
        ).rowcount  # type: ignore[attr-defined]
    if taken:
        log.warning(
            "%s: %d send(s) interrupted mid-way, to be checked with the provider", who, taken
        )
    if lost:
        log.error("%s: %d send(s) interrupted mid-way marked failed", who, lost)
    return int(taken or 0) + int(lost or 0)
