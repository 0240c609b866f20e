"""Channel plugins: what a provider's folder under ``channels/`` declares, and the registry the
core asks instead of naming a channel or a provider.

A *channel* is how a resident reaches the city (``sms``, ``voice``, a chat app, ``email``);
a *provider* is whose service carries it (an SMS operator's API, a bot API, a mail server). One
plugin is one provider; it declares the channels it carries and, through the hooks below,
everything the core needs from it, in the spirit of courier's ``ChannelHandler`` and Rasa's
``InputChannel``/``OutputChannel``:

- ``settings``: its own settings, a ``gateway.settings.PluginSettings`` class (``GATEWAY_``
  variables like the core's, read with ``settings.section(cls)``);
  ``configured(settings)``: whether the city has set it up (its settings are complete);
  ``check(settings)``: refuses a bad value of its settings with a ``SettingsError`` (a rule
  that needs the core's settings too; one on its own settings is a validator of its class);
- ``sender(settings)``: its outbound adapter (``gateway.messages.Sender``);
- ``routes(app)``: the HTTP routes it mounts (its webhooks) on the gateway's aiohttp app;
- ``services``: background services run inside ``gateway serve`` (a mailbox reader, a mail
  receiver), each started with the runtime and stopped on exit;
- ``commands``: its ``gateway`` CLI subcommands (click commands or groups);
- ``interpret(arrival)``: what a stored message means before the conversation engine sees it
  (a chat app's commands, buttons and edits; email's routing, loop detection and sender
  verification); a channel without one gives the engine the message's text as it is;
- ``buttons(key, state, titles, language)``: the answer buttons a reply carries on media that
  show them (chat apps), ``None`` elsewhere (SMS numbers its choices in the text);
- ``thread(runtime, message)``: what a reply to a stored message threads on, for media that
  thread (email: subject, In-Reply-To, References); given to its sender in ``OutgoingText``;
- ``place_call(runtime, to, from_, callback_id)``: place a call back (gateway.callbacks) and
  return the provider's call id; the plugin then says ``gateway.callbacks.script`` when it is
  answered and reports how it ended with ``gateway.callbacks.result``; ``SendError`` when it
  could not be placed;
- ``pace(settings)``: the provider's sending rules (``gateway.pacing.Pace``): how many
  messages or SMS segments a second per sending number, per recipient, per account;
- ``default_from(settings)``: the address a reply is sent from when the resident's message
  does not say (the city's SMS number);
- ``fetch_media(runtime, message_id, last_attempt)``: download what a message only refers to
  (a chat app's file id) before the conversation sees it;
- ``fetch_recording(runtime, details, target_dir)`` and ``delete_recording(runtime,
  details)``: an answering machine's recording, named by a stored recording callback
  (``details``), downloaded into ``target_dir`` (``gateway.recordings.RecordingRefused`` for
  good, ``RecordingUnavailable`` to be retried), then deleted at the provider once kept.
- ``reconcile(runtime, message, since)``: after a send was interrupted (its worker died
  between claiming it and recording the provider's answer), the ids of the messages the
  provider accepted since ``since`` that are this one (same recipient, same text), newest
  first; an empty list when it has none, so that sending again is safe; ``SendError`` when
  it cannot tell now (retryable) or at all. A provider without the hook cannot be asked:
  such a send is marked failed, delivery unknown (workers.outbound).

The list of installed plugins is ``channels/registry.py``; the core loads it by name
(``REGISTRY``) rather than importing it, so that the core never imports a channel (an
``import-linter`` contract in ``pyproject.toml`` checks it) while a city's build chooses its
plugins in one file.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    import click
    from aiohttp import web
    from sqlalchemy.orm import Session

    from gateway import conversation as engine
    from gateway.messages import OutgoingText, Sender
    from gateway.models import Conversation, InboundMessage
    from gateway.pacing import Pace
    from gateway.runtime import Runtime
    from gateway.settings import PluginSettings, Settings

REGISTRY = "channels.registry"

Buttons = list[list[dict[str, str]]]
# A running service's stopper: awaited on exit.
Stop = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Service:
    """A background service of a plugin, run by ``gateway serve`` when ``enabled(settings)``
    (and by its own CLI command otherwise): ``start(runtime)`` returns its stopper."""

    name: str
    enabled: Callable[[Settings], bool]
    start: Callable[[Runtime], Awaitable[Stop]]


@dataclass
class Arrival:
    """What the core gives a plugin's ``interpret`` hook: a stored message in its
    transaction, with the conversation it belongs to and the campaigns open for it."""

    runtime: Runtime
    session: Session
    message: InboundMessage
    state: engine.State
    conversation: Conversation
    campaigns: tuple[engine.CampaignInfo, ...]


@dataclass(frozen=True)
class Interpretation:
    """What a message means. ``reply``: a catalogue key to answer instead of running the
    engine; ``handled``: the channel dealt with it (no engine, no reply). Otherwise the engine
    gets ``text`` (None: the message's own), ``start`` (a campaign asked for by a deep link)
    and ``verified`` (whether the sender is who they say: None when the channel cannot
    doubt it)."""

    text: str | None = None
    start: str | None = None
    verified: bool | None = None
    reply: str | None = None
    handled: bool = False


@dataclass(frozen=True)
class ChannelPlugin:
    name: str  # the provider, as its folder under channels/ is named
    channels: tuple[str, ...]  # the channels it carries: sms, voice, ...
    configured: Callable[[Settings], bool]
    settings: type[PluginSettings] | None = None
    sender: Callable[[Settings], Sender] | None = None
    routes: Callable[[web.Application], None] | None = None
    services: tuple[Service, ...] = ()
    commands: Callable[[], Sequence[click.Command]] | None = None
    interpret: Callable[[Arrival], Interpretation] | None = None
    buttons: Callable[[str, engine.State, dict[str, str], str], Buttons | None] | None = None
    default_from: Callable[[Settings], str | None] | None = None
    thread: Callable[[Runtime, InboundMessage], dict[str, Any] | None] | None = None
    place_call: Callable[[Runtime, str, str | None, int], str] | None = None
    fetch_media: Callable[[Runtime, int, bool], None] | None = None
    fetch_recording: Callable[[Runtime, dict[str, Any], Path], tuple[Path, str]] | None = None
    delete_recording: Callable[[Runtime, dict[str, Any]], None] | None = None
    check: Callable[[Settings], None] | None = None
    reconcile: Callable[[Runtime, OutgoingText, datetime], list[str]] | None = None
    # Channels whose addresses are one person's across them: {"sms": "phone", "voice":
    # "phone"} makes a number that texts and calls one resident. A channel not named here is
    # its own address space.
    address_spaces: Mapping[str, str] = field(default_factory=dict)
    # Whether the provider picks a sending number itself when the gateway gives none (a pool
    # of numbers the city set up with it): then a reply without a sender can still go out.
    picks_sender: Callable[[Settings], bool] | None = None
    # Loggers of the provider's library that print secrets (a token in a URL) or every
    # request below WARNING: kept at WARNING whatever LOG_LEVEL says.
    quiet_loggers: tuple[str, ...] = ()
    # The provider's sending rules (gateway.pacing), read from its settings so that a city can
    # raise them: every outbound message is paced by them, and announcements are scheduled at
    # their pace (gateway.announcements). None: the core's default (one message a second).
    pace: Callable[[Settings], Pace] | None = None
    # ``gateway doctor``: the provider's credentials tried with a harmless call (an account
    # look-up), as gateway.doctor.Check items; None: "configured" is all it can say.
    doctor: Callable[[Settings], list[Any]] | None = None


@cache
def installed() -> tuple[ChannelPlugin, ...]:
    """The installed plugins, in the registry's order (the first configured one for a channel
    sends its replies when several could)."""
    module = importlib.import_module(REGISTRY)
    plugins = tuple(module.PLUGINS)
    names = [p.name for p in plugins]
    if len(set(names)) != len(names):
        raise RuntimeError(f"{REGISTRY}: a plugin is registered twice ({names})")
    return plugins


def for_channel(channel: str) -> tuple[ChannelPlugin, ...]:
    return tuple(p for p in installed() if channel in p.channels)


def channels() -> tuple[str, ...]:
    """Every channel an installed plugin carries, once, in the registry's order."""
    return tuple(dict.fromkeys(c for p in installed() for c in p.channels))


@cache
def address_space(channel: str) -> str:
    """The address space of a channel's addresses (``phone`` for SMS and voice): one person
    per address within it (gateway.privacy.lookup_hash)."""
    for plugin in installed():
        if channel in plugin.address_spaces:
            return plugin.address_spaces[channel]
    return channel


def address_spaces() -> tuple[str, ...]:
    """One channel per address space, as an administrator names a person (``sms`` for a
    phone number, which covers calls too)."""
    seen: dict[str, str] = {}
    for channel in channels():
        seen.setdefault(address_space(channel), channel)
    return tuple(seen.values())


def hook(channel: str, name: str, provider: str | None = None) -> Any:
    """The ``name`` hook for ``channel`` of ``provider`` (the plugin that carried a stored
    message) when it has one, else of the first installed plugin that has one; or None."""
    carriers = for_channel(channel)
    for plugin in sorted(carriers, key=lambda p: p.name != provider):  # provider's first
        value = getattr(plugin, name)
        if value is not None:
            return value
    return None


def provider_hook(channel: str, provider: str, name: str) -> Any:
    """The ``name`` hook of exactly ``provider`` for ``channel`` (no other plugin's), or None."""
    for plugin in for_channel(channel):
        if plugin.name == provider:
            return getattr(plugin, name)
    return None
