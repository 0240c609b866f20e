"""``gateway doctor``: what is wrong with this installation, and how to fix it.

Each check says ``ok``, ``warning`` (works, but not as a city would want) or ``problem`` (a
part of the gateway will not work), with one line on what to do. The checks read; they never
change anything (no migration, no key generated, no model installed). Providers' credentials
are tried with a harmless call (each plugin's ``doctor`` hook: an account or bot look-up)
unless ``--offline``.
"""

from __future__ import annotations

import os
import stat
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway import plugins
from gateway.settings import Settings

Level = Literal["ok", "warning", "problem"]


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def warning(name: str, detail: str, fix: str) -> Check:
    return Check(name, "warning", detail, fix)


def problem(name: str, detail: str, fix: str) -> Check:
    return Check(name, "problem", detail, fix)


def run(settings: Settings, *, online: bool = True) -> list[Check]:
    checks: list[Check] = []
    for step in (_key, _database, _redis, _campaigns_and_models, _public_url):
        checks.extend(step(settings, online))
    for plugin in plugins.installed():
        if not plugin.configured(settings):
            continue
        if plugin.doctor is None or not online:
            checks.append(ok(plugin.name, "configured (credentials not tried)"))
            continue
        try:
            checks.extend(plugin.doctor(settings))
        except Exception as exc:  # a plugin's check must not hide the others
            checks.append(
                problem(plugin.name, f"check failed: {type(exc).__name__}", "see the logs")
            )
    if not any(p.configured(settings) for p in plugins.installed()):
        checks.append(
            warning(
                "channels",
                "no provider configured: residents cannot reach the gateway yet",
                "set a channel's settings (README, 'Settings'; each channel's doc.md)",
            )
        )
    return checks


def _key(settings: Settings, online: bool) -> Iterator[Check]:
    if settings.secret_key:
        yield ok("key", "SECRET_KEY given in the environment")
        return
    path = settings.secret_key_path
    if not path.exists():
        yield warning(
            "key",
            f"no key file at {path} yet",
            "it is generated at the first start; back it up apart from DATA_DIR",
        )
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        yield problem("key", f"{path} is readable by others (mode {mode:o})", f"chmod 600 {path}")
    elif not os.access(path, os.R_OK):
        yield problem("key", f"{path} is not readable by this user", "run as the gateway's user")
    else:
        yield ok("key", f"{path} (owner only)")


def _database(settings: Settings, online: bool) -> Iterator[Check]:
    from sqlalchemy.exc import SQLAlchemyError

    from gateway import db

    url = settings.effective_database_url
    kind = url.split(":", 1)[0]
    if kind == "sqlite":
        path = Path(url.split(":///", 1)[1]) if ":///" in url else None
        if path is not None and not path.exists():  # connecting would create it
            yield problem("database", f"no database at {path} yet", "run `gateway db upgrade`")
            return
    try:
        engine = db.make_engine(url)
    except Exception as exc:
        yield problem("database", f"{kind}: {type(exc).__name__}", "check DATABASE_URL")
        return
    try:
        current = db.is_current(engine)
    except SQLAlchemyError as exc:
        yield problem(
            "database",
            f"{kind}: unreachable ({type(getattr(exc, 'orig', None) or exc).__name__})",
            "start the database server, or check DATABASE_URL",
        )
        return
    finally:
        engine.dispose()
    if current:
        yield ok("database", f"{kind}, schema current")
    else:
        yield problem("database", f"{kind}: schema behind the code", "run `gateway db upgrade`")


def _redis(settings: Settings, online: bool) -> Iterator[Check]:
    if settings.embedded_redis:
        yield ok("redis", "embedded (started by gateway serve)")
        return
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        client = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
    except (RedisError, OSError) as exc:
        yield problem(
            "redis",
            f"unreachable ({type(exc).__name__})",
            "start redis-server, or unset REDIS_URL to use the embedded one",
        )
        return
    from rq import Worker

    workers = Worker.count(connection=client)
    if workers:
        yield ok("redis", f"reachable, {workers} worker(s) alive")
    else:
        yield warning("redis", "reachable, but no worker alive", "start `gateway worker`")


def _campaigns_and_models(settings: Settings, online: bool) -> Iterator[Check]:
    from gateway import campaigns
    from transcription.models import install_hint, resolve

    folder = settings.effective_campaigns_dir
    try:
        specs = campaigns.read_files([folder], settings.timezone) if folder.is_dir() else []
    except campaigns.CampaignFileError as exc:
        yield problem("campaigns", str(exc), "fix the campaign file")
        return
    if not specs:
        yield warning(
            "campaigns",
            f"no campaign file in {folder}",
            "write one (docs/campaigns.md) or create one in the console",
        )
    else:
        yield ok("campaigns", f"{len(specs)} in {folder}")
    languages = sorted({spec.language for spec in specs} or {settings.language})
    for language in languages:
        model = resolve(settings.vosk_model, settings.data_path, language)
        if model is None:
            yield warning(
                f"speech model ({language})",
                "none installed: voice messages wait untranscribed",
                f"run `{install_hint(language)}`",
            )
        else:
            yield ok(f"speech model ({language})", f"{model.name}")


def _public_url(settings: Settings, online: bool) -> Iterator[Check]:
    url = settings.public_url.rstrip("/")
    local = any(host in url for host in ("://127.0.0.1", "://localhost", "://[::1]"))
    if not url.startswith("https://") and not local:
        yield problem(
            "public url",
            f"{url} is not https: providers' signatures and the console's cookies need it",
            "put the gateway behind nginx or Caddy with TLS and set PUBLIC_URL to https://…",
        )
        return
    if local:
        yield warning(
            "public url",
            f"{url}: providers cannot reach a loopback address",
            "set PUBLIC_URL to the address providers call (https://…)",
        )
        return
    if not online:
        yield ok("public url", f"{url} (not tried)")
        return
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:  # noqa: S310 - https checked
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        yield warning(
            "public url",
            f"{url}/healthz unreachable from this machine ({type(exc).__name__})",
            "is gateway serve running, and the proxy and DNS set up?",
        )
        return
    if status == 200:
        yield ok("public url", f"{url}/healthz answers 200")
    else:
        yield warning("public url", f"{url}/healthz answers {status}", "see /readyz for why")


Doctor = Callable[[Settings], list[Check]]
