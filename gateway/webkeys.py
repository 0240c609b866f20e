"""Typed keys for what the web application holds (aiohttp AppKeys)."""

from __future__ import annotations

from aiohttp import web

from gateway.ingest import BatchingIngest
from gateway.runtime import Runtime
from gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
INGEST = web.AppKey("ingest", BatchingIngest)
SERVICES = web.AppKey("services", bool)  # run the plugins' background services here
