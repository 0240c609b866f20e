"""The admin page for a resident who asks in person: opt out or erase by their address, on
every channel of it, with the same effect as their own STOP and OUBLIER; admins only; the
address is neither stored nor shown back."""

from __future__ import annotations

from sqlalchemy import select

from gateway.models import Contribution, Contributor, ModerationEvent
from gateway.runtime import Runtime
from tests.console import seed
from tests.console.conftest import Browser

PATH = "/moderation/admin/residents"
NUMBER = "+33612340001"


def contributors(rt: Runtime) -> list[Contributor]:
    with rt.sessions() as session:
        return list(session.scalars(select(Contributor).order_by(Contributor.id)))


async def test_an_admin_erases_a_caller_and_texter_by_their_number(rt: Runtime, admin: Browser):
    sms = seed.contribution(rt, "Des bancs", person=seed.contributor(rt, NUMBER))
    voice = seed.contribution(
        rt, "Un arrêt de bus", channel="voice", person=seed.contributor(rt, NUMBER, "voice")
    )
    other = seed.contribution(rt, "Des arbres", person=seed.contributor(rt, "+33612340002"))
    form = await admin.get(PATH)
    assert form.status == 200
    assert form.dom.one("form#resident-form")

    # Typed as people say it: the national form finds the E.164 number.
    page = await admin.post(
        PATH, {"space": "sms", "address": "06 12 34 00 01", "action": "forget", "confirm": "1"}
    )
    assert page.status == 303
    shown = await admin.get(page.location)
    assert any("2 contribution" in f for f in shown.flashes()), shown.flashes()
    assert NUMBER not in shown.text and "06 12 34 00 01" not in shown.text
    with rt.sessions() as session:
        detached = {c.id: c.contributor_id for c in session.scalars(select(Contribution))}
        (event,) = session.scalars(
            select(ModerationEvent).where(ModerationEvent.action == "forget_resident")
        )
    assert detached[sms] is None and detached[voice] is None and detached[other] is not None
    assert [c.channel for c in contributors(rt)] == ["sms"]  # the other resident
    assert event.actor == "alex" and NUMBER not in str(event.after)


async def test_erasure_needs_the_confirmation_and_an_address(rt: Runtime, admin: Browser):
    seed.contribution(rt, "Des bancs", person=seed.contributor(rt, NUMBER))
    page = await admin.post(PATH, {"space": "sms", "address": NUMBER, "action": "forget"})
    assert page.status == 400 and page.flashes(error=True)
    page = await admin.post(
        PATH, {"space": "sms", "address": "", "action": "forget", "confirm": "1"}
    )
    assert page.status == 400
    assert len(contributors(rt)) == 1


async def test_an_admin_opts_out_a_number_not_seen_yet(rt: Runtime, admin: Browser):
    page = await admin.post(PATH, {"space": "sms", "address": NUMBER, "action": "opt_out"})
    assert page.status == 303
    (row,) = contributors(rt)
    assert row.opted_out and row.address_hash == rt.vault.lookup_hash("sms", NUMBER)
    assert row.address_encrypted is None  # nothing to write to, nothing kept


async def test_moderators_cannot_reach_the_page(rt: Runtime, moderator: Browser):
    assert (await moderator.get(PATH)).status == 403
    seed.contribution(rt, "Des bancs", person=seed.contributor(rt, NUMBER))
    page = await moderator.post(
        PATH, {"space": "sms", "address": NUMBER, "action": "forget", "confirm": "1"}
    )
    assert page.status == 403
    assert len(contributors(rt)) == 1
