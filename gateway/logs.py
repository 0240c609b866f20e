"""Logging set-up. Addresses never reach a log: code logs sender tags (gateway.privacy.log_id),
and what slipped through (an exception message quoting a payload, a third-party library, a
traceback) is masked on the way out: anything shaped like a phone number, an email address or
a bot token, in the message and in the traceback alike."""

from __future__ import annotations

import logging
import sys

from gateway.privacy import private_values, redact


class RedactingFilter(logging.Filter):
    """Redacts a record's message, traceback and stack in place, so that every handler it then
    reaches (a test's capture, a second handler an operator adds) sees only the redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # A record about an exception being handled, with or without its traceback attached
        # (RQ logs a failed job's traceback as text, from inside the except block).
        handled = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        known = private_values(handled)
        message = record.getMessage()
        cleaned = redact(message, *known)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, *known)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """The last line of defence: the whole formatted output, redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# A service's log (serve, worker, pollers): when, how serious, where from. A one-off command's
# few warnings: a line each, as a command-line tool speaks.
SERVICE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
COMMAND_FORMAT = "gateway: %(levelname)s: %(message)s"


def configure(level: str = "INFO", *, fmt: str = SERVICE_FORMAT) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(fmt))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # httpx (under providers' client libraries) logs every request's URL at INFO, and an API
    # URL can carry a token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from gateway import plugins

    for plugin in plugins.installed():
        for name in plugin.quiet_loggers:  # their DEBUG would print a secret
            logging.getLogger(name).setLevel(max(logging.INFO, root.level))


def describe(exc: BaseException, *known: str | None, limit: int = 500) -> str:
    """An exception as it may be stored (a message's or a reply's ``error``, shown to
    moderators and operators): its type and its text, redacted, without the SQL statement and
    parameters a database error carries (they hold the message)."""
    from sqlalchemy.exc import StatementError

    if isinstance(exc, StatementError):
        original = exc.orig
        text = type(original).__name__ if original is not None else ""
        return f"{type(exc).__name__}: {text}"[:limit]
    return redact(f"{type(exc).__name__}: {exc}", *known, *private_values(exc))[:limit]
