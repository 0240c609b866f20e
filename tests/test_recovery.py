"""What a dead process leaves in Redis is recognised as dead at once, not after a timeout:
its per-sender locks (gateway.locks) and the jobs it had started (workers.recovery), with the
sends it had begun checked with the provider, so that each goes out once. Real Redis, real
processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import psutil
import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import select, update

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import ingest, locks, plugins, processing
from gateway.clock import now_utc
from gateway.models import Contribution, InboundMessage, OutboundMessage
from gateway.privacy import outbound_recipient
from gateway.queues import INBOUND, OUTBOUND
from gateway.runtime import Runtime
from tests.helpers import drain, incoming_sms
from workers import jobs, outbound
from workers.outbound import INTERRUPTED, RECONCILING
from workers.recovery import PROCESS_FIELD, recover, running
from workers.sweeper import sweep

RESIDENT = "+33612345678"
PARC_NUMBER = "+33100000001"

HOLDER = """
import sys, time
from redis import Redis
from gateway import locks
redis = Redis.from_url(sys.argv[1])
with locks.hold(redis, sys.argv[2], wait=1):
    print("held", flush=True)
    time.sleep(600)
"""


def holding(url: str, name: str) -> subprocess.Popen[str]:
    """Another process, holding a lock until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, name], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_lock_left_by_a_killed_process_is_released_at_once(runtime: Runtime):
    redis = runtime.redis
    name = f"sender:sms:{uuid.uuid4().hex}"
    holder = holding(runtime.redis_url, name)
    holder.kill()
    holder.wait()
    assert redis.exists(locks.PREFIX + name)  # a crash leaves it
    assert locks.release_dead(redis) == 1
    assert not redis.exists(locks.PREFIX + name)
    started = time.monotonic()
    with locks.hold(redis, name, wait=1):
        pass
    assert time.monotonic() - started < 1


def test_a_lock_of_a_live_process_is_kept_and_waited_for(runtime: Runtime):
    redis = runtime.redis
    name = f"sender:sms:{uuid.uuid4().hex}"
    holder = holding(runtime.redis_url, name)
    try:
        assert locks.release_dead(redis) == 0
        with pytest.raises(locks.Busy), locks.hold(redis, name, wait=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_reused_pid_is_not_the_holder(runtime: Runtime):
    """After a container restart, the new gateway may have the pid the dead one had."""
    redis = runtime.redis
    me = locks.this_process()
    older = locks.Holder(me.host, me.pid, "another-process")
    redis.set(locks.PREFIX + "sender:sms:reused", older.token(), ex=30)
    redis.set(locks.PREFIX + "sender:sms:elsewhere", "other-host|1|1.00|x", ex=30)
    with locks.hold(redis, "sender:sms:mine", wait=1):
        assert locks.release_dead(redis) == 1
        assert redis.exists(locks.PREFIX + "sender:sms:mine")
    assert not redis.exists(locks.PREFIX + "sender:sms:reused")
    assert redis.exists(locks.PREFIX + "sender:sms:elsewhere")  # expires by itself


def test_a_lock_this_process_no_longer_holds_is_released(runtime: Runtime):
    """A thread died holding it (Redis failed mid-way and came back from its append-only
    file): no other process can be its holder, and this one no longer is."""
    redis = runtime.redis
    redis.set(locks.PREFIX + "sender:sms:left", locks.this_process().token(), ex=30)
    assert locks.release_dead(redis) == 1
    assert not redis.exists(locks.PREFIX + "sender:sms:left")


def test_a_held_lock_is_renewed_and_an_abandoned_one_expires(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(locks, "LOCK_TTL", 2)
    monkeypatch.setattr(locks, "RENEW_EVERY", 0.5)
    redis = runtime.redis
    with locks.hold(redis, "sender:sms:long", wait=1):
        time.sleep(3)  # longer than the lock lives unrenewed
        assert redis.pttl(locks.PREFIX + "sender:sms:long") > 0
    assert not redis.exists(locks.PREFIX + "sender:sms:long")
    redis.set(locks.PREFIX + "sender:sms:abandoned", "other-host|1|1.00|x", ex=locks.LOCK_TTL)
    with locks.hold(redis, "sender:sms:abandoned", wait=4):  # waits out a foreign dead holder
        pass


def started_by(
    runtime: Runtime,
    job: Job,
    queue: Queue,
    pid: int,
    birth_ago: float = 0,
    *,
    forked: bool = True,
) -> str:
    """Make ``job`` started by a worker of process ``pid`` on this machine, as RQ records it:
    the worker's part (the execution, in the started registry), then the work horse's (the
    job's status and worker name), unless ``forked`` is false: the moment between the two,
    while the horse is being forked."""
    worker = SimpleWorker([queue], connection=runtime.redis, name=f"w-{uuid.uuid4().hex[:8]}")
    worker.register_birth()
    assert queue.pop_job_id() == job.id
    worker.prepare_execution(job)
    runtime.redis.hset(worker.key, "pid", pid)
    if not forked:
        assert queue.started_job_registry.count == 1
        return worker.key
    worker.prepare_job_execution(job)
    if birth_ago:
        birth = worker.birth_date.timestamp() - birth_ago  # type: ignore[union-attr]
        from datetime import UTC, datetime

        from rq.utils import utcformat

        runtime.redis.hset(worker.key, "birth", utcformat(datetime.fromtimestamp(birth, UTC)))
    assert job.get_status(refresh=True) == "started"
    assert queue.started_job_registry.count == 1
    return worker.key


def stored_sms(runtime: Runtime, text: str = "PARC Des bancs") -> int:
    (stored,) = ingest.store(runtime, [incoming_sms(text, RESIDENT, PARC_NUMBER)])
    assert stored.message_id is not None
    return stored.message_id


def test_a_job_started_by_a_dead_process_is_queued_again_at_once(runtime: Runtime):
    message_id = stored_sms(runtime)
    queue = runtime.queue(INBOUND)
    job = Job.fetch(f"inbound-{message_id}", connection=runtime.redis)
    key = started_by(runtime, job, queue, dead_pid())
    # Nothing is pending for the sweeper's eyes either: the job's worker is dead.
    report = recover(runtime)
    assert report.jobs == 1 and report.workers == 1
    assert job.get_status(refresh=True) == "queued"
    assert queue.job_ids == [job.id]
    assert queue.started_job_registry.count == 0
    assert not runtime.redis.sismember("rq:workers", key)
    drain(runtime)
    with runtime.sessions() as session:
        assert session.scalar(select(InboundMessage.state)) == "processed"
        assert len(session.scalars(select(Contribution)).all()) == 1


def test_a_job_of_a_live_worker_is_left_alone(runtime: Runtime):
    message_id = stored_sms(runtime)
    queue = runtime.queue(INBOUND)
    job = Job.fetch(f"inbound-{message_id}", connection=runtime.redis)
    started_by(runtime, job, queue, os.getpid())
    assert not recover(runtime)
    assert job.get_status(refresh=True) == "started"
    assert sweep(runtime).inbound == 0  # still pending: its worker is alive


def test_a_job_a_live_worker_has_just_taken_is_left_alone_while_its_horse_forks(
    runtime: Runtime,
):
    """RQ's worker records the execution, then forks the work horse, which writes the job's
    worker name: in between the job names nobody. Recovery must read the execution's worker,
    or a second worker runs the job while the first does."""
    message_id = stored_sms(runtime)
    queue = runtime.queue(INBOUND)
    job = Job.fetch(f"inbound-{message_id}", connection=runtime.redis)
    started_by(runtime, job, queue, os.getpid(), forked=False)
    assert not Job.fetch(job.id, connection=runtime.redis).worker_name  # the window
    assert not recover(runtime)
    assert queue.job_ids == [] and queue.started_job_registry.count == 1


def test_the_sweeper_leaves_a_job_alone_while_its_horse_forks(runtime: Runtime):
    """The same moment seen by the sweeper: the job is popped from its queue and still says
    "queued". Its live worker has it: not queued a second time."""
    message_id = stored_sms(runtime)
    queue = runtime.queue(INBOUND)
    job = Job.fetch(f"inbound-{message_id}", connection=runtime.redis)
    key = started_by(runtime, job, queue, os.getpid(), forked=False)
    assert job.get_status(refresh=True) == "queued" and queue.job_ids == []
    assert sweep(runtime).inbound == 0
    assert queue.job_ids == []
    # Once that worker is gone, the message is taken back (here by the sweeper, since the
    # execution's worker is dead; recovery would too).
    runtime.redis.hset(key, "pid", dead_pid())
    assert sweep(runtime).inbound == 1
    assert queue.job_ids == [job.id]


def test_a_job_just_taken_by_a_dead_worker_is_still_queued_again(runtime: Runtime):
    """The same moment, but the worker died before its horse started: the job is queued
    again, since the execution names a dead worker."""
    message_id = stored_sms(runtime)
    queue = runtime.queue(INBOUND)
    job = Job.fetch(f"inbound-{message_id}", connection=runtime.redis)
    started_by(runtime, job, queue, dead_pid(), forked=False)
    assert recover(runtime).jobs == 1
    assert queue.job_ids == [job.id] and queue.started_job_registry.count == 0


def test_a_worker_this_process_no_longer_runs_is_dead(runtime: Runtime):
    """Redis failed while a worker of this process worked: the worker could not unregister,
    and Redis, restored from its append-only file, still lists it beside its successor."""
    message_id = stored_sms(runtime)
    queue = runtime.queue(INBOUND)
    job = Job.fetch(f"inbound-{message_id}", connection=runtime.redis)
    key = started_by(runtime, job, queue, os.getpid())
    runtime.redis.hset(key, PROCESS_FIELD, locks.this_process().since)  # as ours write it
    name = key.removeprefix("rq:worker:")
    running(name, now=True)
    try:
        assert not recover(runtime)  # while this process runs it
    finally:
        running(name, now=False)
    assert recover(runtime).jobs == 1
    assert job.get_status(refresh=True) == "queued"


@pytest.mark.parametrize("recorded", ["process", "birth only"])
def test_a_worker_whose_pid_now_belongs_to_a_newer_process_is_dead(runtime: Runtime, recorded: str):
    """After a container restart, the pid of a dead worker may be this very process's."""
    message_id = stored_sms(runtime)
    queue = runtime.queue(INBOUND)
    job = Job.fetch(f"inbound-{message_id}", connection=runtime.redis)
    if recorded == "process":  # a gateway worker says which process it was
        key = started_by(runtime, job, queue, os.getpid())
        runtime.redis.hset(key, PROCESS_FIELD, "an-earlier-process")
    else:  # another RQ worker: registered an hour before this process started
        started = psutil.Process().create_time()
        started_by(runtime, job, queue, os.getpid(), birth_ago=time.time() - started + 3600)
    assert recover(runtime).jobs == 1
    assert job.get_status(refresh=True) == "queued"


@pytest.mark.parametrize("accepted", [True, False], ids=["twilio-had-it", "twilio-had-not"])
def test_a_send_interrupted_by_a_dead_process_is_checked_with_twilio_and_sent_once(
    runtime: Runtime, fake_twilio: FakeTwilio, accepted: bool
):
    """The dead process claimed the first reply; Twilio may or may not have taken it. The
    recovered job asks Twilio's list of messages: found, the row is sent with Twilio's sid and
    nothing goes out again; not found, it is sent. One message at Twilio either way."""
    message_id = stored_sms(runtime)
    outbound_ids = processing.process_inbound(runtime, message_id)
    assert outbound_ids
    with runtime.sessions.begin() as session:  # the dead process had claimed the first one
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == outbound_ids[0])
            .values(status="sending", attempts=1, claimed_at=now_utc())
        )
        first = session.get(OutboundMessage, outbound_ids[0])
        assert first is not None
        text, to = first.text, RESIDENT
    sid = None
    if accepted:  # it had reached Twilio before the process died
        created = fake_twilio.twilio_client().messages.create(to=to, from_=PARC_NUMBER, body=text)
        sid = created.sid
    queue = runtime.queue(OUTBOUND)
    job = queue.enqueue(jobs.send_outbound_batch, outbound_ids, job_id="outbound-x")
    started_by(runtime, job, queue, dead_pid())
    report = recover(runtime)
    assert report.jobs == 1 and report.interrupted == 1
    drain(runtime)
    with runtime.sessions() as session:
        rows = {r.id: r for r in session.scalars(select(OutboundMessage))}
    assert all(rows[i].status == "sent" for i in outbound_ids), [r.error for r in rows.values()]
    assert len(fake_twilio.messages) == len(outbound_ids)
    assert [m["Body"] for m in fake_twilio.messages].count(text) == 1
    if accepted:
        assert rows[outbound_ids[0]].provider_message_id == sid
    lists = [
        r for r in fake_twilio.requests if r["method"] == "GET" and "Messages.json" in r["path"]
    ]
    assert len(lists) == 1  # asked once, for the interrupted one only


def test_an_identical_message_another_row_owns_is_not_taken_for_the_interrupted_one(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    """Two receipts with the same text to the same person: Twilio's list shows the first
    one's message; the interrupted second is still sent, not marked sent with its sid."""
    message_id = stored_sms(runtime)
    outbound_ids = processing.process_inbound(runtime, message_id)
    assert [outbound.send(runtime, i) for i in outbound_ids] == ["sent"] * len(outbound_ids)
    assert len(fake_twilio.messages) == len(outbound_ids)
    with runtime.sessions.begin() as session:
        done = session.get(OutboundMessage, outbound_ids[0])
        assert done is not None and done.status == "sent"
        twin = OutboundMessage(
            decision_key="twin-1",
            channel="sms",
            sender=done.sender,
            text=done.text,
            status="sending",
            attempts=1,
            claimed_at=now_utc(),
            contributor_id=done.contributor_id,
            recipient_encrypted=runtime.vault.encrypt(RESIDENT, outbound_recipient("twin-1")),
        )
        session.add(twin)
        session.flush()
        twin_id, owned = twin.id, done.provider_message_id
    assert recover_sends(runtime, [twin_id]) == 1
    drain_outbound(runtime, twin_id)
    with runtime.sessions() as session:
        again = session.get(OutboundMessage, twin_id)
        assert again is not None
        assert again.status == "sent" and again.provider_message_id not in (None, owned)
    assert len(fake_twilio.messages) == len(outbound_ids) + 1


def test_twilio_unreachable_while_asked_keeps_the_send_waiting_and_never_sends_blindly(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    message_id = stored_sms(runtime)
    outbound_ids = processing.process_inbound(runtime, message_id)
    with runtime.sessions.begin() as session:
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == outbound_ids[0])
            .values(status="sending", attempts=1, claimed_at=now_utc())
        )
    assert recover_sends(runtime, [outbound_ids[0]]) == 1
    fake_twilio.stop()  # the list cannot be read: connection refused
    try:
        assert outbound.send(runtime, outbound_ids[0]) == "queued"
    finally:
        fake_twilio.start()
    with runtime.sessions() as session:
        row = session.get(OutboundMessage, outbound_ids[0])
        assert row is not None
        assert row.status == "queued" and row.error == RECONCILING
        assert row.next_attempt_at is not None
    assert fake_twilio.messages == []


def test_a_provider_that_cannot_be_asked_gets_the_send_marked_failed_delivery_unknown(
    runtime: Runtime, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
):
    """A provider without the reconcile hook (Telegram's Bot API has no list of sent
    messages): the interrupted send is not sent again; it shows in the dead-letter list."""
    message_id = stored_sms(runtime)
    outbound_ids = processing.process_inbound(runtime, message_id)
    with runtime.sessions.begin() as session:
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == outbound_ids[0])
            .values(status="sending", attempts=1, claimed_at=now_utc())
        )
    monkeypatch.setattr(plugins, "provider_hook", lambda channel, provider, name: None)
    assert recover_sends(runtime, [outbound_ids[0]]) == 1
    assert outbound.send(runtime, outbound_ids[0]) == "failed"
    with runtime.sessions() as session:
        row = session.get(OutboundMessage, outbound_ids[0])
        assert row is not None and row.status == "failed"
        assert row.error == INTERRUPTED and row.recipient_encrypted is None
    assert fake_twilio.messages == []


def recover_sends(runtime: Runtime, ids: list[int]) -> int:
    from workers.recovery import take_back_interrupted

    return take_back_interrupted(runtime, ids)


def drain_outbound(runtime: Runtime, outbound_id: int) -> None:
    assert outbound.send(runtime, outbound_id) == "sent"


def test_a_worker_of_another_machine_is_dead_only_once_its_registration_expired(
    runtime: Runtime,
):
    message_id = stored_sms(runtime)
    queue = runtime.queue(INBOUND)
    job = Job.fetch(f"inbound-{message_id}", connection=runtime.redis)
    key = started_by(runtime, job, queue, dead_pid())
    redis: Redis = runtime.redis
    assert socket.gethostname() != "elsewhere"
    redis.hset(key, "hostname", "elsewhere")  # its pid means nothing here
    assert recover(runtime).jobs == 0
    redis.delete(key)  # it stopped beating: RQ's registration expired
    assert recover(runtime).jobs == 1
