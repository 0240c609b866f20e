"""The Twilio plugin's kit for the registry-driven harness (tests/channel_kit.py,
tests/test_channel_contract.py): its webhooks are signed with X-Twilio-Signature (HMAC-SHA1 of
the URL and the form with the account's auth token) and refused with 403; replies go out
through the fake REST API (channels/twilio/tests/fake_api.py), an SMS numbering its choices."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from channels.twilio.tests.fake_api import FakeTwilio
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
from tests.helpers import sign

SIGNATURE_HEADER = "X-Twilio-Signature"


class TwilioBench:
    def __init__(self, fake: FakeTwilio, settings: Settings) -> None:
        self.fake = fake
        self.settings = settings

    def sign(self, request: Request, signing: Signing) -> Request:
        if signing is Signing.MISSING:
            return request
        assert request.path is not None and request.form is not None
        token = self.settings.twilio_auth_token
        if signing is Signing.FORGED:
            token = "f" * len(token)  # a token of the right shape, not the account's
        url = self.settings.public_url + request.path
        return request.with_headers(**{SIGNATURE_HEADER: sign(token, url, request.form)})

    async def deliver(self, gateway: Gateway, request: Request) -> int:
        return await post(gateway, request)

    def replies(self) -> list[Any]:
        return list(self.fake.messages)

    def check_reply(self, fixture: Fixture) -> None:
        assert fixture.request.form is not None
        resident = fixture.request.form["From"]
        sent = self.fake.messages
        assert sent and {m["To"] for m in sent} == {resident}
        # An SMS shows no buttons: the choices are numbered lines of the text.
        menus = [
            m["Body"]
            for m in sent
            if re.search(r"^\s*1\W", m["Body"], re.M) and re.search(r"^\s*2\W", m["Body"], re.M)
        ]
        assert menus, f"no numbered choices in {[m['Body'] for m in sent]}"


@contextmanager
def open_bench(base: Settings) -> Iterator[TwilioBench]:
    with FakeTwilio() as fake:
        yield TwilioBench(
            fake,
            base.with_overrides(
                twilio_account_sid=fake.account_sid,
                twilio_auth_token=fake.auth_token,
                twilio_api_base=fake.base_url,
            ),
        )


def writes(fixture: Fixture, text: str, n: int) -> Request:
    assert fixture.request.form is not None and fixture.request.path is not None
    sid = f"SM{n:032x}"
    form = {
        **fixture.request.form,
        "Body": text,
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
    }
    return Request(
        fixture.request.content_type, urlencode(form).encode(), fixture.request.path, form=form
    )


KIT = ChannelKit(
    plugin="twilio",
    fixtures=load_fixtures(Path(__file__).resolve().parent.parent / "fixtures"),
    refusal=Refused(403),
    contribution="sms_campaign_keyword",  # PARC ... to the Parc's number: filed at once
    question="sms_unknown_recipient",  # to a number of no campaign: the campaigns, numbered
    open=open_bench,
    writes=writes,
    reply_text=lambda sent: str(sent["Body"]),
)
