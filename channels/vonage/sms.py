"""Vonage Messages API: the inbound SMS and the message status webhooks' JSON, and numbers.

Vonage writes numbers in E.164 without the ``+`` (``33612345678``); the gateway's phone
address space is E.164 with it (``+33612345678``, as Twilio sends them), so that a resident who
texts through either provider is one person and STOP, OUBLIER and SUIVI reach them across both.
Numbers become ``+`` E.164 here, on the way in, and lose the ``+`` in the sender, on the way
out. A short code (fewer than 7 digits) or an alphanumeric sender id is kept as given: it is
no E.164 number, and the gateway never answers it (gateway.phone.can_receive_sms).

Inbound (https://developer.vonage.com/en/api/messages, "Inbound message", channel sms)::

    {"channel": "sms", "message_uuid": "...", "to": "447700900000", "from": "447700900001",
     "timestamp": "2025-02-03T12:14:25Z", "message_type": "text", "text": "Hello From Vonage!",
     "sms": {"num_messages": "2", "count_total": "2", "keyword": "HELLO"},
     "usage": {"currency": "EUR", "price": "0.0333"}, "origin": {"network_code": "12345"}}

A long SMS arrives once, reassembled (``sms.num_messages`` says how many parts it had).

Status (same page, "Message status")::

    {"message_uuid": "...", "to": "447700900000", "from": "447700900001",
     "timestamp": "...", "status": "submitted" | "delivered" | "rejected" | "undeliverable"
     | "read", "channel": "sms",
     "error": {"type": "https://developer.vonage.com/api-errors/messages#1240",
               "title": "1240", "detail": "...", "instance": "..."}, ...}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.messages import IncomingMessage

CHANNEL = "sms"
PROVIDER = "vonage"

# E.164 as the gateway checks it (gateway.phone): a country code and 7 to 15 digits in all.
_E164_DIGITS = re.compile(r"[1-9]\d{6,14}")
# Vonage's message ids are UUIDs; anything id-like of a sane length is accepted (the column is
# 128 characters; an id is also a log line's key).
_MESSAGE_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,99}")
_ERROR_CODE = re.compile(r"#(\d{3,5})$")

# Status values the Messages API sends (https://developer.vonage.com/en/messages/concepts/
# messages-status-callbacks); a failure is one of the last two.
STATUSES = frozenset({"submitted", "delivered", "rejected", "undeliverable", "read"})
FAILED = frozenset({"rejected", "undeliverable"})
# "Illegal Number: you tried to send a message to a blacklisted phone number. That is, the
# user has already sent a STOP opt-out message and no longer wishes to receive messages from
# you." (Messages API errors, https://developer.vonage.com/en/api-errors/messages; the same
# table in Nexmo/api-specification definitions/messages-olympus.yml and
# Nexmo/nexmo-oas-renderer _open_api/errors/messages-olympus.md.)
OPTED_OUT = 1240


class InvalidPayload(ValueError):
    pass


class NotAnSms(InvalidPayload):
    """A well-formed Messages API payload of another channel (WhatsApp, MMS, RCS...)."""


def to_e164(number: str) -> str:
    """Vonage's ``33612345678`` as the gateway's ``+33612345678``; a short code or a name as
    given."""
    digits = number.strip()
    bare = digits[1:] if digits.startswith("+") else digits
    return "+" + bare if _E164_DIGITS.fullmatch(bare) else digits


def from_e164(number: str) -> str:
    """The gateway's ``+33612345678`` as Vonage wants it: ``33612345678``."""
    number = number.strip()
    return number[1:] if number.startswith("+") else number


def _text_field(payload: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        if required:
            raise InvalidPayload(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise InvalidPayload(f"{key} is not a string")
    return value


def _message_id(payload: Mapping[str, Any]) -> str:
    value = _text_field(payload, "message_uuid", required=True)
    assert value is not None
    if not _MESSAGE_ID.fullmatch(value):
        raise InvalidPayload("message_uuid is not an id")
    return value


def parse(payload: Any, received_at: datetime) -> IncomingMessage:
    """An inbound SMS of the Messages API as one normalised message (text stored exactly)."""
    if not isinstance(payload, Mapping):
        raise InvalidPayload("the body is not a JSON object")
    channel = payload.get("channel")
    if channel != CHANNEL:
        raise NotAnSms(f"not an inbound SMS (channel {str(channel)[:20]!r})")
    message_type = payload.get("message_type", "text")
    if message_type != "text":
        raise NotAnSms(f"not a text SMS (message_type {str(message_type)[:20]!r})")
    message_id = _message_id(payload)
    sender = _text_field(payload, "from", required=True)
    assert sender is not None
    recipient = _text_field(payload, "to", required=False)
    text = payload.get("text", "")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InvalidPayload("text is not a string")
    return IncomingMessage(
        channel=CHANNEL,
        provider_message_id=message_id,
        sender=to_e164(sender),
        recipient=to_e164(recipient) if recipient else None,
        text=text,
        received_at=received_at,
        raw=dict(payload),
        provider=PROVIDER,  # replies go back through Vonage
    )


@dataclass(frozen=True)
class Status:
    """A message status callback, as much as the gateway reads of it."""

    message_uuid: str
    status: str
    to: str | None  # the resident, + E.164: personal data, never logged
    error_code: int | None = None
    error_title: str = ""
    error_detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    @property
    def opted_out(self) -> bool:
        return self.failed and self.error_code == OPTED_OUT


def error_code(error: Mapping[str, Any]) -> int | None:
    """The Messages API error code of an RFC 7807 problem: the ``#1240`` that ends its
    ``type``, else a numeric ``title`` (status callbacks put the code there too)."""
    kind = error.get("type")
    if isinstance(kind, str):
        found = _ERROR_CODE.search(kind.strip())
        if found:
            return int(found.group(1))
    title = error.get("title")
    if isinstance(title, int) and not isinstance(title, bool):
        return title
    if isinstance(title, str) and title.strip().isdigit():
        return int(title.strip())
    return None


def parse_status(payload: Any) -> Status:
    if not isinstance(payload, Mapping):
        raise InvalidPayload("the body is not a JSON object")
    message_id = _message_id(payload)
    status = _text_field(payload, "status", required=True)
    assert status is not None
    if status not in STATUSES:
        raise InvalidPayload(f"unknown status {status[:20]!r}")
    to = _text_field(payload, "to", required=False)
    error = payload.get("error")
    if error is None:
        error = {}
    if not isinstance(error, Mapping):
        raise InvalidPayload("error is not an object")
    return Status(
        message_uuid=message_id,
        status=status,
        to=to_e164(to) if to else None,
        error_code=error_code(error),
        error_title=str(error.get("title") or "")[:200],
        error_detail=str(error.get("detail") or "")[:500],
    )
