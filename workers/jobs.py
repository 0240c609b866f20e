"""RQ job entry points. Each is idempotent: running it twice changes nothing the second time."""

from __future__ import annotations

import logging

from gateway import enqueue, expiry, metrics, processing
from workers import outbound
from workers.context import get_runtime

log = logging.getLogger(__name__)


def process_inbound(message_id: int) -> int:
    runtime = get_runtime()
    outbound_ids = processing.process_inbound(runtime, message_id)
    enqueue.outbound(runtime, outbound_ids)
    return len(outbound_ids)


def process_inbound_batch(message_ids: list[int]) -> int:
    """A group commit's messages, in arrival order; one failing message does not hold up the
    others (it stays ``received`` with its error, and the sweeper retries it)."""
    runtime = get_runtime()
    sent = 0
    failures = 0
    for message_id in message_ids:
        try:
            outbound_ids = processing.process_inbound(runtime, message_id)
        except Exception:
            log.exception("message %d could not be processed", message_id)
            failures += 1
            continue
        enqueue.outbound(runtime, outbound_ids)
        sent += len(outbound_ids)
    if failures:
        raise RuntimeError(f"{failures} of {len(message_ids)} message(s) failed; see the log")
    return sent


def send_outbound(outbound_id: int) -> str:
    runtime = get_runtime()
    try:
        return outbound.send(runtime, outbound_id)
    finally:
        metrics.flush(runtime.redis)  # a forked job's counts, before its process ends


def send_outbound_batch(outbound_ids: list[int]) -> list[str]:
    runtime = get_runtime()
    try:
        return outbound.send_in_order(runtime, outbound_ids)
    finally:
        metrics.flush(runtime.redis)


def place_callback(callback_id: int) -> str:
    from gateway import callbacks

    return callbacks.place(get_runtime(), callback_id)


def expire_conversation(conversation_id: int) -> int:
    runtime = get_runtime()
    outbound_ids = expiry.expire_conversation(runtime, conversation_id)
    enqueue.outbound(runtime, outbound_ids)
    return len(outbound_ids)


def process_recording(message_id: int) -> int | None:
    """A recording callback: fetch, file, then queue the transcription (own queue)."""
    from gateway import recordings

    runtime = get_runtime()
    outbound_ids, contribution_id = recordings.process_recording(runtime, message_id)
    enqueue.outbound(runtime, outbound_ids)
    if contribution_id is not None:
        enqueue.transcriptions(runtime, [contribution_id])
    return contribution_id


def transcribe_contribution(contribution_id: int) -> str:
    from gateway.transcripts import transcribe_contribution as transcribe

    return transcribe(get_runtime(), contribution_id)


def publish_to_decidim(slug: str) -> dict[str, int]:
    """A campaign's published contributions to Decidim (gateway.publication.decidim_api);
    queued from the console. Running it twice creates nothing twice."""
    from gateway.publication import decidim_api

    report = decidim_api.publish_campaign(get_runtime(), slug)
    for outcome in report.outcomes:
        if outcome.action == "failed":
            log.warning("Decidim: %s not published: %s", outcome.reference, outcome.detail)
    if report.stopped:
        log.warning("Decidim: publication of %s stopped: %s", slug, report.stopped)
    return {
        "published": report.count("published", "recovered"),
        "failed": report.count("failed"),
        "skipped": report.count("skipped"),
        "already": report.already,
    }
