"""Channel is not provider: a channel carried by two plugins answers each resident through the
plugin that carried their message, and a person is one person across both.

A second SMS plugin is registered for these tests only (``othersms``, a recording sender) next
to the installed ones; Twilio is configured and first in the registry, as in a city that adds a
provider beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import ingest, plugins, settings
from gateway.messages import OutgoingText
from gateway.models import Contributor, InboundMessage, OutboundMessage
from gateway.moderation import actions
from gateway.moderation.accounts import Actor
from gateway.plugins import ChannelPlugin
from gateway.runtime import Runtime
from tests.helpers import contributions, drain, incoming_sms

RESIDENT = "+33612345678"
PARC_NUMBER = "+33100000001"
OTHER_NUMBER = "+33100000099"  # the city's number at the second provider
ALICE = Actor(name="alice", role="moderator")


class Recorder:
    name = "othersms"

    def __init__(self) -> None:
        self.sent: list[OutgoingText] = []

    def send(self, message: OutgoingText) -> str:
        self.sent.append(message)
        return f"other-{len(self.sent)}"


@pytest.fixture
def other(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder()
    enabled = {"on": True}
    plugin = ChannelPlugin(
        name="othersms",
        channels=("sms",),
        configured=lambda s: enabled["on"],
        sender=lambda s: recorder,
        address_spaces={"sms": "phone"},
    )
    registered = plugins.installed()
    monkeypatch.setattr(plugins, "installed", lambda: (*registered, plugin))
    plugins.address_space.cache_clear()
    settings._sections.cache_clear()
    recorder.enabled = enabled  # type: ignore[attr-defined]
    yield recorder
    monkeypatch.undo()
    plugins.address_space.cache_clear()
    settings._sections.cache_clear()


def deliver(runtime: Runtime, text: str, provider: str, to: str) -> int:
    message = replace(incoming_sms(text, RESIDENT, to), provider=provider)
    (stored,) = ingest.store(runtime, [message])
    assert stored.message_id is not None
    drain(runtime)
    return stored.message_id


def rows(runtime: Runtime, message_id: int) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboundMessage).where(OutboundMessage.inbound_message_id == message_id)
            )
        )


def test_a_reply_goes_back_through_the_provider_that_carried_the_message(
    runtime: Runtime, fake_twilio: FakeTwilio, other: Recorder
):
    message_id = deliver(runtime, "PARC Il faut plus de bancs", "othersms", OTHER_NUMBER)
    with runtime.sessions() as session:
        stored = session.get(InboundMessage, message_id)
        assert stored is not None and stored.provider == "othersms"
    replies = rows(runtime, message_id)
    assert replies and {(r.status, r.provider) for r in replies} == {("sent", "othersms")}
    assert len(other.sent) == len(replies)
    assert {m.recipient for m in other.sent} == {RESIDENT}
    assert {m.sender for m in other.sent} == {OTHER_NUMBER}  # from the number texted
    assert any("PARC-0001" in m.text for m in other.sent)
    assert fake_twilio.messages == []  # the first SMS plugin in the registry sent nothing


def test_the_other_provider_answers_its_own_and_a_message_without_one_goes_to_the_first(
    runtime: Runtime, fake_twilio: FakeTwilio, other: Recorder
):
    twilio_id = deliver(runtime, "BUDGET Un kiosque", "twilio", PARC_NUMBER)
    unknown_id = deliver(runtime, "VELO Des arceaux", "", PARC_NUMBER)  # stored before 0009
    assert {r.provider for r in rows(runtime, twilio_id)} == {"twilio"}
    assert {r.provider for r in rows(runtime, unknown_id)} == {"twilio"}
    assert len(fake_twilio.messages) >= 2 and other.sent == []


def test_a_provider_no_longer_configured_hands_its_replies_to_the_channels_first(
    runtime: Runtime, fake_twilio: FakeTwilio, other: Recorder
):
    other.enabled["on"] = False  # type: ignore[attr-defined]
    message_id = deliver(runtime, "PARC Des arbres", "othersms", OTHER_NUMBER)
    assert {r.provider for r in rows(runtime, message_id)} == {"twilio"}
    assert fake_twilio.messages and {m["To"] for m in fake_twilio.messages} == {RESIDENT}


def test_a_moderators_answer_goes_through_the_provider_the_contribution_came_by(
    runtime: Runtime, fake_twilio: FakeTwilio, other: Recorder
):
    deliver(runtime, "PARC Il faut plus de bancs", "othersms", OTHER_NUMBER)
    (contribution,) = contributions(runtime)
    before = len(other.sent)
    actions.reply(runtime, ALICE, contribution.id, "Les travaux commencent en mars.")
    drain(runtime)
    assert [m.text for m in other.sent[before:]][-1].endswith("Les travaux commencent en mars.")
    assert fake_twilio.messages == []


def test_one_person_across_both_providers(
    runtime: Runtime, fake_twilio: FakeTwilio, other: Recorder
):
    deliver(runtime, "PARC Il faut plus de bancs", "twilio", PARC_NUMBER)
    deliver(runtime, "STOP", "othersms", OTHER_NUMBER)
    with runtime.sessions() as session:
        (person,) = session.scalars(select(Contributor)).all()
        assert person.opted_out_at is not None
    # Opted out through the second provider: the first one's number gets nothing more.
    sent = len(fake_twilio.messages)
    deliver(runtime, "BUDGET Un kiosque", "twilio", PARC_NUMBER)
    assert len(fake_twilio.messages) == sent


def test_a_hook_is_the_carrying_providers_when_it_has_one(monkeypatch: pytest.MonkeyPatch):
    def mine(settings: object) -> str:
        return OTHER_NUMBER

    with_hook = ChannelPlugin(
        name="othersms", channels=("sms",), configured=lambda s: True, default_from=mine
    )
    without = replace(with_hook, name="thirdsms", default_from=None)
    registered = plugins.installed()
    monkeypatch.setattr(plugins, "installed", lambda: (*registered, with_hook, without))
    first = plugins.hook("sms", "default_from")
    assert first is not None and first is not mine  # the registry's first SMS plugin's
    assert plugins.hook("sms", "default_from", "othersms") is mine
    assert plugins.hook("sms", "default_from", "thirdsms") is first  # it has none: the first
    assert plugins.hook("sms", "default_from", "unknown") is first
    assert plugins.hook("sms", "thread", "othersms") is None  # nobody threads SMS
