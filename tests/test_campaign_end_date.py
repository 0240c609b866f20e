"""A campaign's end date (``closes_at``): after it, the campaign answers as a closed one, with
the day it ended; what a resident sent before it is still taken."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from gateway import campaigns
from gateway.clock import now_utc
from gateway.conversation import CampaignInfo, Context, Incoming, Sender, State, handle
from gateway.models import Campaign
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from tests.helpers import contributions, send_sms

PARC = CampaignInfo(
    slug="parc",
    title="Rénovation du quartier du Parc",
    question="Que souhaitez-vous pour le futur parc ?",
    keywords=("PARC",),
    status="open",
    closes_at=datetime(2027, 3, 31, 22, 0, tzinfo=UTC),  # 1 April, midnight in Paris
    closes_on="2027-03-31",
)


def _send(text: str, at: datetime, now: datetime) -> tuple[list[str], int]:
    context = Context(
        now=now, campaigns=(PARC,), sender=Sender(first_contact=False, opted_out=False)
    )
    outcome = handle(State(), Incoming(text=text, received_at=at), context)
    return [r.key for r in outcome.replies], len(outcome.contributions)


def test_the_engine_closes_a_campaign_at_its_end_date_by_the_message_s_time():
    before = datetime(2027, 3, 31, 21, 59, tzinfo=UTC)
    after = datetime(2027, 3, 31, 22, 0, tzinfo=UTC)
    # Sent before the end, worked through after (a queue that was down): taken.
    keys, filed = _send("PARC des bancs", before, now=after + timedelta(hours=3))
    assert filed == 1 and "campaign.ended" not in keys
    keys, filed = _send("PARC des bancs", after, now=after)
    assert (keys, filed) == (["campaign.ended"], 0)


def test_the_closed_reply_names_the_day_only_once_the_end_date_passed():
    closed_early = replace(PARC, status="closed")  # an admin closed it before its end date
    context = Context(
        now=datetime(2027, 1, 5, tzinfo=UTC),
        campaigns=(closed_early,),
        sender=Sender(first_contact=False, opted_out=False),
    )
    outcome = handle(
        State(), Incoming(text="PARC idée", received_at=datetime(2027, 1, 5, tzinfo=UTC)), context
    )
    assert [r.key for r in outcome.replies] == ["campaign.closed"]


def test_an_end_date_is_read_in_the_city_s_time():
    def at(value: object) -> datetime | None:
        return campaigns.end_instant(value, "Europe/Paris")

    # A date: open through that whole day, local time (UTC+2 in summer, +1 in winter).
    assert at("2027-06-30") == datetime(2027, 6, 30, 22, 0, tzinfo=UTC)
    assert at("2027-01-31") == datetime(2027, 1, 31, 23, 0, tzinfo=UTC)
    assert at("2027-06-30T18:00") == datetime(2027, 6, 30, 16, 0, tzinfo=UTC)
    assert at("2027-06-30T18:00:00+00:00") == datetime(2027, 6, 30, 18, 0, tzinfo=UTC)
    assert at(None) is None and at("") is None
    for bad in ("31/03/2027", "demain", "2027-02-30", 20270331):
        try:
            at(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was taken")


def _close_parc(runtime: Runtime, closes_at: datetime) -> None:
    with runtime.sessions.begin() as session:
        parc = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert parc is not None
        parc.closes_at = closes_at


def test_an_sms_after_the_end_date_gets_the_polite_closed_reply(runtime: Runtime):
    _close_parc(runtime, now_utc() - timedelta(days=2))
    replies = send_sms(runtime, "PARC encore une idée pour le parc", "+33611110001")
    ended = (now_utc() - timedelta(days=2)).astimezone(campaigns.ZoneInfo("Europe/Paris"))
    assert any(
        "est terminée depuis le" in r and ended.strftime("%d/%m/%Y") in r for r in replies
    ), replies
    assert contributions(runtime) == []  # as a closed campaign: answered, not filed
    # In English for an English-speaking resident.
    send_sms(runtime, "ENGLISH", "+33611110002")
    replies = send_sms(runtime, "PARC one more idea", "+33611110002")
    assert any("ended on" in r for r in replies), replies


def test_an_end_date_still_to_come_changes_nothing(runtime: Runtime):
    _close_parc(runtime, now_utc() + timedelta(days=2))
    send_sms(runtime, "PARC des bancs", "+33611110003")
    (filed,) = contributions(runtime)
    assert filed.reference.startswith("PARC-")


async def test_the_public_pages_show_a_campaign_past_its_end_date_as_ended(
    runtime: Runtime, settings: Settings, aiohttp_client: Any
):
    client = await aiohttp_client(create_app(settings))
    page = await (await client.get("/campaigns/parc")).text()
    assert "État de la consultation : Ouverte" in page
    ended_before = (await (await client.get("/campaigns")).text()).count("badge--closed")
    _close_parc(runtime, now_utc() - timedelta(minutes=1))
    page = await (await client.get("/campaigns/parc")).text()
    assert "État de la consultation : Terminée" in page
    index = await (await client.get("/campaigns")).text()
    assert index.count("badge--closed") == ended_before + 1  # parc's card, besides ecoles
