"""RQ job entry points. Each is idempotent: running it twice changes nothing the second time."""

from __future__ import annotations

from gateway import pipeline
from workers import outbound
from workers.context import get_runtime


def process_inbound(message_id: int) -> int:
    runtime = get_runtime()
    outbound_ids = pipeline.process_inbound(runtime, message_id)
    outbound.enqueue(runtime, outbound_ids)
    return len(outbound_ids)


def send_outbound(outbound_id: int) -> str:
    return outbound.send(get_runtime(), outbound_id)


def send_outbound_batch(outbound_ids: list[int]) -> list[str]:
    return outbound.send_in_order(get_runtime(), outbound_ids)


def expire_conversation(conversation_id: int) -> int:
    runtime = get_runtime()
    outbound_ids = pipeline.expire_conversation(runtime, conversation_id)
    outbound.enqueue(runtime, outbound_ids)
    return len(outbound_ids)
