"""Who may see and do what in the console: sessions, login, CSRF, roles, security headers.

One middleware guards everything under /moderation/: it loads the session from its cookie
(the database keeps only the token's hash, see gateway.moderation.accounts), sends visitors
without one to the login page (or answers 401 for files and writes), checks the CSRF token of
every POST before any handler runs (so a refused POST changes nothing), keeps admin pages to
admins and puts the security headers on every answer, errors included.

A session ends after ``SESSION_IDLE_MINUTES`` without a request (its last use is recorded at
most once a minute), after 12 hours in any case, at logout, and when its account is
deactivated or its password changed.

Logins are throttled per (name, client) and per client (gateway.moderation.accounts). The
client is the connecting address, or, when that address is one of ``TRUSTED_PROXIES``, the
right-most address of X-Forwarded-For that is not itself a trusted proxy: the left part of
that header is written by the client and proves nothing. Passwords are checked on a small
pool of threads of their own, with no database transaction open: a burst of logins then
waits for itself, and neither holds SQLite's write lock nor fills the threads that every
other request's database work runs on (Argon2 also takes 64 MiB per check: the pool bounds
that too).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from aiohttp import web
from sqlalchemy.orm import Session

from gateway.console import flash
from gateway.console.keys import VIEWER
from gateway.console.rendering import LANGUAGES, error_page, render, see_other, translator
from gateway.console.viewer import Viewer
from gateway.console.work import write
from gateway.models import Moderator
from gateway.moderation import accounts
from gateway.webkeys import SETTINGS

log = logging.getLogger(__name__)

ROOT = "/moderation"
PREFIX = "/moderation/"
LOGIN = "/moderation/login"
HOME = "/moderation/queue"
ANSWERS = "/moderation/answers"
# All an answerer account may open (gateway.console.views.answers).
ANSWERER_PATHS = (ANSWERS, "/moderation/logout", "/moderation/language")
COLLECT = "/moderation/collect"
# All an agent account may open (gateway.console.views.collect).
AGENT_PATHS = (COLLECT, "/moderation/logout", "/moderation/language")
SESSION_COOKIE = "agora_session"
LOGIN_CSRF_COOKIE = "agora_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Argon2 checks at once, per process (each takes a core for a quarter second and 64 MiB).
PASSWORD_CHECKS_AT_ONCE = 2

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRUSTED_PROXIES = web.AppKey("console_trusted_proxies", tuple)
PASSWORD_CHECKS = web.AppKey("console_password_checks", ThreadPoolExecutor)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def now_utc() -> datetime:
    return datetime.now(UTC)


def idle_timeout(app: web.Application) -> timedelta:
    return timedelta(minutes=app[SETTINGS].session_idle_minutes)


# -- the client's address --------------------------------------------------------------------


def parse_trusted_proxies(value: str) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES``: IP addresses or CIDR networks, comma- or space-separated."""
    networks = []
    for part in value.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"TRUSTED_PROXIES: {part!r} is not an IP address or a network (e.g. 10.0.0.0/8)"
            ) from exc
    return tuple(networks)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [2001:db8::1]:443
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # 192.0.2.1:443
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: tuple[Network, ...]
) -> bool:
    return address is not None and any(address in network for network in trusted)


_warned_untrusted_proxy = False


def client_address(request: web.Request) -> str:
    """The address login throttling counts against (see the module's docstring)."""
    remote = request.remote or "unknown"
    trusted: tuple[Network, ...] = request.app[TRUSTED_PROXIES]
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
    if not _trusted(_ip(remote), trusted):
        if forwarded and not trusted:
            _warn_untrusted_proxy(remote)
        return remote
    client = remote
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        address = _ip(hop)
        if address is None:
            # Garbage right of every untrusted address: count it as the last proxy we trust,
            # never as a fresh client (a made-up value would get a throttle of its own).
            return client
        client = str(address)
        if not _trusted(address, trusted):
            return client
    return client  # every hop is a trusted proxy: the left-most one


def _warn_untrusted_proxy(remote: str) -> None:
    global _warned_untrusted_proxy
    if not _warned_untrusted_proxy:
        _warned_untrusted_proxy = True
        log.warning(
            "console: a login came with X-Forwarded-For from %s, but TRUSTED_PROXIES is "
            "empty: if the gateway is behind a reverse proxy, every login counts as that "
            "proxy's and one guesser slows everyone down (docs/console.md)",
            remote,
        )


def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The console's security headers; called before a streamed response is prepared."""
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"
    if request.path.startswith(PREFIX + "static/"):
        headers.setdefault("Cache-Control", "no-cache")
    else:
        # Pages and recordings hold residents' words: never kept by a browser or a proxy.
        headers["Cache-Control"] = "no-store"


def _is_https(request: web.Request) -> bool:
    return request.app[SETTINGS].public_url.startswith("https")


def _cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="Lax",
        secure=_is_https(request),
    )


# -- the middleware ------------------------------------------------------------------------


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path != ROOT and not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        response = await _guard(request, handler)
    except web.HTTPException as exc:
        if exc.status >= 400 and VIEWER in request and exc.status in (404, 405):
            response = await error_page(request, exc.status, f"console.errors.http_{exc.status}")
        else:
            secure_headers(request, exc)
            raise
    if not response.prepared:
        secure_headers(request, response)
    return response


def _is_file(path: str) -> bool:
    """A recording or an attachment: refused with 401, not redirected to a login page that a
    media element or a download could not show."""
    return path.endswith("/audio") or "/attachments/" in path


async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith(PREFIX + "static/") or path == LOGIN:
        return await handler(request)
    viewer = await load_viewer(request)
    if viewer is None:
        if request.method in SAFE_METHODS and not _is_file(path):
            raise web.HTTPFound(f"{LOGIN}?next={quote(request.path_qs, safe='')}")
        _ = translator(request)
        raise web.HTTPUnauthorized(text=_("console.auth.login_required"))
    request[VIEWER] = viewer
    if request.method not in SAFE_METHODS and not await _csrf_ok(request, viewer):
        log.warning("console: CSRF token missing or wrong on %s %s", request.method, path)
        return await error_page(request, 403, "console.errors.csrf")
    if path.startswith(PREFIX + "admin") and not viewer.is_admin:
        return await error_page(request, 403, "console.errors.admin_only")
    if viewer.role == "answerer" and not path.startswith(ANSWERER_PATHS):
        # An answerer gives the city's answers to published contributions and sees their
        # public versions only: never the queue, residents' own words or their addresses.
        if request.method in SAFE_METHODS and path in (ROOT, PREFIX, HOME):
            raise web.HTTPFound(ANSWERS)
        return await error_page(request, 403, "console.errors.answerers_only")
    if viewer.role == "agent" and not path.startswith(AGENT_PATHS):
        # An agent enters what they collected; they never see the queue or residents' words.
        if request.method in SAFE_METHODS and path in (ROOT, PREFIX, HOME):
            raise web.HTTPFound(COLLECT)
        return await error_page(request, 403, "console.errors.agents_only")
    return await handler(request)


async def _csrf_ok(request: web.Request, viewer: Viewer) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        field = (await request.post()).get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    return accounts.csrf_matches(viewer.csrf, given)


async def load_viewer(request: web.Request) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None

    idle = idle_timeout(request.app)

    def find(session: Session) -> Viewer | None:
        found = accounts.find_session(session, token, now_utc(), idle=idle, touch=True)
        if found is None:
            return None
        moderator = found.moderator
        return Viewer(
            moderator_id=moderator.id,
            name=moderator.name,
            role=moderator.role,
            language=moderator.language,
            csrf=found.csrf_token,
            session_token=token,
        )

    # A transaction: this use of the session is recorded (at most once a minute).
    return await write(request, find)


# -- login and logout ----------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """Where to go after login: a local console path only (no open redirect)."""
    if not value or any(ch in value for ch in "\\\r\n\t\0") or value.startswith("//"):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX):
        return HOME
    if ".." in parts.path.split("/") or parts.path.startswith(LOGIN):
        return HOME
    return value


def _login_token(request: web.Request) -> str:
    current = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return current if 32 <= len(current) <= 100 else secrets.token_urlsafe(32)


async def _login_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    name: str = "",
    next_path: str = "",
    **params: object,
) -> web.Response:
    token = _login_token(request)
    errors = [flash.Flash(error, dict(params), error=True)] if error else []
    response = await render(
        request,
        "login.html",
        {"login_csrf": token, "name": name, "next": safe_next(next_path)},
        status=status,
        errors=errors,
    )
    _cookie(request, response, LOGIN_CSRF_COOKIE, token, 2 * 3600)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    if await load_viewer(request) is not None:
        return see_other(safe_next(request.query.get("next")))
    return await _login_page(request, next_path=request.query.get("next", ""))


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", "")).strip()[:100]
    password = str(form.get("password", ""))
    next_path = str(form.get("next", ""))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = str(form.get(CSRF_FIELD, ""))
    if not cookie or not given or not hmac.compare_digest(cookie.encode(), given.encode()):
        return await _login_page(
            request, status=403, error="console.login.expired", name=name, next_path=next_path
        )
    client = client_address(request)
    idle = idle_timeout(request.app)
    try:
        attempt = await write(
            request,
            lambda session: accounts.begin_login(session, name, client=client, now=now_utc()),
        )
    except accounts.Throttled as throttled:
        wait = throttled.retry_after
        # The delay grows from seconds to a quarter of an hour: say it in the unit that fits.
        response = await _login_page(
            request,
            status=429,
            error="console.login.throttled" if wait > 60 else "console.login.throttled_seconds",
            name=name,
            next_path=next_path,
            minutes=-(-wait // 60),
            seconds=wait,
        )
        response.headers["Retry-After"] = str(throttled.retry_after)
        return response
    # No session is open here: the check holds no database lock (see the module docstring).
    check = await asyncio.get_running_loop().run_in_executor(
        request.app[PASSWORD_CHECKS], accounts.verify_password, attempt.password_hash, password
    )

    def finish(session: Session) -> str | None:
        moderator = accounts.finish_login(session, attempt, check, now_utc())
        if moderator is None:
            return None
        token, _csrf = accounts.open_session(session, moderator, now_utc(), idle=idle)
        return token

    token = await write(request, finish)
    if token is None:
        return await _login_page(
            request, status=401, error="console.login.failed", name=name, next_path=next_path
        )
    response = see_other(safe_next(next_path))
    _cookie(
        request,
        response,
        SESSION_COOKIE,
        token,
        int(accounts.SESSION_LIFETIME.total_seconds()),
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    token = request[VIEWER].session_token
    await write(request, lambda session: accounts.close_session(session, token))
    response = see_other(LOGIN)
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    flash.add(request, response, "console.login.logged_out")
    return response


# -- the reader's language -------------------------------------------------------------------


def back_to(request: web.Request) -> str:
    """The console page the request came from (its Referer), if it is one of ours."""
    referer = request.headers.get("Referer", "")
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc != request.host:
        return HOME
    local = parts.path + (f"?{parts.query}" if parts.query else "")
    return safe_next(local)


async def set_language(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    language = str(form.get("language", ""))
    if language not in LANGUAGES:
        return await error_page(request, 400, "console.errors.bad_language")
    moderator_id = request[VIEWER].moderator_id

    def store(session: Session) -> None:
        moderator = session.get(Moderator, moderator_id)
        if moderator is not None:
            moderator.language = language

    await write(request, store)
    response = see_other(back_to(request))
    flash.add(request, response, "console.language.changed")
    return response


def add_routes(app: web.Application) -> None:
    # Read at start-up: a mistyped TRUSTED_PROXIES stops `gateway serve` with its reason.
    app[TRUSTED_PROXIES] = parse_trusted_proxies(app[SETTINGS].trusted_proxies)
    if app[SETTINGS].session_idle_minutes < 1:
        raise ValueError("SESSION_IDLE_MINUTES must be at least 1")
    pool = ThreadPoolExecutor(PASSWORD_CHECKS_AT_ONCE, thread_name_prefix="password-check")
    app[PASSWORD_CHECKS] = pool

    async def stop_pool(_app: web.Application) -> None:
        pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(stop_pool)
    app.router.add_get(LOGIN, login_form)
    app.router.add_post(LOGIN, login)
    app.router.add_post(PREFIX + "logout", logout)
    app.router.add_post(PREFIX + "language", set_language)
