"""An API client as a city's script would use one, and ways to put contributions in the queue."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.models import Campaign, Contribution, ModerationEvent, OutboundMessage
from gateway.moderation import grouping
from gateway.references import next_reference
from gateway.runtime import Runtime
from tests.helpers import contributions, send_sms
from tests.images import png

PARC_NUMBER = "+33100000001"


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any
    text: str

    @property
    def error(self) -> str:
        """The error code, for a refused request."""
        return str(self.body["error"]["code"])


@dataclass
class Api:
    """Calls the API with a bearer token and keeps every body it received."""

    client: TestClient[Any, Any]
    token: str | None
    bodies: list[str] = field(default_factory=list)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        response = await self.client.request(
            method, "/api/v1" + path, data=data, params=params, headers=sent
        )
        text = await response.text()
        self.bodies.append(text)
        parsed = json.loads(text) if response.content_type == "application/json" else None
        return Reply(response.status, parsed, response.headers, text)

    async def get(self, path: str, **params: str) -> Reply:
        return await self.call("GET", path, params=params or None)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return await self.call("POST", path, body, **kwargs)

    async def put(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return await self.call("PUT", path, body, **kwargs)


def sms(runtime: Runtime, text: str, sender: str) -> Contribution:
    """A contribution filed through the real SMS pipeline (webhook storage, worker, engine)."""
    send_sms(runtime, f"PARC {text}", sender, PARC_NUMBER)
    return contributions(runtime)[-1]


def seed(
    runtime: Runtime,
    text: str,
    *,
    campaign: str | None = "parc",
    channel: str = "sms",
    received_at: datetime | None = None,
    **fields: Any,
) -> int:
    """A contribution written straight to the database (no resident to notify)."""
    with runtime.sessions.begin() as session:
        found = (
            session.scalar(select(Campaign).where(Campaign.slug == campaign)) if campaign else None
        )
        contribution = Contribution(
            reference=next_reference(session, found.reference_prefix if found else "X"),
            campaign_id=found.id if found else None,
            channel=channel,
            text=text,
            **({"received_at": received_at} if received_at else {}),
            **fields,
        )
        session.add(contribution)
        session.flush()
        grouping.assign(session, contribution)
        return contribution.id


def voice(runtime: Runtime, transcript: str) -> int:
    words = [
        {"word": w, "start": i * 0.5, "end": i * 0.5 + 0.4, "confidence": 0.9 - i * 0.1}
        for i, w in enumerate(transcript.split())
    ]
    return seed(
        runtime,
        transcript,
        channel="voice",
        transcript=transcript,
        audio_path="audio/call.wav",
        audio_duration=4.5,
        transcription_status="done",
        transcript_detail={
            "text": transcript,
            "words": words,
            "model": "vosk-model-small-fr",
            "language": "fr",
            "duration": 4.5,
        },
        broadcast_consent=True,
    )


def stored(runtime: Runtime, contribution_id: int) -> Contribution:
    with runtime.sessions() as session:
        found = session.get(Contribution, contribution_id)
        assert found is not None
        return found


def notices(runtime: Runtime, key: str | None = None) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        query = select(OutboundMessage).order_by(OutboundMessage.id)
        if key is not None:
            query = query.where(OutboundMessage.message_key == key)
        return list(session.scalars(query))


def events(runtime: Runtime) -> list[ModerationEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(ModerationEvent).order_by(ModerationEvent.id)))


def with_photo(runtime: Runtime, cid: int) -> None:
    """A photo on the contribution, as a channel keeps one (gateway.media)."""
    data = png(8, 8)
    folder = runtime.settings.data_path / "media" / "test"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{cid}.png").write_bytes(data)
    with runtime.sessions.begin() as session:
        c = session.get(Contribution, cid)
        assert c is not None
        c.attachments = [
            {
                "kind": "photo",
                "path": f"media/test/{cid}.png",
                "content_type": "image/png",
                "size": len(data),
                "name": None,
            }
        ]
