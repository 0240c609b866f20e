"""Logging set-up. Addresses never reach a log: code logs sender tags (gateway.privacy.log_id),
and this filter masks anything shaped like a phone number or an email that slipped through
(an exception message quoting a payload, a third-party library)."""

from __future__ import annotations

import logging

from gateway.privacy import redact


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # httpx (under python-telegram-bot) logs every request's URL at INFO, and a Bot API URL
    # carries the bot's token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # python-telegram-bot logs its API URL (with the token) at DEBUG.
    logging.getLogger("telegram").setLevel(max(logging.INFO, root.level))
