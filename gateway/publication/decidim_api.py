"""Direct publication to Decidim 0.32 and later: each published contribution becomes a proposal
in the campaign's proposals component, created through Decidim's API, never twice.

The wire format, as Decidim's source has it (github.com/decidim/decidim):

- Sign-in: ``POST {DECIDIM_URL}/api/sign_in`` with the form fields ``api_user[key]`` and
  ``api_user[secret]`` (``decidim-api/lib/devise/strategies/api_authenticatable.rb`` reads
  ``key`` and ``secret`` of the ``api_user`` scope; ``decidim-api/app/controllers/decidim/api/
  sessions_controller.rb``). devise-jwt dispatches the token on that path only
  (``decidim-api/config/initializers/devise.rb``: ``dispatch_requests``) in the
  ``Authorization: Bearer <token>`` response header; the sessions controller also puts it in
  the JSON body as ``jwt_token`` for clients that lose headers, which is read when the header
  is missing. The same initializer skips the whole set-up when the server has no
  ``DECIDIM_API_JWT_SECRET``: then a sign-in succeeds without any token, said as such here.
  Wrong credentials: 401 with ``"jwt_token": null``.
- GraphQL: ``POST {DECIDIM_URL}/api`` (``decidim-api/config/routes.rb``, ``queries_controller``)
  with ``Authorization: Bearer <token>``. An API user gets every scope, ``api:write`` included
  (``queries_controller.rb``, ``api_scopes``). A token that expired is not refused by status:
  the request runs as an anonymous one (read scope only), and the mutation fails with a
  permission error; so on a permission error the client signs in again once and retries.
- ``{ decidim { version } }`` (``decidim-core/lib/decidim/api/types/decidim_type.rb``) is null
  unless the server sets ``DECIDIM_API_DISCLOSE_SYSTEM_VERSION``: without a version, nothing is
  sent (the operator is told what to set).
- ``mutation { component(id:) { ... on ProposalsMutation { createProposal(input: {locale,
  attributes: {title, body}}) { id } } } }``: ``decidim-api/lib/decidim/api/mutation_type.rb``
  (``component``), ``decidim-proposals/lib/decidim/api/mutations/create_proposal_type.rb``
  (a Relay classic mutation, hence ``input``; ``locale`` required in the current source, absent
  from earlier 0.32 code: when the server says the argument is unknown, it is dropped),
  ``proposal_attributes.rb`` (title, body, address, latitude, longitude, taxonomies). The
  proposal is created and published at once by the mutation.
- Errors (``decidim-api/lib/decidim/api/errors/*.rb``), each with ``extensions.code``:
  ``ATTRIBUTE_VALIDATION_ERROR`` whose ``message`` is a *list* of ``{path: ["attributes",
  field], message}`` (the form's errors; the proposal limit is an error on ``base``,
  ``decidim.proposals.new.limit_reached``, from the ``CreateProposal`` command),
  ``VALIDATION_ERROR`` (created but not published), ``MUTATION_NOT_AUTHORIZED`` (creation not
  enabled in the component's current step, or not allowed to this user),
  ``NO_OBJECT_PERMISSION`` / ``NO_FIELD_PERMISSION``, ``INVALID_LOCALE``, ``NOT_FOUND``.

Never twice: before a proposal is requested, the contribution is marked as sent
(``decidim_published_at`` set, ``decidim_id`` still empty) and committed. A contribution left
in that state (the process died, the answer was lost) is looked up in Decidim before anything
is created again: the body ends with the gateway's reference (decidim_text.proposal_body), so
the component's proposals are read and the one whose last reference is this one is taken.
One run per campaign at a time (a lock in Redis, gateway.locks).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.models import Campaign, Contribution
from gateway.publication import decidim_text
from gateway.publication.records import PublicRecord, public_records
from gateway.runtime import Runtime
from gateway.settings import Settings

log = logging.getLogger(__name__)

MIN_VERSION = (0, 32)
# Seconds to wait before each new attempt after a network error or a server error.
BACKOFF: tuple[float, ...] = (1.0, 4.0, 15.0)
TIMEOUT = (10.0, 60.0)  # connect, read
# A token this close to its expiry is renewed before use rather than after a refusal.
TOKEN_MARGIN_SECONDS = 60
PAGE_SIZE = 50
ERROR_LIMIT = 500
# The gateway's reference that ends a proposal's body (decidim_text.proposal_body).
REFERENCE = re.compile(r"\b[A-Z0-9]{2,12}-\d{4,}\b")
_TAGS = re.compile(r"<[^>]+>")
PERMISSION_CODES = frozenset(
    {"MUTATION_NOT_AUTHORIZED", "NO_OBJECT_PERMISSION", "NO_FIELD_PERMISSION"}
)

VERSION = "{ decidim { version } }"

CREATE_PROPOSAL = """
mutation CreateProposal($component: ID!, $input: CreateProposalInput!) {
  component(id: $component) {
    ... on ProposalsMutation {
      createProposal(input: $input) { id }
    }
  }
}
"""

FIND_PROPOSALS = """
query GatewayProposals($component: ID!, $first: Int, $after: String) {
  component(id: $component) {
    ... on Proposals {
      proposals(first: $first, after: $after) {
        pageInfo { hasNextPage endCursor }
        nodes { id body { translations { locale text } } }
      }
    }
  }
}
"""


class DecidimError(Exception):
    """Publication cannot go on (settings, credentials, version, component): the message says
    what to do."""


class InDoubt(Exception):
    """No usable answer (network error, server error): the request may have been carried out."""


class Refusal(Exception):
    """Decidim refused this proposal; ``stops_run``: it would refuse the next ones too."""

    def __init__(self, kind: str, message: str, *, stops_run: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.stops_run = stops_run


def _error_text(error: dict[str, Any]) -> str:
    message = error.get("message")
    if isinstance(message, list):
        # ATTRIBUTE_VALIDATION_ERROR: [{"path": ["attributes", "title"], "message": "..."}]
        parts = []
        for item in message:
            if not isinstance(item, dict):
                parts.append(str(item))
                continue
            path = [str(p) for p in item.get("path") or [] if p != "attributes"]
            text = str(item.get("message", ""))
            parts.append(f"{'.'.join(path)}: {text}" if path else text)
        return "; ".join(parts)
    return str(message or "")


def _code(error: dict[str, Any]) -> str:
    extensions = error.get("extensions")
    return str(extensions.get("code", "")) if isinstance(extensions, dict) else ""


def _token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without checking its signature: only to renew the token
    before it runs out (the server checks it)."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, (int, float)) else None


def parse_version(text: str) -> tuple[int, int] | None:
    match = re.match(r"\s*(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


class DecidimClient:
    """Decidim's API for one platform: sign-in, the version, proposals. Idempotent requests
    (sign-in, queries) are retried after network and server errors with a growing wait; a
    mutation is not (``InDoubt``): whether it was carried out is for the caller to find out."""

    def __init__(
        self,
        url: str,
        key: str,
        secret: str,
        *,
        http: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Sequence[float] = BACKOFF,
        timeout: tuple[float, float] = TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self._key = key
        self._secret = secret
        self._http = http or requests.Session()
        self._sleep = sleep
        self._backoff = tuple(backoff)
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._expiry: float | None = None
        self.sign_ins = 0
        # Earlier 0.32 code has no ``locale`` argument (see the module's docstring).
        self._send_locale = True

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> DecidimClient:
        return cls(
            settings.decidim_url,
            settings.decidim_api_key,
            settings.decidim_api_secret,
            **options,
        )

    def close(self) -> None:
        self._http.close()

    # -- transport -----------------------------------------------------------------------
    def _post(self, path: str, *, retry: bool, **kwargs: Any) -> requests.Response:
        delays = (0.0, *self._backoff) if retry else (0.0,)
        problem = ""
        for delay in delays:
            if delay:
                self._sleep(delay)
            try:
                # No redirects: a 307 would carry the secret (or the token) to another address.
                response = self._http.post(
                    self.url + path, timeout=self._timeout, allow_redirects=False, **kwargs
                )
            except requests.RequestException as exc:
                # The exception's text names the host and port, never the form or the token.
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500 or response.status_code == 429:
                problem = f"HTTP {response.status_code} from {self.url}{path}"
                continue
            if 300 <= response.status_code < 400:
                raise DecidimError(
                    f"Decidim redirects {self.url}{path} to "
                    f"{response.headers.get('Location', 'another address')}: set "
                    f"GATEWAY_DECIDIM_URL to the platform's own root URL"
                )
            return response
        raise InDoubt(problem[:300])

    def sign_in(self) -> None:
        try:
            response = self._post(
                "/api/sign_in",
                retry=True,
                data={"api_user[key]": self._key, "api_user[secret]": self._secret},
                headers={"Accept": "application/json"},
            )
        except InDoubt as exc:
            raise DecidimError(f"cannot reach Decidim at {self.url} to sign in ({exc})") from exc
        if response.status_code == 401:
            raise DecidimError(
                "Decidim refused the API credentials: check GATEWAY_DECIDIM_API_KEY and "
                "GATEWAY_DECIDIM_API_SECRET against the API credentials in Decidim's system "
                "administration (a secret is shown once, when made)"
            )
        if response.status_code == 404:
            raise DecidimError(
                f"no API sign-in at {self.url}/api/sign_in: GATEWAY_DECIDIM_URL must be the "
                f"platform's root URL, and the platform Decidim 0.32 or later"
            )
        if response.status_code >= 400:
            raise DecidimError(f"Decidim answered the sign-in with HTTP {response.status_code}")
        token = ""
        header = response.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        if not token:
            try:
                token = str(response.json().get("jwt_token") or "")
            except (ValueError, AttributeError):
                token = ""
        if not token:
            raise DecidimError(
                "Decidim accepted the API credentials but sent no token: the platform's "
                "DECIDIM_API_JWT_SECRET is not set (ask its administrator)"
            )
        self._token, self._expiry = token, _token_expiry(token)
        self.sign_ins += 1

    def _token_usable(self) -> bool:
        if self._token is None:
            return False
        return self._expiry is None or self._expiry - TOKEN_MARGIN_SECONDS > self._clock()

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, retry: bool = True
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``(data, errors)``; signs in when there is no token or it is about to expire, and
        once more when Decidim answers 401 or a permission error (an expired token)."""
        for fresh in (False, True):
            if fresh or not self._token_usable():
                self.sign_in()
            response = self._post(
                "/api",
                retry=retry,
                json={"query": query, "variables": variables or {}},
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
            )
            if response.status_code == 401 and not fresh:
                continue
            if response.status_code >= 400:
                raise DecidimError(f"Decidim's API answered HTTP {response.status_code}")
            try:
                payload = response.json()
            except ValueError as exc:
                raise InDoubt("Decidim's API answered something that is not JSON") from exc
            data = payload.get("data") or {}
            errors = [e for e in payload.get("errors") or [] if isinstance(e, dict)]
            if not fresh and any(_code(e) in PERMISSION_CODES for e in errors):
                continue
            return data, errors
        raise DecidimError("Decidim refused the API token just issued (HTTP 401)")

    # -- what the publisher asks -----------------------------------------------------------
    def version(self) -> str:
        """Decidim's version; DecidimError below 0.32 or when the server hides it."""
        data, errors = self.graphql(VERSION)
        if errors:
            raise DecidimError(f"Decidim's API refused the version query: {_error_text(errors[0])}")
        version = (data.get("decidim") or {}).get("version")
        if not version:
            raise DecidimError(
                "Decidim does not disclose its version, so the gateway cannot check that it is "
                "0.32 or later: ask the platform's administrator to set "
                "DECIDIM_API_DISCLOSE_SYSTEM_VERSION=true"
            )
        parsed = parse_version(str(version))
        if parsed is None or parsed < MIN_VERSION:
            raise DecidimError(
                f"Decidim {version} has no API to create proposals (0.32 or later is needed): "
                f"use the import files instead (gateway export --format decidim-csv)"
            )
        return str(version)

    def create_proposal(self, component: int, title: str, body: str, locale: str) -> str:
        """The new proposal's id; Refusal when Decidim says no, InDoubt when it is unknown."""
        for _ in range(2):
            payload: dict[str, Any] = {"attributes": {"title": title, "body": body}}
            if self._send_locale:
                payload["locale"] = locale
            data, errors = self.graphql(
                CREATE_PROPOSAL, {"component": str(component), "input": payload}, retry=False
            )
            if self._send_locale and any(
                (e.get("extensions") or {}).get("argumentName") == "locale" for e in errors
            ):
                self._send_locale = False
                continue
            break
        if errors:
            raise _refusal(errors, component)
        created = ((data.get("component") or {}).get("createProposal") or {}).get("id")
        if data.get("component") is None:
            raise Refusal(
                "component",
                f"Decidim has no published component {component}: check decidim.component "
                f"in the campaign file",
                stops_run=True,
            )
        if not created:
            raise Refusal(
                "component",
                f"component {component} is not a proposals component (no createProposal)",
                stops_run=True,
            )
        return str(created)

    def proposals_by_reference(self, component: int) -> dict[str, str]:
        """The component's proposals by the gateway reference that ends their body."""
        found: dict[str, str] = {}
        after: str | None = None
        while True:
            data, errors = self.graphql(
                FIND_PROPOSALS, {"component": str(component), "first": PAGE_SIZE, "after": after}
            )
            if errors:
                raise DecidimError(
                    f"cannot read component {component}'s proposals to avoid a duplicate: "
                    f"{_error_text(errors[0])}"
                )
            page = (data.get("component") or {}).get("proposals") or {}
            for node in page.get("nodes") or []:
                texts = [
                    str(t.get("text") or "")
                    for t in ((node.get("body") or {}).get("translations") or [])
                ]
                for text in texts:
                    references = REFERENCE.findall(_TAGS.sub(" ", text))
                    if references:
                        found.setdefault(references[-1], str(node.get("id")))
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                return found
            after = str(info["endCursor"])


def _refusal(errors: list[dict[str, Any]], component: int) -> Refusal:
    codes = {_code(e) for e in errors}
    text = "; ".join(filter(None, (_error_text(e) for e in errors)))
    if "ATTRIBUTE_VALIDATION_ERROR" in codes:
        for error in errors:
            items = error.get("message") if isinstance(error.get("message"), list) else []
            for item in items or []:
                path = item.get("path") if isinstance(item, dict) else None
                if path and path[-1] == "base" and "limit" in str(item.get("message", "")).lower():
                    return Refusal(
                        "limit",
                        f"proposal limit reached in component {component} ({text}): the API "
                        f"user is the author of every proposal the gateway creates; set the "
                        f"component's proposal limit per participant to 0 (no limit)",
                        stops_run=True,
                    )
        return Refusal("validation", f"Decidim refused the proposal: {text}")
    if "MUTATION_NOT_AUTHORIZED" in codes:
        return Refusal(
            "closed",
            f"Decidim does not accept proposals in component {component} now: participants "
            f"can create proposals only when the active step of the process enables it "
            f"(component settings, step by step) ({text})",
            stops_run=True,
        )
    if codes & PERMISSION_CODES:
        return Refusal("permission", f"the API user may not do this: {text}", stops_run=True)
    if "INVALID_LOCALE" in codes or "LOCALE_ERROR" in codes:
        return Refusal(
            "locale",
            f"the campaign's language is not one of the Decidim organisation's ({text})",
            stops_run=True,
        )
    if "NOT_FOUND" in codes:
        return Refusal(
            "component",
            f"Decidim has no component {component}: check decidim.component ({text})",
            stops_run=True,
        )
    if "VALIDATION_ERROR" in codes:
        return Refusal("publish", f"Decidim created the proposal but could not publish it: {text}")
    return Refusal("other", f"Decidim refused the proposal: {text or 'no reason given'}")


# -- the publisher -----------------------------------------------------------------------------


# A contribution published at once (a posteriori) goes to Decidim once a moderator has
# reviewed it: a proposal created there is not withdrawn from here (docs/publishing-decidim-api.md).
AWAITING_REVIEW = "published at once, awaiting a moderator's review"


@dataclass(frozen=True)
class Outcome:
    reference: str
    # published | recovered (found in Decidim after an interrupted run) | would_publish
    # (dry run) | failed | skipped
    action: str
    decidim_id: str | None = None
    detail: str = ""
    title: str = ""
    body: str = ""


@dataclass
class Report:
    campaign: str
    component: int
    version: str = ""
    dry_run: bool = False
    already: int = 0  # published to Decidim by an earlier run
    outcomes: list[Outcome] = field(default_factory=list)
    stopped: str | None = None

    def count(self, *actions: str) -> int:
        return sum(1 for o in self.outcomes if o.action in actions)

    @property
    def ok(self) -> bool:
        return self.stopped is None and self.count("failed") == 0


def _now() -> datetime:
    return datetime.now(UTC)


def _set(session: Session, contribution_id: int, **values: Any) -> None:
    session.execute(update(Contribution).where(Contribution.id == contribution_id).values(**values))


def _campaign(session: Session, slug: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        raise DecidimError(f"no campaign {slug!r} (gateway campaigns list)")
    return campaign


_States = dict[int, tuple[str | None, datetime | None]]


def _load(runtime: Runtime, slug: str) -> tuple[int, str, list[PublicRecord], _States]:
    """The campaign's component and language, its published contributions (public records
    only), and where each one stands with Decidim."""
    with runtime.sessions() as session:
        campaign = _campaign(session, slug)
        component, language = campaign.decidim_component, campaign.language or "fr"
        if component is None:
            raise DecidimError(
                f"campaign {slug!r} names no Decidim component: add `decidim: {{component: ID}}` "
                f"to its campaign file and load it again (gateway campaigns load)"
            )
        records = public_records(session, campaign, runtime.vault, include_rejected=False)
        states: _States = {
            cid: (decidim_id, sent_at)
            for cid, decidim_id, sent_at in session.execute(
                select(
                    Contribution.id, Contribution.decidim_id, Contribution.decidim_published_at
                ).where(Contribution.campaign_id == campaign.id)
            )
        }
    return component, language, records, states


def publish_campaign(
    runtime: Runtime,
    slug: str,
    *,
    dry_run: bool = False,
    client: DecidimClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    backoff: Sequence[float] = BACKOFF,
) -> Report:
    """Create a proposal in Decidim for each published contribution of the campaign that has
    none yet. DecidimError when nothing can be done (settings, sign-in, version, component);
    a refusal about one contribution is stored in its ``decidim_error`` and the run goes on,
    unless Decidim would refuse the others too (closed step, limit reached).

    ``dry_run``: signs in and checks the version, then says what would be sent; nothing is
    created in Decidim and nothing changes here."""
    from gateway import locks

    settings = runtime.settings
    if not settings.decidim_configured:
        raise DecidimError(
            "Decidim is not configured: set GATEWAY_DECIDIM_URL, GATEWAY_DECIDIM_API_KEY and "
            "GATEWAY_DECIDIM_API_SECRET (docs/publishing-decidim-api.md)"
        )
    component = _load(runtime, slug)[0]  # a missing campaign or component, before signing in
    own = client is None
    client = client or DecidimClient.from_settings(settings, sleep=sleep, backoff=backoff)
    report = Report(campaign=slug, component=component, dry_run=dry_run)
    try:
        # Signs in first (a client given by the caller may hold a token already).
        report.version = client.version()
        if dry_run:
            _, language, records, states = _load(runtime, slug)
            _dry_run(report, records, states, settings, language)
            return report
        try:
            with locks.hold(runtime.redis, f"decidim:{slug}", wait=0):
                # Read under the lock: a run that ended a moment ago has recorded its ids.
                component, language, records, states = _load(runtime, slug)
                report.component = component
                _publish(runtime, client, report, records, states, language, sleep, backoff)
        except locks.Busy as exc:
            raise DecidimError(
                f"another publication of campaign {slug!r} to Decidim is running; try later"
            ) from exc
    except InDoubt as exc:
        # A query still unanswered after the retries; a contribution being sent stays marked
        # as sent, and the next run looks for it in Decidim first.
        raise DecidimError(f"Decidim did not answer ({exc}); run again later") from exc
    finally:
        if own:
            client.close()
    return report


def _texts(record: PublicRecord, settings: Settings, language: str) -> tuple[str, str]:
    tz = ZoneInfo(settings.timezone)
    return (
        decidim_text.proposal_title(record, language),
        decidim_text.proposal_body(record, tz, language),
    )


def _dry_run(
    report: Report,
    records: list[PublicRecord],
    states: _States,
    settings: Settings,
    language: str,
) -> None:
    for record in records:
        decidim_id, sent_at = states.get(record.contribution_id, (None, None))
        if decidim_id:
            report.already += 1
            continue
        if record.awaiting_review:
            report.outcomes.append(Outcome(record.reference, "skipped", detail=AWAITING_REVIEW))
            continue
        title, body = _texts(record, settings, language)
        problems = decidim_text.validation_errors(title, body)
        if problems:
            report.outcomes.append(
                Outcome(
                    record.reference, "failed", detail="; ".join(problems), title=title, body=body
                )
            )
            continue
        detail = "sent before without a known outcome: looked up first" if sent_at else ""
        report.outcomes.append(
            Outcome(record.reference, "would_publish", detail=detail, title=title, body=body)
        )


def _record(runtime: Runtime, contribution_id: int, decidim_id: str) -> None:
    with runtime.sessions.begin() as session:
        _set(
            session,
            contribution_id,
            decidim_id=decidim_id[:32],
            decidim_published_at=_now(),
            decidim_error=None,
        )


class _Index:
    """The component's proposals by reference, read from Decidim only when a contribution's
    fate is unknown, and read again after a request of this run went unanswered."""

    def __init__(self, client: DecidimClient, component: int) -> None:
        self.client, self.component = client, component
        self._known: dict[str, str] | None = None

    def find(self, reference: str, *, fresh: bool) -> str | None:
        if self._known is None or fresh:
            self._known = self.client.proposals_by_reference(self.component)
        return self._known.get(reference)


def _publish(
    runtime: Runtime,
    client: DecidimClient,
    report: Report,
    records: list[PublicRecord],
    states: _States,
    language: str,
    sleep: Callable[[float], None],
    backoff: Sequence[float],
) -> None:
    index = _Index(client, report.component)
    for position, record in enumerate(records):
        cid, reference = record.contribution_id, record.reference
        decidim_id, sent_at = states.get(cid, (None, None))
        if decidim_id:
            report.already += 1
            continue
        if record.awaiting_review:
            report.outcomes.append(Outcome(reference, "skipped", detail=AWAITING_REVIEW))
            continue
        title, body = _texts(record, runtime.settings, language)
        problems = decidim_text.validation_errors(title, body)
        if problems:
            message = "not sent: " + "; ".join(problems)
            with runtime.sessions.begin() as session:
                _set(session, cid, decidim_error=message[:ERROR_LIMIT])
            report.outcomes.append(Outcome(reference, "failed", detail=message, title=title))
            continue
        try:
            outcome = _publish_one(
                runtime,
                client,
                index,
                record,
                (title, body, language),
                in_doubt=sent_at is not None,
                sleep=sleep,
                backoff=backoff,
            )
        except Refusal as refusal:
            with runtime.sessions.begin() as session:
                # Refused: nothing was created, so the next run may try again from scratch.
                _set(
                    session,
                    cid,
                    decidim_published_at=None,
                    decidim_error=refusal.message[:ERROR_LIMIT],
                )
            report.outcomes.append(
                Outcome(reference, "failed", detail=refusal.message, title=title)
            )
            if refusal.stops_run:
                report.stopped = refusal.message
                for rest in records[position + 1 :]:
                    if states.get(rest.contribution_id, (None, None))[0]:
                        report.already += 1
                    else:
                        report.outcomes.append(
                            Outcome(rest.reference, "skipped", detail="run stopped")
                        )
                return
            continue
        report.outcomes.append(outcome)


def _publish_one(
    runtime: Runtime,
    client: DecidimClient,
    index: _Index,
    record: PublicRecord,
    texts: tuple[str, str, str],
    *,
    in_doubt: bool,
    sleep: Callable[[float], None],
    backoff: Sequence[float],
) -> Outcome:
    cid, reference = record.contribution_id, record.reference
    title, body, language = texts
    problem = ""
    unanswered_here = False
    for attempt, delay in enumerate((0.0, *backoff)):
        if delay:
            sleep(delay)
        if in_doubt:
            found = index.find(reference, fresh=unanswered_here)
            if found:
                _record(runtime, cid, found)
                return Outcome(reference, "recovered", found, "found in Decidim", title=title)
        # Marked before the request and committed: if the answer never comes back (or this
        # process dies), the next attempt looks the proposal up instead of creating another.
        with runtime.sessions.begin() as session:
            _set(
                session,
                cid,
                decidim_published_at=_now(),
                decidim_error="sent to Decidim, no answer recorded yet: the next run looks "
                "for it there before creating it again",
            )
        try:
            created = client.create_proposal(index.component, title, body, language)
        except InDoubt as exc:
            problem = str(exc)
            in_doubt = unanswered_here = True
            log.warning("%s: no answer from Decidim (attempt %d): %s", reference, attempt + 1, exc)
            continue
        _record(runtime, cid, created)
        return Outcome(reference, "published", created, title=title)
    message = (
        f"no answer from Decidim after {len(backoff) + 1} attempts ({problem}); the next run "
        f"looks for it there before creating it again"
    )
    with runtime.sessions.begin() as session:
        _set(session, cid, decidim_error=message[:ERROR_LIMIT])
    return Outcome(reference, "failed", detail=message, title=title)


# -- the job and the console -------------------------------------------------------------------

JOB_PREFIX = "decidim-publish-"
_WAITING = ("queued", "started", "deferred", "scheduled")


def job_id(slug: str) -> str:
    return JOB_PREFIX + slug


def enqueue(runtime: Runtime, slug: str) -> bool:
    """Queue a publication of the campaign (workers.jobs.publish_to_decidim); False when one
    is already waiting or running (a second would only wait for the first's lock)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        status = Job.fetch(job_id(slug), connection=runtime.redis).get_status()
    except NoSuchJobError:
        status = None
    if status is not None and str(getattr(status, "value", status)) in _WAITING:
        return False
    from gateway import enqueue as queueing

    queueing.decidim_publication(runtime, slug, job_id(slug))
    return True


def last_run(runtime: Runtime, slug: str) -> str | None:
    """The state of the campaign's last queued publication (queued, started, finished,
    failed), or None; what a failed one said is in the worker's log and in the job."""
    from redis.exceptions import RedisError
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        status = Job.fetch(job_id(slug), connection=runtime.redis).get_status()
    except (NoSuchJobError, RedisError, OSError):
        return None
    return None if status is None else str(getattr(status, "value", status))


def counts(session: Session) -> dict[int, tuple[int, int]]:
    """Per campaign id: (contributions published to Decidim, contributions with an error)."""
    from sqlalchemy import func

    published = Contribution.decidim_id.is_not(None)
    failing = Contribution.decidim_id.is_(None) & Contribution.decidim_error.is_not(None)
    result: dict[int, tuple[int, int]] = {}
    for cid, done, errors in session.execute(
        select(
            Contribution.campaign_id,
            func.count().filter(published),
            func.count().filter(failing),
        )
        .where(Contribution.campaign_id.is_not(None))
        .group_by(Contribution.campaign_id)
    ):
        if cid is not None:
            result[int(cid)] = (int(done), int(errors))
    return result


def report_lines(report: Report) -> list[str]:
    """The report as `gateway decidim publish` prints it, one line per contribution."""
    lines = [
        f"Decidim {report.version}, component {report.component}, campaign {report.campaign}"
        + (" (dry run: nothing is created)" if report.dry_run else "")
    ]
    for o in report.outcomes:
        if o.action == "would_publish":
            lines.append(f"would publish {o.reference}" + (f" ({o.detail})" if o.detail else ""))
            lines.append(f"  title: {o.title}")
            lines += [
                "  body: " + line if i == 0 else "        " + line
                for i, line in enumerate(o.body.splitlines())
            ]
        elif o.action in ("published", "recovered"):
            lines.append(
                f"{o.action} {o.reference} -> proposal {o.decidim_id}"
                + (f" ({o.detail})" if o.detail else "")
            )
        else:
            lines.append(f"{o.action} {o.reference}: {o.detail}")
    if report.stopped:
        lines.append(f"stopped: {report.stopped}")
    summary = ["published", "recovered", "skipped", "failed"]
    if report.dry_run:
        summary = ["would_publish", "failed"]
    lines.append(
        ", ".join(f"{name.replace('_', ' ')}: {report.count(name)}" for name in summary)
        + f", already in Decidim: {report.already}"
    )
    return lines
