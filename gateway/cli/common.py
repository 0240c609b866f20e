"""What every `gateway` command module shares: the settings and the runtime, opened with one
clear line instead of a traceback when something is wrong. Channel plugins' commands use
these too (gateway.plugins)."""

from __future__ import annotations

import click

from gateway import db
from gateway.runtime import Runtime
from gateway.settings import Settings, SettingsError


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
