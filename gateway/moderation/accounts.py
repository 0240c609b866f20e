"""Moderator accounts, console sessions, login throttling and API tokens.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile). A console session is a random token in an HttpOnly cookie; the database keeps only
its SHA-256, so a leaked database opens no session. API tokens are stored the same way and
shown once, when created.

**A login runs in three steps so that no database lock is held while Argon2 works** (about a
quarter of a second of CPU and 64 MiB per check): ``begin_login`` (a short transaction: the
throttle, the account's hash, and this attempt counted as a failure in advance),
``verify_password`` (no session, no transaction: SQLite takes its write lock at BEGIN, so a
check inside a transaction would hold up every webhook behind it), ``finish_login`` (a short
transaction: on success the advance failure is taken back and a session opened).
``authenticate`` chains the three for callers without an event loop.

**Throttling slows a guesser down without ever locking the owner out.** Failures are counted
in the database (so the limits hold across several ``gateway serve`` processes) under two
keys, both stored hashed:

- the pair (account name, client address): the first ``FREE_PER_PAIR`` failures cost nothing;
  after n failures the next attempt from that client for that name waits 2^(n - FREE + 1) s
  after the last one, at most ``MAX_DELAY``. An attacker elsewhere has a pair of their own,
  so the owner, from their own address, is never delayed by someone else's guesses;
- the client alone, across names (password spraying): ``FREE_PER_CLIENT`` free failures, then
  the same growing delay.

There is deliberately no limit per account name alone: whoever can reach the login page
could then keep the owner out for as long as they like (the defect this replaced). A
distributed guesser gets ``FREE_PER_PAIR`` tries per address before the delays start, which
against a 10-character password hashed with Argon2 is not a useful rate.

Each attempt is counted as a failure *before* its password is checked and taken back when it
succeeds, so that a burst of parallel attempts cannot all pass the throttle before the first
one fails. Failures are forgotten after ``FAILURE_MEMORY``; a successful login clears its pair.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import ApiToken, LoginFailure, Moderator, ModeratorSession

# answerer: gives the city's answers to published contributions and does nothing else
# (gateway.moderation.answers); moderators and admins answer too. agent: enters contributions
# collected in person, on paper or at a meeting (gateway.moderation.collected) and does nothing
# else; moderators and admins enter them too.
ROLES = ("moderator", "admin", "answerer", "agent")
MIN_PASSWORD_LENGTH = 10
SESSION_LIFETIME = timedelta(hours=12)
# The default idle timeout (Settings.session_idle_minutes overrides it).
SESSION_IDLE = timedelta(minutes=30)
# last_seen_at is written at most this often: a moderator clicking through the queue must not
# turn every page into a database write.
SESSION_TOUCH = timedelta(minutes=1)

FREE_PER_PAIR = 3
FREE_PER_CLIENT = 20
MAX_DELAY = timedelta(minutes=15)
FAILURE_MEMORY = timedelta(hours=24)

# API token scopes, from least to most: each includes the ones before it.
READ, ANSWER, MODERATE, ADMIN = "read", "answer", "moderate", "admin"
SCOPES = (READ, ANSWER, MODERATE, ADMIN)
# Beside that ladder: entering collected contributions only (an agent's tablet), which
# moderate and admin also allow; a collect token may do nothing else, not even read.
COLLECT = "collect"
TOKEN_SCOPES = (*SCOPES, COLLECT)
# A console account's role, as a scope (and existing tokens' roles, by migration 0006).
SCOPE_OF_ROLE = {"moderator": MODERATE, "admin": ADMIN, "answerer": ANSWER, "agent": COLLECT}
# Tokens always expire. An open-data reader is a long-lived, low-risk script: a year. A token
# that can publish, reject or write to residents is rotated more often: 90 days.
DEFAULT_TOKEN_DAYS = {READ: 365, ANSWER: 90, MODERATE: 90, ADMIN: 90, COLLECT: 90}
MAX_TOKEN_DAYS = 3 * 366

_hasher = PasswordHasher()
# Verified when the account does not exist, so that a login for an unknown name takes as long
# as one for a known name (no account enumeration by timing).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A refused account operation; ``key`` names the message in the catalogue."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Actor:
    """Who acts: a logged-in moderator or an API token. ``name`` goes into the moderation log.

    ``scope`` is what the actor may do (``SCOPES``): an API token's own scope, or the
    console account's role as a scope."""

    name: str
    role: str
    language: str = "fr"
    moderator_id: int | None = None
    scope: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def allows(self, needed: str) -> bool:
        return scope_allows(self.scope or SCOPE_OF_ROLE.get(self.role, READ), needed)


def scope_allows(held: str, needed: str) -> bool:
    """Whether a token of scope ``held`` may do what needs ``needed`` (an unknown scope: no)."""
    if needed == COLLECT:
        return held in (COLLECT, MODERATE, ADMIN)
    if held not in SCOPES or needed not in SCOPES:
        return False
    return SCOPES.index(held) >= SCOPES.index(needed)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            "console.accounts.password_too_short",
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
        )


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or any(c.isspace() for c in name):
        raise AccountError(
            "console.accounts.bad_name", "a name is 1 to 100 characters, without spaces"
        )
    return name


def add_moderator(
    session: Session, name: str, password: str, *, role: str = "moderator", language: str = "fr"
) -> Moderator:
    name = _check_name(name)
    if role not in ROLES:
        raise AccountError("console.accounts.bad_role", f"role must be one of {ROLES}")
    check_password_strength(password)
    if session.scalar(select(Moderator).where(Moderator.name == name)) is not None:
        raise AccountError("console.accounts.exists", f"a moderator named {name!r} exists")
    moderator = Moderator(
        name=name, password_hash=_hasher.hash(password), role=role, language=language
    )
    session.add(moderator)
    session.flush()
    return moderator


def set_password(session: Session, moderator: Moderator, password: str) -> None:
    check_password_strength(password)
    moderator.password_hash = _hasher.hash(password)
    moderator.failed_logins, moderator.locked_until = 0, None
    # A new password ends every open session of the account.
    end_sessions(session, moderator.id)


def set_active(session: Session, moderator: Moderator, active: bool) -> None:
    """Deactivating an account ends its sessions (deleted, not merely refused), so that
    reactivating it later does not bring an old cookie back to life."""
    moderator.active = active
    if not active:
        end_sessions(session, moderator.id)


def end_sessions(session: Session, moderator_id: int) -> None:
    session.execute(delete(ModeratorSession).where(ModeratorSession.moderator_id == moderator_id))


# -- logging in ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginAttempt:
    """What ``begin_login`` found, for the password check and ``finish_login``."""

    pair_key: str
    client_key: str
    client_failure_id: int
    moderator_id: int | None
    password_hash: str  # the account's, or a dummy one for an unknown name


def _key(kind: str, value: str) -> str:
    # Hashed: the table must not become a list of who tried which name from where.
    return f"{kind}:{token_hash(value)[:40]}"


def delay_after(failures: int, free: int) -> timedelta:
    """How long after the last of ``failures`` failures the next attempt must wait."""
    if failures < free:
        return timedelta(0)
    exponent = failures - free + 1
    if exponent >= 20:  # far past the cap; 2**exponent would only grow
        return MAX_DELAY
    return min(timedelta(seconds=2**exponent), MAX_DELAY)


def _wait(session: Session, key: str, free: int, now: datetime) -> int:
    count, last = session.execute(
        select(func.count(), func.max(LoginFailure.at)).where(
            LoginFailure.key == key, LoginFailure.at > now - FAILURE_MEMORY
        )
    ).one()
    delay = delay_after(int(count or 0), free)
    if last is None or not delay:
        # Not ``last - now``: a parallel attempt may have stamped its failure a moment after
        # this one's ``now``.
        return 0
    remaining = (last + delay - now).total_seconds()
    return math.ceil(remaining) if remaining > 0 else 0


def begin_login(session: Session, name: str, *, client: str, now: datetime) -> LoginAttempt:
    """The first, short step of a login (in a transaction): Throttled if this client must
    wait; otherwise the attempt, already counted as a failure, and the hash to check.

    ``client`` identifies the client address; it is stored hashed, never in clear."""
    name = name.strip()[:100]
    pair_key = _key("pair", f"{name}\n{client}")
    client_key = _key("client", client)
    retry_after = max(
        _wait(session, pair_key, FREE_PER_PAIR, now),
        _wait(session, client_key, FREE_PER_CLIENT, now),
    )
    if retry_after > 0:
        raise Throttled(retry_after)
    pair_failure = LoginFailure(key=pair_key, at=now)
    client_failure = LoginFailure(key=client_key, at=now)
    session.add_all([pair_failure, client_failure])
    # Old failures are of no use once forgotten.
    session.execute(delete(LoginFailure).where(LoginFailure.at < now - FAILURE_MEMORY))
    session.flush()
    moderator = session.scalar(select(Moderator).where(Moderator.name == name))
    return LoginAttempt(
        pair_key=pair_key,
        client_key=client_key,
        client_failure_id=client_failure.id,
        moderator_id=moderator.id if moderator is not None else None,
        password_hash=moderator.password_hash if moderator is not None else _DUMMY_HASH,
    )


@dataclass(frozen=True)
class PasswordCheck:
    ok: bool
    new_hash: str | None = None  # when the stored hash uses older parameters


def verify_password(password_hash: str, password: str) -> PasswordCheck:
    """The Argon2 check, and a new hash if the stored one is outdated: CPU-bound work meant to
    run with no database session open (see the module's docstring)."""
    try:
        ok = _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return PasswordCheck(False)
    if ok and _hasher.check_needs_rehash(password_hash):
        return PasswordCheck(True, _hasher.hash(password))
    return PasswordCheck(ok)


def finish_login(
    session: Session, attempt: LoginAttempt, check: PasswordCheck, now: datetime
) -> Moderator | None:
    """The last, short step of a login (in a transaction): the moderator, or None."""
    moderator = session.get(Moderator, attempt.moderator_id) if attempt.moderator_id else None
    if (
        moderator is None
        or not check.ok
        or not moderator.active
        # Changed while it was being checked: the password checked may be the old one.
        or moderator.password_hash != attempt.password_hash
    ):
        if moderator is not None:
            moderator.failed_logins += 1
        return None
    # The attempt was counted as a failure in advance: take it back, and forget this pair's
    # earlier failures (the client's stay, or one valid account would reset a spraying budget).
    session.execute(delete(LoginFailure).where(LoginFailure.key == attempt.pair_key))
    session.execute(delete(LoginFailure).where(LoginFailure.id == attempt.client_failure_id))
    if check.new_hash is not None:
        moderator.password_hash = check.new_hash
    moderator.failed_logins, moderator.last_login_at = 0, now
    return moderator


def authenticate(
    sessions: sessionmaker[Session], name: str, password: str, *, client: str, now: datetime
) -> Moderator | None:
    """A whole login in its three steps, for callers without an event loop (the web console
    runs the same steps itself, the password check on its own threads)."""
    with sessions.begin() as session:
        attempt = begin_login(session, name, client=client, now=now)
    check = verify_password(attempt.password_hash, password)
    with sessions.begin() as session:
        return finish_login(session, attempt, check, now)


# -- sessions --------------------------------------------------------------------------------


def open_session(
    session: Session, moderator: Moderator, now: datetime, *, idle: timedelta = SESSION_IDLE
) -> tuple[str, str]:
    """A new console session: returns (cookie token, CSRF token)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        ModeratorSession(
            token_hash=token_hash(token),
            moderator_id=moderator.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    # Sessions that ended by time are of no use: deleted while we are writing anyway.
    session.execute(
        delete(ModeratorSession).where(
            (ModeratorSession.expires_at < now) | (ModeratorSession.last_seen_at < now - idle)
        )
    )
    return token, csrf


def _alive(found: ModeratorSession, now: datetime, idle: timedelta) -> bool:
    return found.expires_at > now and now - found.last_seen_at <= idle and found.moderator.active


def find_session(
    session: Session,
    token: str,
    now: datetime,
    *,
    idle: timedelta = SESSION_IDLE,
    touch: bool = False,
) -> ModeratorSession | None:
    """The open session of this cookie token: not past its lifetime, used within ``idle``,
    of an active account. ``touch`` (in a transaction) records this use, at most once every
    ``SESSION_TOUCH``."""
    if not token:
        return None
    found = session.scalar(
        select(ModeratorSession).where(ModeratorSession.token_hash == token_hash(token))
    )
    if found is None or not _alive(found, now, idle):
        return None
    if touch and now - found.last_seen_at >= SESSION_TOUCH:
        found.last_seen_at = now
    return found


def live_sessions(
    session: Session, token_hashes: set[str], now: datetime, *, idle: timedelta = SESSION_IDLE
) -> set[str]:
    """Which of these sessions (by token hash) are still open: one query for every live board
    of a process."""
    if not token_hashes:
        return set()
    found = session.scalars(
        select(ModeratorSession).where(ModeratorSession.token_hash.in_(token_hashes))
    ).unique()
    return {s.token_hash for s in found if _alive(s, now, idle)}


def close_session(session: Session, token: str) -> None:
    session.execute(
        delete(ModeratorSession).where(ModeratorSession.token_hash == token_hash(token))
    )


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


# -- API tokens ------------------------------------------------------------------------------


def create_token(
    session: Session,
    name: str,
    *,
    scope: str = READ,
    now: datetime,
    expires_in_days: int | None = None,
) -> str:
    """A new API token; the clear token is returned once and never stored. It expires after
    ``expires_in_days`` (default: ``DEFAULT_TOKEN_DAYS`` for its scope)."""
    name = _check_name(name)
    if scope not in TOKEN_SCOPES:
        raise AccountError("console.accounts.bad_scope", f"scope must be one of {TOKEN_SCOPES}")
    days = DEFAULT_TOKEN_DAYS[scope] if expires_in_days is None else expires_in_days
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise AccountError(
            "console.accounts.bad_expiry", f"a token lasts 1 to {MAX_TOKEN_DAYS} days"
        )
    if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise AccountError("console.accounts.token_exists", f"a token named {name!r} exists")
    token = "agora_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            name=name,
            token_hash=token_hash(token),
            scope=scope,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
    )
    session.flush()
    return token


def revoke_token(session: Session, name: str, now: datetime) -> bool:
    found = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if found is None or found.revoked_at is not None:
        return False
    found.revoked_at = now
    return True


def token_actor(session: Session, token: str, now: datetime) -> Actor | None:
    """Who a bearer token acts as; None when unknown, revoked or expired."""
    if not token:
        return None
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if found is None or found.revoked_at is not None or found.expires_at <= now:
        return None
    # Touch at most once a minute: a busy API client must not turn every read into a write.
    if found.last_used_at is None or now - found.last_used_at > timedelta(minutes=1):
        found.last_used_at = now
    role = {ADMIN: "admin", MODERATE: "moderator", ANSWER: "answerer", COLLECT: "agent"}.get(
        found.scope, "reader"
    )
    return Actor(name=f"api:{found.name}", role=role, scope=found.scope)
