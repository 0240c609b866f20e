"""Logging set-up. Addresses never reach a log: code logs sender tags (gateway.privacy.log_id),
and what slipped through (an exception message quoting a payload, a third-party library, a
traceback) is masked on the way out: anything shaped like a phone number, an email address or
a bot token, in the message and in the traceback alike."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

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


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for a log collector (journald's JSON export, Loki, an ELK
    stack): ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``, the
    process id, and ``exception`` (the formatted traceback) when there is one. Every value is
    redacted before it is encoded, the same rules as the text format: the encoding cannot
    hide an address from the masks (``ensure_ascii=False`` keeps the text as written)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "pid": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


# A service's log (serve, worker, pollers): when, how serious, where from. A one-off command's
# few warnings: a line each, as a command-line tool speaks.
SERVICE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
COMMAND_FORMAT = "gateway: %(levelname)s: %(message)s"


def configure(level: str = "INFO", *, fmt: str = SERVICE_FORMAT, json_lines: bool = False) -> None:
    """Log to stderr at ``level``: lines in ``fmt``, or JSON objects (``json_lines``, the
    setting ``LOG_FORMAT=json``), redacted either way."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else RedactingFormatter(fmt))
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
        for name in plugin.quiet_loggers:  # their DEBUG would print a secret, INFO every request
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


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
