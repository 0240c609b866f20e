"""The public shape of a contribution (contract: `contributions list --json` and the API).

Never the address: ``contributor`` is the pseudonymous id.
"""

from __future__ import annotations

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
        "received_at": c.received_at.isoformat().replace("+00:00", "Z"),
        "contributor": c.contributor.public_id if c.contributor else None,
        # Voice only (null otherwise): the recording's length, where its transcript is at,
        # and the caller's answer about a radio broadcast (no answer is no).
        "audio_duration": c.audio_duration,
        "transcription_status": c.transcription_status,
        "broadcast_consent": c.broadcast_consent,
    }
