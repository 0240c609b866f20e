"""Settings: environment variables prefixed ``GATEWAY_``, an optional settings file, defaults.

Precedence, highest first: the process environment, the settings file, the defaults below.
The settings file is ``KEY=VALUE`` lines (the ``GATEWAY_`` prefix optional, ``#`` comments),
read from ``GATEWAY_SETTINGS_FILE`` if set, else ``./gateway.env`` when it exists. This keeps
secrets out of shell history and lets systemd units use the same file as ``EnvironmentFile``.

Built on pydantic-settings: each setting is one field of ``Settings`` below, with its type (the
named types just above the class carry the rules), its default and what it is for. A value that
breaks a rule raises ``SettingsError`` naming the ``GATEWAY_`` variable and what to do, never
echoing a secret. ``Settings(...)`` with keyword arguments reads nothing but them and the
defaults; ``Settings.load()`` adds the environment and the settings file.

A channel plugin declares its own settings (``PluginSettings``, gateway.plugins): same prefix,
same sources, same rules, one flat namespace of names. ``Settings`` holds each installed
plugin's part as a *section*: ``Settings(some_plugin_setting=...)`` and ``with_overrides`` route
a name to its section, ``settings.section(ThatPluginSettings)`` reads it typed.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import secrets
from collections import Counter
from collections.abc import Mapping
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, cast, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

log = logging.getLogger(__name__)

PREFIX = "GATEWAY_"
SETTINGS_FILE = PREFIX + "SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = "gateway.env"

# How to make a good key, in every refusal.
MAKE_A_KEY = 'python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
MIN_KEY_LENGTH = 32
# Keys published as examples (config/gateway.env.example, the README, other projects' docs)
# and the words placeholders are made of: a key anyone can read is no key.
PUBLISHED_KEYS = frozenset({"change-me-long-random-string"})
PLACEHOLDER_WORDS = (
    "changeme",
    "replaceme",
    "yoursecret",
    "example",
    "placeholder",
    "secretkeyhere",
)
# A key drawn at random has at least this much entropy by the character-frequency estimate
# (32 random hex digits, the smallest good key, score about 90 bits; 128 at best).
MIN_KEY_BITS = 80
MIN_KEY_DISTINCT = 8


class SettingsError(ValueError):
    """A setting the gateway refuses to run with; the message says which and what to do."""


def _default_campaigns_dir() -> str:
    # The repository's config/campaigns when run from a checkout; the packaged copy otherwise.
    local = Path("config/campaigns")
    if local.is_dir():
        return str(local)
    import config

    return str(Path(config.__file__).parent / "campaigns")


# -- the types of settings, with their rules ----------------------------------------------------
# A field rule raises ValueError with the problem alone ("must be ..."): the variable's name is
# put before it when the error is reported (settings_error).

TRUE_WORDS = ("1", "true", "yes", "on")
# Anything else used to read as false, silently; now only these do (empty: false, as before).
FALSE_WORDS = ("0", "false", "no", "off", "")


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(
            f"must be true or false ({', '.join(TRUE_WORDS)} or {', '.join(FALSE_WORDS[:-1])}), "
            f"not {_shown(value)}"
        )
    return value


def _path_text(value: Any) -> Any:
    # A Path given by a caller is kept as its text, as the environment would give it.
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _image_url(value: str) -> str:
    # Podcast apps fetch the artwork themselves: a relative path or a typo would give every
    # listener a broken image, silently.
    if value and not re.fullmatch(r"https?://[^\s/]+/\S+", value):
        raise ValueError(f"must be the full http(s) address of an image, not {value!r}")
    return value


def _decidim_url(value: str) -> str:
    # The API credentials travel to this URL: never in clear beyond this machine.
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(
            f"must be the platform's root URL, such as https://participer.ville.fr, not {value!r}"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            "must use https: the API secret would cross the network in clear (http is allowed "
            "only to a loopback host, for tests)"
        )
    return value


class _Secret:
    """Marks a secret: its value is never shown in an error."""


def _calling_hours(value: str) -> str:
    match = re.fullmatch(r"\s*(\d{1,2})\s*-\s*(\d{1,2})\s*", value)
    if not match or not 0 <= int(match[1]) < int(match[2]) <= 24:
        raise ValueError(
            "must be two hours of the day, the first before the second, such as 9-20, "
            f"not {value!r}"
        )
    return f"{int(match[1])}-{int(match[2])}"


Flag = Annotated[bool, BeforeValidator(_flag)]  # true/false, 1/0, yes/no, on/off
PathText = Annotated[str, BeforeValidator(_path_text)]  # a file or folder
Secret = Annotated[str, _Secret()]
ImageUrl = Annotated[str, AfterValidator(_image_url)]  # empty, or http(s)://host/path
DecidimUrl = Annotated[str, AfterValidator(_decidim_url)]  # empty, or https (http: loopback)
CallingHours = Annotated[str, AfterValidator(_calling_hours)]  # "9-20": from 9:00 to 20:00

# The environment (or the mapping given to Settings.load) while Settings.load builds settings.
_LOADING: ContextVar[Mapping[str, str] | None] = ContextVar(
    "gateway_settings_environ", default=None
)


class _GatewaySettings(BaseSettings):
    """What the core's settings and every plugin's share: the prefix, the rules on errors and
    where values come from."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        case_sensitive=False,
        frozen=True,  # immutable: changed copies come from with_overrides
        extra="forbid",
        hide_input_in_errors=True,  # pydantic's own messages never carry a value (secrets)
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Where values come from, highest first (the defaults come last, always).

        ``Settings(...)``: its keyword arguments only. ``Settings.load()``: the environment,
        then the settings file (pydantic-settings' own .env reader would need the prefix)."""
        environ = _LOADING.get()
        if environ is None:
            return (init_settings,)
        return (
            init_settings,
            Variables(settings_cls, environ),
            Variables(settings_cls, settings_file_variables(environ)),
        )


class PluginSettings(_GatewaySettings):
    """A channel plugin's settings: subclass it with the plugin's fields, named as their
    variables without the prefix (``GATEWAY_SOMEPROVIDER_TOKEN``: ``someprovider_token``), and
    name the class in the plugin's ``settings``. Loaded, checked and reported like the core's;
    a plugin reads them with ``settings.section(TheClass)``."""

    if not TYPE_CHECKING:

        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as exc:
                raise settings_error(exc, type(self)) from None  # chained, it shows values


S = TypeVar("S", bound=PluginSettings)


@cache
def _sections() -> tuple[type[PluginSettings], ...]:
    """The installed plugins' settings classes (gateway.plugins loads channels/registry.py).
    Their names share one namespace with the core's (one variable, one setting): a name
    declared twice stops the gateway."""
    from gateway import plugins

    owner: dict[str, str] = {name: "the core" for name in Settings.model_fields}
    classes = []
    for plugin in plugins.installed():
        if plugin.settings is None:
            continue
        for name in plugin.settings.model_fields:
            if name in owner:
                raise RuntimeError(
                    f"setting {name!r} of the {plugin.name!r} channel plugin is already "
                    f"declared by {owner[name]}"
                )
            owner[name] = f"the {plugin.name!r} channel plugin"
        classes.append(plugin.settings)
    return tuple(classes)


class Settings(_GatewaySettings):
    data_dir: PathText = "./data"
    database_url: str = ""  # empty: SQLite at DATA_DIR/gateway.sqlite3
    redis_url: str = ""  # empty: the embedded Redis server under DATA_DIR
    public_url: str = "http://127.0.0.1:8080"
    secret_key: Secret = ""  # empty: read from SECRET_KEY_FILE (generated there once)
    # Empty: ``secrets/<DATA_DIR's name>.key`` beside DATA_DIR (see ``secret_key_path``).
    secret_key_file: PathText = ""
    host: str = "127.0.0.1"
    port: int = 8080
    campaigns_dir: PathText = ""
    language: str = "fr"
    # Dates and times shown to moderators and residents (stored times are UTC).
    timezone: str = "Europe/Paris"
    # Named in the first-contact notice on how residents' data is used.
    organisation: str = "Ville de Nanterre, Agora permanente"
    # The podcast's artwork (docs/publishing-radio.md): an https URL of a square JPEG or PNG,
    # 1400 to 3000 pixels, that podcast directories require; empty: the feed has none.
    podcast_image_url: ImageUrl = ""
    replies_per_hour: int = 30  # per resident: beyond, replies are withheld (loops, floods)
    # Inbound flood limits (gateway.floods): past this many messages in a minute from one
    # sender, their messages are kept but marked, and they get one notice then silence...
    flood_per_sender_per_minute: int = 20
    # ... and past this many from everyone, replies are paced rather than sent at once.
    flood_global_per_minute: int = 600
    conversation_expiry_minutes: int = 24 * 60
    sweep_interval_seconds: int = 30
    # A message stored but not yet seen by a worker is left alone this long before the sweeper
    # re-enqueues it, so the sweeper never races the webhook's own enqueue.
    sweep_grace_seconds: int = 10
    outbound_max_attempts: int = 6
    # Every outbound message waits its turn at its provider's rate, shared by all workers
    # through Redis (gateway.pacing; each plugin declares its rates). Off: sent as fast as
    # workers send (a test bench whose fake provider does not limit).
    outbound_pacing: Flag = True
    # -- Retention (gateway.retention, docs/privacy.md) --------------------------------------------
    # Days after a campaign closes before its contributions' recordings and files (except what
    # the public page shows), and the addresses of the people with nothing left open, go.
    retention_days_after_close: int = Field(default=90, ge=1)
    # Days a stored message's raw payload and sender, a reply's recipient and text, a finished
    # call back, an idle conversation, a quarantined payload and a rejected or spam
    # contribution's recording and files are kept.
    raw_payload_retention_days: int = Field(default=30, ge=1)
    # A request's body: the webhooks', the console's forms' and the API's cap (the uploads have
    # their own, gateway/bodycaps.py), and the time it may take to arrive (docs/security.md).
    max_webhook_bytes: int = 64 * 1024
    max_body_seconds: int = Field(default=30, ge=1)
    # Characters of a message's text the gateway takes, on every channel; a longer text is cut
    # at a word with a marker and kept whole as an attachment (gateway/textcap.py). 0: no cap.
    max_text_chars: int = 10_000
    # Console access (docs/console.md). A console session left unused this long ends (the
    # cookie's absolute lifetime stays 12 hours).
    session_idle_minutes: int = 30
    # Reverse proxies whose X-Forwarded-For is believed (IPs or CIDRs, comma- or
    # space-separated; read by gateway.console.auth). Empty: the client is the connecting
    # address, as it must be when the gateway faces the Internet directly (anyone can write
    # that header).
    trusted_proxies: str = ""
    embedded_worker: Flag = True  # gateway serve runs a worker thread when Redis is embedded
    # -- Voice and transcription -----------------------------------------------------------------
    vosk_model: PathText = ""
    voice_max_recording_seconds: int = 180  # the answering machine's <Record maxLength>
    voice_delete_recordings: Flag = True  # delete at the provider once stored here
    max_recording_bytes: int = 50 * 1024 * 1024
    # Calling back the callers who asked for it (gateway.callbacks): only between these local
    # hours (TIMEZONE), at most this many attempts, this long apart when busy or unanswered.
    voice_callback_hours: CallingHours = "9-20"
    voice_callback_attempts: int = 3
    voice_callback_retry_minutes: int = 30
    # Announcements to the residents who asked (gateway.announcements): sent only between these
    # local hours (TIMEZONE), paced at most this many a second per channel (0: each provider's
    # own pace, its plugin's ``pace``; a lower value slows every channel).
    announcement_hours: CallingHours = "9-20"
    announcement_rate: float = Field(default=0.0, ge=0)
    # -- Direct publication to Decidim 0.32 and later (gateway.publication.decidim_api) ----------
    # The platform's root URL and the API credentials an administrator made in Decidim's admin
    # (System > API credentials). The secret is never shown: not in repr, not in a log.
    decidim_url: DecidimUrl = ""
    decidim_api_key: Secret = ""
    # /metrics: empty, only scrapes from this machine; set, a bearer token (gateway.metrics).
    metrics_token: Secret = ""
    decidim_api_secret: Secret = Field(default="", repr=False)
    log_level: str = "INFO"
    # The services' log lines: "text" (a line each, for a terminal and journald) or "json" (an
    # object a line, for a log collector; gateway.logs.JsonFormatter). Redacted either way.
    log_format: Literal["text", "json"] = "text"

    # Each installed plugin's settings, by class (see section).
    _sections: dict[type[PluginSettings], PluginSettings] = PrivateAttr(default_factory=dict)

    if not TYPE_CHECKING:  # type checkers keep the signature made from the fields above

        def __init__(self, **values: Any) -> None:
            # Checked whenever settings are made (loaded, or changed with with_overrides), so
            # a process never starts with them; the secret key is checked once it is known
            # (ensure_secret_key), since an empty one is generated. A name a plugin declares
            # goes to that plugin's section; every refused value, core's or a plugin's, is
            # named in one error.
            classes = _sections()
            theirs = {name for cls in classes for name in cls.model_fields}
            problems: list[str] = []
            try:
                super().__init__(**{k: v for k, v in values.items() if k not in theirs})
            except ValidationError as exc:
                problems.append(str(settings_error(exc, type(self))))
            sections: dict[type[PluginSettings], PluginSettings] = {}
            for cls in classes:
                try:
                    sections[cls] = cls(
                        **{k: v for k, v in values.items() if k in cls.model_fields}
                    )
                except SettingsError as exc:
                    problems.append(str(exc))
            if problems:
                raise SettingsError("; ".join(problems)) from None
            self._sections = sections
            from gateway import plugins

            for plugin in plugins.installed():
                if plugin.check is not None:
                    plugin.check(self)

        def __getattr__(self, name: str) -> Any:
            # A plugin's setting by its flat name (``settings.someprovider_token``), for
            # scripts and tests; typed code asks ``section``.
            try:
                return super().__getattr__(name)
            except AttributeError:
                private = object.__getattribute__(self, "__pydantic_private__") or {}
                for section in (private.get("_sections") or {}).values():
                    if name in type(section).model_fields:
                        return getattr(section, name)
                raise

    def section(self, cls: type[S]) -> S:
        """An installed plugin's settings (its class, as named in its ``settings``)."""
        try:
            return cast("S", self._sections[cls])
        except KeyError:
            raise LookupError(
                f"{cls.__qualname__} are not the settings of an installed channel plugin "
                f"(channels/registry.py)"
            ) from None

    def values(self) -> dict[str, Any]:
        """Every setting by its name without the prefix, the core's and each plugin's."""
        merged = self.model_dump()
        for section in self._sections.values():
            merged.update(section.model_dump())
        return merged

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (the process environment by default) and the settings
        file it names, else ``./gateway.env``; SettingsError for a value the rules refuse."""
        loading = _LOADING.set(os.environ if environ is None else environ)
        try:
            return cls()
        finally:
            _LOADING.reset(loading)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed, checked as any settings are."""
        return type(self)(**{**self.values(), **changes})

    # -- derived values -------------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def secret_key_path(self) -> Path:
        """Where the key is read from (and generated on first start): SECRET_KEY_FILE, else
        ``secrets/<name>.key`` beside DATA_DIR. Outside DATA_DIR so that a backup or a copy of
        the data folder does not carry the key that decrypts it; named after the data folder so
        that two data folders side by side (tests, a staging copy) never share a key."""
        if self.secret_key_file:
            return Path(self.secret_key_file).expanduser().resolve()
        data = self.data_path
        return data.parent / "secrets" / f"{data.name or 'data'}.key"

    @property
    def legacy_secret_key_path(self) -> Path:
        """Where earlier versions generated the key: inside DATA_DIR (still read, warned)."""
        return self.data_path / "secret_key"

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
    def decidim_configured(self) -> bool:
        return bool(self.decidim_url and self.decidim_api_key and self.decidim_api_secret)

    def ensure_secret_key(self) -> Settings:
        """Return settings with a checked secret key: ``SECRET_KEY``, else the key file
        (``secret_key_path``), created on first use; SettingsError for a weak key.

        The key encrypts residents' addresses: losing it makes them unreadable, so the file is
        written once with owner-only permissions (in an owner-only folder) and never
        regenerated. A key left by an older version in ``DATA_DIR/secret_key`` is still used,
        with a warning telling how to move it.
        """
        if self.secret_key:
            check_secret_key(self.secret_key, "GATEWAY_SECRET_KEY")
            return self
        path, legacy = self.secret_key_path, self.legacy_secret_key_path
        if path.exists():
            key = _read_key(path)
            if legacy.exists() and legacy != path:
                if _read_key(legacy) != key:
                    raise SettingsError(
                        f"two different secret keys, {path} and {legacy}: keep the one the "
                        f"data was encrypted with and delete the other"
                    )
                _warn_once(f"{legacy} is a copy of {path}: delete it (it sits in DATA_DIR)")
            source = str(path)
        elif legacy.exists():
            if self.secret_key_file:
                # Never a new key beside an old one: the data would become unreadable.
                raise SettingsError(
                    f"GATEWAY_SECRET_KEY_FILE {path} does not exist but {legacy} does: "
                    f"move the key there with `gateway secrets move-key`"
                )
            key = _read_key(legacy)
            _warn_once(
                f"the secret key is in {legacy}, inside DATA_DIR, so every backup of the data "
                f"carries it: move it with `gateway secrets move-key` (to {path})"
            )
            source = str(legacy)
        else:
            key = secrets.token_urlsafe(48)
            _write_key(path, key)
            log.warning("generated a new secret key in %s: back it up apart from DATA_DIR", path)
            source = str(path)
        check_secret_key(key, source)
        if path.exists() and is_inside(path, self.data_path):
            _warn_once(f"SECRET_KEY_FILE {path} is inside DATA_DIR: backups of the data carry it")
        return self.with_overrides(secret_key=key)


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    # Settings are checked by every process part that opens them (serve, then its web app,
    # then its runtime): one warning is enough.
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)


def _read_key(path: Path) -> str:
    """The installation's root secret (key id 1) of a key file, a bare key or a keyring."""
    from gateway.keyring import Keyring, KeyringError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read the secret key file {path}: {exc.strerror}") from exc
    try:
        return Keyring.parse(text, str(path)).root
    except KeyringError as exc:
        raise SettingsError(str(exc)) from exc


def _write_key(path: Path, key: str) -> None:
    from gateway.files import private_dir

    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise SettingsError(
            f"cannot create the secret key file {path} ({exc.strerror}): set "
            f"GATEWAY_SECRET_KEY_FILE to a writable path outside DATA_DIR, or GATEWAY_SECRET_KEY"
        ) from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")


def is_inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or the name localhost; other names are not resolved (DNS can lie)."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secret_key_weakness(key: str) -> str | None:
    """Why a key is too weak to protect residents' addresses, or None.

    With the key, the look-up hash lets anyone recover every phone number by trying them all
    (there are only about 10**9 French mobiles): the key must be long, random and unpublished.
    The checks are heuristics that every random key of 32 characters or more passes (hex,
    base64, ``secrets.token_urlsafe``); they catch what people type instead.
    """
    if len(key) < MIN_KEY_LENGTH:
        return f"shorter than {MIN_KEY_LENGTH} characters"
    folded = re.sub(r"[^a-z0-9]", "", key.lower())
    if key in PUBLISHED_KEYS or any(word in folded for word in PLACEHOLDER_WORDS):
        return "a published example or a placeholder"
    counts = Counter(key)
    if len(counts) < MIN_KEY_DISTINCT:
        return f"fewer than {MIN_KEY_DISTINCT} different characters"
    if _repeats(key):
        return "a repeated pattern"
    bits = -sum(n * math.log2(n / len(key)) for n in counts.values())
    if bits < MIN_KEY_BITS:
        return "too little variety"
    return None


def _repeats(key: str) -> bool:
    # The whole key one short unit repeated ("abcabc..."), or any 4 characters in it 3 times
    # without overlapping ("passwordpasswordpassword1234"): in a random key of 32 hex digits
    # that happens about once in a million. Counted with overlaps, a run of six identical
    # digits ("aaaaaa", one key in 40,000) passed for a pattern: secrets.token_hex(16) was
    # refused now and then.
    for period in range(1, len(key) // 2 + 1):
        if all(key[i] == key[i % period] for i in range(len(key))):
            return True
    grams = {key[i : i + 4] for i in range(len(key) - 3)}
    return any(key.count(gram) >= 3 for gram in grams)


def check_secret_key(key: str, source: str) -> None:
    """SettingsError, in one line saying how to make a good key, when ``key`` is weak."""
    weakness = secret_key_weakness(key)
    if weakness is not None:
        raise SettingsError(
            f"the secret key from {source} is too weak ({weakness}); it protects residents' "
            f"addresses. Make one with: {MAKE_A_KEY}"
        )


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


# -- where values come from -------------------------------------------------------------------


class Variables(EnvSettingsSource):
    """``GATEWAY_*`` variables from a mapping: the environment, or the settings file's lines
    with the prefix put back. Names are matched as before: the prefix in capitals, the rest in
    any case; variables that name no setting are ignored."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        self._variables = variables
        super().__init__(settings_cls, case_sensitive=False, env_prefix=PREFIX)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # pydantic-settings' hook for where variables are read (os.environ by default).
        return {k.lower(): v for k, v in self._variables.items() if k.startswith(PREFIX)}


def settings_file_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings file's values as ``GATEWAY_*`` variables: the file GATEWAY_SETTINGS_FILE
    names, else ./gateway.env if there is one, else none."""
    named = environ.get(SETTINGS_FILE)
    if named:
        path = Path(named)
    elif Path(DEFAULT_SETTINGS_FILE).is_file():
        path = Path(DEFAULT_SETTINGS_FILE)
    else:
        return {}
    try:
        values = read_settings_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        fix = f"set {SETTINGS_FILE} to a readable file" if named else "fix or remove it"
        raise SettingsError(f"cannot read the settings file {path} ({why}): {fix}") from None
    return {PREFIX + key.upper(): value for key, value in values.items()}


# -- errors -----------------------------------------------------------------------------------

# What a value of each type must look like, for pydantic's own errors.
EXPECTED = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
}


def settings_error(exc: ValidationError, settings_cls: type[BaseSettings]) -> SettingsError:
    """One SettingsError, on one line, for every value refused: each names its variable and
    what it must be; a secret's value is never shown."""
    return SettingsError("; ".join(_problem(e, settings_cls) for e in exc.errors()))


def _problem(error: ErrorDetails, settings_cls: type[BaseSettings]) -> str:
    # A ValueError raised by one of the rules above, saying what the value must be.
    rule = error.get("ctx", {}).get("error") if error["type"] == "value_error" else None
    if not error["loc"]:  # a rule across settings: its message names them
        return str(rule) if rule is not None else error["msg"]
    name = str(error["loc"][0])
    variable = PREFIX + name.upper()
    field = settings_cls.model_fields.get(name)
    if field is None:
        return f"{variable} is not a setting: check its name"
    if rule is not None:
        return f"{variable} {rule}"
    secret = any(isinstance(m, _Secret) for m in field.metadata)
    value = "" if secret else f", not {_shown(error['input'])}"
    if error["type"] == "literal_error":
        return f"{variable} must be one of {', '.join(get_args(field.annotation))}{value}"
    if error["type"] in EXPECTED:
        return f"{variable} must be {EXPECTED[error['type']]}{value}"
    return f"{variable} is refused ({error['msg']})"


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
