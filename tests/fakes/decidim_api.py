"""A fake of Decidim 0.32's API (sign-in and GraphQL), for tests.

It answers as Decidim's source does (github.com/decidim/decidim; the files are cited in
gateway/publication/decidim_api.py's docstring):

- ``POST /api/sign_in`` with ``api_user[key]`` and ``api_user[secret]``: 200, the JWT in the
  ``Authorization: Bearer`` response header and as ``jwt_token`` in the JSON body; 401 with
  ``"jwt_token": null`` for wrong credentials.
- ``POST /api`` (GraphQL, JSON ``{query, variables}``). A missing, invalid or expired token
  makes the request anonymous (read scope), as devise-jwt's strategy failing does in Decidim:
  the mutation is then refused with ``NO_OBJECT_PERMISSION``. Errors carry
  ``extensions.code`` as Decidim's error classes set it; ``ATTRIBUTE_VALIDATION_ERROR``'s
  ``message`` is a list of ``{path, message}``, as ``AttributeValidationError#to_h`` makes it.
- Proposal validation: ``ProposalWizardCreateStepForm`` (title at most 150, body at most the
  component's ``proposal_length``), the ``EtiquetteValidator`` (length over 15, capitals,
  marks, long words, capital first), the proposal limit per author (``CreateProposal``).

This is not a GraphQL server: it recognises the operations the gateway sends (the version
query, ``createProposal``, the proposals list) and answers them with Decidim's shapes.

    with FakeDecidim() as fake:
        fake.base_url, fake.proposals, fake.requests, fake.components[7].accepts = False
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from tests.fakes.serving import ThreadedServer

DEFAULT_KEY = "api-key-for-tests"
DEFAULT_SECRET = "api-secret-for-tests-0123456789"
JWT_SECRET = "jwt-secret-of-the-fake-decidim-0123456789"

MESSAGES = {
    "fr": {
        "too_short": "est trop court (au moins {count} caractères)",
        "too_long": "est trop long (pas plus de {count} caractères)",
        "too_much_caps": "utilise trop de lettres majuscules (plus de 25 % du texte)",
        "too_many_marks": "utilise trop de signes de ponctuation (par exemple ! et ?)",
        "long_words": "contient des mots trop longs (plus de 35 caractères)",
        "must_start_with_caps": "doit commencer par une majuscule",
        "blank": "doit être rempli(e)",
        "limit_reached": (
            "Vous ne pouvez pas créer de nouvelles propositions car vous avez dépassé la limite."
        ),
    },
    "en": {
        "too_short": "is too short (under {count} characters)",
        "too_long": "is too long (maximum is {count} characters)",
        "too_much_caps": "is using too many capital letters (over 25% of the text)",
        "too_many_marks": "is using too many punctuation marks (e.g. ! and ?)",
        "long_words": "is using too long words (longer than 35 characters)",
        "must_start_with_caps": "must start with a capital letter",
        "blank": "cannot be blank",
        "limit_reached": "You cannot create new proposals since you have exceeded the limit.",
    },
}
NOT_AUTHORIZED_MUTATION = "You do not have permission to perform this mutation"


@dataclass
class Component:
    accepts: bool = True  # creation enabled in the active step
    limit: int = 0  # proposals per participant; 0: none
    proposal_length: int = 500


@dataclass
class _State:
    key: str
    secret: str
    version: str | None = "0.32.1"
    accepts_locale: bool = True  # the current source's ``locale`` argument
    locales: tuple[str, ...] = ("fr", "en")
    token_lifetime: int = 3600
    # Decidim's DECIDIM_API_FORCE_API_AUTHENTICATION: no anonymous request, 401 instead.
    force_authentication: bool = False
    # Where sign-ins are redirected (a platform moved to another address), if anywhere.
    redirect_sign_in: str | None = None
    components: dict[int, Component] = field(default_factory=lambda: {7: Component()})
    proposals: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    sign_ins: int = 0
    # Tokens of an earlier generation are taken as expired (expire_tokens).
    generation: int = 0
    # The next N createProposal requests are carried out, then the connection is dropped.
    drop_after_create: int = 0
    # Statuses to answer the next GraphQL requests with, before doing anything; and the next
    # createProposal requests only (not carried out either).
    fail_next: list[int] = field(default_factory=list)
    fail_creates: list[int] = field(default_factory=list)
    next_id: int = 100
    lock: threading.Lock = field(default_factory=threading.Lock)


def _etiquette(value: str, language: str) -> list[str]:
    m = MESSAGES[language]
    errors = []
    if not value.strip():
        return [m["blank"]]
    if len(re.findall(r"[A-Z]", value)) >= len(value) // 4:
        errors.append(m["too_much_caps"])
    if re.search(r"[!?¡¿]{2,}", value):
        errors.append(m["too_many_marks"])
    if re.search(r"[A-z]{35,}", value):
        errors.append(m["long_words"])
    if re.search(r"^[a-z]", value, re.MULTILINE):
        errors.append(m["must_start_with_caps"])
    if len(value) <= 15:
        errors.append(m["too_short"].format(count=15))
    return errors


def _validation(title: str, body: str, component: Component, language: str) -> list[dict[str, Any]]:
    m = MESSAGES[language]
    found: list[dict[str, Any]] = []
    for name, value, limit in (("title", title, 150), ("body", body, component.proposal_length)):
        messages = _etiquette(value, language)
        if len(value) > limit:
            messages.append(m["too_long"].format(count=limit))
        found += [{"path": ["attributes", name], "message": text} for text in messages]
    return found


def _error(message: Any, code: str, path: list[str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "locations": [{"line": 3, "column": 5}]}
    if path:
        error["path"] = path
    error["extensions"] = {"code": code}
    return error


def create_app(state: _State) -> web.Application:
    def issue() -> str:
        now = time.time()
        claims = {
            "sub": "1",
            "scp": "api_user",
            "gen": state.generation,
            "iat": int(now),
            "exp": int(now) + state.token_lifetime,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, JWT_SECRET, algorithm="HS256")

    def user_of(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        try:
            claims = jwt.decode(header[7:], JWT_SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            return False
        return bool(claims.get("gen") == state.generation)

    async def sign_in(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        form = await request.post()
        if state.redirect_sign_in:
            raise web.HTTPTemporaryRedirect(state.redirect_sign_in)
        with state.lock:
            state.requests.append({"path": request.path, "body": raw.decode("utf-8", "replace")})
            good = (
                form.get("api_user[key]") == state.key
                and form.get("api_user[secret]") == state.secret
            )
            if not good:
                return web.json_response(
                    {"id": None, "name": None, "nickname": None, "jwt_token": None, "avatar": None},
                    status=401,
                )
            state.sign_ins += 1
            token = issue()
        return web.json_response(
            {
                "id": 1,
                "name": "Passerelle Agora",
                "nickname": "agora",
                "jwt_token": token,
                "avatar": None,
            },
            headers={"Authorization": f"Bearer {token}"},
        )

    async def graphql(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        with state.lock:
            state.requests.append(
                {
                    "path": request.path,
                    "body": raw.decode("utf-8", "replace"),
                    "authorization": request.headers.get("Authorization", ""),
                }
            )
            if state.fail_next:
                return web.json_response(
                    {"errors": [{"message": "Internal Server error"}], "data": {}},
                    status=state.fail_next.pop(0),
                )
        payload = json.loads(raw)
        query = str(payload.get("query", ""))
        variables = payload.get("variables") or {}
        signed_in = user_of(request)
        if state.force_authentication and not signed_in:
            return web.json_response({"error": "You need to sign in first."}, status=401)
        if "createProposal" in query:
            with state.lock:
                status = state.fail_creates.pop(0) if state.fail_creates else None
            if status is not None:
                return web.json_response(
                    {"errors": [{"message": "Internal Server error"}], "data": {}}, status=status
                )
            return await create(request, variables, signed_in)
        if "proposals(" in query:
            return web.json_response(proposals(variables))
        if "decidim" in query and "version" in query:
            return web.json_response({"data": {"decidim": {"version": state.version}}})
        return web.json_response({"errors": [{"message": "unknown operation (fake)"}]})

    async def create(
        request: web.Request, variables: dict[str, Any], signed_in: bool
    ) -> web.StreamResponse:
        if not signed_in:
            # The root mutation type requires the api:write scope, which an anonymous
            # request lacks (Decidim::Api::Schema.unauthorized_object).
            return web.json_response(
                {
                    "data": None,
                    "errors": [
                        _error(
                            "You are not authorized to perform this action on Mutation",
                            "NO_OBJECT_PERMISSION",
                        )
                    ],
                }
            )
        raw_input = variables.get("input") or {}
        if "locale" in raw_input and not state.accepts_locale:
            return web.json_response(
                {
                    "errors": [
                        {
                            "message": "InputObject 'CreateProposalInput' doesn't accept "
                            "argument 'locale'",
                            "locations": [{"line": 1, "column": 40}],
                            "path": ["mutation CreateProposal"],
                            "extensions": {
                                "code": "argumentNotAccepted",
                                "name": "CreateProposalInput",
                                "typeName": "InputObject",
                                "argumentName": "locale",
                            },
                        }
                    ]
                }
            )
        locale = str(raw_input.get("locale") or "en")
        path = ["component", "createProposal"]
        component_id = int(variables.get("component") or 0)
        component = state.components.get(component_id)
        if component is None:
            return web.json_response(
                {
                    "data": None,
                    "errors": [_error("Component not found", "NOT_FOUND", ["component"])],
                }
            )
        if locale not in state.locales:
            return web.json_response(
                {
                    "data": {"component": {"createProposal": None}},
                    "errors": [_error("Invalid locale provided", "INVALID_LOCALE", path)],
                }
            )
        language = locale if locale in MESSAGES else "en"
        if not component.accepts:
            return web.json_response(
                {
                    "data": {"component": {"createProposal": None}},
                    "errors": [_error(NOT_AUTHORIZED_MUTATION, "MUTATION_NOT_AUTHORIZED", path)],
                }
            )
        attributes = raw_input.get("attributes") or {}
        title, body = str(attributes.get("title", "")), str(attributes.get("body", ""))
        with state.lock:
            problems = _validation(title, body, component, language)
            mine = [p for p in state.proposals if p["component"] == component_id]
            if not problems and component.limit and len(mine) >= component.limit:
                problems = [
                    {"path": ["attributes", "base"], "message": MESSAGES[language]["limit_reached"]}
                ]
            if problems:
                return web.json_response(
                    {
                        "data": {"component": {"createProposal": None}},
                        "errors": [_error(problems, "ATTRIBUTE_VALIDATION_ERROR", path)],
                    }
                )
            state.next_id += 1
            proposal = {
                "id": str(state.next_id),
                "component": component_id,
                "title": {locale: title},
                "body": {locale: body},
                "published": True,
            }
            state.proposals.append(proposal)
            drop = state.drop_after_create > 0
            if drop:
                state.drop_after_create -= 1
        if drop:
            # Carried out, but the answer never reaches the client.
            assert request.transport is not None
            request.transport.close()
            raise web.HTTPInternalServerError()
        return web.json_response(
            {"data": {"component": {"createProposal": {"id": proposal["id"]}}}}
        )

    def proposals(variables: dict[str, Any]) -> dict[str, Any]:
        component_id = int(variables.get("component") or 0)
        first = int(variables.get("first") or 50)
        start = int(variables.get("after") or 0)
        with state.lock:
            mine = [p for p in state.proposals if p["component"] == component_id]
        page = mine[start : start + first]
        end = start + len(page)
        return {
            "data": {
                "component": {
                    "proposals": {
                        "pageInfo": {"hasNextPage": end < len(mine), "endCursor": str(end)},
                        "nodes": [
                            {
                                "id": p["id"],
                                "body": {
                                    "translations": [
                                        # Decidim renders plain-text bodies as HTML paragraphs.
                                        {"locale": k, "text": f"<p>{v}</p>"}
                                        for k, v in p["body"].items()
                                    ]
                                },
                            }
                            for p in page
                        ],
                    }
                }
            }
        }

    app = web.Application()
    app.router.add_post("/api/sign_in", sign_in)
    app.router.add_post("/api", graphql)
    return app


class FakeDecidim:
    """Decidim's API on 127.0.0.1, served from a background thread with its own loop."""

    def __init__(self, key: str = DEFAULT_KEY, secret: str = DEFAULT_SECRET) -> None:
        self.key, self.secret = key, secret
        self.state = _State(key, secret)
        self._server = ThreadedServer("fake-decidim")
        self.base_url = ""

    def start(self) -> FakeDecidim:
        self.base_url = self._server.start(create_app(self.state))
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeDecidim:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def components(self) -> dict[int, Component]:
        return self.state.components

    @property
    def proposals(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(p) for p in self.state.proposals]

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(r) for r in self.state.requests]

    @property
    def sign_ins(self) -> int:
        return self.state.sign_ins

    def expire_tokens(self) -> None:
        """Every token issued so far is taken as expired from now on."""
        with self.state.lock:
            self.state.generation += 1
