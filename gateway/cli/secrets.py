"""`gateway secrets`: where the secret key lives, and binding old ciphertexts to their rows."""

from __future__ import annotations

import os
from pathlib import Path

import click

from gateway import files
from gateway.settings import SettingsError, check_secret_key, is_inside


@click.group("secrets")
def secrets_group() -> None:
    """The secret key that protects residents' addresses, and what it encrypts."""


@secrets_group.command("check")
def secrets_check() -> None:
    """Say where the secret key comes from and whether it is strong enough (never shows it)."""
    from gateway.cli.common import load_settings

    settings = load_settings()
    try:
        checked = settings.ensure_secret_key()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.secret_key:
        source = "GATEWAY_SECRET_KEY"
    elif settings.secret_key_path.exists():
        source = str(settings.secret_key_path)
    else:
        source = str(settings.legacy_secret_key_path)
    click.echo(f"secret key from {source}: strong enough ({len(checked.secret_key)} characters)")


@secrets_group.command("move-key")
@click.option(
    "--to",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to put it (default: GATEWAY_SECRET_KEY_FILE, else secrets/<data>.key beside "
    "DATA_DIR).",
)
def secrets_move_key(target: Path | None) -> None:
    """Move the key an older version generated in DATA_DIR/secret_key out of the data folder,
    so that backups of the data no longer carry it. Stop the gateway first."""
    from gateway.cli.common import load_settings

    settings = load_settings()
    legacy = settings.legacy_secret_key_path
    target = (target or settings.secret_key_path).expanduser().resolve()
    if not legacy.exists():
        raise click.ClickException(f"no key to move: {legacy} does not exist")
    if is_inside(target, settings.data_path):
        raise click.ClickException(f"{target} is inside DATA_DIR: choose a place outside it")
    key = legacy.read_text(encoding="utf-8").strip()
    try:
        check_secret_key(key, str(legacy))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if target.exists():
        if target.read_text(encoding="utf-8").strip() != key:
            raise click.ClickException(
                f"{target} already holds another key: keep the one the data was encrypted with"
            )
    else:
        files.private_dir(target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, files.PRIVATE_FILE)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    # The old copy goes only once the new one reads back the same.
    if target.read_text(encoding="utf-8").strip() != key:  # pragma: no cover - a failing disk
        raise click.ClickException(f"{target} does not read back: {legacy} kept")
    legacy.unlink()
    click.echo(f"secret key moved to {target}")
    if target != settings.secret_key_path:
        click.echo(f"set GATEWAY_SECRET_KEY_FILE={target} for every gateway process")
    click.echo("back it up apart from the data: without it, residents' addresses are lost")


@secrets_group.command("rewrap")
@click.option("--dry-run", is_flag=True, help="Only count the values to bind.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100_000))
def secrets_rewrap(dry_run: bool, batch: int) -> None:
    """Bind values encrypted by earlier versions to their rows (idempotent, batched, safe
    while the gateway runs). Automatic on SQLite; run it once after upgrading on PostgreSQL."""
    from gateway.cli.common import open_runtime
    from gateway.rewrap import rewrap

    runtime = open_runtime(redis=False)
    try:
        report = rewrap(runtime.engine, runtime.vault, batch=batch, dry_run=dry_run)
    finally:
        runtime.close()
    verb = "to bind" if dry_run else "bound"
    for name, count in report.rewrapped.items():
        unreadable = report.unreadable[name]
        extra = f", {unreadable} unreadable with this key" if unreadable else ""
        click.echo(f"{name}: {count} {verb}{extra}")
    click.echo(f"{report.total} value(s) {verb}")
