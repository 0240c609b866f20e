"""`gateway privacy purge [--dry-run]`: what is past its retention period goes now
(gateway.retention, docs/privacy.md); the sweeper also runs it once a day."""

from __future__ import annotations

import json

import click


@click.group("privacy")
def privacy_group() -> None:
    """Residents' data over time: retention periods."""


@privacy_group.command("purge")
@click.option("--dry-run", is_flag=True, help="Print the counts; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def purge(dry_run: bool, as_json: bool) -> None:
    """Purge raw payloads, recordings, files, call records, replies and addresses past their
    retention periods (RAW_PAYLOAD_RETENTION_DAYS, RETENTION_DAYS_AFTER_CLOSE). Prints the
    counts per kind; what the public page and open data show is never touched."""
    from dataclasses import asdict

    from gateway import retention
    from gateway.cli.common import open_runtime
    from gateway.locks import Busy, hold

    runtime = open_runtime()
    try:
        try:
            with hold(runtime.redis, retention.LOCK_NAME, wait=30):
                report = retention.run(runtime, dry_run=dry_run)
        except Busy:
            raise click.ClickException("another purge is running; try again later") from None
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, **asdict(report)}))
        return
    prefix = "would purge" if dry_run else "purged"
    click.echo(f"{prefix}: {report.summary()}")
