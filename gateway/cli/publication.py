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


def _open_runtime(redis: bool = False) -> Runtime:
    """The gateway's database (and, for commands that take a lock, its Redis: the embedded
    server is started if `gateway serve` is not running)."""
    from gateway.cli.common import open_runtime

    return open_runtime(redis=redis)


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
    help="The Decidim version the file is for (0.24 and later): categories before 0.30, "
    "taxonomies from 0.30.",
)
@click.option(
    "--decidim-mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A YAML file giving Decidim's ids: scopes (per neighbourhood), categories or "
    "taxonomies (per theme or category). See docs/publishing-decidim-import.md.",
)
def export_command(
    slug: str, fmt: str, output: Path | None, decidim_version: str, decidim_mapping: Path | None
) -> None:
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
        _export_decidim(
            runtime,
            campaign,
            fmt.removeprefix("decidim-"),
            output,
            decidim_version,
            decidim_mapping,
        )
    finally:
        runtime.close(release_redis=False)


def _export_decidim(
    runtime: Runtime,
    campaign: Campaign,
    fmt: str,
    output: Path | None,
    version_text: str,
    mapping_path: Path | None,
) -> None:
    """Decidim's "Import proposals from a file": published contributions only, each row
    valid; the contributions that cannot be made valid are listed on stderr, not written."""
    from zoneinfo import ZoneInfo

    from gateway.publication import decidim_files
    from gateway.publication.records import public_records

    try:
        version = decidim_files.parse_version(version_text)
        mapping = decidim_files.load_ids(mapping_path) if mapping_path else None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    with runtime.sessions() as session:
        records = public_records(session, campaign, runtime.vault, include_rejected=False)
    built = decidim_files.proposals(records, ZoneInfo(runtime.settings.timezone), version, mapping)
    with _output(output) as stream:
        decidim_files.write(built.columns, built.rows, fmt, stream)
    for reference, decidim_id in built.already:
        click.echo(
            f"{reference}: already in Decidim (proposal {decidim_id}), not written", err=True
        )
    for refused in built.refused:
        click.echo(f"{refused.reference}: not written: {'; '.join(refused.reasons)}", err=True)
    click.echo(
        f"{len(built.rows)} proposals written{f' to {output}' if output else ''}; "
        f"{len(built.refused)} refused, {len(built.already)} already in Decidim",
        err=True,
    )


@click.group("decidim")
def decidim_group() -> None:
    """Hand contributions over to Decidim: import files' ids, direct publication (0.32+)."""


@decidim_group.command("answers")
@click.option("--campaign", "slug", required=True, help="The campaign's slug.")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(("csv", "json", "xlsx")),
    help="The file type Decidim's 'Import answers from a file' is given.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="The file to write (default: standard output).",
)
def decidim_answers_command(slug: str, fmt: str, output: Path | None) -> None:
    """The city's answers, for Decidim's "Import answers from a file".

    One row per answered, published contribution that has a Decidim proposal id (see
    `gateway decidim ids`): id, state (done is exported as accepted: Decidim has no such
    state), the answer in French and, when given, in English.
    """
    from gateway.publication import decidim_files
    from gateway.publication.records import public_records

    runtime = _open_runtime()
    try:
        campaign = _campaign(runtime, slug)
        with runtime.sessions() as session:
            records = public_records(session, campaign, runtime.vault, include_rejected=False)
        built = decidim_files.answers(records)
        with _output(output) as stream:
            decidim_files.write(built.columns, built.rows, fmt, stream)
        for reference in built.without_id:
            click.echo(
                f"{reference}: answered but has no Decidim id yet (gateway decidim ids FILE)",
                err=True,
            )
        click.echo(
            f"{len(built.rows)} answers written{f' to {output}' if output else ''}; "
            f"{len(built.without_id)} without a Decidim id",
            err=True,
        )
    finally:
        runtime.close(release_redis=False)


@decidim_group.command("ids")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def decidim_ids_command(file: Path) -> None:
    """Read Decidim's proposals export (CSV, JSON, XLSX, or the zip Decidim sends) and store
    each proposal's id on the contribution whose reference its body carries. Run it again
    after each import: what is already stored is left as it is."""
    from gateway.publication import decidim_files

    try:
        exported = decidim_files.read_export(file)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    runtime = _open_runtime()
    try:
        with runtime.sessions.begin() as session:
            result = decidim_files.store_ids(session, exported)
    finally:
        runtime.close(release_redis=False)
    for reference, stored, found in result.conflicting:
        click.echo(
            f"{reference}: keeps Decidim id {stored}; proposal {found} carries the same "
            "reference (imported twice?)",
            err=True,
        )
    click.echo(
        f"{len(result.matched)} matched, {len(result.unmatched)} unmatched, "
        f"{len(result.already)} already set, {len(result.conflicting)} conflicting"
    )


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

    runtime = _open_runtime(redis=True)  # one run per campaign: a lock in Redis
    try:
        report = decidim_api.publish_campaign(runtime, slug, dry_run=dry_run)
    except decidim_api.DecidimError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        runtime.close()  # stops the embedded Redis if this command started it
    for line in decidim_api.report_lines(report):
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@click.group("radio")
def radio_group() -> None:
    """Radio Agora: the consented voice contributions, for the studio."""


@click.command("report")
@click.option("--campaign", "slug", required=True, help="The campaign's slug.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="The HTML file to write (default: standard output).",
)
@click.option(
    "--language",
    type=click.Choice(["fr", "en"]),
    default="fr",
    show_default=True,
    help="The report's language.",
)
@click.option(
    "--selection",
    type=click.IntRange(0, 200),  # report.MAX_SELECTION, report.SELECTION: imported lazily
    default=12,
    show_default=True,
    help="How many published contributions to quote (the most recent of each neighbourhood, "
    "then the most recent).",
)
def report_command(slug: str, output: Path | None, language: str, selection: int) -> None:
    """Write a campaign's report: one self-contained HTML page to print or publish.

    Totals and charts (per channel, day, neighbourhood, category and answer state), the
    rejection reasons, a selection of published contributions and the city's answers; public
    (anonymised) texts only. See docs/publishing-report.md.
    """
    from zoneinfo import ZoneInfo

    from gateway.publication import report

    runtime = _open_runtime()
    try:
        campaign = _campaign(runtime, slug)
        with runtime.sessions() as session:
            built = report.build(
                session,
                campaign,
                runtime.vault,
                ZoneInfo(runtime.settings.timezone),
                language=language,
                selection=selection,
                organisation=runtime.settings.organisation,
            )
        page = report.render(built).encode("utf-8")
        with _output(output) as stream:
            stream.write(page)
        if output is not None:
            click.echo(f"report on {slug} written to {output}", err=True)
    finally:
        runtime.close(release_redis=False)


@radio_group.command("pack")
@click.option("--campaign", "slug", required=True, help="The campaign's slug.")
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder to write (created; it must be empty).",
)
def radio_pack_command(slug: str, output: Path) -> None:
    """Write the studio folder: the published voice messages whose callers allowed a
    broadcast, loudness-normalised MP3 in the order received (001-PARC-0042.mp3, …), and the
    cue sheet cues.csv (file, duration, reference, neighbourhood, transcript: the public,
    anonymised text)."""
    from gateway.publication import radio

    def skipped(record: object, exc: Exception) -> None:
        reference = getattr(record, "reference", "?")
        click.echo(f"{reference}: left out ({exc})", err=True)

    runtime = _open_runtime()
    try:
        campaign = _campaign(runtime, slug)
        try:
            entries = radio.pack(runtime, campaign, output, on_error=skipped)
        except radio.RadioError as exc:
            raise click.ClickException(str(exc)) from exc
        total = sum(e.episode.clip.duration for e in entries)
        click.echo(
            f"{len(entries)} clip(s), {total / 60:.1f} min, and cues.csv written to {output}",
            err=True,
        )
    finally:
        runtime.close(release_redis=False)


COMMANDS = (export_command, report_command, decidim_group, radio_group)
