"""Twilio Programmable Messaging: the inbound SMS webhook's payload, its signature, and sending.

Inbound: Twilio POSTs form-encoded parameters (MessageSid, From, To, Body, NumMedia,
MediaUrl<N>, MediaContentType<N>, ...) and signs them with ``X-Twilio-Signature``, an
HMAC-SHA1 of the URL it called plus the sorted parameters, keyed with the account's auth token.
The URL is rebuilt as ``PUBLIC_URL`` + path and query, never from the request's Host header:
a reverse proxy changes that, and an attacker controls it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.twilio import ids
from gateway.messages import IncomingMessage, OutgoingText, SendError, retry_after_seconds

CHANNEL = "sms"
PROVIDER = "twilio"  # the plugin's name (channels/twilio/plugin.py)
MAX_MEDIA = 10  # Twilio's own limit per message

# Twilio error codes (https://www.twilio.com/docs/api/errors)
UNSUBSCRIBED = 21610  # the recipient replied STOP to this sender
TOO_MANY_REQUESTS = 20429
# Messages looked at when asking whether an interrupted send went out (the newest first).
LOOKUP_PAGE = 50
# Every other 4xx (an invalid or unreachable number, a blocked destination) is for good.


class InvalidPayload(ValueError):
    pass


def public_url_for(public_url: str, path_qs: str) -> str:
    return public_url.rstrip("/") + path_qs


@functools.lru_cache(maxsize=4)
def _validator(auth_token: str) -> RequestValidator:
    return RequestValidator(auth_token)


def compute_signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """Twilio's documented signature of a form-encoded webhook: base64 of the HMAC-SHA1, keyed
    with the auth token, of the URL followed by each parameter's name and value, sorted by
    name. The same value as the library's ``RequestValidator.compute_signature`` (a test holds
    them together), without its two caught AttributeErrors per parameter (it probes the form
    for a Flask or a Django multi-dict each time): that cost a tenth of the event loop's time
    per webhook in a profile (docs/benchmarks.md)."""
    signed = url + "".join([name + form[name] for name in sorted(form)])
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_is_valid(auth_token: str, url: str, form: Mapping[str, str], signature: str) -> bool:
    if not auth_token or not signature:
        return False
    # The exact URL first: one HMAC for the common case. The library's full check also tries
    # the URL with and without an explicit port (Twilio is not consistent about it).
    # As bytes: compare_digest refuses a str with other than ASCII in it (a forged header).
    given = signature.encode("utf-8", "replace")
    if hmac.compare_digest(compute_signature(auth_token, url, form).encode("ascii"), given):
        return True
    return bool(_validator(auth_token).validate(url, dict(form), signature))


def parse(form: Mapping[str, str], received_at: datetime) -> IncomingMessage:
    """Turn Twilio's webhook parameters into one normalised message (text stored exactly)."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid")
    sender = form.get("From")
    if not sid or sender is None:
        raise InvalidPayload("MessageSid and From are required")
    try:
        sid = ids.message_sid(sid)
    except ids.InvalidSid as exc:
        raise InvalidPayload(str(exc)) from exc
    attachments: list[dict[str, Any]] = []
    try:
        num_media = int(form.get("NumMedia") or 0)
    except ValueError as exc:
        raise InvalidPayload("NumMedia is not a number") from exc
    for index in range(min(max(num_media, 0), MAX_MEDIA)):
        url = form.get(f"MediaUrl{index}")
        if url:
            attachments.append(
                {"url": url, "content_type": form.get(f"MediaContentType{index}") or ""}
            )
    return IncomingMessage(
        channel=CHANNEL,
        provider_message_id=sid,
        sender=sender,
        recipient=form.get("To") or None,
        text=form.get("Body") or "",
        received_at=received_at,
        attachments=attachments,
        raw=dict(form),
        provider=PROVIDER,
    )


class _RetryAfterClient(TwilioHttpClient):
    """The library's HTTP client, remembering the last answer's Retry-After header (per
    thread): TwilioRestException does not carry the headers, and a 429 may say how long to
    wait."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._seen = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._seen.retry_after = None
        response = super().request(*args, **kwargs)
        headers = response.headers or {}
        self._seen.retry_after = retry_after_seconds(headers.get("Retry-After"))
        return response

    def retry_after(self) -> float | None:
        return getattr(self._seen, "retry_after", None)


class TwilioSender:
    """Sends SMS through Twilio's Messages API with the official library.

    ``api_base`` replaces https://api.twilio.com (setting TWILIO_API_BASE), so tests talk to a
    local fake that speaks Twilio's JSON. Retries are not done here: the outbound job decides,
    because only it knows how many attempts were made and when the next one is due.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        api_base: str = "https://api.twilio.com",
        messaging_service_sid: str = "",
        timeout: float = 15,
    ) -> None:
        self._http = _RetryAfterClient(timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        # TWILIO_REGION / TWILIO_EDGE in the environment would rewrite the API host; the base
        # URL setting is the one authority on where requests go.
        self._client.region = None
        self._client.edge = None
        self._client.api.base_url = api_base.rstrip("/")
        self._messaging_service_sid = messaging_service_sid

    def send(self, message: OutgoingText) -> str:
        kwargs: dict[str, Any] = {"to": message.recipient, "body": message.text}
        if self._messaging_service_sid:
            kwargs["messaging_service_sid"] = self._messaging_service_sid
        elif message.sender:
            kwargs["from_"] = message.sender
        else:
            raise SendError("no sender number configured (TWILIO_FROM_NUMBER)", retryable=False)
        try:
            created = self._client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise classify(exc, self._http.retry_after()) from exc
        except requests.exceptions.ReadTimeout as exc:
            # Twilio may have accepted the message: sending again could send it twice.
            raise SendError(f"Twilio did not answer in time: {exc}", retryable=False) from exc
        except requests.exceptions.RequestException as exc:
            # Connection refused, DNS, TLS: the request did not reach Twilio.
            raise SendError(f"Twilio unreachable: {exc}", retryable=True) from exc
        return str(created.sid)

    def find_sent(self, message: OutgoingText, since: datetime) -> list[str]:
        """The sids of the messages Twilio accepted for ``message.recipient`` with this very
        text since ``since``, newest first (the reconcile hook, gateway.plugins).

        Messages list (GET /2010-04-01/Accounts/{Sid}/Messages.json?To=…&From=…), newest
        first, one page: Twilio returns neither a send's StatusCallback nor any other marker
        of ours, so a message is recognised by its recipient, sender and body, created no
        earlier than its row (workers.outbound excludes the sids other rows already own).
        Not filtered by DateSent: a message still queued at Twilio has none yet."""
        kwargs: dict[str, Any] = {"to": message.recipient, "limit": LOOKUP_PAGE}
        if message.sender and not self._messaging_service_sid:
            kwargs["from_"] = message.sender
        try:
            listed = self._client.messages.list(**kwargs)
        except TwilioRestException as exc:
            raise classify(exc, self._http.retry_after()) from exc
        except requests.exceptions.RequestException as exc:
            raise SendError(f"Twilio unreachable: {exc}", retryable=True) from exc
        found = [
            (m.date_created, str(m.sid))
            for m in listed
            if m.body == message.text
            and m.direction == "outbound-api"
            and (m.date_created is None or m.date_created >= since)
        ]
        found.sort(key=lambda pair: pair[0] or since, reverse=True)
        return [sid for _, sid in found]


def classify(exc: TwilioRestException, retry_after: float | None = None) -> SendError:
    """A Twilio error as a SendError; a 429's or a 5xx's Retry-After, when Twilio gives one,
    is the wait before the next attempt (workers.outbound), else its exponential backoff."""
    status, code = exc.status, exc.code
    text = f"Twilio {status} error {code}: {exc.msg}"
    if code == UNSUBSCRIBED:
        return SendError(text, retryable=False, code=code, recipient_opted_out=True)
    if status == 429 or code == TOO_MANY_REQUESTS or status >= 500:
        return SendError(text, retryable=True, code=code, retry_after=retry_after)
    return SendError(text, retryable=False, code=code)
