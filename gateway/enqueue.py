"""Every job the gateway puts on a queue, in one place.

Jobs are named by their dotted path in ``workers.jobs`` (a string: the core never imports the
workers), with a deterministic job id, so that enqueueing twice names the same job. The job
paths are stored in Redis with the jobs: renaming one strands the jobs already queued under
the old name, so they stay as they are.

On a Redis failure nothing is lost: what was to be enqueued is in the database (a message
``received``, a reply ``queued``, a contribution whose transcription is ``pending``), and the
sweeper (workers.sweeper) or an operator's command enqueues it later. Each function says
whether it enqueued (or logs why not) instead of raising.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.exceptions import RedisError

from gateway.queues import (
    DEFAULT,
    INBOUND,
    OUTBOUND,
    TRANSCRIPTION,
    inbound_job_id,
    outbound_job_id,
)
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

JOBS = "workers.jobs."
KEEP_RESULT = 600
KEEP_FAILURE = 7 * 24 * 3600


def single_job(channel: str, message_id: int) -> tuple[str, str, str]:
    """(queue, job function, job id) for one stored message, by channel. Recordings go to the
    default queue: fetching audio must not hold up the SMS conversations on ``inbound``."""
    if channel == "voice":
        return DEFAULT, JOBS + "process_recording", f"recording-{message_id}"
    return INBOUND, JOBS + "process_inbound", inbound_job_id(message_id)


def inbound(
    runtime: Runtime, items: Sequence[tuple[int, str]], batch_job_id: str | None = None
) -> bool:
    """Enqueue stored messages, given as (id, channel): one job for a group commit's
    conversational messages (RQ's per-job bookkeeping would otherwise cost more than storing
    the message), one job each otherwise."""
    if not items:
        return True
    count = len(items)
    conversational = [mid for mid, channel in items if channel != "voice"]
    try:
        # One pipeline, one round trip to Redis for the whole group commit (RQ's own enqueue
        # makes two), and all of it or nothing: the sweeper takes back what was not enqueued.
        with runtime.redis.pipeline() as pipe:
            if batch_job_id is not None and len(conversational) > 1:
                runtime.queue(INBOUND).enqueue_call(
                    JOBS + "process_inbound_batch",
                    args=(conversational,),
                    job_id=batch_job_id,
                    result_ttl=KEEP_RESULT,
                    failure_ttl=KEEP_FAILURE,
                    pipeline=pipe,
                )
                items = [(mid, channel) for mid, channel in items if channel == "voice"]
            for mid, channel in items:
                queue_name, func, job_id = single_job(channel, mid)
                q = runtime.queue(queue_name)
                q.enqueue_many(
                    [
                        q.prepare_data(
                            func,
                            (mid,),
                            job_id=job_id,
                            result_ttl=KEEP_RESULT,
                            failure_ttl=KEEP_FAILURE,
                        )
                    ],
                    pipeline=pipe,
                )
            pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning(
            "Redis unavailable, %d message(s) stored and left for the sweeper: %s",
            count,
            exc,
        )
        return False
    return True


def outbound(runtime: Runtime, outbound_ids: Sequence[int]) -> bool:
    """One job for the replies of one decision, so they are sent in the order decided (a
    receipt before the question that follows it). On a Redis failure the rows stay queued
    and the sweeper enqueues them."""
    if not outbound_ids:
        return True
    try:
        runtime.queue(OUTBOUND).enqueue(
            JOBS + "send_outbound_batch",
            list(outbound_ids),
            job_id=outbound_job_id(outbound_ids[0], 0),
            result_ttl=KEEP_RESULT,
            failure_ttl=KEEP_FAILURE,
        )
    except (RedisError, OSError) as exc:
        log.warning("could not enqueue %d outbound message(s): %s", len(outbound_ids), exc)
        return False
    return True


def transcriptions(runtime: Runtime, contribution_ids: Sequence[int]) -> None:
    """Queue the transcription of contributions filed with a recording (a voice note). On a
    Redis failure they stay ``pending``; ``gateway transcribe --pending`` completes them."""
    for contribution_id in contribution_ids:
        try:
            runtime.queue(TRANSCRIPTION).enqueue(
                JOBS + "transcribe_contribution",
                contribution_id,
                job_id=f"transcribe-{contribution_id}",
                job_timeout=3600,
                result_ttl=KEEP_RESULT,
                failure_ttl=KEEP_FAILURE,
            )
        except (RedisError, OSError) as exc:
            log.warning("contribution %d: transcription not queued (%s)", contribution_id, exc)


def decidim_publication(runtime: Runtime, slug: str, job_id: str) -> None:
    """Queue a campaign's publication to Decidim (raises on a Redis failure: the console says
    so to the administrator who asked)."""
    runtime.queue(DEFAULT).enqueue(
        JOBS + "publish_to_decidim",
        slug,
        job_id=job_id,
        job_timeout=3600,
        result_ttl=KEEP_FAILURE,
        failure_ttl=KEEP_FAILURE,
    )


def many(runtime: Runtime, queue_name: str, job: str, job_ids: dict[int, str]) -> int:
    """Enqueue ``workers.jobs.<job>(key)`` for each key (a message, reply or conversation id)
    with its job id, in one round trip; returns how many. Raises on a Redis failure (the
    sweeper, its only caller, tries again at its next pass)."""
    q = runtime.queue(queue_name)
    with runtime.redis.pipeline() as pipe:
        q.enqueue_many(
            [
                q.prepare_data(
                    JOBS + job,
                    (key,),
                    job_id=job_id,
                    result_ttl=KEEP_RESULT,
                    failure_ttl=KEEP_FAILURE,
                )
                for key, job_id in job_ids.items()
            ],
            pipeline=pipe,
        )
        pipe.execute()
    return len(job_ids)
