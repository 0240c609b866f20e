"""Settings: environment variables prefixed ``GATEWAY_``, an optional settings file, defaults.

Precedence, highest first: the process environment, the settings file, the defaults below.
The settings file is ``KEY=VALUE`` lines (the ``GATEWAY_`` prefix optional, ``#`` comments),
read from ``GATEWAY_SETTINGS_FILE`` if set, else ``./gateway.env`` when it exists. This keeps
secrets out of shell history and lets systemd units use the same file as ``EnvironmentFile``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

PREFIX = "GATEWAY_"


def _default_campaigns_dir() -> str:
    # The repository's config/campaigns when run from a checkout; the packaged copy otherwise.
    local = Path("config/campaigns")
    if local.is_dir():
        return str(local)
    import config

    return str(Path(config.__file__).parent / "campaigns")


@dataclass(frozen=True)
class Settings:
    data_dir: str = "./data"
    database_url: str = ""  # empty: SQLite at DATA_DIR/gateway.sqlite3
    redis_url: str = ""  # empty: the embedded Redis server under DATA_DIR
    public_url: str = "http://127.0.0.1:8080"
    secret_key: str = ""  # empty: generated once and kept in DATA_DIR/secret_key
    host: str = "127.0.0.1"
    port: int = 8080
    campaigns_dir: str = ""
    language: str = "fr"
    # Dates and times shown to moderators and residents (stored times are UTC).
    timezone: str = "Europe/Paris"
    # Named in the first-contact notice on how residents' data is used.
    organisation: str = "Ville de Nanterre, Agora permanente"
    replies_per_hour: int = 30  # per resident: beyond, replies are withheld (loops, floods)
    conversation_expiry_minutes: int = 24 * 60
    sweep_interval_seconds: int = 30
    # A message stored but not yet seen by a worker is left alone this long before the sweeper
    # re-enqueues it, so the sweeper never races the webhook's own enqueue.
    sweep_grace_seconds: int = 10
    outbound_max_attempts: int = 6
    max_webhook_bytes: int = 64 * 1024
    embedded_worker: bool = True  # gateway serve runs a worker thread when Redis is embedded
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    twilio_from_number: str = ""  # sender for replies when the inbound To number is unknown
    twilio_messaging_service_sid: str = ""
    telegram_bot_token: str = ""
    telegram_webhook_secret: str = ""
    telegram_api_base: str = "https://api.telegram.org"
    telegram_max_file_bytes: int = 20 * 1024 * 1024  # the Bot API's own limit for bots
    # Email (channels/email/doc.md): the gateway's own address, replies sent through SMTP,
    # mail read from an IMAP mailbox and/or received by the gateway's own SMTP receiver.
    email_address: str = ""  # e.g. participez@ville.fr; plus addresses route to campaigns
    email_max_bytes: int = 25 * 1024 * 1024  # a whole message
    email_max_attachment_bytes: int = 10 * 1024 * 1024  # each kept attachment
    imap_host: str = ""
    imap_port: int = 993
    imap_user: str = ""
    imap_password: str = ""
    imap_security: str = "tls"  # tls | starttls | none (none: loopback and tests only)
    imap_mailbox: str = "INBOX"
    imap_poll_seconds: int = 60  # between passes when the server has no IDLE
    imap_idle_seconds: int = 300  # an IDLE wait, renewed (RFC 2177: under 29 minutes)
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_security: str = "starttls"  # starttls | tls | none (none: loopback and tests only)
    smtp_ca_file: str = ""  # a CA bundle to trust besides the system's (a private CA)
    smtp_receiver_host: str = "127.0.0.1"
    smtp_receiver_port: int = 0  # > 0: `gateway serve` also receives mail by SMTP here
    vosk_model: str = ""
    voice_max_recording_seconds: int = 180  # the answering machine's <Record maxLength>
    voice_delete_recordings: bool = True  # delete from Twilio once stored here
    max_recording_bytes: int = 50 * 1024 * 1024
    log_level: str = "INFO"

    # -- derived values -------------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_path / 'gateway.sqlite3'}"

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def effective_campaigns_dir(self) -> Path:
        return Path(self.campaigns_dir or _default_campaigns_dir())

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def email_configured(self) -> bool:
        return bool(self.smtp_host and self.email_address)

    @property
    def telegram_configured(self) -> bool:
        return bool(self.telegram_bot_token)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, str] = {}
        settings_file = env.get(PREFIX + "SETTINGS_FILE") or (
            "gateway.env" if Path("gateway.env").is_file() else ""
        )
        if settings_file:
            values.update(read_settings_file(Path(settings_file)))
        for key, value in env.items():
            if key.startswith(PREFIX):
                values[key[len(PREFIX) :].lower()] = value
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in values:
                continue
            raw = values[f.name]
            if f.type in ("int", int):
                kwargs[f.name] = int(raw)
            elif f.type in ("bool", bool):
                kwargs[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                kwargs[f.name] = raw
        return cls(**kwargs)

    def ensure_secret_key(self) -> Settings:
        """Return settings with a secret key, creating ``DATA_DIR/secret_key`` on first use.

        The key encrypts residents' addresses: losing it makes them unreadable, so it is
        written once with owner-only permissions and never regenerated.
        """
        if self.secret_key:
            return self
        self.data_path.mkdir(parents=True, exist_ok=True)
        path = self.data_path / "secret_key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return replace(self, secret_key=path.read_text().strip())


def read_settings_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip().strip('"').strip("'")
        values[key.removeprefix(PREFIX).lower()] = value
    return values
