"""Moderator accounts, sessions, throttling and API tokens, on SQLite and PostgreSQL; and the
`gateway moderators` / `gateway tokens` commands as an operator runs them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.clock import now_utc
from gateway.models import ApiToken, LoginFailure, Moderator, ModeratorSession
from gateway.moderation import accounts
from gateway.moderation.accounts import AccountError, Throttled
from gateway.runtime import Runtime
from tests.console.probes import OpenTransactions, RecordingHasher

PASSWORD = "correct horse battery"


def add(runtime: Runtime, name: str = "alice", role: str = "moderator") -> None:
    with runtime.sessions.begin() as session:
        accounts.add_moderator(session, name, PASSWORD, role=role)


def login(runtime: Runtime, name: str, password: str, client: str = "10.0.0.1", now=None):
    found = accounts.authenticate(
        runtime.sessions, name, password, client=client, now=now or now_utc()
    )
    return found.name if found else None


def test_passwords_are_argon2id_hashes_and_checked(runtime: Runtime):
    add(runtime)
    with runtime.sessions() as session:
        stored = session.scalars(select(Moderator.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert login(runtime, "alice", PASSWORD) == "alice"
    assert login(runtime, "alice", PASSWORD + "x") is None
    assert login(runtime, "nobody", PASSWORD) is None


@pytest.mark.parametrize(
    ("name", "password", "role", "key"),
    [
        ("bob", "short", "moderator", "console.accounts.password_too_short"),
        ("two words", PASSWORD, "moderator", "console.accounts.bad_name"),
        ("", PASSWORD, "moderator", "console.accounts.bad_name"),
        ("carol", PASSWORD, "superuser", "console.accounts.bad_role"),
        ("alice", PASSWORD, "moderator", "console.accounts.exists"),
    ],
)
def test_bad_accounts_are_refused(runtime: Runtime, name: str, password: str, role: str, key: str):
    add(runtime)
    with pytest.raises(AccountError) as refused, runtime.sessions.begin() as session:
        accounts.add_moderator(session, name, password, role=role)
    assert refused.value.key == key


def test_guesses_from_elsewhere_never_delay_the_owner(runtime: Runtime):
    """The old limit per account name let anyone keep the owner out for good."""
    add(runtime)
    now = now_utc()
    for i in range(30):
        attacker = f"203.0.113.{i % 3}"
        with contextlib.suppress(Throttled):
            assert login(runtime, "alice", "wrong password", client=attacker, now=now) is None
    assert login(runtime, "alice", PASSWORD, client="198.51.100.7", now=now) == "alice"


def test_a_name_and_client_pair_has_three_free_failures_then_a_doubling_delay(runtime: Runtime):
    add(runtime)
    start = now_utc()
    for _ in range(accounts.FREE_PER_PAIR):
        assert login(runtime, "alice", "wrong password", now=start) is None
    # The right password too: the delay is not a hint that the last guess was close.
    with pytest.raises(Throttled) as throttled:
        login(runtime, "alice", PASSWORD, now=start)
    assert throttled.value.retry_after == 2
    with pytest.raises(Throttled):
        login(runtime, "alice", PASSWORD, now=start + timedelta(seconds=1))
    # Once waited for, an attempt is checked; each failure doubles the next wait.
    at = start + timedelta(seconds=2)
    assert login(runtime, "alice", "wrong again", now=at) is None
    with pytest.raises(Throttled) as throttled:
        login(runtime, "alice", PASSWORD, now=at + timedelta(seconds=3))
    assert throttled.value.retry_after == 1  # 4 s after the last failure
    assert login(runtime, "alice", PASSWORD, now=at + timedelta(seconds=4)) == "alice"
    # Success forgets this pair's failures: three free ones again.
    later = at + timedelta(seconds=5)
    for _ in range(accounts.FREE_PER_PAIR):
        assert login(runtime, "alice", "typo", now=later) is None


def test_the_delay_is_capped_at_a_quarter_of_an_hour():
    assert accounts.delay_after(0, 3) == timedelta(0)
    assert accounts.delay_after(2, 3) == timedelta(0)
    assert [accounts.delay_after(n, 3).total_seconds() for n in range(3, 8)] == [2, 4, 8, 16, 32]
    assert accounts.delay_after(12, 3) == accounts.MAX_DELAY == timedelta(minutes=15)
    assert accounts.delay_after(10_000, 3) == accounts.MAX_DELAY


def test_one_client_spraying_many_names_is_slowed_and_others_are_not(runtime: Runtime):
    add(runtime)
    now = now_utc()
    for i in range(accounts.FREE_PER_CLIENT):
        assert login(runtime, f"user{i}", "guess", client="203.0.113.9", now=now) is None
    with pytest.raises(Throttled) as throttled:
        login(runtime, "alice", PASSWORD, client="203.0.113.9", now=now)
    assert throttled.value.retry_after == 2  # slowed down, not locked out
    assert login(runtime, "alice", PASSWORD, client="198.51.100.1", now=now) == "alice"
    later = now + timedelta(seconds=2)
    assert login(runtime, "alice", PASSWORD, client="203.0.113.9", now=later) == "alice"


def test_parallel_attempts_are_counted_before_their_passwords_are_checked(runtime: Runtime):
    """A burst must not pass the throttle all at once before the first failure is known."""
    add(runtime)
    now = now_utc()
    for _ in range(accounts.FREE_PER_PAIR):
        with runtime.sessions.begin() as session:
            accounts.begin_login(session, "alice", client="203.0.113.5", now=now)
    with pytest.raises(Throttled), runtime.sessions.begin() as session:
        accounts.begin_login(session, "alice", client="203.0.113.5", now=now)


def test_failures_and_clients_are_stored_hashed_and_forgotten(runtime: Runtime):
    add(runtime)
    old = now_utc() - accounts.FAILURE_MEMORY - timedelta(minutes=1)
    assert login(runtime, "alice", "wrong", client="203.0.113.77", now=old) is None
    with runtime.sessions() as session:
        keys = session.scalars(select(LoginFailure.key)).all()
    assert len(keys) == 2
    assert not [k for k in keys if "alice" in k or "203.0.113.77" in k]
    assert login(runtime, "alice", "wrong", client="203.0.113.78") is None
    with runtime.sessions() as session:
        assert len(session.scalars(select(LoginFailure.key)).all()) == 2  # the old ones went


def test_the_password_is_checked_with_no_transaction_open(runtime: Runtime, monkeypatch):
    """SQLite takes its write lock at BEGIN: an Argon2 check inside a transaction held up
    every other writer (webhooks included) for a quarter of a second per login."""
    add(runtime)
    with OpenTransactions(runtime.engine) as open_transactions:
        hasher = RecordingHasher(accounts._hasher, open_transactions.in_this_thread)
        monkeypatch.setattr(accounts, "_hasher", hasher)
        assert login(runtime, "alice", "wrong password") is None
        assert login(runtime, "alice", PASSWORD) == "alice"
        assert login(runtime, "nobody", PASSWORD) is None
    assert hasher.seen == [0, 0, 0]


def _open(runtime: Runtime, now: datetime) -> str:
    with runtime.sessions.begin() as session:
        moderator = session.scalars(select(Moderator)).one()
        return accounts.open_session(session, moderator, now)[0]


def _find(runtime: Runtime, token: str, now: datetime, **kwargs: Any) -> ModeratorSession | None:
    with runtime.sessions.begin() as session:
        return accounts.find_session(session, token, now, **kwargs)


def test_sessions_store_only_a_hash_and_end_on_logout_password_change_or_disable(
    runtime: Runtime,
):
    add(runtime)
    now = now_utc()
    with runtime.sessions.begin() as session:
        moderator = session.scalars(select(Moderator)).one()
        token, csrf = accounts.open_session(session, moderator, now)
        token2, _ = accounts.open_session(session, moderator, now)
    with runtime.sessions() as session:
        assert token not in {s.token_hash for s in session.scalars(select(ModeratorSession))}
        found = accounts.find_session(session, token, now)
        assert found is not None and found.moderator.name == "alice"
        assert accounts.csrf_matches(found.csrf_token, csrf)
        assert not accounts.csrf_matches(found.csrf_token, None)
        assert not accounts.csrf_matches(found.csrf_token, csrf + "x")
        lifetime = accounts.SESSION_LIFETIME
        assert accounts.find_session(session, token, now + lifetime, idle=lifetime) is None
        assert accounts.find_session(session, "forged", now) is None
    with runtime.sessions.begin() as session:
        accounts.close_session(session, token)
        assert accounts.find_session(session, token, now) is None
        assert accounts.find_session(session, token2, now) is not None
        accounts.set_password(session, session.scalars(select(Moderator)).one(), "another pass")
    assert _find(runtime, token2, now) is None


def test_deactivating_deletes_the_sessions_and_reactivating_revives_none(runtime: Runtime):
    add(runtime)
    now = now_utc()
    token = _open(runtime, now)
    with runtime.sessions.begin() as session:
        accounts.set_active(session, session.scalars(select(Moderator)).one(), False)
    with runtime.sessions.begin() as session:
        assert session.scalars(select(ModeratorSession)).all() == []
        accounts.set_active(session, session.scalars(select(Moderator)).one(), True)
    assert _find(runtime, token, now) is None


def test_a_session_ends_when_left_idle_and_is_touched_at_most_once_a_minute(runtime: Runtime):
    add(runtime)
    start = now_utc()
    token = _open(runtime, start)
    idle = timedelta(minutes=30)
    # Used within the idle time: alive, and the use is recorded (not more than once a minute).
    seen = _find(runtime, token, start + timedelta(seconds=30), idle=idle, touch=True)
    assert seen is not None and seen.last_seen_at == start
    seen = _find(runtime, token, start + timedelta(minutes=20), idle=idle, touch=True)
    assert seen is not None and seen.last_seen_at == start + timedelta(minutes=20)
    # 30 minutes after that use it is still alive; a second later it is not, for good.
    assert _find(runtime, token, start + timedelta(minutes=50), idle=idle) is not None
    late = start + timedelta(minutes=50, seconds=1)
    assert _find(runtime, token, late, idle=idle, touch=True) is None
    assert _find(runtime, token, late + timedelta(seconds=1), idle=idle) is None
    # Without touching, a use does not keep a session alive (the live board's checks).
    other = _open(runtime, start)
    with runtime.sessions() as session:
        assert accounts.live_sessions(
            session, {accounts.token_hash(other)}, start + timedelta(minutes=10), idle=idle
        ) == {accounts.token_hash(other)}
        assert (
            accounts.live_sessions(
                session, {accounts.token_hash(other)}, start + timedelta(minutes=31), idle=idle
            )
            == set()
        )


def test_api_tokens_have_a_scope_an_expiry_and_can_be_revoked(runtime: Runtime):
    now = now_utc()
    with runtime.sessions.begin() as session:
        token = accounts.create_token(session, "opendata", now=now)
        moderate = accounts.create_token(session, "tool", scope="moderate", now=now)
        admin_token = accounts.create_token(
            session, "ops", scope="admin", now=now, expires_in_days=7
        )
        with pytest.raises(AccountError):
            accounts.create_token(session, "opendata", now=now)
        for bad in ({"scope": "root"}, {"expires_in_days": 0}, {"expires_in_days": 5000}):
            with pytest.raises(AccountError):
                accounts.create_token(session, "other", now=now, **bad)
    with runtime.sessions.begin() as session:
        stored = {t.name: t for t in session.scalars(select(ApiToken))}
        assert token not in {t.token_hash for t in stored.values()}
        assert {name: t.scope for name, t in stored.items()} == {
            "opendata": "read",  # the least, unless asked
            "tool": "moderate",
            "ops": "admin",
        }
        assert stored["opendata"].expires_at == now + timedelta(days=365)
        assert stored["tool"].expires_at == now + timedelta(days=90)
        assert stored["ops"].expires_at == now + timedelta(days=7)
        actor = accounts.token_actor(session, token, now)
        assert actor is not None and actor.name == "api:opendata" and actor.scope == "read"
        assert actor.allows("read") and not actor.allows("moderate") and not actor.is_admin
        tool = accounts.token_actor(session, moderate, now)
        assert tool is not None and tool.allows("moderate") and not tool.allows("admin")
        admin = accounts.token_actor(session, admin_token, now)
        assert admin is not None and admin.is_admin and admin.allows("read")
        assert accounts.token_actor(session, admin_token, now + timedelta(days=7)) is None
        assert accounts.token_actor(session, token + "x", now) is None
        assert accounts.token_actor(session, "", now) is None
        assert accounts.revoke_token(session, "opendata", now)
        assert not accounts.revoke_token(session, "opendata", now)
    with runtime.sessions() as session:
        assert accounts.token_actor(session, token, now) is None


def _gateway(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        input=stdin,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_commands_create_accounts_and_tokens_that_work(tmp_path: Path):
    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_LOG_LEVEL": "WARNING"}
    made = _gateway(["moderators", "add", "alice", "--admin"], env, tmp_path, PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert PASSWORD not in made.stdout + made.stderr
    weak = _gateway(["moderators", "add", "bob"], env, tmp_path, "short\n")
    assert weak.returncode != 0 and "at least" in weak.stderr
    listed = _gateway(["moderators", "list"], env, tmp_path)
    assert "alice" in listed.stdout and "admin" in listed.stdout and "bob" not in listed.stdout
    created = _gateway(["tokens", "create", "opendata", "--scope", "read"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("agora_")
    assert "scope read" in created.stderr and "365 days" in created.stderr
    plain = _gateway(["tokens", "create", "plain"], env, tmp_path)
    assert "scope read" in plain.stderr  # the least a token may do, unless asked
    tool = _gateway(["tokens", "create", "tool", "--scope", "moderate"], env, tmp_path)
    assert tool.returncode == 0 and "scope moderate" in tool.stderr and "90 days" in tool.stderr
    ops = _gateway(["tokens", "create", "ops", "--admin", "--expires-in", "7"], env, tmp_path)
    assert ops.returncode == 0 and "scope admin" in ops.stderr and "7 days" in ops.stderr
    both = _gateway(["tokens", "create", "x", "--admin", "--scope", "read"], env, tmp_path)
    forever = _gateway(["tokens", "create", "y", "--expires-in", "0"], env, tmp_path)
    assert both.returncode != 0 and forever.returncode != 0
    revoked = _gateway(["tokens", "revoke", "opendata"], env, tmp_path)
    assert revoked.returncode == 0
    tokens = _gateway(["tokens", "list"], env, tmp_path)
    lines = {line.split()[0]: line.split() for line in tokens.stdout.splitlines()}
    assert lines["opendata"][1:3] == ["read", "revoked"]
    assert lines["tool"][1:3] == ["moderate", "active"]
    assert lines["ops"][1:4] == ["admin", "active", "expires"]
    in_a_week = (now_utc() + timedelta(days=7)).date().isoformat()
    assert lines["ops"][4] == in_a_week
    assert token not in tokens.stdout

    from gateway.settings import Settings

    runtime = Runtime.open(Settings(data_dir=str(tmp_path / "data")))
    try:
        assert login(runtime, "alice", PASSWORD) == "alice"
        with runtime.sessions.begin() as session:
            assert accounts.token_actor(session, token, now_utc()) is None  # revoked
        _open(runtime, now_utc())
        disabled = _gateway(["moderators", "disable", "alice"], env, tmp_path)
        assert disabled.returncode == 0, disabled.stderr
        with runtime.sessions() as session:
            assert session.scalars(select(ModeratorSession)).all() == []
    finally:
        runtime.close(release_redis=False)


def test_migration_0006_keeps_existing_tokens_rights_and_gives_them_an_expiry(tmp_path: Path):
    """Tokens made before scopes existed: moderator becomes moderate, admin stays admin, and
    both expire 90 days after the upgrade; going back revokes read tokens rather than making
    them moderators."""
    from alembic import command
    from sqlalchemy import text

    from gateway import db

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = db.make_engine(url)
    config = db.alembic_config(url)

    def migrate(step: Callable[..., None], revision: str) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config, revision)

    migrate(command.upgrade, "0005")
    with engine.begin() as connection:
        for name, role in (("dashboard", "moderator"), ("ops", "admin")):
            connection.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, role, created_at) "
                    "VALUES (:name, :hash, :role, '2025-01-01 00:00:00')"
                ),
                {"name": name, "hash": name * 4, "role": role},
            )
        connection.execute(
            text("INSERT INTO login_failures (key, at) VALUES ('name:x', '2025-01-01')")
        )
    before = now_utc()
    migrate(command.upgrade, "0006")
    with db.session_factory(engine)() as session:
        tokens = {t.name: t for t in session.scalars(select(ApiToken))}
        assert {name: t.scope for name, t in tokens.items()} == {
            "dashboard": "moderate",
            "ops": "admin",
        }
        for t in tokens.values():
            assert before + timedelta(days=89) < t.expires_at < now_utc() + timedelta(days=91)
        assert session.scalars(select(LoginFailure)).all() == []
        session.add(
            ApiToken(name="opendata", token_hash="o" * 64, scope="read", expires_at=now_utc())
        )
        session.commit()
    migrate(command.downgrade, "0005")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT name, role, revoked_at IS NOT NULL FROM api_tokens ORDER BY name")
        ).all()
    assert [tuple(r) for r in rows] == [
        ("dashboard", "moderator", 0),
        ("opendata", "moderator", 1),
        ("ops", "admin", 0),
    ]
    engine.dispose()
