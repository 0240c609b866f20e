"""Moderator accounts, console sessions, login throttling and API tokens.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile). A console session is a random token in an HttpOnly cookie; the database keeps only
its SHA-256, so a leaked database opens no session. API tokens are stored the same way and
shown once, when created.

Throttling counts failed logins in the database, not in one process's memory, so that it holds
across several ``gateway serve`` processes: after ``NAME_LIMIT`` failures for one account in
``WINDOW`` the account refuses logins until the window has passed; after ``CLIENT_LIMIT``
failures from one client address (stored hashed) that client is refused, which slows down
password spraying across accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.models import ApiToken, LoginFailure, Moderator, ModeratorSession

ROLES = ("moderator", "admin")
MIN_PASSWORD_LENGTH = 10
SESSION_LIFETIME = timedelta(hours=12)
WINDOW = timedelta(minutes=15)
NAME_LIMIT = 5
CLIENT_LIMIT = 20

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
    """Who acts: a logged-in moderator or an API token. ``name`` goes into the moderation log."""

    name: str
    role: str
    language: str = "fr"
    moderator_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


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
    session.execute(delete(ModeratorSession).where(ModeratorSession.moderator_id == moderator.id))


def _failures(session: Session, key: str, now: datetime) -> tuple[int, datetime | None]:
    count, oldest = session.execute(
        select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.key == key, LoginFailure.at > now - WINDOW
        )
    ).one()
    return int(count or 0), oldest


def authenticate(
    session: Session, name: str, password: str, *, client: str, now: datetime
) -> Moderator | None:
    """The moderator if the password is right; None otherwise; Throttled when over a limit.

    ``client`` identifies the client address; it is stored hashed, never in clear.
    """
    name_key = f"name:{name.strip()[:90]}"
    client_key = "client:" + token_hash(client)[:40]
    for key, limit in ((name_key, NAME_LIMIT), (client_key, CLIENT_LIMIT)):
        count, oldest = _failures(session, key, now)
        if count >= limit and oldest is not None:
            raise Throttled(max(1, int((oldest + WINDOW - now).total_seconds()) + 1))
    moderator = session.scalar(select(Moderator).where(Moderator.name == name.strip()))
    ok = False
    try:
        ok = _hasher.verify(moderator.password_hash if moderator else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or moderator is None or not moderator.active:
        session.add_all([LoginFailure(key=name_key, at=now), LoginFailure(key=client_key, at=now)])
        # Old failures are of no use once out of the window.
        session.execute(delete(LoginFailure).where(LoginFailure.at < now - 2 * WINDOW))
        if moderator is not None:
            moderator.failed_logins += 1
        return None
    if _hasher.check_needs_rehash(moderator.password_hash):
        moderator.password_hash = _hasher.hash(password)
    moderator.failed_logins, moderator.last_login_at = 0, now
    session.execute(delete(LoginFailure).where(LoginFailure.key == name_key))
    return moderator


def open_session(session: Session, moderator: Moderator, now: datetime) -> tuple[str, str]:
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
    session.execute(delete(ModeratorSession).where(ModeratorSession.expires_at < now))
    return token, csrf


def find_session(session: Session, token: str, now: datetime) -> ModeratorSession | None:
    if not token:
        return None
    found = session.scalar(
        select(ModeratorSession).where(ModeratorSession.token_hash == token_hash(token))
    )
    if found is None or found.expires_at <= now or not found.moderator.active:
        return None
    return found


def close_session(session: Session, token: str) -> None:
    session.execute(
        delete(ModeratorSession).where(ModeratorSession.token_hash == token_hash(token))
    )


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def actor_for(moderator: Moderator) -> Actor:
    return Actor(
        name=moderator.name,
        role=moderator.role,
        language=moderator.language,
        moderator_id=moderator.id,
    )


def create_token(session: Session, name: str, *, role: str = "moderator") -> str:
    """A new API token; the clear token is returned once and never stored."""
    name = _check_name(name)
    if role not in ROLES:
        raise AccountError("console.accounts.bad_role", f"role must be one of {ROLES}")
    if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise AccountError("console.accounts.token_exists", f"a token named {name!r} exists")
    token = "agora_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=token_hash(token), role=role))
    session.flush()
    return token


def revoke_token(session: Session, name: str, now: datetime) -> bool:
    found = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if found is None or found.revoked_at is not None:
        return False
    found.revoked_at = now
    return True


def token_actor(session: Session, token: str, now: datetime) -> Actor | None:
    if not token:
        return None
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if found is None or found.revoked_at is not None:
        return None
    # Touch at most once a minute: a busy API client must not turn every read into a write.
    if found.last_used_at is None or now - found.last_used_at > timedelta(minutes=1):
        found.last_used_at = now
    return Actor(name=f"api:{found.name}", role=found.role)
