"""A fake of Vonage's Messages API (``POST /v1/messages``), for tests, on 127.0.0.1.

It speaks the wire format Vonage documents (https://developer.vonage.com/en/api/messages,
https://developer.vonage.com/en/api-errors): HTTP basic auth with the account's API key and
secret; a JSON body ``{"message_type": "text", "channel": "sms", "to", "from", "text"}`` with
numbers in E.164 without ``+``; ``202 {"message_uuid": ...}`` when accepted; RFC 7807 problems
otherwise (``type``, ``title``, ``detail``, ``instance``), the Messages API's code ending
``type`` as in ``https://developer.vonage.com/api-errors/messages#1020``. The error bodies are
shaped after vonage-python-sdk's test data (messages/tests/data/*.json) and
vonage-dotnet-sdk's (Vonage.Test/Messages/Sms/Data/*-response.json).

Told to, it answers the next requests with an error (``fail_next``: 429 with Retry-After, 500,
422...), refuses a number that opted out with error 1240 (``opt_out``), or answers late
(``delay_next``, for a read timeout). It also writes the status callbacks Vonage would send
(``status_callback``), which a test signs and posts to the gateway.

    with FakeVonage() as fake:
        fake.base_url, fake.messages, fake.requests, fake.fail_next(429, retry_after="7")
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BasicAuth, web

from tests.fakes.serving import ThreadedServer

API_KEY = "abcd1234"
API_SECRET = "fake-api-secret-Xq7"  # the fake's own
SIGNATURE_SECRET = "fake-signature-secret-5b0e1f6a9c3d4e7f"
ERRORS = "https://developer.vonage.com/api-errors"

_TO = re.compile(r"[1-9]\d{6,14}")
_FROM = re.compile(r"\d{3,15}|[A-Za-z0-9 ]{1,11}")
REQUIRED = ("message_type", "channel", "to", "from", "text")
KNOWN = frozenset({*REQUIRED, "client_ref", "ttl", "sms", "webhook_url", "webhook_version"})
MAX_TEXT = 1000  # the Messages API's limit for an SMS's text

# What Vonage answers for the statuses a test asks for without saying more.
DEFAULT_PROBLEMS: dict[int, dict[str, str]] = {
    401: {
        "type": f"{ERRORS}#unauthorized",
        "title": "Unauthorized",
        "detail": "You did not provide correct credentials.",
    },
    403: {
        "type": f"{ERRORS}#forbidden",
        "title": "Forbidden",
        "detail": "Your account does not have permission to perform this action.",
    },
    422: {
        "type": f"{ERRORS}/messages#1020",
        "title": "Invalid params",
        "detail": "The value of one or more parameters is invalid.",
    },
    429: {
        "type": f"{ERRORS}/messages#1000",
        "title": "Throttled",
        "detail": "You have exceeded the submission capacity allowed on this account. "
        "Please wait and retry",
    },
    500: {
        "type": f"{ERRORS}/messages#1030",
        "title": "Internal error",
        "detail": "There was an error processing your request in the Platform.",
    },
    503: {
        "type": f"{ERRORS}#service-unavailable",
        "title": "Service Unavailable",
        "detail": "The service is temporarily unavailable.",
    },
}
OPTED_OUT_PROBLEM = {
    "type": f"{ERRORS}/messages#1240",
    "title": "Illegal Number",
    "detail": "You tried to send a message to a blacklisted phone number. That is, the user "
    "has already sent a STOP opt-out message and no longer wishes to receive messages from you.",
}


@dataclass
class _Failure:
    status: int
    problem: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class FakeVonage:
    def __init__(
        self,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        signature_secret: str = SIGNATURE_SECRET,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.signature_secret = signature_secret
        self.messages: list[dict[str, Any]] = []  # accepted, with their message_uuid
        self.requests: list[dict[str, Any]] = []  # every request: auth, body, answer
        self.opted_out: set[str] = set()  # numbers (without +) refused with error 1240
        self._failures: deque[_Failure] = deque()
        self._delays: deque[float] = deque()
        self._server = ThreadedServer("fake-vonage")
        self.base_url = ""

    # -- control -----------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        *,
        problem: dict[str, Any] | None = None,
        retry_after: str | None = None,
        times: int = 1,
    ) -> None:
        body = dict(problem if problem is not None else DEFAULT_PROBLEMS.get(status, {}))
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        for _ in range(times):
            self._failures.append(_Failure(status, body, headers))

    def opt_out(self, number: str) -> None:
        self.opted_out.add(number.lstrip("+"))

    def delay_next(self, seconds: float) -> None:
        self._delays.append(seconds)

    def status_callback(
        self, message: dict[str, Any], status: str, error_code: int | None = None
    ) -> dict[str, Any]:
        """The status webhook Vonage would send about an accepted ``message``."""
        payload: dict[str, Any] = {
            "message_uuid": message["message_uuid"],
            "to": message["to"],
            "from": message["from"],
            "timestamp": "2026-12-07T14:00:00Z",
            "status": status,
            "channel": "sms",
            "usage": {"currency": "EUR", "price": "0.0333"},
        }
        if error_code is not None:
            known = OPTED_OUT_PROBLEM if error_code == 1240 else {"title": str(error_code)}
            payload["error"] = {
                "type": f"{ERRORS}/messages#{error_code}",
                "title": str(error_code),
                "detail": known.get("detail", known["title"]),
                "instance": uuid.uuid4().hex,
            }
        return payload

    # -- serving ------------------------------------------------------------------------------
    def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._send)
        self.base_url = self._server.start(app)
        return self.base_url

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeVonage:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ------------------------------------------------------------------------------
    def _problem(
        self, status: int, problem: dict[str, Any], headers: dict[str, str] | None = None
    ) -> web.Response:
        body = {**problem, "instance": problem.get("instance") or uuid.uuid4().hex}
        return web.json_response(
            body, status=status, headers=headers, content_type="application/problem+json"
        )

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        return (auth.login, auth.password) == (self.api_key, self.api_secret)

    @staticmethod
    def _invalid(body: Any) -> list[dict[str, str]]:
        if not isinstance(body, dict):
            return [{"name": "body", "reason": "not a JSON object"}]
        wrong = [{"name": k, "reason": "is required"} for k in REQUIRED if k not in body]
        wrong += [{"name": k, "reason": "unknown parameter"} for k in body if k not in KNOWN]
        if body.get("message_type", "text") != "text":
            wrong.append({"name": "message_type", "reason": "must be text for sms"})
        if body.get("channel", "sms") != "sms":
            wrong.append({"name": "channel", "reason": "this fake speaks sms only"})
        to, sender, text = body.get("to"), body.get("from"), body.get("text")
        if "to" in body and not (isinstance(to, str) and _TO.fullmatch(to)):
            wrong.append({"name": "to", "reason": "E.164 without a leading + or 00"})
        if "from" in body and not (isinstance(sender, str) and _FROM.fullmatch(sender)):
            wrong.append({"name": "from", "reason": "a number without + or a sender id"})
        if "text" in body and not (isinstance(text, str) and 0 < len(text) <= MAX_TEXT):
            wrong.append({"name": "text", "reason": f"1 to {MAX_TEXT} characters"})
        return wrong

    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        record: dict[str, Any] = {
            "authorised": self._authorised(request),
            "content_type": request.content_type,
            "raw": raw,
        }
        self.requests.append(record)
        if self._delays:
            await asyncio.sleep(self._delays.popleft())
        if not record["authorised"]:
            record["status"] = 401
            return self._problem(401, DEFAULT_PROBLEMS[401])
        if self._failures:
            failure = self._failures.popleft()
            record["status"] = failure.status
            return self._problem(failure.status, failure.problem, failure.headers)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record["body"] = body
        wrong = (
            self._invalid(body)
            if request.content_type == "application/json"
            else [{"name": "Content-Type", "reason": "must be application/json"}]
        )
        if wrong:
            record["status"] = 422
            return self._problem(422, {**DEFAULT_PROBLEMS[422], "invalid_parameters": wrong})
        if body["to"] in self.opted_out:
            record["status"] = 422
            return self._problem(422, OPTED_OUT_PROBLEM)
        message_uuid = str(uuid.uuid4())
        self.messages.append({**body, "message_uuid": message_uuid})
        record["status"] = 202
        return web.json_response({"message_uuid": message_uuid}, status=202)
