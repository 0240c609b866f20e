"""The Vonage plugin's kit for the registry-driven harness (tests/channel_kit.py,
tests/test_channel_contract.py): its webhooks carry a JWT in ``Authorization: Bearer`` (HS256
with the account's signature secret, its ``payload_hash`` the SHA-256 of the exact body,
channels/vonage/signature.py) and are refused with 401; replies go out through the fake
Messages API (channels/vonage/tests/fake_api.py), an SMS numbering its choices, to the
resident's number without ``+``, from the number they wrote to."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from channels.vonage.signature import sign
from channels.vonage.tests.fake_api import FakeVonage
from gateway.settings import Settings
from tests.channel_kit import (
    ChannelKit,
    Fixture,
    Gateway,
    Refused,
    Request,
    Signing,
    load_fixtures,
    post,
)

FROM_NUMBER = "+33100000007"  # the number replies come from when the message does not say
FORGED = "forged-signature-secret-0123456789abcdef"  # well-formed, not the account's


class VonageBench:
    def __init__(self, fake: FakeVonage, settings: Settings) -> None:
        self.fake = fake
        self.settings = settings

    def sign(self, request: Request, signing: Signing) -> Request:
        if signing is Signing.MISSING:
            return request
        secret = self.fake.signature_secret if signing is Signing.VALID else FORGED
        # Over the exact bytes posted: the token's payload_hash is the body's SHA-256.
        return request.with_headers(Authorization=f"Bearer {sign(request.body, secret)}")

    async def deliver(self, gateway: Gateway, request: Request) -> int:
        return await post(gateway, request)

    def replies(self) -> list[Any]:
        return list(self.fake.messages)

    def check_reply(self, fixture: Fixture) -> None:
        payload = fixture.request.json
        assert isinstance(payload, dict)
        # Vonage writes numbers without +, and wants them so: the reply goes back to the
        # resident's number as Vonage gave it, from the number they wrote to.
        resident, city = payload["from"].lstrip("+"), payload["to"].lstrip("+")
        sent = self.fake.messages
        assert sent, "the fake Messages API received no reply"
        assert {m["to"] for m in sent} == {resident}, sent
        assert {m["from"] for m in sent} == {city}, sent
        assert all(m["channel"] == "sms" and m["message_type"] == "text" for m in sent)
        assert all(r["authorised"] for r in self.fake.requests)
        # An SMS shows no buttons: the choices are numbered lines of the text.
        menus = [
            m["text"]
            for m in sent
            if re.search(r"^\s*1\W", m["text"], re.M) and re.search(r"^\s*2\W", m["text"], re.M)
        ]
        assert menus, f"no numbered choices in {[m['text'] for m in sent]}"


@contextmanager
def open_bench(base: Settings) -> Iterator[VonageBench]:
    with FakeVonage() as fake:
        yield VonageBench(
            fake,
            base.with_overrides(
                vonage_api_key=fake.api_key,
                vonage_api_secret=fake.api_secret,
                vonage_signature_secret=fake.signature_secret,
                vonage_api_base=fake.base_url,
                vonage_from_number=FROM_NUMBER,
            ),
        )


def writes(fixture: Fixture, text: str, n: int) -> Request:
    payload = {**fixture.request.json, "text": text, "message_uuid": str(uuid.UUID(int=n))}
    body = json.dumps(payload).encode()
    return Request(fixture.request.content_type, body, fixture.request.path, json=payload)


KIT = ChannelKit(
    plugin="vonage",
    fixtures=load_fixtures(Path(__file__).resolve().parent.parent / "fixtures"),
    refusal=Refused(401),
    contribution="sms_campaign_keyword",  # PARC ... to the Parc's number: filed at once
    question="sms_unknown_recipient",  # to a number of no campaign: the campaigns, numbered
    open=open_bench,
    writes=writes,
    reply_text=lambda sent: str(sent["text"]),
)
