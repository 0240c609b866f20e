"""The JSON API under /api/v1/ (bearer tokens, OpenAPI description).

The same moderation actions as the console (gateway.moderation), for the city's other tools:
open data, dashboards, scripts. What a client sends and what it gets back are pydantic models
(``bodies``, ``responses``, filled from the database by ``shapes``); ``openapi`` generates the
description of every endpoint from them, served without a token at /api/v1/openapi.json.
"""

from __future__ import annotations

from aiohttp import web

from gateway.api import auth, errors, handlers


def setup(app: web.Application) -> None:
    """Add the API's routes to the gateway's app."""
    # Outermost first: every refusal, the token's included, is answered as a JSON error.
    app.middlewares.extend([errors.json_errors, auth.bearer_auth])
    handlers.add_routes(app)
