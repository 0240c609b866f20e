"""The `gateway` command. Every command works whether or not `gateway serve` is running: they
share the data folder, the database and the (embedded) Redis server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import select

from gateway import campaigns as campaign_files
from gateway import db, files, plugins
from gateway.cli.common import command_logging, load_settings, open_runtime, service_logging
from gateway.queues import QUEUES
from gateway.runtime import Runtime
from gateway.settings import Settings, SettingsError

log = logging.getLogger("gateway")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agora-gateway", prog_name="gateway")
@click.option("--log-level", default=None, help="DEBUG, INFO or WARNING.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Show a one-off command's progress (INFO lines)."
)
@click.pass_context
def main(ctx: click.Context, log_level: str | None, verbose: bool) -> None:
    """Agora gateway: residents contribute to a city's consultations by SMS, voice, chat, email."""
    # Before anything is written: the database, recordings, mail, the embedded Redis's files
    # and the secret key are the gateway user's only (gateway.files), whatever the login
    # shell's umask; child processes (the embedded Redis, pre-forked web processes) inherit it.
    os.umask(files.PROCESS_UMASK)
    # Quiet by default; serve, worker and the channels' pollers raise it (service_logging).
    command_logging(ctx, log_level, verbose)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8080).")
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Web processes sharing the port (pre-fork); one core each at most.",
)
def serve(host: str | None, port: int | None, processes: int) -> None:
    """Run the web server: webhooks, health, console, API.

    With embedded defaults (no GATEWAY_REDIS_URL) it also starts the embedded Redis server and
    a worker in the same process, and stops both on exit.
    """
    import socket

    from gateway.web import load_campaigns

    settings = load_settings()
    service_logging(settings)  # first: the key's generation below is logged in LOG_FORMAT too
    try:
        settings = settings.ensure_secret_key()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    host = host or settings.host
    port = port or settings.port
    # Schema and campaigns once, before any web process starts: a clear message instead of a
    # traceback when the schema is behind, and no race between processes.
    runtime = open_runtime(redis=settings.embedded_redis)
    try:
        load_campaigns(runtime)
    finally:
        runtime.close(release_redis=False)
    banner = [f"Agora gateway on http://{host}:{port} (data in {settings.data_path})"]
    for line in [*banner, *_speech_models(settings)]:
        if settings.log_format == "json":  # a collector reads objects only
            log.info("%s", line)
        else:
            click.echo(line, err=True)
    if processes == 1:
        _serve_one(settings, host=host, port=port, sock=None, worker=True)
        return
    sock = socket.create_server((host, port), backlog=2048, reuse_port=False)
    sock.set_inheritable(True)
    children = []
    for index in range(processes):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                _serve_one(settings, host=host, port=port, sock=sock, worker=index == 0)
            except BaseException:
                log.exception("web process %d failed", index)
                code = 1
            os._exit(code)
        children.append(pid)
    sock.close()
    try:
        _wait_for_children(children)
    finally:
        if settings.embedded_redis:  # the last one out stops the embedded server
            from gateway.queues import EmbeddedRedis

            embedded = EmbeddedRedis(settings.data_path)
            embedded.owner = True
            embedded.release()


def _speech_models(settings: Settings) -> list[str]:
    """One line per language of the campaigns: the model that transcribes it, or what to run."""
    from sqlalchemy import create_engine

    from gateway.models import Campaign
    from transcription.models import install_hint, resolve

    engine = create_engine(settings.effective_database_url)
    try:
        with engine.connect() as connection:
            languages = sorted(set(connection.scalars(select(Campaign.language))))
    finally:
        engine.dispose()
    lines = []
    for language in languages or [settings.language]:
        model = resolve(settings.vosk_model, settings.data_path, language)
        if model is not None:
            lines.append(f"speech ({language}): {model.name}")
        else:
            lines.append(
                f"speech ({language}): no model, voice messages wait untranscribed; "
                f"run `{install_hint(language)}`"
            )
    return lines


def _serve_one(settings: Settings, *, host: str, port: int, sock: object, worker: bool) -> None:
    from aiohttp import web

    from gateway.web import create_app

    if not worker:
        # One in-process worker is enough; the other processes only take webhooks. The
        # channels' background services (a mail receiver, a mailbox reader) also run in the
        # first process only.
        settings = settings.with_overrides(embedded_worker=False)
    app = create_app(settings, services=worker)
    kwargs: dict[str, object] = {"sock": sock} if sock is not None else {"host": host, "port": port}
    web.run_app(
        app,
        print=None,
        access_log=None,
        shutdown_timeout=10,
        loop=_event_loop(),
        **kwargs,  # type: ignore[arg-type]
    )


def _wait_for_children(children: list[int]) -> None:
    """Forward SIGTERM/SIGINT to the web processes and wait for all of them."""
    import signal

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    for pid in children:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                failed |= os.waitstatus_to_exitcode(status) != 0
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    if failed:
        raise SystemExit(1)


def _event_loop() -> asyncio.AbstractEventLoop:
    # uvloop, when installed (Linux), roughly halves the event loop's own cost per webhook.
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@main.command()
@click.option("--burst", is_flag=True, help="Drain the queues, then exit.")
@click.option(
    "--queues",
    "queue_names",
    multiple=True,
    type=click.Choice(QUEUES),
    help="Queues to listen on, in priority order (repeatable; default: all).",
)
def worker(burst: bool, queue_names: tuple[str, ...]) -> None:
    """Run a worker: processes messages, sends replies, transcribes audio."""
    from workers.runner import run_worker

    service_logging()
    runtime = open_runtime()
    try:
        run_worker(runtime, queue_names or QUEUES, burst)
    finally:
        runtime.close()


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    settings = load_settings()
    engine = db.make_engine(settings.effective_database_url)
    db.upgrade(engine)
    engine.dispose()
    click.echo("database schema is current")


@main.group("campaigns")
def campaigns_group() -> None:
    """Consultation campaigns (YAML files)."""


@campaigns_group.command("load")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def campaigns_load(paths: tuple[Path, ...]) -> None:
    """Load campaign files or folders; a campaign is updated in place by slug."""
    timezone = load_settings().timezone
    try:
        specs = campaign_files.read_files(list(paths), timezone)
    except campaign_files.CampaignFileError as exc:
        raise click.ClickException(str(exc)) from exc
    runtime = open_runtime(redis=False)
    try:
        with runtime.sessions.begin() as session:
            results = campaign_files.upsert(session, specs, runtime)
    except campaign_files.CampaignFileError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        runtime.close()
    for slug, result in results:
        click.echo(f"{slug}: {result}")


@campaigns_group.command("export")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="A folder (one <slug>.yaml per campaign) or a .yaml file (all of them); "
    "default: print them.",
)
def campaigns_export(output: Path | None) -> None:
    """Write every campaign as campaign files that `campaigns load` reads back unchanged."""
    runtime = open_runtime(redis=False)
    timezone = runtime.settings.timezone
    try:
        with runtime.sessions() as session:
            if output is None:
                rows = campaign_files.all_campaigns(session)
                click.echo(campaign_files.dump_all(rows, timezone), nl=False)
                return
            written = campaign_files.export(session, output, timezone)
    finally:
        runtime.close()
    for path in written:
        click.echo(str(path))


@campaigns_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def campaigns_list(as_json: bool) -> None:
    """List campaigns."""
    from gateway.models import Campaign

    runtime = open_runtime(redis=False)
    try:
        with runtime.sessions() as session:
            rows = list(session.scalars(select(Campaign).order_by(Campaign.id)))
    finally:
        runtime.close()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "slug": c.slug,
                        "title": c.title,
                        "status": c.status,
                        "keywords": c.keywords,
                        "phone_numbers": c.phone_numbers,
                        "neighbourhoods": c.neighbourhoods,
                        "reference_prefix": c.reference_prefix,
                    }
                    for c in rows
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    for c in rows:
        click.echo(f"{c.slug:<16} {c.status:<7} {','.join(c.keywords):<16} {c.title}")


@main.group("contributions")
def contributions_group() -> None:
    """Contributions waiting for, or through, moderation."""


@contributions_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (the contract's fields).")
@click.option("--campaign", default=None, help="Only this campaign (slug).")
@click.option("--status", default=None, help="pending, published, rejected or spam.")
def contributions_list(as_json: bool, campaign: str | None, status: str | None) -> None:
    """List contributions, oldest first."""
    from gateway.exports import contribution_dict
    from gateway.models import Campaign, Contribution

    runtime = open_runtime(redis=False)
    try:
        with runtime.sessions() as session:
            query = select(Contribution).order_by(Contribution.received_at, Contribution.id)
            if campaign:
                query = query.join(Campaign).where(Campaign.slug == campaign)
            if status:
                query = query.where(Contribution.status == status)
            items = [contribution_dict(c) for c in session.scalars(query).unique()]
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    for item in items:
        click.echo(
            f"{item['reference']:<14} {item['status']:<9} {item['channel']:<6} {item['text'][:60]}"
        )


@main.group("models")
def models_group() -> None:
    """Speech models for transcription (Vosk)."""


@models_group.command("list")
def models_list() -> None:
    """List the speech models installed (and which serves each language), then those known
    that can be installed, with their size and quality."""
    from transcription.models import KNOWN_MODELS, choices, find_models, install_hint, resolve

    settings = load_settings()
    found = find_models(settings.data_path)
    chosen = choices(settings.data_path)
    if not found:
        click.echo(f"no speech model: `{install_hint('fr')}`, a URL or FILE.zip")
    serving = {
        language: resolve(settings.vosk_model, settings.data_path, language)
        for language in {m.language for m in found if m.language}
    }
    for model in found:
        mark = ""
        if model.language and (used := serving.get(model.language)) and used.name == model.name:
            mark = f"  ← {model.language}" + (" (chosen)" if chosen.get(model.language) else "")
        click.echo(
            f"{model.name:<32} {model.language or '?':<4} {model.source:<10} {model.path}{mark}"
        )
    names = {m.name for m in found}
    available = [(k, e) for k, e in KNOWN_MODELS.items() if e.archive not in names]
    if available:
        click.echo("\nknown, not installed (`gateway models install NAME`):")
        for key, entry in available:
            click.echo(f"{key:<10} {entry.archive:<28} {entry.language or '?':<4} {entry.about}")


@models_group.command("use")
@click.argument("name")
@click.option("--language", default=None, help="When the model's name says none.")
def models_use(name: str, language: str | None) -> None:
    """Make an installed model the one that transcribes its language's campaigns (VOSK_MODEL,
    when set, still wins for every language)."""
    from transcription import models

    settings = load_settings()
    try:
        info = models.use(settings.data_path, name, language)
    except models.ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{info.language}: {info.name}")
    if settings.vosk_model:
        click.echo("note: VOSK_MODEL is set and wins over this choice", err=True)


@models_group.command("install")
@click.argument("source", metavar="NAME|URL|FILE.zip", required=False)
@click.option(
    "--from",
    "archive",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Install from a model .zip already on this machine (offline); same as FILE.zip.",
)
@click.option(
    "--sha256",
    default=None,
    metavar="HEX",
    help="The archive's SHA-256: a download (or a zip) that does not match is refused.",
)
@click.option(
    "--allow-unpinned",
    is_flag=True,
    help="Download without a SHA-256 to check (a catalogue model not pinned yet, or a URL "
    "without --sha256): not verified.",
)
def models_install(
    source: str | None, archive: Path | None, sha256: str | None, allow_unpinned: bool
) -> None:
    """Install a speech model from a known NAME (e.g. fr-small: downloaded, checked against
    its pinned SHA-256), an http(s) URL of a .zip (checked against --sha256, required unless
    --allow-unpinned), or a model .zip on this machine (FILE.zip or --from FILE.zip)."""
    from transcription import models

    if archive is not None and source is not None:
        raise click.UsageError("give NAME, URL or FILE.zip, or --from FILE.zip, not both")
    if archive is None and source is None:
        raise click.UsageError("give a model NAME, a URL or FILE.zip")
    settings = load_settings()
    files.secure_data_dir(settings.data_path)
    try:
        if archive is None and source is not None and _is_local_zip(source):
            archive = Path(source)
        if archive is not None:
            info = models.install_from_zip(archive, settings.data_path, sha256=sha256)
        else:
            assert source is not None
            url = "://" in source
            label = models.display_url(source) if url else source
            # The bar starts with the first bytes: a download refused before it begins (no
            # digest, a bad one) prints nothing but its error.
            with contextlib.ExitStack() as stack:
                bars: list[click._termui_impl.ProgressBar[int]] = []

                def progress(done: int, total: int) -> None:
                    if not bars:
                        bar = click.progressbar(length=total, label=f"downloading {label}")
                        bars.append(stack.enter_context(bar))
                    bars[0].length = total or bars[0].length
                    bars[0].update(done - bars[0].pos)

                download = models.install_from_url if url else models.install
                info = download(
                    source,
                    settings.data_path,
                    sha256=sha256,
                    allow_unpinned=allow_unpinned,
                    progress=progress,
                )
    except (OSError, ValueError, models.ModelError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"installed {info.name} in {info.path}")


def _is_local_zip(source: str) -> bool:
    """A positional FILE.zip: a path ending in .zip that is not a URL (a catalogue name never
    ends so); a missing one is an error here rather than an "unknown model"."""
    if "://" in source or not source.lower().endswith(".zip"):
        return False
    if not Path(source).is_file():
        raise click.ClickException(f"{source}: no such file")
    return True


@main.command()
@click.option(
    "--pending",
    is_flag=True,
    required=True,
    help="Transcribe every voice contribution still waiting for its transcript.",
)
def transcribe(pending: bool) -> None:
    """Transcribe voice contributions here and now (e.g. once a model is installed)."""
    from gateway.models import Contribution
    from gateway.transcripts import transcribe_contribution

    runtime = open_runtime(redis=False)
    try:
        with runtime.sessions() as session:
            ids = list(
                session.scalars(
                    select(Contribution.id)
                    .where(Contribution.transcription_status == "pending")
                    .order_by(Contribution.id)
                )
            )
        results: dict[str, int] = {}
        with click.progressbar(ids, label="transcribing", show_pos=True) as bar:
            for contribution_id in bar:
                status = transcribe_contribution(runtime, contribution_id)
                results[status] = results.get(status, 0) + 1
    finally:
        runtime.close()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(results.items()))
    click.echo(f"{len(ids)} pending contribution(s): {summary or 'nothing to do'}")


@main.group("simulate")
def simulate_group() -> None:
    """Send a message as a resident would, through the same ingest path as a webhook."""


@simulate_group.command("sms")
@click.option("--from", "sender", required=True, help="The resident's number, e.g. +33612345678.")
@click.option("--to", "recipient", default=None, help="The city's number the SMS is sent to.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for replies.")
@click.argument("text")
def simulate_sms(sender: str, recipient: str | None, timeout: float, text: str) -> None:
    """Simulate an incoming SMS and print the gateway's replies."""
    from gateway import ingest
    from gateway.messages import IncomingMessage
    from gateway.models import InboundMessage, OutboundMessage
    from gateway.web import load_campaigns

    runtime = open_runtime()
    try:
        load_campaigns(runtime)
        default_from = plugins.hook("sms", "default_from")
        recipient = recipient or (default_from(runtime.settings) if default_from else None)
        # Made here, not by a provider: no provider's payload shape, and its replies go through
        # the channel's first configured plugin (the console outbox when none is).
        sid = "simulated-" + uuid.uuid4().hex
        message = IncomingMessage(
            channel="sms",
            provider_message_id=sid,
            sender=sender,
            recipient=recipient,
            text=text,
            received_at=datetime.now(UTC),
            raw={"simulated": True, "from": sender, "to": recipient, "text": text},
        )
        (stored,) = ingest.store(runtime, [message])
        if stored.message_id is None:
            raise click.ClickException("the message was not stored")
        if not _worker_running(runtime):
            _drain(runtime)
        deadline = time.monotonic() + timeout
        replies: list[OutboundMessage] = []
        while time.monotonic() < deadline:
            with runtime.sessions() as session:
                state = session.get(InboundMessage, stored.message_id)
                replies = list(
                    session.scalars(
                        select(OutboundMessage)
                        .where(OutboundMessage.inbound_message_id == stored.message_id)
                        .order_by(OutboundMessage.id)
                    )
                )
            done = state is not None and state.state != "received"
            if done and all(r.status in ("sent", "failed") for r in replies):
                break
            time.sleep(0.1)
        else:
            raise click.ClickException("no answer in time: is a worker running?")
        if not replies:
            click.echo("(no reply)")
        for reply in replies:
            suffix = "" if reply.status == "sent" else f"  [{reply.status}: {reply.error}]"
            click.echo(f"{reply.text}{suffix}")
    finally:
        runtime.close()


def _worker_running(runtime: Runtime) -> bool:
    from rq import Worker

    return any(
        set(w.queue_names()) & {"inbound", "outbound"} for w in Worker.all(connection=runtime.redis)
    )


def _drain(runtime: Runtime) -> None:
    """No worker is running: process the queues here, the way a worker would."""
    from workers import context
    from workers.runner import ThreadWorker

    context.set_runtime(runtime)
    worker = ThreadWorker(
        [runtime.queue("inbound"), runtime.queue("outbound")], connection=runtime.redis
    )
    for _ in range(3):  # inbound jobs enqueue outbound jobs
        worker.work(burst=True, logging_level="WARNING")


@main.command()
@click.option("--offline", is_flag=True, help="Do not try providers' credentials nor PUBLIC_URL.")
def doctor(offline: bool) -> None:
    """Check this installation and say what to fix: settings, key, database, Redis, campaigns,
    speech models, PUBLIC_URL, providers' credentials. Changes nothing."""
    from gateway import doctor as checks

    marks = {"ok": "ok     ", "warning": "WARNING", "problem": "PROBLEM"}
    found = checks.run(load_settings(), online=not offline)
    for check in found:
        click.echo(f"{marks[check.level]} {check.name}: {check.detail}")
        if check.fix:
            click.echo(f"        → {check.fix}")
    problems = sum(check.level == "problem" for check in found)
    warnings = sum(check.level == "warning" for check in found)
    click.echo(f"{problems} problem(s), {warnings} warning(s)")
    if problems:
        raise SystemExit(1)
