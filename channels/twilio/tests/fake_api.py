"""A fake of Twilio's REST API (api.twilio.com/2010-04-01), for tests.

It speaks the wire format that the official ``twilio`` library (9.x) expects, so
the gateway's production code can be exercised unchanged against it.

Pointing ``twilio.rest.Client`` at another base URL
---------------------------------------------------
In twilio-python 9.x every API domain is a ``twilio.base.domain.Domain`` whose
``base_url`` attribute (``"https://api.twilio.com"`` for ``client.api``) is
joined to each request path by ``Domain.absolute_url``. ``client.api`` is
created once and cached on the client, so setting its ``base_url`` once
redirects every ``2010-04-01`` call (``client.messages``,
``client.api.account.messages``, ``client.recordings``, ...) made with that
client, sync or async (``AsyncTwilioHttpClient`` goes through the same
domain)::

    from twilio.rest import Client

    client = Client(account_sid, auth_token)
    client.api.base_url = api_base          # e.g. settings.TWILIO_API_BASE
    client.region = None                    # see the note below
    client.edge = None
    client.messages.create(to="+33612345678", from_="+33100000001", body="Merci !")

Why reset ``region``/``edge``: when either is set (they also default from the
``TWILIO_REGION``/``TWILIO_EDGE`` environment variables), ``Client.get_hostname``
rewrites the host by splitting it on dots, which mangles any host that is not
``<product>.twilio.com``: ``127.0.0.1:5555`` becomes ``127.ie1.0.1:5555``.
Passing ``environment={}`` to ``Client`` does not help (an empty mapping falls
back to ``os.environ``), hence the explicit reset.

Only the ``api`` domain moves: other domains (``client.messaging`` ...) keep
their own ``base_url``. Recording audio is not downloaded through the Client:
fetch the ``RecordingUrl`` of the callback (plus ``.wav`` or ``.mp3``) with
HTTP Basic auth ``(account_sid, auth_token)``; this fake hands out such URLs
rooted at its own ``base_url``.

Errors use Twilio's legacy error JSON ``{"code", "message", "more_info",
"status"}``, which ``twilio.base.version.Version.exception`` turns into a
``TwilioRestException`` with ``.status`` (HTTP status) and ``.code`` (Twilio
error code) populated.

Use
---
From sync test code::

    with FakeTwilio() as fake:
        ...                     # fake.base_url, fake.messages, fake.fail_next(...)

From a subprocess test, run the fake in the test process (as above) and hand
``fake.base_url`` to the subprocess; or run it on its own::

    python -m channels.twilio.tests.fake_api --port 0   # prints {"base_url": ...} on one line

Shapes follow twilio-python's own fixtures
(tests/integration/api/v2010/account/test_message.py) and Twilio's docs
(https://www.twilio.com/docs/messaging/api/message-resource,
https://www.twilio.com/docs/usage/twilios-response).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from typing import Any

from aiohttp import BasicAuth, web

from tests.fakes.ratelimit import Meter, admit
from tests.fakes.serving import ThreadedServer

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "test-token"

# Messages Twilio returns for the error codes this fake produces. A code not
# listed here gets the message of its HTTP status.
ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21201: "No 'To' number is specified",
    21213: "No 'From' number is specified",
    21205: "Url parameter is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}
DEFAULT_CODE_FOR_STATUS: dict[int, int] = {
    401: 20003,
    404: 20404,
    429: 20429,
    500: 20500,
    503: 20503,
}
MAX_BODY_CHARS = 1600

# GSM 03.38 default alphabet and its extension table (each extension character
# costs two septets: ESC + the character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_VALID_TO = re.compile(r"^(?:[a-z]+:)?\+?[0-9]{3,15}$")


def _pack(costs: Iterable[int], single: int, multi: int) -> int:
    """Segments needed for characters of the given costs; a character is never split."""
    costs = list(costs)
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments


def count_segments(body: str) -> int:
    """SMS segments for ``body``: GSM-7 160/153 septets, else UCS-2 70/67 UTF-16 units."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
        return _pack((2 if ch in GSM7_EXTENSION else 1 for ch in body), 160, 153)
    return _pack((2 if ord(ch) > 0xFFFF else 1 for ch in body), 70, 67)


def rfc2822_now() -> str:
    """Twilio's date format: ``Thu, 30 Jul 2015 20:12:31 +0000``."""
    return format_datetime(datetime.now(UTC).replace(microsecond=0))


class _Blanks(dict[str, str]):
    """Format values; a placeholder without one becomes empty rather than a KeyError."""

    def __missing__(self, key: str) -> str:
        return ""


def error_body(status: int, code: int | None, message: str | None = None, **fmt: str) -> dict:
    code = code if code is not None else DEFAULT_CODE_FOR_STATUS.get(status, status)
    if message is None:
        template = ERROR_MESSAGES.get(code) or HTTPStatus(status).phrase
        message = template.format_map(_Blanks(fmt))
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def error_response(
    status: int,
    code: int | None,
    message: str | None = None,
    headers: dict[str, str] | None = None,
    **fmt: str,
) -> web.Response:
    body = error_body(status, code, message, **fmt)
    return web.json_response(body, status=status, headers=headers)


@dataclass
class _Failure:
    status: int
    code: int | None
    message: str | None
    retry_after: int | None


@dataclass
class _Recording:
    data: bytes
    content_type: str


@dataclass
class _Medium:
    """One medium of an inbound MMS (Twilio's Media subresource)."""

    message_sid: str
    data: bytes
    content_type: str
    token: str  # the presigned CDN URL's secret part
    redirect_to: str | None = None  # answer the GET with a redirect there (a hostile test)
    direct: bool = False  # serve the bytes on the API's URL itself, no CDN hop
    fail: list[int] = field(default_factory=list)  # statuses to answer before serving


@dataclass
class _State:
    account_sid: str
    auth_token: str
    lock: threading.Condition = field(default_factory=threading.Condition)
    messages: list[dict[str, Any]] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    recordings: dict[str, _Recording] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, _Medium] = field(default_factory=dict)
    cdn_base: str = ""
    account_status: str = "active"  # "suspended", "closed": what the account resource says
    # When each accepted message arrived (time.monotonic), in the order of ``messages``.
    times: list[float] = field(default_factory=list)
    # Segments a second per sender (``limit``): above, 429 error 20429.
    meter: Meter | None = None
    # hold_next: (accept first?, seconds) per create call to hold; arrivals of held calls
    holds: list[tuple[bool, float]] = field(default_factory=list)
    held: int = 0
    released: bool = False
    # refuse: To -> (status, code) answered to every create call for that number
    refused: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    accepted_at: dict[str, float] = field(default_factory=dict)  # message sid: time.time()

    def authenticated(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        return auth.login == self.account_sid and auth.password == self.auth_token


STATE = web.AppKey("twilio_state", _State)


def _form_dict(form: Any) -> dict[str, Any]:
    """A MultiDict as a dict; a repeated key (MediaUrl) keeps all its values in a list."""
    out: dict[str, Any] = {}
    for key in form:
        values = form.getall(key)
        out[key] = values[0] if len(values) == 1 else list(values)
    return out


@web.middleware
async def _record_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    """Keep every request with the status answered; failures of the fake itself are 500s."""
    form = _form_dict(await request.post()) if request.method == "POST" else {}
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = error_response(exc.status, None, path=request.path)
    state = request.app[STATE]
    with state.lock:
        state.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "form": form,
                "status": response.status,
            }
        )
        state.lock.notify_all()
    return response


def _text(form: Any, key: str) -> str:
    value = form.get(key, "")
    return value if isinstance(value, str) else ""


def _check_account(request: web.Request) -> web.Response | None:
    state = request.app[STATE]
    if not state.authenticated(request):
        return error_response(401, 20003, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
    if request.match_info["account_sid"] != state.account_sid:
        return error_response(404, 20404, path=request.path)
    return None


def _injected_failure(state: _State, form: Any) -> web.Response | None:
    """The next failure a test asked for (``fail_next``), answered as Twilio would."""
    with state.lock:
        failure = state.failures.pop(0) if state.failures else None
    if failure is None:
        return None
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    return error_response(
        failure.status, failure.code, failure.message, headers=headers, to=_text(form, "To")
    )


async def fetch_account(request: web.Request) -> web.Response:
    """The account resource (``GET /2010-04-01/Accounts/{Sid}.json``), as `gateway doctor`
    reads it to try the credentials."""
    state = request.app[STATE]
    refused = _check_account(request)
    if refused is not None:
        return refused
    return web.json_response(
        {
            "auth_token": "[redacted]",
            "date_created": "Thu, 01 Jan 2026 00:00:00 +0000",
            "date_updated": "Thu, 01 Jan 2026 00:00:00 +0000",
            "friendly_name": "Ville de test",
            "owner_account_sid": state.account_sid,
            "sid": state.account_sid,
            "status": state.account_status,
            "type": "Full",
            "uri": f"/{API_VERSION}/Accounts/{state.account_sid}.json",
        }
    )


async def create_message(request: web.Request) -> web.Response:
    state = request.app[STATE]
    refused = _check_account(request)
    if refused is not None:
        return refused
    form = await request.post()
    failed = _injected_failure(state, form)
    if failed is not None:
        return failed
    with state.lock:
        hold = state.holds.pop(0) if state.holds else None
        refused_to = state.refused.get(_text(form, "To"))
    if refused_to is not None:
        return error_response(refused_to[0], refused_to[1], to=_text(form, "To"))
    if hold is not None and not hold[0]:  # held before Twilio takes it: not accepted
        if not await _held(request, hold[1]):
            return error_response(503, 20503)  # the client is gone: nothing was accepted

    to = _text(form, "To")
    from_ = _text(form, "From")
    service = _text(form, "MessagingServiceSid")
    body = _text(form, "Body")
    media_urls = form.getall("MediaUrl", [])
    if not to:
        return error_response(400, 21604)
    if not from_ and not service:
        return error_response(400, 21603)
    if not body and not media_urls:
        return error_response(400, 21602)
    if len(body) > MAX_BODY_CHARS:
        return error_response(400, 21617)
    if not _VALID_TO.match(to):
        return error_response(400, 21211, to=to)

    if state.meter is not None:
        # Per sending number (or Messaging Service), in segments, as a long code is metered.
        wait = admit(state.lock, [(state.meter, service or from_, count_segments(body))])
        if wait is not None:
            return error_response(429, 20429, headers={"Retry-After": str(wait)})

    sid = ("MM" if media_urls else "SM") + secrets.token_hex(16)
    now = rfc2822_now()
    base = f"/{API_VERSION}/Accounts/{state.account_sid}/Messages/{sid}"
    # Without a From, a Messaging Service picks the sender later: Twilio answers
    # "accepted", from null and num_segments "0" (message-resource docs).
    through_service_only = bool(service) and not from_
    resource = {
        "account_sid": state.account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": from_ or None,
        "messaging_service_sid": service or None,
        "num_media": str(len(media_urls)),
        "num_segments": "0" if through_service_only else str(count_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if through_service_only else "queued",
        "subresource_uris": {"media": f"{base}/Media.json"},
        "to": to,
        "uri": f"{base}.json",
    }
    with state.lock:
        state.messages.append({**_form_dict(form), "sid": sid})
        state.times.append(time.monotonic())
        state.accepted_at[sid] = time.time()
        state.resources[sid] = resource
        state.lock.notify_all()
    if hold is not None and hold[0]:  # accepted, but the answer is held
        await _held(request, hold[1])
    return web.json_response(resource, status=201)


async def _held(request: web.Request, seconds: float) -> bool:
    """Wait until ``release()``, ``seconds``, or the client going away (False then)."""
    state = request.app[STATE]
    with state.lock:
        state.held += 1
        state.lock.notify_all()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with state.lock:
            if state.released:
                return True
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        await asyncio.sleep(0.05)
    return True


async def list_messages(request: web.Request) -> web.Response:
    """Messages list (https://www.twilio.com/docs/messaging/api/message-resource#read-multiple
    -message-resources): filters To, From, DateSent (``YYYY-MM-DD``, ``DateSent<``,
    ``DateSent>``), newest first, paged by PageSize and Page, in Twilio's page envelope."""
    state = request.app[STATE]
    refused = _check_account(request)
    if refused is not None:
        return refused
    query = request.query
    try:
        size = max(1, min(int(query.get("PageSize", "50")), 1000))
        page = max(0, int(query.get("Page", "0")))
    except ValueError:
        return error_response(400, 20001, "Invalid paging parameter")
    with state.lock:
        rows = list(state.resources.values())
    rows.reverse()  # the newest first, as Twilio lists them
    if query.get("To"):
        rows = [r for r in rows if r["to"] == query["To"]]
    if query.get("From"):
        rows = [r for r in rows if r["from"] == query["From"]]
    for key, keep in (
        ("DateSent", lambda day, ref: day == ref),
        ("DateSent<", lambda day, ref: day <= ref),
        ("DateSent>", lambda day, ref: day >= ref),
    ):
        if query.get(key):
            ref = query[key][:10]
            rows = [
                r
                for r in rows
                if r["date_sent"]
                and keep(parsedate_to_datetime(r["date_sent"]).date().isoformat(), ref)
            ]
    chunk = rows[page * size : (page + 1) * size]
    path = f"/{API_VERSION}/Accounts/{state.account_sid}/Messages.json"
    filters = "".join(f"&{k}={v}" for k, v in query.items() if k not in ("PageSize", "Page"))
    more = (page + 1) * size < len(rows)
    return web.json_response(
        {
            "end": page * size + max(len(chunk) - 1, 0),
            "first_page_uri": f"{path}?PageSize={size}&Page=0{filters}",
            "messages": chunk,
            "next_page_uri": f"{path}?PageSize={size}&Page={page + 1}{filters}" if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": (
                f"{path}?PageSize={size}&Page={page - 1}{filters}" if page else None
            ),
            "start": page * size,
            "uri": f"{path}?PageSize={size}&Page={page}{filters}",
        }
    )


async def create_call(request: web.Request) -> web.Response:
    """Calls create (https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource):
    To, From and Url (or Twiml) required; answers 201 with the call resource, status queued.
    The call itself is not made: a test plays Twilio's part (the TwiML request to Url, then the
    StatusCallback) with what was recorded here."""
    state = request.app[STATE]
    refused = _check_account(request)
    if refused is not None:
        return refused
    form = await request.post()
    failed = _injected_failure(state, form)
    if failed is not None:
        return failed
    to, from_ = _text(form, "To"), _text(form, "From")
    if not to:
        return error_response(400, 21201)
    if not from_:
        return error_response(400, 21213)
    if not _text(form, "Url") and not _text(form, "Twiml"):
        return error_response(400, 21205)
    if not _VALID_TO.match(to):
        return error_response(400, 21211, to=to)
    sid = "CA" + secrets.token_hex(16)
    now = rfc2822_now()
    resource = {
        "account_sid": state.account_sid,
        "api_version": API_VERSION,
        "date_created": now,
        "date_updated": now,
        "direction": "outbound-api",
        "from": from_,
        "sid": sid,
        "status": "queued",
        "to": to,
        "uri": f"/{API_VERSION}/Accounts/{state.account_sid}/Calls/{sid}.json",
    }
    with state.lock:
        state.calls.append({**_form_dict(form), "sid": sid})
        state.lock.notify_all()
    return web.json_response(resource, status=201)


async def fetch_message(request: web.Request) -> web.Response:
    state = request.app[STATE]
    refused = _check_account(request)
    if refused is not None:
        return refused
    with state.lock:
        resource = state.resources.get(request.match_info["sid"])
    if resource is None:
        return error_response(404, 20404, path=request.path)
    return web.json_response(resource)


_AUDIO_EXTENSIONS = {".wav": ("audio/wav", "audio/x-wav", "audio/wave"), ".mp3": ("audio/mpeg",)}


async def recording(request: web.Request) -> web.Response:
    state = request.app[STATE]
    refused = _check_account(request)
    if refused is not None:
        return refused
    name = request.match_info["name"]
    sid, dot, ext = name.partition(".")
    extension = dot + ext
    with state.lock:
        stored = state.recordings.get(sid)
    if request.method == "DELETE":
        if extension != ".json" or stored is None:
            return error_response(404, 20404, path=request.path)
        with state.lock:
            del state.recordings[sid]
        return web.Response(status=204)
    if stored is None:
        return error_response(404, 20404, path=request.path)
    # Twilio transcodes on the fly; the fake does not, so it serves only the
    # extension matching the stored audio (no extension: as stored).
    if extension and stored.content_type not in _AUDIO_EXTENSIONS.get(extension, ()):
        return error_response(404, 20404, path=request.path)
    return web.Response(body=stored.data, content_type=stored.content_type)


def _media_resource(state: _State, sid: str, medium: _Medium) -> dict[str, Any]:
    """The Media resource's JSON (https://www.twilio.com/docs/messaging/api/media-resource)."""
    base = f"/{API_VERSION}/Accounts/{state.account_sid}/Messages/{medium.message_sid}"
    now = rfc2822_now()
    return {
        "account_sid": state.account_sid,
        "content_type": medium.content_type,
        "date_created": now,
        "date_updated": now,
        "parent_sid": medium.message_sid,
        "sid": sid,
        "uri": f"{base}/Media/{sid}.json",
    }


async def message_media(request: web.Request) -> web.StreamResponse:
    """GET ``.../Messages/{MessageSid}/Media/{MediaSid}``: with Basic auth, a 307 to a presigned
    URL on the CDN (as Twilio does once HTTP auth is enforced on media; or the bytes themselves
    when the medium was added ``direct``); ``.json``: the resource; DELETE ``.json``: 204, the
    medium is gone (recorded in ``requests``)."""
    state = request.app[STATE]
    refused = _check_account(request)
    if refused is not None:
        return refused
    sid, dot, ext = request.match_info["name"].partition(".")
    with state.lock:
        medium = state.media.get(sid)
    if medium is None or medium.message_sid != request.match_info["message_sid"]:
        return error_response(404, 20404, path=request.path)
    if request.method == "DELETE":
        if ext != "json":
            return error_response(404, 20404, path=request.path)
        with state.lock:
            state.media.pop(sid, None)
        return web.Response(status=204)
    if ext == "json":
        return web.json_response(_media_resource(state, sid, medium))
    if dot:
        return error_response(404, 20404, path=request.path)
    with state.lock:
        failure = medium.fail.pop(0) if medium.fail else None
    if failure is not None:
        return error_response(failure, None, path=request.path)
    if medium.redirect_to is not None:
        return _redirect(medium.redirect_to)
    if medium.direct or not state.cdn_base:
        return _media_bytes(medium)
    return _redirect(f"{state.cdn_base}/{medium.token}")


def _redirect(location: str) -> web.Response:
    # Returned, not raised: the request-recording middleware answers raised HTTP errors.
    return web.Response(status=307, headers={"Location": location})


def _media_bytes(medium: _Medium) -> web.Response:
    return web.Response(
        body=medium.data,
        headers={
            "Content-Type": medium.content_type,
            "Cache-Control": "private, max-age=14400",
            "ETag": f'"{secrets.token_hex(8)}"',
        },
    )


async def cdn_media(request: web.Request) -> web.Response:
    """The CDN's presigned URL: no credentials asked, the token is the secret."""
    state = request.app[STATE]
    with state.lock:
        found = [m for m in state.media.values() if m.token == request.match_info["token"]]
    if not found:
        return web.Response(status=403, text="AccessDenied", content_type="application/xml")
    return _media_bytes(found[0])


def create_cdn_app(state: _State) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/{token}", cdn_media)
    return app


async def not_found(request: web.Request) -> web.Response:
    return error_response(404, 20404, path=request.path)


def create_app(state: _State) -> web.Application:
    app = web.Application(middlewares=[_record_requests])
    app[STATE] = state
    accounts = f"/{API_VERSION}/Accounts/{{account_sid}}"
    app.router.add_get(f"{accounts}.json", fetch_account)
    app.router.add_post(f"{accounts}/Messages.json", create_message)
    app.router.add_get(f"{accounts}/Messages.json", list_messages)
    app.router.add_get(f"{accounts}/Messages/{{sid}}.json", fetch_message)
    app.router.add_post(f"{accounts}/Calls.json", create_call)
    app.router.add_get(f"{accounts}/Recordings/{{name}}", recording)
    app.router.add_delete(f"{accounts}/Recordings/{{name}}", recording)
    media = f"{accounts}/Messages/{{message_sid}}/Media/{{name}}"
    app.router.add_get(media, message_media)
    app.router.add_delete(media, message_media)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


class FakeTwilio:
    """Twilio's REST API on 127.0.0.1, served from a background thread with its own loop."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        port: int = 0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._port = port
        self._state = _State(account_sid, auth_token)
        self._server = ThreadedServer("fake-twilio")
        self._cdn = ThreadedServer("fake-twilio-cdn")
        self.base_url = ""
        self.cdn_url = ""  # the media CDN's origin (another port: another origin)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> FakeTwilio:
        self.base_url = self._server.start(create_app(self._state), self._port)
        self.cdn_url = self._cdn.start(create_cdn_app(self._state))
        self._state.cdn_base = self.cdn_url
        return self

    def stop(self) -> None:
        self._server.stop()
        self._cdn.stop()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what was seen -----------------------------------------------------
    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted Messages create requests, in arrival order: form parameters plus ``sid``.

        A snapshot (a new list each time). Parameters are those Twilio received
        (To, From, Body, StatusCallback, MessagingServiceSid, ...); a repeated
        one (MediaUrl) is a list.
        """
        with self._state.lock:
            return [dict(m) for m in self._state.messages]

    @property
    def accepted_at(self) -> dict[str, float]:
        """When each accepted message was received (``time.time()``), by its sid: the moment a
        send was handed to Twilio (bench/burst.py)."""
        with self._state.lock:
            return dict(self._state.accepted_at)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Accepted Calls create requests: form parameters (To, From, Url, StatusCallback,
        ...) plus ``sid``."""
        with self._state.lock:
            return [dict(c) for c in self._state.calls]

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request: ``{"method", "path", "form", "status"}``, in arrival order."""
        with self._state.lock:
            return [dict(r) for r in self._state.requests]

    @property
    def message_times(self) -> list[float]:
        """When each of ``messages`` was accepted (``time.monotonic()``), in the same order."""
        with self._state.lock:
            return list(self._state.times)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` messages were accepted; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._state.lock:
            while len(self._state.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{len(self._state.messages)} message(s) accepted, {count} expected"
                    )
                self._state.lock.wait(remaining)
            return [dict(m) for m in self._state.messages]

    def reset(self) -> None:
        """Forget messages, requests and pending failures (recordings stay)."""
        with self._state.lock:
            self._state.messages.clear()
            self._state.times.clear()
            self._state.accepted_at.clear()
            self._state.calls.clear()
            self._state.resources.clear()
            self._state.requests.clear()
            self._state.failures.clear()
            self._state.holds.clear()
            self._state.refused.clear()
            self._state.held, self._state.released = 0, False

    # -- behaviour ---------------------------------------------------------
    def fail_next(
        self,
        status: int,
        code: int | None = None,
        message: str | None = None,
        times: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` authenticated Messages create calls with a Twilio error.

        ``code`` defaults from ``status`` (429 -> 20429, 500 -> 20500, 503 -> 20503, ...);
        ``message`` defaults to Twilio's message for the code. ``retry_after``
        adds a ``Retry-After`` header (seconds). Unauthenticated calls get their
        401 and do not use up a failure.
        """
        with self._state.lock:
            self._state.failures.extend(
                _Failure(status, code, message, retry_after) for _ in range(times)
            )

    def limit(self, segments_per_second: float, tolerance: float = 0.5) -> None:
        """Meter Messages create calls per sending number (or Messaging Service), in
        segments, as Twilio meters a long code: one that comes before its sender's segments
        have gone out (less ``tolerance`` seconds) is refused with 429, error 20429 "Too Many
        Requests", and a Retry-After header."""
        with self._state.lock:
            self._state.meter = Meter(segments_per_second, tolerance)

    def hold_next(self, *, accept: bool, seconds: float = 60, times: int = 1) -> None:
        """Hold the next ``times`` Messages create calls for ``seconds`` (or until ``release``,
        or until the client goes away). ``accept``: Twilio has taken the message (listed,
        counted in ``messages``) and only its answer waits; otherwise the request has not
        reached Twilio yet, and a client that goes away leaves nothing accepted."""
        with self._state.lock:
            self._state.holds.extend((accept, seconds) for _ in range(times))
            self._state.released = False

    def wait_for_held(self, count: int = 1, timeout: float = 30.0) -> None:
        """Block until ``count`` held calls have arrived."""
        deadline = time.monotonic() + timeout
        with self._state.lock:
            while self._state.held < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self._state.held} held call(s), {count} expected")
                self._state.lock.wait(remaining)

    def release(self) -> None:
        """Answer the held calls now."""
        with self._state.lock:
            self._state.released = True

    def refuse(self, to: str, status: int = 500, code: int | None = None) -> None:
        """Answer every Messages create call for ``to`` with this error (a poison send)."""
        with self._state.lock:
            self._state.refused[to] = (status, code)

    def add_recording(self, sid: str, data: bytes, content_type: str) -> str:
        """Serve ``data`` as recording ``sid``; return its URL as a callback's RecordingUrl.

        GET ``<url>``, ``<url>.wav`` or ``<url>.mp3`` (the one matching
        ``content_type``) with Basic auth returns the bytes; DELETE ``<url>.json``
        answers 204 and removes it.
        """
        with self._state.lock:
            self._state.recordings[sid] = _Recording(data, content_type)
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{sid}"

    def add_media(
        self,
        message_sid: str,
        data: bytes,
        content_type: str,
        *,
        redirect_to: str | None = None,
        direct: bool = False,
        fail: tuple[int, ...] = (),
    ) -> str:
        """Serve ``data`` as a medium of inbound message ``message_sid``; return its URL as a
        webhook's ``MediaUrl<N>`` (no extension). A GET with Basic auth answers 307 to the
        CDN (``cdn_url``), which serves the bytes without credentials; ``direct``: the bytes
        on the API's URL; ``redirect_to``: a 307 there instead; ``fail``: these statuses first.
        DELETE ``<url>.json`` answers 204 and removes it (``media_deleted``)."""
        sid = "ME" + secrets.token_hex(16)
        with self._state.lock:
            self._state.media[sid] = _Medium(
                message_sid,
                data,
                content_type,
                secrets.token_urlsafe(24),
                redirect_to,
                direct,
                list(fail),
            )
        account = f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}"
        return f"{account}/Messages/{message_sid}/Media/{sid}"

    def has_media(self, url: str) -> bool:
        with self._state.lock:
            return url.rsplit("/", 1)[-1] in self._state.media

    @property
    def media_deleted(self) -> list[str]:
        """The paths of accepted media DELETEs, in order."""
        return [
            r["path"]
            for r in self.requests
            if r["method"] == "DELETE" and "/Media/" in r["path"] and r["status"] == 204
        ]

    def has_recording(self, sid: str) -> bool:
        with self._state.lock:
            return sid in self._state.recordings

    def twilio_client(self) -> Any:
        """A ``twilio.rest.Client`` pointed at this fake, set up as the module docstring says."""
        from twilio.rest import Client

        client = Client(self.account_sid, self.auth_token)
        client.api.base_url = self.base_url
        client.region = None
        client.edge = None
        return client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Twilio REST API.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with FakeTwilio(args.account_sid, args.auth_token, port=args.port) as fake:
        print(json.dumps({"base_url": fake.base_url, "account_sid": fake.account_sid}), flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
