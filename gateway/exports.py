"""The public shape of a contribution (contract: `contributions list --json` and the API).

Never the address: ``contributor`` is the pseudonymous id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.models import Contribution


def contribution_dict(c: Contribution) -> dict[str, Any]:
    return {
        "id": c.id,
        "reference": c.reference,
        "campaign": c.campaign.slug if c.campaign else None,
        "channel": c.channel,
        "status": c.status,
        "text": c.text,
        "transcript": c.transcript,
        "audio": c.audio_path is not None,
        "kind": c.kind,
        "group": c.group_description,
        "neighbourhood": c.neighbourhood,
        "category": c.category,
        "tags": list(c.tags or []),
        "received_at": timestamp(c.received_at),
        "contributor": c.contributor.public_id if c.contributor else None,
        # Voice only (null otherwise): the recording's length, where its transcript is at,
        # and the caller's answer about a radio broadcast (no answer is no).
        "audio_duration": c.audio_duration,
        "transcription_status": c.transcription_status,
        "broadcast_consent": c.broadcast_consent,
        # Moderation: the anonymised version that is published, the themes, the public reason
        # of a rejection, and when the last decision was taken.
        "public_text": c.public_text,
        "themes": list(c.themes or []),
        "decision_reason": c.decision_reason,
        "moderated_at": timestamp(c.moderated_at),
        # The city's answer (gateway.moderation.answers).
        "answer_state": c.answer_state,
        "answer_text": c.answer_text,
        "answer_text_en": c.answer_text_en,
        "answered_at": timestamp(c.answered_at),
    }


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the contract writes ``received_at``."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
