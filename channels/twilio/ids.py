"""The shapes of Twilio's resource ids (SIDs), checked before one is stored, put in a file name
or in a URL.

A SID is two letters naming the resource type and 32 hexadecimal digits
(https://www.twilio.com/docs/glossary/what-is-a-sid): ``AC`` an account, ``CA`` a call, ``RE``
a recording, ``SM``/``MM`` a message (``MM`` when it carries media), ``ME`` one of a
message's media. A callback is signed, but
the signature only proves Twilio sent it; a SID that is not of its shape is refused all the
same, because a RecordingSid becomes a file name under DATA_DIR and part of a REST URL: a
``../`` or a ``?`` in it must never reach either.
"""

from __future__ import annotations

import re

_HEX32 = "[0-9a-fA-F]{32}"
ACCOUNT_SID = re.compile(rf"AC{_HEX32}")
CALL_SID = re.compile(rf"CA{_HEX32}")
RECORDING_SID = re.compile(rf"RE{_HEX32}")
MESSAGE_SID = re.compile(rf"(?:SM|MM){_HEX32}")
MEDIA_SID = re.compile(rf"ME{_HEX32}")


class InvalidSid(ValueError):
    """Not a SID of the expected type; the message names the parameter, never its value."""


def _check(pattern: re.Pattern[str], value: object, name: str) -> str:
    # fullmatch, not match with "$": "$" also matches before a final newline.
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidSid(f"{name} is not a Twilio {name} (two letters and 32 hex digits)")
    return value


def account_sid(value: object, name: str = "AccountSid") -> str:
    return _check(ACCOUNT_SID, value, name)


def call_sid(value: object, name: str = "CallSid") -> str:
    return _check(CALL_SID, value, name)


def recording_sid(value: object, name: str = "RecordingSid") -> str:
    return _check(RECORDING_SID, value, name)


def message_sid(value: object, name: str = "MessageSid") -> str:
    return _check(MESSAGE_SID, value, name)
