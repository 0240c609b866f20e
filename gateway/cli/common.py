"""What every `gateway` command module shares: the settings and the runtime, opened with one
clear line instead of a traceback when something is wrong. Channel plugins' commands use
these too (gateway.plugins)."""

from __future__ import annotations

import click

from gateway import db, logs
from gateway.runtime import Runtime
from gateway.settings import Settings, SettingsError

# The level asked for on the command line (--log-level, or INFO for --verbose), if any.
_CHOSEN_LEVEL = "gateway.log_level"


def command_logging(ctx: click.Context, level: str | None, verbose: bool) -> None:
    """A one-off command is quiet when it succeeds: warnings and errors only, a line each,
    unless ``--verbose`` (its progress, INFO) or ``--log-level`` asks for more."""
    chosen = level or ("INFO" if verbose else None)
    ctx.meta[_CHOSEN_LEVEL] = chosen
    logs.configure(chosen or "WARNING", fmt=logs.COMMAND_FORMAT)


def service_logging(settings: Settings | None = None) -> None:
    """A long-running command (serve, worker, a channel's poller or receiver) logs what it does,
    at LOG_LEVEL (INFO by default) unless the command line chose a level, in LOG_FORMAT (text
    lines, or JSON objects for a log collector). A one-off command keeps its short text lines
    whatever LOG_FORMAT says: it speaks to the person who typed it."""
    ctx = click.get_current_context(silent=True)
    chosen = ctx.meta.get(_CHOSEN_LEVEL) if ctx is not None else None
    settings = settings or load_settings()
    logs.configure(chosen or settings.log_level, json_lines=settings.log_format == "json")


def load_settings() -> Settings:
    try:
        return Settings.load()
    except SettingsError as exc:  # one clear line, not a traceback
        raise click.ClickException(str(exc)) from exc


def open_runtime(redis: bool = True) -> Runtime:
    try:
        runtime = Runtime.open(load_settings())
    except (db.SchemaNotCurrent, SettingsError) as exc:
        raise click.ClickException(str(exc)) from exc
    if redis and runtime.embedded:
        runtime.embedded.ensure_running()
    return runtime
