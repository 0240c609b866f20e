"""The console's list of messages that could not be delivered (admins only): what it shows
(never an address), the retry and discard buttons, both logged; SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import residents
from gateway.models import ModerationEvent, OutboundMessage
from gateway.runtime import Runtime
from tests.console.conftest import Browser
from tests.deadletter_kit import undeliverable
from tests.helpers import drain

PATH = "/moderation/admin/outbound"
RESIDENT = "+33698765432"
FORMS = (RESIDENT, RESIDENT[1:], "0698765432", "698765432", "06 98 76 54 32")


def status(rt: Runtime, outbound_id: int) -> str:
    with rt.sessions() as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        return row.status


def logged(rt: Runtime, action: str) -> list[ModerationEvent]:
    with rt.sessions() as session:
        return list(
            session.scalars(select(ModerationEvent).where(ModerationEvent.action == action))
        )


async def test_admins_see_failed_messages_with_their_reason_and_no_address(
    rt: Runtime, admin: Browser, moderator: Browser, fake_twilio: FakeTwilio
):
    failed = undeliverable(rt, fake_twilio, RESIDENT)
    page = await admin.get(PATH)
    assert page.status == 200
    row = page.dom.one(f"tr#outbound-{failed}")
    assert "BUDGET-0001" in row.text and "twilio" in row.text and "sms" in row.text
    assert "21211" in row.one(".outbound-reason").text
    assert row.one(".outbound-attempts").text == "1"
    assert "c-" in row.text  # the pseudonymous id
    assert row.one("button[data-action=retry]").text == "Réessayer"
    assert row.one("button[data-action=discard]").text == "Abandonner"
    for form in FORMS:
        assert form not in page.text
    nav = page.dom.one(f"nav.subnav a[href='{PATH}']")
    assert nav.get("aria-current") == "page"
    # Moderators may not see it, nor act on it.
    assert (await moderator.get(PATH)).status == 403
    assert (await moderator.post(f"{PATH}/{failed}/retry")).status == 403
    assert status(rt, failed) == "failed"


async def test_the_retry_button_sends_once_and_says_so(
    rt: Runtime, admin: Browser, fake_twilio: FakeTwilio
):
    failed = undeliverable(rt, fake_twilio, RESIDENT)
    page = await admin.post(f"{PATH}/{failed}/retry")
    assert page.status == 303 and page.location == PATH
    shown = await admin.get(PATH)
    assert shown.flashes() == [f"Message {failed} remis en file d’envoi."]
    assert not shown.dom.select(f"tr#outbound-{failed}")
    again = await admin.post(f"{PATH}/{failed}/retry")  # a second click before the worker
    assert again.status == 303
    assert "déjà en file" in (await admin.get(PATH)).flashes()[0]
    drain(rt)
    assert [m["To"] for m in fake_twilio.messages] == [RESIDENT]
    assert status(rt, failed) == "sent"
    (event,) = logged(rt, "outbound_retry")
    assert event.actor == "alex"
    log = await admin.get("/moderation/log")
    assert "Message non remis : nouvel essai" in log.text


async def test_a_retry_for_a_resident_who_opted_out_is_refused_in_words(
    rt: Runtime, admin: Browser, fake_twilio: FakeTwilio
):
    failed = undeliverable(rt, fake_twilio, RESIDENT)
    residents.opt_out_address(rt, "sms", RESIDENT, actor="alex")
    page = await admin.post(f"{PATH}/{failed}/retry")
    assert page.status == 409
    (error,) = page.flashes(error=True)
    assert "désinscrite" in error
    assert page.dom.one(f"tr#outbound-{failed}")  # still listed
    drain(rt)
    assert fake_twilio.messages == [] and status(rt, failed) == "failed"


async def test_the_discard_button_keeps_it_for_the_record(
    rt: Runtime, admin: Browser, fake_twilio: FakeTwilio
):
    failed = undeliverable(rt, fake_twilio, RESIDENT)
    page = await admin.post(f"{PATH}/{failed}/discard")
    assert page.status == 303
    shown = await admin.get(PATH)
    assert shown.flashes() == [f"Message {failed} abandonné (gardé pour mémoire)."]
    assert not shown.dom.select(f"tr#outbound-{failed}")
    assert status(rt, failed) == "discarded"
    assert len(logged(rt, "outbound_discard")) == 1
    refused = await admin.post(f"{PATH}/{failed}/retry")
    assert refused.status == 409 and refused.flashes(error=True)
    drain(rt)
    assert fake_twilio.messages == []


async def test_forged_or_unknown_requests_change_nothing(
    rt: Runtime, admin: Browser, fake_twilio: FakeTwilio
):
    failed = undeliverable(rt, fake_twilio, RESIDENT)
    forged = await admin.post(f"{PATH}/{failed}/retry", csrf="")  # no CSRF token
    assert forged.status == 403
    missing = await admin.post(f"{PATH}/424242/discard")
    assert missing.status == 404
    assert status(rt, failed) == "failed"
    assert logged(rt, "outbound_retry") == [] and logged(rt, "outbound_discard") == []


async def test_an_empty_list_says_so(rt: Runtime, admin: Browser):
    page = await admin.get(PATH)
    assert page.dom.one("#outbound-empty").text == "Aucun message en échec."
    assert page.dom.one("#outbound-count").get("data-count") == "0"


async def test_a_failed_text_is_shown_as_text_not_markup(
    rt: Runtime, admin: Browser, fake_twilio: FakeTwilio
):
    failed = undeliverable(rt, fake_twilio, RESIDENT)
    with rt.sessions.begin() as session:  # a moderator's answer, as typed, that failed
        row = session.get(OutboundMessage, failed)
        assert row is not None
        row.text = '<script>alert("x")</script> <b>merci</b>'
    page = await admin.get(PATH)
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    cell = page.dom.one(f"tr#outbound-{failed} .outbound-text")
    assert cell.text == '<script>alert("x")</script> <b>merci</b>'
