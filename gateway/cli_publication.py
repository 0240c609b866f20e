"""`gateway export`, `gateway decidim …`, `gateway radio …`, `gateway report`: what leaves the
gateway (gateway.publication). Nothing personal is ever written: every output reads
contributions through gateway.publication.records."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import click

from gateway.models import Campaign
from gateway.runtime import Runtime

OPEN_DATA_FORMATS = ("csv", "json")
DECIDIM_FORMATS = ("decidim-csv", "decidim-json", "decidim-xlsx")


def _open_runtime() -> Runtime:
    from gateway.cli import _open

    return _open(redis=False)


def _campaign(runtime: Runtime, slug: str) -> Campaign:
    from sqlalchemy import select

    with runtime.sessions() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if campaign is None:
            raise click.ClickException(f"no campaign {slug!r} (gateway campaigns list)")
        session.expunge(campaign)
        return campaign


@contextmanager
def _output(path: Path | None, binary: bool = False) -> Iterator[IO[bytes]]:
    """The file named by --output (written whole, then moved into place: an interrupted
    export never leaves half a file under the final name), or standard output."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as stream:
            yield stream
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


@click.command("export")
@click.option("--campaign", "slug", required=True, help="The campaign's slug.")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(OPEN_DATA_FORMATS + DECIDIM_FORMATS),
    help="csv or json: open data; decidim-*: Decidim's 'Import proposals from a file'.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="The file to write (default: standard output).",
)
@click.option(
    "--decidim-version",
    default="0.28",
    show_default=True,
    help="The Decidim version the file is for (0.24 and later): categories before 0.28, "
    "taxonomies from 0.30.",
)
def export_command(slug: str, fmt: str, output: Path | None, decidim_version: str) -> None:
    """Write a campaign's public contributions: open data (csv, json) or a Decidim import file.

    Published contributions, and rejected ones with their reason (their text as the campaign's
    policy says); public (anonymised) text only, a pseudonymous contributor id, never an
    address, chat id, phone number or original text.
    """
    from gateway.publication import opendata

    runtime = _open_runtime()
    try:
        campaign = _campaign(runtime, slug)
        if fmt in OPEN_DATA_FORMATS:
            with runtime.sessions() as session:
                records = opendata.records_for(session, runtime, campaign)
            show = output is not None and sys.stderr.isatty()
            with (
                _output(output) as stream,
                click.progressbar(
                    length=len(records),
                    label=f"{slug}: {len(records)} contributions",
                    file=sys.stderr if show else io.StringIO(),
                ) as bar,
            ):
                opendata.write(
                    records, fmt, stream, runtime.settings, campaign=campaign, progress=bar.update
                )
            if output is not None:
                click.echo(f"{len(records)} contributions written to {output}", err=True)
            return
        raise click.ClickException(f"format {fmt} is not available yet")
    finally:
        runtime.close(release_redis=False)


@click.group("decidim")
def decidim_group() -> None:
    """Hand contributions over to Decidim: import files' ids, direct publication (0.32+)."""


@decidim_group.command("publish")
@click.option("--campaign", "slug", required=True, help="The campaign's slug.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Sign in and check the version, then print what would be sent; create nothing.",
)
def decidim_publish_command(slug: str, dry_run: bool) -> None:
    """Publish a campaign's published contributions to Decidim 0.32+ as proposals, each once.

    Needs GATEWAY_DECIDIM_URL, GATEWAY_DECIDIM_API_KEY, GATEWAY_DECIDIM_API_SECRET and the
    campaign file's `decidim: {component: ID}` (docs/publishing-decidim-api.md). Exits with 1
    when a contribution failed or the run stopped.
    """
    from gateway.publication import decidim_api

    runtime = _open_runtime()
    try:
        report = decidim_api.publish_campaign(runtime, slug, dry_run=dry_run)
    except decidim_api.DecidimError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        runtime.close()
    for line in decidim_api.report_lines(report):
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@click.group("radio")
def radio_group() -> None:
    """Radio Agora: the consented voice contributions, for the studio."""


def register(main: click.Group) -> None:
    main.add_command(export_command)
    main.add_command(decidim_group)
    main.add_command(radio_group)
