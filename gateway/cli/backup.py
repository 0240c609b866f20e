"""`gateway backup --output FILE` and `gateway restore FILE` (gateway.backup)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("backup")
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The archive to write (.tar.gz), outside the data folder.",
)
@click.option(
    "--without-key",
    is_flag=True,
    help="Leave the key file out (keep it elsewhere: without it no address decrypts).",
)
def backup_command(output: Path, without_key: bool) -> None:
    """Back up the database (SQLite), the data folder's files and the key, while the gateway
    runs. On PostgreSQL, back the database up with pg_dump beside it (docs/operations.md)."""
    from gateway import backup
    from gateway.cli.common import load_settings

    settings = load_settings()
    try:
        summary = backup.backup(settings, output, with_key=not without_key)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{output}: database {'included' if summary.database == 'sqlite' else 'NOT included'}"
        f", {summary.files} file(s), {summary.bytes} byte(s), "
        f"key {'included' if summary.key else 'left out'}"
    )
    if summary.database != "sqlite":
        click.echo("PostgreSQL: run pg_dump as well (docs/operations.md, 'Backups')", err=True)


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(archive: Path) -> None:
    """Restore a backup onto an empty data folder (GATEWAY_DATA_DIR) and its key file."""
    from gateway import backup
    from gateway.cli.common import load_settings

    settings = load_settings()
    try:
        summary = backup.restore(settings, archive)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"restored into {settings.data_path}: {summary.files} file(s), database "
        f"{'restored' if summary.database == 'sqlite' else 'not in the archive'}, "
        f"key {'in place' if summary.key else 'not in the archive'}"
    )
    if summary.database != "sqlite":
        click.echo("PostgreSQL: restore the database with pg_restore first", err=True)
