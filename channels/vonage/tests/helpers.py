"""What the Vonage tests share: inbound SMS payloads shaped as Vonage documents them, signed as
Vonage signs them (channels.vonage.signature.sign)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from channels.vonage.signature import sign


def inbound_sms(
    text: str, sender: str = "33612345678", to: str = "33100000001", message_uuid: str = ""
) -> dict[str, Any]:
    """An inbound SMS of the Messages API (numbers as Vonage writes them: no +)."""
    return {
        "channel": "sms",
        "message_uuid": message_uuid or str(uuid.uuid4()),
        "to": to,
        "from": sender,
        "timestamp": "2026-12-07T14:00:00Z",
        "message_type": "text",
        "text": text,
        "sms": {"num_messages": "1", "count_total": "1", "keyword": text.split(" ")[0].upper()},
        "usage": {"currency": "EUR", "price": "0.0000"},
        "origin": {"network_code": "20801"},
    }


def signed(payload: Any, secret: str, **options: Any) -> dict[str, Any]:
    """Keyword arguments of a POST carrying ``payload`` as Vonage sends and signs it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    token = sign(body, secret, **options)
    return {
        "data": body,
        "headers": {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    }
