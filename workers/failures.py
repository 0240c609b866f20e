"""The gateway's RQ worker classes: what a failed job leaves in Redis (its traceback, with
nothing personal in it), and a worker that stops promptly.

RQ stores a failed job's whole traceback in Redis (the job's hash and its results stream, kept
``failure_ttl``: seven days here, and in the embedded server's append-only file on disk). An
exception's text can quote what it was working on: an address an SMTP server refused, a Bot API
URL with the bot's token, a number Twilio found invalid. Every worker of the gateway stores the
traceback redacted (gateway.privacy.redact), as the logs show it.
"""

from __future__ import annotations

import sys
from typing import Any

from rq import SimpleWorker, Worker
from rq.job import Job
from rq.queue import Queue

from gateway.privacy import private_values, redact


class RedactedFailures:
    """Mixed into an RQ worker class: failures are stored redacted."""

    def handle_job_failure(
        self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = ""
    ) -> None:
        # Called while the job's exception is being handled: what the job marked private on
        # it (gateway.privacy.mark_private) is masked along with the usual shapes.
        known = private_values(sys.exc_info()[1])
        super().handle_job_failure(  # type: ignore[misc]
            job,
            queue,
            started_job_registry=started_job_registry,
            exc_string=redact(exc_string, *known),
        )


class PromptPubSub:
    """RQ listens for commands (stop a job, shut down) on a pub/sub channel in a thread that
    wakes every 60 seconds; since redis-py 8, stopping that thread waits for it to wake, so a
    worker took up to a minute to stop after its last job (a burst run, a SIGTERM). The
    thread here wakes every half second."""

    pubsub_wake_seconds = 0.5

    def subscribe(self) -> None:
        worker: Any = self
        worker.pubsub = worker.connection.pubsub()
        worker.pubsub.subscribe(**{worker.pubsub_channel_name: worker.handle_payload})
        worker.pubsub_thread = worker.pubsub.run_in_thread(
            sleep_time=self.pubsub_wake_seconds,
            daemon=True,
            exception_handler=worker._pubsub_exception_handler,
        )


class GatewayWorker(RedactedFailures, PromptPubSub, Worker):
    """``gateway worker``'s worker: a work horse (child process) per job."""


class GatewaySimpleWorker(RedactedFailures, PromptPubSub, SimpleWorker):
    """Jobs in the worker's own process (``gateway serve``'s thread, tests, burst runs)."""
