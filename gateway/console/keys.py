"""Typed keys for what the console keeps on the app and on each request."""

from __future__ import annotations

import jinja2
from aiohttp import web

from gateway.console.viewer import Viewer

JINJA = web.AppKey("console_jinja", jinja2.Environment)
VIEWER = web.RequestKey("console_viewer", Viewer)
