"""Bearer tokens for the API (RFC 6750), checked on every request under /api/.

Tokens are created with ``gateway tokens create NAME`` and stored hashed
(gateway.moderation.accounts); the actor a token acts as is ``api:<name>`` in the moderation
log. The OpenAPI description is public: it says how to call the API, not what is in it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.api.errors import ApiError, in_api
from gateway.moderation.accounts import Actor, token_actor
from gateway.pipeline import now_utc
from gateway.runtime import Runtime
from gateway.webkeys import RUNTIME

ACTOR = web.RequestKey("api_actor", Actor)
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})
MAX_TOKEN_LENGTH = 200  # ours are about 50 characters; a longer one is not worth hashing


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


def _unauthorized(message: str, error: str | None = None) -> ApiError:
    challenge = 'Bearer realm="api"' + (f', error="{error}"' if error else "")
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def _actor(runtime: Runtime, token: str) -> Actor | None:
    # A transaction: token_actor records when the token was last used.
    with runtime.sessions.begin() as session:
        return token_actor(session, token, now_utc())


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not in_api(request) or request.path in PUBLIC_PATHS:
        return await handler(request)
    token = bearer_token(request.headers.get("Authorization", ""))
    if token is None:
        raise _unauthorized("an API token is required: Authorization: Bearer <token>")
    loop = asyncio.get_running_loop()
    actor = await loop.run_in_executor(None, _actor, request.app[RUNTIME], token)
    if actor is None:
        raise _unauthorized("unknown or revoked API token", "invalid_token")
    request[ACTOR] = actor
    return await handler(request)


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise ApiError(403, "console.errors.admin_only", "this action needs an admin token")
