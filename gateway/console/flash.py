"""One-shot messages shown on the page after a POST/redirect/GET ("Contribution publiée").

They travel in a short-lived cookie signed with an HMAC of the secret key, as catalogue keys
and parameters rather than text: the page that shows them translates them in the reader's
language, and a forged cookie cannot put arbitrary text on a moderator's screen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.webkeys import SETTINGS

COOKIE = "agora_flash"
PATH = "/moderation/"
MAX_AGE = 120


@dataclass(frozen=True)
class Flash:
    key: str
    params: dict[str, Any] = field(default_factory=dict)
    error: bool = False


def _key(request: web.Request) -> bytes:
    secret = request.app[SETTINGS].secret_key.encode()
    return hmac.new(secret, b"agora console flash", hashlib.sha256).digest()


def _sign(request: web.Request, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(_key(request), payload, hashlib.sha256).digest())[
        :32
    ].decode()


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str) else str(v) for k, v in params.items()}


def add(
    request: web.Request,
    response: web.StreamResponse,
    key: str,
    *,
    error: bool = False,
    **params: Any,
) -> None:
    """Attach a message to ``response`` (a redirect) for the next page shown."""
    # Several messages may go with one redirect ("published", then "here is the next one").
    earlier = response.cookies.get(COOKIE)
    before = _read(request, earlier.value) if earlier is not None else pending(request)
    messages = [*before, Flash(key, _json_safe(params), error)]
    payload = json.dumps(
        [[m.key, m.params, m.error] for m in messages[-4:]], ensure_ascii=True
    ).encode()
    value = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    response.set_cookie(
        COOKIE,
        f"{value}.{_sign(request, payload)}",
        max_age=MAX_AGE,
        path=PATH,
        httponly=True,
        samesite="Lax",
        secure=request.app[SETTINGS].public_url.startswith("https"),
    )


def pending(request: web.Request) -> list[Flash]:
    """The messages the request's cookie carries, if its signature holds."""
    return _read(request, request.cookies.get(COOKIE, ""))


def _read(request: web.Request, raw: str) -> list[Flash]:
    value, _, signature = raw.partition(".")
    try:
        payload = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return []
    if not signature or not hmac.compare_digest(signature, _sign(request, payload)):
        return []
    try:
        items = json.loads(payload)
        return [Flash(str(k), dict(p), bool(e)) for k, p, e in items]
    except (ValueError, TypeError):
        return []


def clear(request: web.Request, response: web.StreamResponse) -> None:
    if COOKIE in request.cookies:
        response.del_cookie(COOKIE, path=PATH)
