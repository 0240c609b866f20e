"""What every channel adapter produces and consumes, whatever its provider: the core's side
of the channel interface (gateway.plugins declares the rest).

Inbound, an adapter authenticates a provider's request and turns it into one
``IncomingMessage``; outbound, it sends one text and returns the provider's id or raises
``SendError`` saying whether trying again makes sense. ``ConsoleOutbox`` is where replies go
when no provider is configured for their channel.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class IncomingMessage:
    channel: str  # one of the installed plugins' channels (gateway.plugins.channels)
    provider_message_id: str
    sender: str  # personal data: encrypted before it is stored
    recipient: str | None
    text: str
    received_at: datetime
    attachments: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # personal data: encrypted at rest
    # The message's own id in its chat, when the provider lets residents edit messages.
    provider_ref: str | None = None
    kind: str = "message"  # message | edit | button (see gateway.models.InboundMessage)
    # The plugin that carried it (gateway.plugins, its name): replies go back through it.
    provider: str = ""


@dataclass(frozen=True)
class OutgoingText:
    channel: str
    recipient: str
    sender: str | None
    text: str
    # Answer buttons, rows of {"text", "data"}, for channels that show them (chat apps).
    buttons: list[list[dict[str, str]]] | None = None
    # What to thread the reply on, for channels that thread (email): subject, in_reply_to,
    # references.
    thread: dict[str, Any] | None = None
    key: str | None = None  # the catalogue key of the text (receipt, notice, moderator answer)
    # The same for every attempt at sending one outbound row: a provider that can carry it
    # makes a second attempt recognisably the same message (email: its Message-ID).
    token: str | None = None


class SendError(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: int | None = None,
        recipient_opted_out: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.recipient_opted_out = recipient_opted_out
        self.retry_after = retry_after


# A provider that asks for more than this is waited for this long at most: the backoff's
# next attempt then asks again.
MAX_RETRY_AFTER = 3600.0


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP Retry-After header as seconds: a number of seconds, or an HTTP date (RFC 9110
    10.2.3); None when absent or unreadable, at most ``MAX_RETRY_AFTER``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) or None


class Sender(Protocol):
    """An outbound adapter: sends one text, returns the provider's message id."""

    name: str

    def send(self, message: OutgoingText) -> str: ...


_console_ids = itertools.count(1)


class ConsoleOutbox:
    """The outbound row is kept in the database like any sent message (provider ``console``),
    and the text is logged without the recipient, so a local install shows its replies in the
    terminal and ``gateway simulate`` can print them."""

    name = "console"

    def send(self, message: OutgoingText) -> str:
        logging.getLogger("gateway.outbox").info("outbox [%s] %s", message.channel, message.text)
        return f"console-{next(_console_ids)}"
