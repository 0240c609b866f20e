"""`gateway moderators …` and `gateway tokens …`: console accounts and API tokens.

Passwords are asked at a prompt (typed twice, not echoed) or, when stdin is not a terminal,
read from its first line, so that provisioning scripts never put a password in argv, where
any local user could read it in the process list.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.moderation import accounts

T = TypeVar("T")


def _in_session(work: Callable[[Session], T]) -> T:
    from gateway.cli.common import open_runtime

    runtime = open_runtime(redis=False)
    try:
        with runtime.sessions.begin() as session:
            return work(session)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        runtime.close()


def _read_password() -> str:
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise click.ClickException("no password on stdin")
    return line


@click.group("moderators")
def moderators_group() -> None:
    """Accounts of the moderation console (/moderation/)."""


@moderators_group.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Also manages campaigns and accounts.")
@click.option(
    "--role",
    type=click.Choice(accounts.ROLES),
    default=None,
    help="moderator (the default), admin (the same as --admin), or answerer: gives the "
    "city's answers to published contributions and sees nothing else.",
)
@click.option(
    "--language",
    default="fr",
    show_default=True,
    type=click.Choice(["fr", "en"]),
    help="The console's language for this account.",
)
def moderators_add(name: str, admin: bool, role: str | None, language: str) -> None:
    """Create an account; the password comes from a prompt or from stdin."""
    if admin and role not in (None, "admin"):
        raise click.UsageError("--admin is --role admin: give one or the other")
    role = "admin" if admin else (role or "moderator")
    password = _read_password()
    _in_session(lambda s: accounts.add_moderator(s, name, password, role=role, language=language))
    click.echo(f"moderator {name} created ({role})")


@moderators_group.command("list")
def moderators_list() -> None:
    """List accounts: name, role, active, last login."""
    from gateway.models import Moderator

    def rows(session: Session) -> list[tuple[str, str, bool, str]]:
        return [
            (
                m.name,
                m.role,
                m.active,
                m.last_login_at.isoformat(timespec="minutes") if m.last_login_at else "-",
            )
            for m in session.scalars(select(Moderator).order_by(Moderator.name))
        ]

    for name, role, active, last in _in_session(rows):
        click.echo(f"{name:<24} {role:<10} {'active' if active else 'disabled':<9} {last}")


@moderators_group.command("password")
@click.argument("name")
def moderators_password(name: str) -> None:
    """Set a new password (ends the account's open sessions)."""
    from gateway.models import Moderator

    password = _read_password()

    def work(session: Session) -> None:
        moderator = session.scalar(select(Moderator).where(Moderator.name == name))
        if moderator is None:
            raise click.ClickException(f"no moderator named {name!r}")
        accounts.set_password(session, moderator, password)

    _in_session(work)
    click.echo(f"password of {name} changed")


@moderators_group.command("disable")
@click.argument("name")
def moderators_disable(name: str) -> None:
    """Disable an account (its sessions are deleted: open pages and live boards stop)."""
    from gateway.models import Moderator

    def work(session: Session) -> None:
        moderator = session.scalar(select(Moderator).where(Moderator.name == name))
        if moderator is None:
            raise click.ClickException(f"no moderator named {name!r}")
        accounts.set_active(session, moderator, False)

    _in_session(work)
    click.echo(f"moderator {name} disabled")


@click.group("tokens")
def tokens_group() -> None:
    """Bearer tokens for the JSON API (/api/v1/)."""


@tokens_group.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(accounts.TOKEN_SCOPES),
    default=None,
    help="read: published contributions and their public text only (open data; the "
    "default); answer: also the city's answers to published contributions; moderate: the "
    "console's moderator rights; admin: also campaign status; collect: entering "
    "contributions collected by agents, nothing else.",
)
@click.option("--admin", is_flag=True, help="The same as --scope admin.")
@click.option(
    "--expires-in",
    "days",
    type=click.IntRange(1, accounts.MAX_TOKEN_DAYS),
    default=None,
    metavar="DAYS",
    help=f"Days until the token stops working (default: "
    f"{accounts.DEFAULT_TOKEN_DAYS[accounts.READ]} for read, "
    f"{accounts.DEFAULT_TOKEN_DAYS[accounts.MODERATE]} for moderate and admin).",
)
def tokens_create(name: str, scope: str | None, admin: bool, days: int | None) -> None:
    """Create a token and print it once (only its hash is kept)."""
    from gateway.clock import now_utc

    if admin and scope not in (None, accounts.ADMIN):
        raise click.UsageError("--admin is --scope admin: give one or the other")
    # The least a token may do unless asked: a script given a read token and needing more is
    # refused with 403 and says so; a moderate token given to an open-data script is a leak.
    chosen = accounts.ADMIN if admin else (scope or accounts.READ)
    token = _in_session(
        lambda s: accounts.create_token(s, name, scope=chosen, now=now_utc(), expires_in_days=days)
    )
    click.echo(token)
    click.echo(
        f"token {name} created (scope {chosen}, expires in "
        f"{days or accounts.DEFAULT_TOKEN_DAYS[chosen]} days); it is shown only now",
        err=True,
    )


@tokens_group.command("list")
def tokens_list() -> None:
    """List tokens: name, scope, state, expiry, last used."""
    from gateway.clock import now_utc
    from gateway.models import ApiToken

    now = now_utc()

    def rows(session: Session) -> list[str]:
        out = []
        for t in session.scalars(select(ApiToken).order_by(ApiToken.name)):
            used = t.last_used_at.isoformat(timespec="minutes") if t.last_used_at else "-"
            if t.revoked_at:
                state = "revoked"
            elif t.expires_at <= now:
                state = "expired"
            else:
                state = "active"
            expires = t.expires_at.date().isoformat()
            out.append(f"{t.name:<24} {t.scope:<9} {state:<8} expires {expires}  last used {used}")
        return out

    for line in _in_session(rows):
        click.echo(line)


@tokens_group.command("revoke")
@click.argument("name")
def tokens_revoke(name: str) -> None:
    """Revoke a token at once."""
    from gateway.clock import now_utc

    if not _in_session(lambda s: accounts.revoke_token(s, name, now_utc())):
        raise click.ClickException(f"no active token named {name!r}")
    click.echo(f"token {name} revoked")
