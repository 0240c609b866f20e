"""The harness every registered channel plugin goes through, driven by the registry
(``gateway.plugins.installed()``), not by a table here: for each plugin, its test kit
(``channels/<provider>/tests/kit.py``, ``KIT``; the interface is tests/channel_kit.py) is
imported by name, and

a. each fixture (``channels/<provider>/fixtures/*.json``), signed and delivered through the
   plugin's real entry point, stores the expected normalised message (or none);
b. a forged and a missing signature are refused (the status the plugin documents, nothing
   stored), or, where the entry point cannot refuse (mail), filed unverified and never answered;
c. the same delivery twice is one stored message and, once processed, one contribution;
d. a reply is rendered for the medium, as the provider's fake received it.

A registered plugin without a kit fails here. A new plugin gets these checks by registering.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from gateway import plugins
from gateway.models import InboundMessage, OutboundMessage
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.channel_kit import Bench, ChannelKit, Fixture, Gateway, Refused, Signing
from tests.helpers import contributions, drain, inbound, raw_binding, sender_binding

CHANNELS = Path(__file__).resolve().parent.parent / "channels"
REGISTERED = tuple(p.name for p in plugins.installed())


def kit_module(plugin: str) -> str:
    return f"channels.{plugin}.tests.kit"


def load_kit(plugin: str) -> ChannelKit | None:
    try:
        module = importlib.import_module(kit_module(plugin))
    except ModuleNotFoundError as exc:
        if exc.name is not None and f"{kit_module(plugin)}.".startswith(f"{exc.name}."):
            return None  # no kit (or no tests folder): test_every_plugin_has_a_kit says so
        raise
    kit = module.KIT
    assert isinstance(kit, ChannelKit), f"{kit_module(plugin)}.KIT is not a ChannelKit"
    return kit


KITS = {name: kit for name in REGISTERED if (kit := load_kit(name)) is not None}
FIXTURES = [(name, f.name) for name, kit in KITS.items() for f in kit.fixtures]


def fixture_id(case: tuple[str, str]) -> str:
    return "/".join(case)


@pytest.mark.parametrize("plugin", REGISTERED)
def test_every_registered_plugin_has_a_kit(plugin: str):
    kit = load_kit(plugin)
    assert kit is not None, f"plugin {plugin!r} is registered but has no {kit_module(plugin)}"
    assert kit.plugin == plugin
    assert kit.fixtures, f"{plugin}: no fixtures in channels/{plugin}/fixtures/"
    names = {f.name for f in kit.fixtures}
    assert {kit.contribution, kit.question} <= names


def test_every_folder_of_fixtures_belongs_to_a_registered_plugin():
    folders = {p.parent.parent.name for p in CHANNELS.glob("*/fixtures/*.json")}
    assert folders and folders <= set(REGISTERED)


def test_the_harness_sees_every_fixture_file():
    on_disk = {
        (p.parent.parent.name, p.stem)
        for p in CHANNELS.glob("*/fixtures/*.json")
        if p.parent.parent.name in KITS
    }
    assert on_disk == set(FIXTURES)
    for plugin, name in FIXTURES:
        spec = json.loads((CHANNELS / plugin / "fixtures" / f"{name}.json").read_text("utf-8"))
        assert set(spec) <= {"description", "source", "request", "expected"}


@asynccontextmanager
async def started(
    aiohttp_client: Callable[[web.Application], Any], settings: Settings, plugin: str
) -> AsyncIterator[tuple[ChannelKit, Bench, Gateway]]:
    """The plugin's fake provider running, the plugin configured, the app serving."""
    kit = KITS[plugin]
    with kit.open(settings) as bench:
        client = await aiohttp_client(create_app(bench.settings))
        yield kit, bench, Gateway(client, client.app[RUNTIME])


async def deliver(bench: Bench, gateway: Gateway, fixture: Fixture, signing: Signing) -> int:
    return await bench.deliver(gateway, bench.sign(fixture.request, signing))


def accepted(status: int) -> bool:
    return 200 <= status < 300  # HTTP's success, and SMTP's (250)


def outbound_rows(gateway: Gateway) -> list[OutboundMessage]:
    with gateway.runtime.sessions() as session:
        return list(session.scalars(select(OutboundMessage)))


def assert_normalised(
    gateway: Gateway, message: InboundMessage, fixture: Fixture, plugin: str
) -> None:
    expected = dict(fixture.expected or {})
    vault = gateway.runtime.vault
    assert message.provider == plugin  # so that its replies go back through it
    assert vault.decrypt(message.sender_encrypted or b"", sender_binding(message)) == (
        expected.pop("sender")
    )
    stored = {key: getattr(message, key) for key in expected}
    assert stored == expected
    kept = fixture.request.form if fixture.request.form is not None else fixture.request.json
    if kept is not None:  # the payload is kept whole, encrypted, for audits
        raw = vault.decrypt_bytes(message.raw_encrypted or b"", raw_binding(message))
        assert json.loads(raw) == kept


@pytest.mark.parametrize(("plugin", "name"), FIXTURES, ids=map(fixture_id, FIXTURES))
async def test_a_fixture_is_stored_as_its_normalised_message(
    aiohttp_client, settings: Settings, plugin: str, name: str
):
    async with started(aiohttp_client, settings, plugin) as (kit, bench, gateway):
        fixture = kit.fixture(name)
        assert accepted(await deliver(bench, gateway, fixture, Signing.VALID))
        stored = inbound(gateway.runtime)
        if fixture.expected is None:
            assert stored == []
            return
        (message,) = stored
        assert_normalised(gateway, message, fixture, plugin)


@pytest.mark.parametrize("signing", [Signing.FORGED, Signing.MISSING], ids=lambda s: s.value)
@pytest.mark.parametrize("plugin", list(KITS))
async def test_a_forged_or_missing_signature_is_refused(
    aiohttp_client, settings: Settings, plugin: str, signing: Signing
):
    async with started(aiohttp_client, settings, plugin) as (kit, bench, gateway):
        status = await deliver(bench, gateway, kit.fixture(kit.contribution), signing)
        if isinstance(kit.refusal, Refused):
            assert status == kit.refusal.status
            assert inbound(gateway.runtime) == []
            return
        # Filed unverified: stored, filed for moderators as not verified, never answered.
        assert accepted(status)
        assert len(inbound(gateway.runtime)) == 1
        await asyncio.to_thread(drain, gateway.runtime)
        (filed,) = contributions(gateway.runtime)
        assert filed.sender_verified is False
        assert outbound_rows(gateway) == []
        assert bench.replies() == []


@pytest.mark.parametrize("plugin", list(KITS))
async def test_the_same_delivery_twice_is_one_contribution(
    aiohttp_client, settings: Settings, plugin: str
):
    async with started(aiohttp_client, settings, plugin) as (kit, bench, gateway):
        fixture = kit.fixture(kit.contribution)
        for _ in range(2):  # the provider's retry
            assert accepted(await deliver(bench, gateway, fixture, Signing.VALID))
        assert len(inbound(gateway.runtime)) == 1
        await asyncio.to_thread(drain, gateway.runtime)
        (filed,) = contributions(gateway.runtime)
        assert filed.sender_verified is not False


@pytest.mark.parametrize("plugin", list(KITS))
async def test_a_reply_is_rendered_for_the_medium(aiohttp_client, settings: Settings, plugin: str):
    async with started(aiohttp_client, settings, plugin) as (kit, bench, gateway):
        fixture = kit.fixture(kit.question)
        assert accepted(await deliver(bench, gateway, fixture, Signing.VALID))
        await asyncio.to_thread(drain, gateway.runtime)
        bench.check_reply(fixture)
