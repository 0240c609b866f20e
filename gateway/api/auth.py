"""Bearer tokens for the API (RFC 6750), checked on every request under /api/.

Tokens are created with ``gateway tokens create NAME [--scope read|moderate|admin]`` and
stored hashed (gateway.moderation.accounts); the actor a token acts as is ``api:<name>`` in
the moderation log. An unknown, revoked or expired token gets 401; a token whose scope is
below what the route needs (gateway.api.scopes) gets 403, before the handler runs or the
body is read. The OpenAPI description is public: it says how to call the API, not what is in
it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.api import scopes
from gateway.api.errors import ApiError, in_api
from gateway.clock import now_utc
from gateway.moderation.accounts import ADMIN, Actor, token_actor
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
        raise _unauthorized("unknown, revoked or expired API token", "invalid_token")
    request[ACTOR] = actor
    resource = request.match_info.route.resource
    if resource is not None:  # None: no such path, answered 404 by the handler
        require_scope(actor, scopes.needed(request.method, resource.canonical))
    return await handler(request)


def require_scope(actor: Actor, needed: str) -> None:
    if actor.allows(needed):
        return
    # The admin refusal keeps the code it had before scopes existed (scripts may test it).
    code = "console.errors.admin_only" if needed == ADMIN else "insufficient_scope"
    raise ApiError(
        403,
        code,
        f"this request needs a token of scope {needed!r}; this one has {actor.scope!r}",
        headers={
            "WWW-Authenticate": f'Bearer realm="api", error="insufficient_scope", scope="{needed}"'
        },
    )
