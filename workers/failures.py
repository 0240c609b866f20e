"""What a failed job leaves in Redis: its traceback, with nothing personal in it.

RQ stores a failed job's whole traceback in Redis (the job's hash and its results stream, kept
``failure_ttl``: seven days here, and in the embedded server's append-only file on disk). An
exception's text can quote what it was working on: an address a mail server refused, an API URL
with a bot's token, a number a provider found invalid. Every worker of the gateway stores the
traceback redacted (gateway.privacy.redact), as the logs show it.
"""

from __future__ import annotations

import sys
from typing import Any

from rq.job import Job
from rq.queue import Queue

from gateway.privacy import private_values, redact


class RedactedFailures:
    """Mixed into the gateway's RQ worker classes (workers.runner): failures are stored
    redacted."""

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
