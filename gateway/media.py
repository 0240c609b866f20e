"""Media that residents send through chat apps (voice notes, photos, drawings, files):
fetched into the data folder before the conversation sees the message, then attached to the
contribution they belong to.

Fetching happens on the worker, never in the webhook: the provider is answered at once, and
the file is downloaded by the job that processes the message, through the ``fetch_media``
hook of the channel's plugin (gateway.plugins). A file that cannot be had for good (refused,
too big, gone) is marked with its error and the message goes on without it, the resident
being told their file was not kept; a passing failure (network) lets the job be retried, and
on its last attempt the message goes on without the file rather than be lost.

On the contribution, the first audio (a voice note, an audio file) becomes the recording that
is transcribed, as a phone message is; everything else is listed in ``attachments``. That
includes, on every channel, the whole text of a message cut at ``MAX_TEXT_CHARS`` (kind
``text``, written at ingest by gateway.textcap): a kept file like a photo.
"""

from __future__ import annotations

import logging
import mimetypes
from typing import Any

from sqlalchemy.orm import Session

from gateway import plugins
from gateway.models import Contribution, InboundMessage
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

AUDIO_KINDS = frozenset({"voice", "audio"})
_EXTENSIONS = {"audio/ogg": ".ogg", "audio/mpeg": ".mp3", "image/jpeg": ".jpg", "audio/mp4": ".m4a"}


def reference(message_id: int, index: int) -> str:
    return f"in{message_id}:{index}"


def kept(message: InboundMessage) -> tuple[list[str], int]:
    """(references of the message's media that were fetched, how many could not be kept)."""
    refs, lost = [], 0
    for index, item in enumerate(message.attachments or []):
        if isinstance(item, dict) and item.get("path"):
            refs.append(reference(message.id, index))
        else:
            lost += 1
    return refs, lost


def extension(item: dict[str, Any]) -> str:
    """The file extension to store an attachment under, from its content type."""
    content_type = str(item.get("content_type") or "")
    ext = _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ".bin"
    return ext if len(ext) <= 6 else ".bin"


def fetch_pending(runtime: Runtime, message_id: int, *, last_attempt: bool) -> None:
    """Download what the message only refers to, by its channel's plugin (gateway.plugins):
    a file that cannot be had yet raises (the job is retried), unless ``last_attempt``."""
    with runtime.sessions() as session:
        message = session.get(InboundMessage, message_id)
        if message is None or message.state != "received":
            return
        channel, provider = message.channel, message.provider
    fetch = plugins.hook(channel, "fetch_media", provider)
    if fetch is not None:
        fetch(runtime, message_id, last_attempt)


def save(runtime: Runtime, message_id: int, items: list[dict[str, Any]]) -> None:
    """Store a message's attachment list as its plugin left it (paths, sizes, errors)."""
    with runtime.sessions.begin() as session:
        message = session.get(InboundMessage, message_id)
        if message is not None:
            message.attachments = items


def attach(session: Session, contribution: Contribution, refs: tuple[str, ...] | list[str]) -> bool:
    """Put the referenced media on the contribution; True when it got a recording to transcribe."""
    to_transcribe = False
    listed = list(contribution.attachments or [])
    for ref in refs:
        item = _resolve(session, ref)
        if item is None:
            continue
        if item.get("kind") in AUDIO_KINDS and not contribution.audio_path:
            contribution.audio_path = item["path"]
            contribution.audio_content_type = item.get("content_type")
            duration = item.get("duration")
            contribution.audio_duration = (
                float(duration) if isinstance(duration, int | float) else None
            )
            contribution.transcription_status = "pending"
            to_transcribe = True
            continue
        listed.append(
            {
                "kind": item.get("kind", "file"),
                "path": item["path"],
                "content_type": item.get("content_type") or "application/octet-stream",
                "size": item.get("size"),
                "name": item.get("name"),
            }
        )
    contribution.attachments = listed
    return to_transcribe


def _resolve(session: Session, ref: str) -> dict[str, Any] | None:
    head, _, index = ref.partition(":")
    if not head.startswith("in") or not head[2:].isdigit() or not index.isdigit():
        return None
    message = session.get(InboundMessage, int(head[2:]))
    if message is None:
        return None
    items = message.attachments or []
    position = int(index)
    if position >= len(items) or not isinstance(items[position], dict):
        return None
    item = items[position]
    return item if item.get("path") else None
