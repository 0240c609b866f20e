"""The resources one process holds: settings, database, Redis, the address vault, senders.

Built once per process from settings (``Runtime.open``) and closed on exit; the web app keeps
it under an AppKey, a worker process keeps it for its jobs (workers.context).
"""

from __future__ import annotations

import logging
import os
import weakref
from functools import cached_property

from redis import Redis
from rq import Queue
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway import db, files, plugins
from gateway.messages import ConsoleOutbox, Sender
from gateway.pacing import Pacer
from gateway.privacy import AddressVault
from gateway.queues import EmbeddedRedis, queue, redis_from_url
from gateway.rewrap import rewrap_sqlite_once
from gateway.settings import Settings

log = logging.getLogger(__name__)

# RQ's Worker forks a child per job: pooled database connections must not cross the fork.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _dispose_after_fork() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_after_fork)


class Runtime:
    def __init__(self, settings: Settings, engine: Engine, embedded: EmbeddedRedis | None) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions: sessionmaker[Session] = db.session_factory(engine)
        self.vault = AddressVault(settings.secret_key, settings.secret_key_path)
        self.embedded = embedded
        self._redis: Redis | None = None
        self._senders: dict[tuple[str, str | None], Sender] = {}
        _ENGINES.add(engine)
        self._read_engine: Engine | None = None

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        settings = settings.ensure_secret_key()  # SettingsError for a weak key
        files.secure_data_dir(settings.data_path)
        engine = db.make_engine(settings.effective_database_url)
        if migrate:
            db.prepare(engine)
        embedded = EmbeddedRedis(settings.data_path) if settings.embedded_redis else None
        runtime = cls(settings, engine, embedded)
        if migrate:
            rewrap_sqlite_once(engine, runtime.vault)
        return runtime

    @cached_property
    def read_sessions(self) -> sessionmaker[Session]:
        """Sessions for read-only work that must not hold writers back (the public pages and
        downloads, which anyone can ask for): on SQLite they take no write lock
        (gateway.db.make_read_engine); elsewhere they are the ordinary sessions."""
        engine = db.make_read_engine(self.engine.url.render_as_string(hide_password=False))
        if engine is None:
            return self.sessions
        self._read_engine = engine
        _ENGINES.add(engine)
        return db.session_factory(engine)

    @property
    def redis_url(self) -> str:
        return self.embedded.url if self.embedded else self.settings.redis_url

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            if self.embedded:
                self.embedded.ensure_running()
            self._redis = redis_from_url(self.redis_url)
        return self._redis

    @cached_property
    def pacer(self) -> Pacer:
        """Outbound pacing's turns (gateway.pacing): Redis's buckets, shared by every worker."""
        return Pacer(lambda: self.redis)

    def queue(self, name: str) -> Queue:
        return queue(name, self.redis)

    def sender(self, channel: str, provider: str | None = None) -> Sender:
        """Who sends on ``channel``: ``provider`` (the plugin that carried the resident's
        message) when it carries the channel and is configured, else the channel's first
        configured plugin (gateway.plugins); with none, the console outbox (kept in the
        database, logged without recipient)."""
        key = (channel, self._carrier(channel, provider))
        if key not in self._senders:
            self._senders[key] = self._make_sender(*key)
        return self._senders[key]

    def carrier(self, channel: str, provider: str | None = None) -> str | None:
        """The plugin whose sender ``sender(channel, provider)`` is (None: the console
        outbox)."""
        return self._carrier(channel, provider)

    def _carrier(self, channel: str, provider: str | None) -> str | None:
        configured = [
            p.name
            for p in plugins.for_channel(channel)
            if p.sender is not None and p.configured(self.settings)
        ]
        if provider in configured:
            return provider
        return configured[0] if configured else None

    def _make_sender(self, channel: str, provider: str | None) -> Sender:
        for plugin in plugins.for_channel(channel):
            if plugin.name == provider and plugin.sender is not None:
                return plugin.sender(self.settings)
        return ConsoleOutbox()

    def close(self, *, release_redis: bool = True) -> None:
        for sender in self._senders.values():
            closer = getattr(sender, "close", None)
            if closer is not None:
                try:
                    closer()
                except Exception:  # closing must not hide what the caller was doing
                    log.exception("could not close the %s sender", sender.name)
        self._senders.clear()
        if self._redis is not None:
            self._redis.close()
            self._redis.connection_pool.disconnect()
            self._redis = None
        if release_redis and self.embedded:
            self.embedded.release()
        if self._read_engine is not None:
            self._read_engine.dispose()
        self.engine.dispose()
