"""One resident, two SMS providers: a number that texts through Twilio (``+33612345678``) and
through Vonage (``33612345678``) is one person. Their messages share one address hash and one
contributor; STOP sent through one provider silences them on the other; OUBLIER through one
erases what came through both. Through the real webhooks, signed as each provider signs (this
plugin's tests never import Twilio's: the base set-up's fake Twilio comes from the shared
``fake_twilio`` fixture, tests/fixtures.py, and the project's test helpers sign), and a real
Redis queue drained like a worker; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.vonage.tests.fake_api import FakeVonage
from channels.vonage.tests.helpers import inbound_sms, signed
from gateway.i18n import translate
from gateway.models import Contributor, InboundMessage
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME, SETTINGS
from tests.helpers import contributions, drain, sign, sms_form

RESIDENT = "+33612345678"  # Twilio's spelling; Vonage writes 33612345678
CITY = "+33100000001"


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Any], settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(settings))


async def via_twilio(client: TestClient[Any, Any], twilio: Any, text: str) -> None:
    path = "/webhooks/twilio/sms"
    form = sms_form(text, sender=RESIDENT, to=CITY)
    url = client.app[SETTINGS].public_url + path
    headers = {"X-Twilio-Signature": sign(twilio.auth_token, url, form)}
    response = await client.post(path, data=form, headers=headers)
    assert response.status == 200, await response.text()
    await asyncio.to_thread(drain, client.app[RUNTIME])


async def via_vonage(client: TestClient[Any, Any], vonage: FakeVonage, text: str) -> None:
    payload = inbound_sms(text, sender=RESIDENT.lstrip("+"), to=CITY.lstrip("+"))
    response = await client.post(
        "/webhooks/vonage/inbound", **signed(payload, vonage.signature_secret)
    )
    assert response.status == 200, await response.text()
    await asyncio.to_thread(drain, client.app[RUNTIME])


def to_resident(twilio: Any, vonage: FakeVonage) -> list[str]:
    """Every text the resident received, whichever provider carried it."""
    return [m["Body"] for m in twilio.messages if m["To"] == RESIDENT] + [
        m["text"] for m in vonage.messages if m["to"] == RESIDENT.lstrip("+")
    ]


def rows(client: TestClient[Any, Any], model: Any) -> list[Any]:
    with client.app[RUNTIME].sessions() as session:
        return list(session.scalars(select(model)))


async def test_one_number_through_two_providers_is_one_person(
    client: TestClient[Any, Any], fake_twilio: Any, fake_vonage: FakeVonage
):
    await via_twilio(client, fake_twilio, "PARC Des arbres le long de l'allée")
    await via_vonage(client, fake_vonage, "BUDGET Un kiosque à livres")
    messages = rows(client, InboundMessage)
    assert len(messages) == 2
    assert messages[0].sender_hash == messages[1].sender_hash
    (contributor,) = rows(client, Contributor)  # one person, one row for their SMS
    assert contributor.address_hash == messages[0].sender_hash
    filed = contributions(client.app[RUNTIME])
    assert [c.contributor_id for c in filed] == [contributor.id, contributor.id]
    # Each receipt went back through the provider that carried its message, from the number
    # the resident texted.
    (twilio_receipt,) = [m for m in fake_twilio.messages if filed[0].reference in m["Body"]]
    (vonage_receipt,) = [m for m in fake_vonage.messages if filed[1].reference in m["text"]]
    assert (twilio_receipt["To"], twilio_receipt["From"]) == (RESIDENT, CITY)
    assert (vonage_receipt["to"], vonage_receipt["from"]) == (RESIDENT[1:], CITY[1:])


@pytest.mark.parametrize("stop_through", ["vonage", "twilio"])
async def test_STOP_through_one_provider_silences_the_other(
    client: TestClient[Any, Any],
    fake_twilio: Any,
    fake_vonage: FakeVonage,
    stop_through: str,
):
    await via_twilio(client, fake_twilio, "PARC Des arbres")
    await via_vonage(client, fake_vonage, "PARC Un banc")
    if stop_through == "vonage":
        await via_vonage(client, fake_vonage, "STOP")
        assert fake_vonage.messages[-1]["text"] == translate("stop.confirmed")
    else:
        await via_twilio(client, fake_twilio, "STOP")
        assert fake_twilio.messages[-1]["Body"] == translate("stop.confirmed")
    assert all(c.opted_out for c in rows(client, Contributor))
    sent = len(to_resident(fake_twilio, fake_vonage))

    # Through the other provider (and the same one): filed, never answered.
    await via_twilio(client, fake_twilio, "PARC Une fontaine")
    await via_vonage(client, fake_vonage, "PARC Des jeux")
    assert len(contributions(client.app[RUNTIME])) == 4
    assert len(to_resident(fake_twilio, fake_vonage)) == sent


async def test_OUBLIER_through_vonage_erases_what_came_through_twilio(
    client: TestClient[Any, Any], fake_twilio: Any, fake_vonage: FakeVonage
):
    await via_twilio(client, fake_twilio, "PARC Des arbres")
    address = rows(client, Contributor)[0].address_hash
    await via_vonage(client, fake_vonage, "OUBLIER")
    assert fake_vonage.messages[-1]["text"] == translate("forget.confirmed")
    assert rows(client, Contributor) == []
    assert [m for m in rows(client, InboundMessage) if m.sender_hash == address] == []
    (kept,) = contributions(client.app[RUNTIME])  # what was said stays, detached
    assert kept.contributor_id is None
