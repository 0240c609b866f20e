"""Sending an SMS through Vonage's Messages API.

``POST {api_base}/v1/messages`` with HTTP basic auth (API key, API secret) and
``{"message_type": "text", "channel": "sms", "to": "33612345678", "from": "33100000001",
"text": "..."}``; Vonage answers ``202 {"message_uuid": "..."}``, and an error as RFC 7807 JSON
(``type``, ``title``, ``detail``, ``instance``), the Messages API's code ending ``type``
(``https://developer.vonage.com/api-errors/messages#1240``). Numbers go without ``+``.

What a failure means for the outbound job (gateway.messages.SendError), as for Twilio:
429, 5xx and a request that never reached Vonage (connection refused, DNS, TLS, connect
timeout) are retried, after Retry-After when Vonage gives one; a read timeout is not (Vonage
may have accepted the message: sending again could send it twice); 401 and 403 (credentials,
permissions), 422 (a request Vonage will not take) and every other 4xx are given up. A
recipient who opted out (error 1240, see channels.vonage.sms.OPTED_OUT) marks the resident
opted out. For SMS, Vonage mostly reports opt-outs later, in a ``rejected`` status callback
(https://developer.vonage.com/en/opt-out-assist/guides/messaging-opted-out-numbers): the
status webhook handles that case (channels.vonage.webhooks).

No retry happens here: the outbound job decides, knowing the attempts made.
"""

from __future__ import annotations

from typing import Any

import requests

from channels.vonage import sms
from gateway.messages import OutgoingText, SendError, retry_after_seconds
from gateway.privacy import redact

DEFAULT_API_BASE = "https://api.nexmo.com"
PATH = "/v1/messages"


class VonageSender:
    name = sms.PROVIDER

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 15,
        connect_timeout: float = 5,
    ) -> None:
        self._url = api_base.rstrip("/") + PATH
        self._session = requests.Session()
        self._session.auth = (api_key, api_secret)
        # HTTP(S)_PROXY and .netrc from the environment would send the credentials elsewhere:
        # the API base setting is the one authority on where requests go.
        self._session.trust_env = False
        self._timeout = (connect_timeout, timeout)

    def close(self) -> None:
        self._session.close()

    def send(self, message: OutgoingText) -> str:
        if not message.sender:
            raise SendError(
                "no sender number configured (GATEWAY_VONAGE_FROM_NUMBER)", retryable=False
            )
        to = sms.from_e164(message.recipient)
        body = {
            "message_type": "text",
            "channel": "sms",
            "to": to,
            "from": sms.from_e164(message.sender),
            "text": message.text,
        }
        try:
            response = self._session.post(
                self._url,
                json=body,
                timeout=self._timeout,
                headers={"Accept": "application/json"},
                allow_redirects=False,
            )
        except requests.exceptions.ReadTimeout as exc:
            # Vonage may have accepted the message: sending again could send it twice.
            raise SendError(
                f"Vonage did not answer in time: {type(exc).__name__}", retryable=False
            ) from exc
        except requests.exceptions.RequestException as exc:
            # Connection refused, DNS, TLS, connect timeout: the request did not reach Vonage.
            raise SendError(
                f"Vonage unreachable: {type(exc).__name__}: {_private(str(exc), message, to)}",
                retryable=True,
            ) from exc
        with response:
            return _accepted(response, message, to)


def _private(text: str, message: OutgoingText, to: str) -> str:
    """An error's text without the resident's number in either spelling (``+33…`` is caught
    by redact's patterns, Vonage's ``336…`` only when named)."""
    return redact(text, message.recipient, to)


def _accepted(response: requests.Response, message: OutgoingText, to: str) -> str:
    status = response.status_code
    if 200 <= status < 300:
        try:
            uuid = response.json().get("message_uuid")
        except (ValueError, AttributeError):
            uuid = None
        if not isinstance(uuid, str) or not uuid:
            # Accepted, perhaps sent: never again.
            raise SendError(f"Vonage answered {status} without a message_uuid", retryable=False)
        return uuid
    raise classify(status, _problem(response), response.headers.get("Retry-After"), message, to)


def _problem(response: requests.Response) -> dict[str, Any]:
    try:
        problem = response.json()
    except ValueError:
        return {"title": response.reason or "", "detail": response.text[:300]}
    return problem if isinstance(problem, dict) else {}


def classify(
    status: int,
    problem: dict[str, Any],
    retry_after: str | None,
    message: OutgoingText,
    to: str,
) -> SendError:
    """A Vonage refusal as the outbound job's SendError (see the module's docstring)."""
    code = sms.error_code(problem)
    described = (
        " ".join(str(problem.get(key)) for key in ("title", "detail") if problem.get(key))
        or "no detail"
    )
    text = _private(f"Vonage {status} error {code or '-'}: {described}", message, to)
    if code == sms.OPTED_OUT:
        return SendError(text, retryable=False, code=code, recipient_opted_out=True)
    if status == 429 or status >= 500:
        return SendError(
            text, retryable=True, code=code or status, retry_after=retry_after_seconds(retry_after)
        )
    return SendError(text, retryable=False, code=code or status)
