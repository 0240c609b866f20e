"""Body size caps on every route (gateway.bodycaps), read from the route table of the app that
``gateway serve`` builds: every route that takes a body, sent one byte over its cap, with a
length and chunked without one, answers 413 with a clear message, logs no personal data and
stores nothing; a body that trickles in is cut off (at the cap, or after MAX_BODY_SECONDS). A
route added without a kind in bodycaps.RULES fails ``test_every_route_has_a_kind``. On SQLite
and PostgreSQL, real Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from gateway import bodycaps
from gateway.models import Contribution, InboundMessage, OutboundMessage
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import SETTINGS
from tests.helpers import sign, sms_form

NUMBER = "+33612345678"  # in every body: it must never reach a log line
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def body_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, canonical path) of every route that takes a body."""
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method in BODY_METHODS and route.resource is not None
        }
    )


def concrete(pattern: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", pattern)


def padding(size: int) -> bytes:
    unit = f"From={NUMBER}&Body=".encode()
    return (unit * (size // len(unit) + 1))[:size]


def stored(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.sessions() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model))
            for model in (InboundMessage, Contribution, OutboundMessage)
        )


@pytest.fixture
def slow_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_body_seconds": 1})


@pytest.fixture
async def server(
    aiohttp_server: Callable[..., Any], slow_settings: Settings, runtime: Runtime
) -> AsyncIterator[TestServer]:
    yield await aiohttp_server(create_app(slow_settings))


def test_every_route_has_a_kind(settings: Settings) -> None:
    app = create_app(settings)
    routes = body_routes(app)
    assert len(routes) > 50  # the webhooks, the console's forms, the API
    unnamed = [(m, p) for m, p in routes if bodycaps.kind_of(p) is None]
    assert unnamed == [], "give these routes a kind in gateway.bodycaps.RULES"
    # The uploads, and they only, may send more than the small cap.
    large = {p for _, p in routes if bodycaps.cap_for(settings, p) > settings.max_webhook_bytes}
    assert large == {
        "/api/v1/contributions/{id}/answer/audio",
        "/api/v1/groups/{group_id}/answer/audio",
        "/moderation/answers/{id}",
        "/moderation/admin/campaigns/{slug}/greeting",
        "/moderation/collect",
        "/moderation/collect/import",
    }
    # A route outside the known prefixes has no kind: the test above would name it.
    assert bodycaps.kind_of("/elsewhere/{id}") is None


async def raw(server: TestServer, request: bytes, *rest: bytes, pause: float = 0) -> bytes:
    """Send ``request`` then each of ``rest`` (``pause`` seconds apart, while the server lets
    us); the whole answer, up to the server closing the connection."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        for part in rest:
            if reader.at_eof():
                break
            await asyncio.sleep(pause)
            try:
                writer.write(part)
                await writer.drain()
            except ConnectionError:
                break
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def head(method: str, path: str, **headers: str) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: localhost",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def assert_clear(pattern: str, answer: bytes) -> None:
    """The API answers its JSON error; everything else, the catalogue's sentence."""
    body = answer.split(b"\r\n\r\n", 1)[1]
    if pattern.startswith("/api/"):
        assert json.loads(body)["error"]["code"] == "payload_too_large", pattern
    else:
        assert "Requête trop volumineuse".encode() in body, pattern


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_every_route_refuses_a_body_over_its_cap(
    server: TestServer, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = server.app[SETTINGS]
    before = stored(runtime)
    routes = body_routes(server.app)
    for method, pattern in routes:
        cap = bodycaps.cap_for(settings, pattern)
        path = concrete(pattern)
        body = padding(cap + 1)
        # With a length: refused on the header, before anything is read.
        answer = await raw(
            server,
            head(
                method,
                path,
                **{
                    "Content-Length": str(len(body)),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            ),
            body,
        )
        assert status_of(answer) == 413, (method, pattern, answer[:200])
        assert_clear(pattern, answer)
        # Chunked, no length: read up to the cap, then refused.
        answer = await raw(
            server,
            head(
                method, path, **{"Transfer-Encoding": "chunked", "Content-Type": "application/json"}
            ),
            chunk(body[: cap // 2]) + chunk(body[cap // 2 :]) + b"0\r\n\r\n",
        )
        assert status_of(answer) == 413, (method, pattern, answer[:200])
    assert stored(runtime) == before
    refusals = [r for r in caplog.records if r.name == "gateway.bodycaps"]
    assert len(refusals) == 2 * len(routes)
    assert NUMBER not in caplog.text and "33612345678" not in caplog.text


async def test_a_body_within_the_cap_still_reaches_the_handler(
    server: TestServer, runtime: Runtime
) -> None:
    """The body the middleware read is the handler's: an unsigned webhook gets the handler's
    own 403; a signed SMS just under the cap, sent chunked, is stored (nothing valid is lost
    to the cap)."""
    body = b"From=%2B33612345678&Body=PARC+des+bancs"
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = await raw(
        server,
        head("POST", "/webhooks/twilio/sms", **{"Content-Length": str(len(body)), **form_type}),
        body,
    )
    assert status_of(answer) == 403
    settings = server.app[SETTINGS]
    form = sms_form("PARC des bancs " + "é" * 1000, sender=NUMBER)
    path = "/webhooks/twilio/sms"
    signature = sign(settings.twilio_auth_token, settings.public_url + path, form)
    encoded = urlencode(form).encode()
    assert len(encoded) < settings.max_webhook_bytes
    half = len(encoded) // 2
    answer = await raw(
        server,
        head(
            "POST",
            path,
            **{"Transfer-Encoding": "chunked", "X-Twilio-Signature": signature, **form_type},
        ),
        chunk(encoded[:half]) + chunk(encoded[half:]) + b"0\r\n\r\n",
    )
    assert status_of(answer) == 200
    with runtime.sessions() as session:
        texts = list(session.scalars(select(InboundMessage.text)))
    assert texts == ["PARC des bancs " + "é" * 1000]


async def test_a_trickling_body_is_cut_off(server: TestServer, runtime: Runtime) -> None:
    before = stored(runtime)
    settings = server.app[SETTINGS]
    # It says 1000 bytes and sends ten, then nothing: 408 after MAX_BODY_SECONDS, closed.
    answer = await raw(
        server,
        head(
            "POST",
            "/webhooks/telegram",
            **{"Content-Length": "1000", "Content-Type": "application/json"},
        ),
        b'{"update_i',
    )
    assert status_of(answer) == 408
    assert "Requête trop lente".encode() in answer
    # Chunked, a little at a time, past the cap: refused at the cap, and the connection closed
    # before the client is done (it had more to send).
    cap = bodycaps.cap_for(settings, "/webhooks/vonage/inbound")
    piece = b"x" * (cap // 4)
    answer = await raw(
        server,
        head(
            "POST",
            "/webhooks/vonage/inbound",
            **{"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        ),
        *[chunk(piece)] * 12,
        pause=0.05,
    )
    assert status_of(answer) == 413
    assert stored(runtime) == before
