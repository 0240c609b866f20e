"""Language before the campaign is known, on every channel (issue 15, item 5), through each
plugin's real entry point with its kit (tests/channel_kit.py) and its fake provider: the first
reply to a new resident offers English, in English; the switch word is obeyed and confirmed in
English; the next reply comes in English and offers nothing more. The answering machine's
keypad 9 is in channels/twilio/tests/test_voice_language.py; a third language dropped in as a
catalogue file is in channels/twilio/tests/test_third_language.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from gateway import plugins
from gateway.models import Contributor
from gateway.settings import Settings
from gateway.sms_segments import segments
from tests.channel_kit import ChannelKit, Signing
from tests.helpers import contributions, drain
from tests.test_channel_contract import KITS, Gateway, accepted, deliver, started

OFFER = "English?"  # the start of the offer on every medium (language.invite)
SWITCHED = "Done, we will now write to you in English."


def texts(kit: ChannelKit, bench: Any) -> list[str]:
    return [kit.reply_text(sent) for sent in bench.replies()]


async def write(kit: ChannelKit, bench: Any, gateway: Gateway, text: str, n: int) -> list[str]:
    """The resident writes ``text``; what they are sent in answer."""
    before = len(bench.replies())
    request = bench.sign(kit.writes(kit.fixture(kit.contribution), text, n), Signing.VALID)
    assert accepted(await bench.deliver(gateway, request))
    await asyncio.to_thread(drain, gateway.runtime)
    return texts(kit, bench)[before:]


@pytest.mark.parametrize("plugin", list(KITS))
async def test_the_first_reply_offers_english_and_the_switch_is_remembered(
    aiohttp_client, settings: Settings, plugin: str
):
    async with started(aiohttp_client, settings, plugin) as (kit, bench, gateway):
        fixture = kit.fixture(kit.contribution)
        assert accepted(await deliver(bench, gateway, fixture, Signing.VALID))
        await asyncio.to_thread(drain, gateway.runtime)
        first = texts(kit, bench)
        assert sum(OFFER in text for text in first) == 1, first  # offered once
        assert not any("Thank you" in text for text in first)  # the rest in French
        (carrier,) = [p for p in plugins.installed() if p.name == plugin]
        if "sms" in carrier.channels:
            # Joined to the receipt, which it costs no segment: still one SMS, GSM-7.
            (receipt,) = [text for text in first if OFFER in text]
            assert "réf." in receipt and segments(receipt) == 1, receipt
        assert len(contributions(gateway.runtime)) == 1

        assert await write(kit, bench, gateway, "ENGLISH", 1) == [SWITCHED]
        with gateway.runtime.sessions() as session:
            assert session.scalars(select(Contributor.language)).all() == ["en"]

        after = await write(kit, bench, gateway, "PARC More benches in the shade", 2)
        assert after and after[0].startswith("Thank you!"), after
        assert not any(OFFER in text or "FRANÇAIS" in text for text in after)
        assert len(contributions(gateway.runtime)) == 2  # the switch word was not content


@pytest.mark.parametrize("plugin", list(KITS))
async def test_a_resident_who_writes_the_switch_word_first_is_not_offered_a_language(
    aiohttp_client, settings: Settings, plugin: str
):
    async with started(aiohttp_client, settings, plugin) as (kit, bench, gateway):
        answer = await write(kit, bench, gateway, "english", 1)
        assert answer[0] == SWITCHED
        assert not any(OFFER in text or "FRANÇAIS" in text for text in answer)
        assert contributions(gateway.runtime) == []


@pytest.mark.parametrize("plugin", list(KITS))
async def test_a_switch_word_inside_a_contribution_is_content(
    aiohttp_client, settings: Settings, plugin: str
):
    async with started(aiohttp_client, settings, plugin) as (kit, bench, gateway):
        await write(kit, bench, gateway, "PARC english lessons in the park library", 1)
        (filed,) = contributions(gateway.runtime)
        assert "english lessons" in filed.text
        with gateway.runtime.sessions() as session:
            assert session.scalars(select(Contributor.language)).all() == ["fr"]
