"""Contributions as the pipeline files them, written straight to the database so that each
test sets exactly what it looks at (channel, campaign, neighbourhood, dates, audio...)."""

from __future__ import annotations

import io
import secrets
import wave
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from gateway.models import Campaign, Contribution, Contributor, ModerationEvent, OutboundMessage
from gateway.moderation import grouping
from gateway.privacy import contributor_address
from gateway.references import next_reference
from gateway.runtime import Runtime


def _silence(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


WAV = _silence(3.0)  # a real recording: a browser can play it and seek in it


def contributor(rt: Runtime, number: str, channel: str = "sms", opted_out: bool = False) -> int:
    with rt.sessions.begin() as session:
        person = Contributor(
            public_id="c-" + secrets.token_hex(6),
            channel=channel,
            address_hash=rt.vault.lookup_hash(channel, number),
            address_encrypted=rt.vault.encrypt(
                number, contributor_address(channel, rt.vault.lookup_hash(channel, number))
            ),
            opted_out=opted_out,
        )
        session.add(person)
        session.flush()
        return person.id


def contribution(
    rt: Runtime,
    text: str = "Il faut plus de bancs au parc",
    *,
    campaign: str | None = "parc",
    channel: str = "sms",
    person: int | None = None,
    received_at: datetime | None = None,
    audio: bytes | None = None,
    **fields: Any,
) -> int:
    """A contribution; its author can be answered unless ``person`` is given as 0."""
    if person is None:
        person = contributor(rt, f"+336{secrets.randbelow(10**8):08d}", channel)
    with rt.sessions.begin() as session:
        found = (
            session.scalar(select(Campaign).where(Campaign.slug == campaign)) if campaign else None
        )
        c = Contribution(
            reference=next_reference(session, found.reference_prefix if found else "AGORA"),
            campaign_id=found.id if found else None,
            contributor_id=person or None,
            channel=channel,
            text=text,
            received_at=received_at or datetime.now(UTC),
            **fields,
        )
        session.add(c)
        session.flush()
        if audio is not None:
            directory = rt.settings.data_path / "audio"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{c.reference}.wav").write_bytes(audio)
            c.audio_path = f"audio/{c.reference}.wav"
            c.audio_content_type = "audio/wav"
        grouping.assign(session, c)
        return c.id


def published(rt: Runtime, text: str, public: str, **fields: Any) -> int:
    """A contribution moderators published, with its public (anonymised) version."""
    return contribution(
        rt, text, status="published", public_text=public, moderated_at=datetime.now(UTC), **fields
    )


def get(rt: Runtime, contribution_id: int) -> Contribution:
    with rt.sessions() as session:
        found = session.get(Contribution, contribution_id)
        assert found is not None
        return found


def notices(rt: Runtime, contribution_id: int) -> list[tuple[str | None, str, str]]:
    """(message_key, status, text) of every message about a contribution."""
    with rt.sessions() as session:
        return [
            (o.message_key, o.status, o.text)
            for o in session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.contribution_id == contribution_id)
                .order_by(OutboundMessage.id)
            )
        ]


def events(rt: Runtime) -> list[tuple[str, str, int | None]]:
    with rt.sessions() as session:
        return [
            (e.actor, e.action, e.contribution_id)
            for e in session.scalars(select(ModerationEvent).order_by(ModerationEvent.id))
        ]
