"""Telegram's files (voice notes, audio, photos, drawings, documents): fetched by the worker
with ``getFile`` from the configured Bot API file host only, under
``TELEGRAM_MAX_FILE_BYTES``, into ``DATA_DIR/audio/telegram`` or ``DATA_DIR/media/telegram``
(the plugin's ``fetch_media`` hook, called by gateway.media).

Telegram messages stay on the ``inbound`` queue even with media: a bot's files are capped at
20 MB and come from the Bot API's file host (a voice note of a minute is a few hundred KB),
and the slow part, transcription, has its own queue.
"""

from __future__ import annotations

import logging

from channels.telegram.bot import MediaError, MediaFetcher
from channels.telegram.settings import of
from gateway import media
from gateway.models import InboundMessage
from gateway.runtime import Runtime

log = logging.getLogger(__name__)


def fetch(runtime: Runtime, message_id: int, last_attempt: bool) -> None:
    """Download the message's media not yet fetched (Telegram's ``file_id`` references)."""
    with runtime.sessions() as session:
        message = session.get(InboundMessage, message_id)
        if message is None or message.state != "received":
            return
        items = [dict(a) if isinstance(a, dict) else {} for a in message.attachments or []]
    pending = [
        i
        for i, a in enumerate(items)
        if a.get("file_id") and not a.get("path") and not a.get("error")
    ]
    if not pending:
        return
    settings = runtime.settings
    if not of(settings).telegram_bot_token:
        for index in pending:
            items[index]["error"] = "TELEGRAM_BOT_TOKEN is not set: cannot fetch"
    else:
        fetcher = MediaFetcher(
            of(settings).telegram_bot_token,
            of(settings).telegram_api_base,
            of(settings).telegram_max_file_bytes,
        )
        try:
            for index in pending:
                item = items[index]
                folder = "audio" if item.get("kind") in media.AUDIO_KINDS else "media"
                relative = f"{folder}/telegram/{message_id}-{index}{media.extension(item)}"
                try:
                    item["size"] = fetcher.fetch(
                        str(item["file_id"]), settings.data_path / relative
                    )
                except MediaError as exc:
                    if not exc.permanent and not last_attempt:
                        raise
                    item["error"] = str(exc)[:300]
                    log.warning("message %d: %s not kept: %s", message_id, item.get("kind"), exc)
                    continue
                item["path"] = relative
        finally:
            media.save(runtime, message_id, items)
            fetcher.close()
        return
    media.save(runtime, message_id, items)
