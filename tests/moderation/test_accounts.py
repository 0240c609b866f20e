"""Moderator accounts, sessions, throttling and API tokens, on SQLite and PostgreSQL; and the
`gateway moderators` / `gateway tokens` commands as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.models import ApiToken, Moderator, ModeratorSession
from gateway.moderation import accounts
from gateway.moderation.accounts import AccountError, Throttled
from gateway.pipeline import now_utc
from gateway.runtime import Runtime

PASSWORD = "correct horse battery"


def add(runtime: Runtime, name: str = "alice", role: str = "moderator") -> None:
    with runtime.sessions.begin() as session:
        accounts.add_moderator(session, name, PASSWORD, role=role)


def login(runtime: Runtime, name: str, password: str, client: str = "10.0.0.1"):
    with runtime.sessions.begin() as session:
        found = accounts.authenticate(session, name, password, client=client, now=now_utc())
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


def test_five_failures_lock_the_account_for_the_window_even_with_the_right_password(
    runtime: Runtime,
):
    add(runtime)
    for _ in range(accounts.NAME_LIMIT):
        assert login(runtime, "alice", "wrong password") is None
    with pytest.raises(Throttled) as throttled:
        login(runtime, "alice", PASSWORD)
    assert 0 < throttled.value.retry_after <= accounts.WINDOW.total_seconds() + 1
    # After the window, the right password works again.
    with runtime.sessions.begin() as session:
        later = now_utc() + accounts.WINDOW + timedelta(seconds=1)
        assert accounts.authenticate(session, "alice", PASSWORD, client="x", now=later)


def test_one_client_spraying_many_accounts_is_throttled(runtime: Runtime):
    add(runtime)
    for i in range(accounts.CLIENT_LIMIT):
        assert login(runtime, f"user{i}", "guess", client="203.0.113.9") is None
    with pytest.raises(Throttled):
        login(runtime, "alice", PASSWORD, client="203.0.113.9")
    assert login(runtime, "alice", PASSWORD, client="198.51.100.1") == "alice"


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
        assert accounts.find_session(session, token, now + accounts.SESSION_LIFETIME) is None
        assert accounts.find_session(session, "forged", now) is None
    with runtime.sessions.begin() as session:
        accounts.close_session(session, token)
        assert accounts.find_session(session, token, now) is None
        assert accounts.find_session(session, token2, now) is not None
        moderator = session.scalars(select(Moderator)).one()
        moderator.active = False
    with runtime.sessions() as session:
        assert accounts.find_session(session, token2, now) is None
    with runtime.sessions.begin() as session:
        moderator = session.scalars(select(Moderator)).one()
        moderator.active = True
        accounts.set_password(session, moderator, "another long password")
    with runtime.sessions() as session:
        assert accounts.find_session(session, token2, now) is None


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(runtime: Runtime):
    now = now_utc()
    with runtime.sessions.begin() as session:
        token = accounts.create_token(session, "opendata")
        admin_token = accounts.create_token(session, "ops", role="admin")
        with pytest.raises(AccountError):
            accounts.create_token(session, "opendata")
    with runtime.sessions.begin() as session:
        assert token not in {t.token_hash for t in session.scalars(select(ApiToken))}
        actor = accounts.token_actor(session, token, now)
        assert actor is not None and actor.name == "api:opendata" and not actor.is_admin
        admin = accounts.token_actor(session, admin_token, now)
        assert admin is not None and admin.is_admin
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
    created = _gateway(["tokens", "create", "opendata"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("agora_")
    revoked = _gateway(["tokens", "revoke", "opendata"], env, tmp_path)
    assert revoked.returncode == 0
    tokens = _gateway(["tokens", "list"], env, tmp_path)
    assert "opendata" in tokens.stdout and "revoked" in tokens.stdout and token not in tokens.stdout

    from gateway.settings import Settings

    runtime = Runtime.open(Settings(data_dir=str(tmp_path / "data")))
    try:
        with runtime.sessions.begin() as session:
            assert accounts.authenticate(session, "alice", PASSWORD, client="c", now=now_utc())
            assert accounts.token_actor(session, token, now_utc()) is None  # revoked
    finally:
        runtime.close(release_redis=False)
