"""Announcements to the residents who asked (gateway.announcements): INFO opts in (never by
default), INFO STOP and STOP end it; a campaign opening in a resident's neighbourhood and a
campaign's synthesis are announced once per person, paced per provider and within the hours;
erasure takes the opt-in away.

Residents opt in through the real path (an SMS stored, the worker, the engine); what the
announcements are is read from the outbox, and the sending goes through the fake Twilio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import announcements, campaigns
from gateway import conversation as engine
from gateway.conversation.words import announcements_request
from gateway.models import Campaign, Contribution, Contributor, OutboundMessage
from gateway.moderation import campaigns as campaign_admin
from gateway.moderation import synthesis
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError
from gateway.privacy import contributor_address, new_contributor_id
from gateway.references import next_reference
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.textnorm import clean, split_first_word
from tests.helpers import runtime_with, send_sms
from workers import outbound

ADMIN = Actor(name="admin", role="admin")
PARIS = ZoneInfo("Europe/Paris")
NORD, GARE, NONE_NAMED, SILENT, STOPPED = (
    "+33612000001",
    "+33612000002",
    "+33612000003",
    "+33612000004",
    "+33612000005",
)


def paris(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=PARIS).astimezone(UTC)


# -- the words (the engine is pure: no database) ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("INFO", True),
        ("info", True),
        ("Infos svp", True),
        ("NEWS", True),
        ("INFO STOP", False),
        ("info stop merci", False),
        ("STOP INFO", False),
        ("arrêt infos", False),
        ("NEWS STOP", False),
        ("STOP", None),
        ("AIDE", None),
        ("info sur le parc : il faut des bancs", None),
        ("PARC info", None),
    ],
)
def test_what_a_message_asks_of_announcements(text: str, wanted: bool | None):
    assert announcements_request(*split_first_word(clean(text))) is wanted


def context(opted_out: bool = False) -> engine.Context:
    return engine.Context(
        now=datetime(2026, 12, 7, 10, tzinfo=UTC),
        campaigns=(
            engine.CampaignInfo("parc", "Parc", "Quoi ?", ("PARC",), "open"),
            engine.CampaignInfo("budget", "Budget", "Quoi ?", ("BUDGET",), "open"),
        ),
        sender=engine.Sender(first_contact=False, opted_out=opted_out),
    )


def handle(text: str, opted_out: bool = False) -> engine.Outcome:
    return engine.handle(
        engine.State(),
        engine.Incoming(text=text, received_at=datetime(2026, 12, 7, 10, tzinfo=UTC)),
        context(opted_out),
    )


def test_info_asks_for_announcements_and_is_confirmed():
    outcome = handle("INFO")
    assert outcome.announcements is True
    assert [r.key for r in outcome.replies] == ["announce.confirmed"]
    assert not outcome.contributions and not outcome.opt_out


def test_info_stop_ends_only_announcements():
    for text in ("INFO STOP", "STOP INFO"):
        outcome = handle(text)
        assert outcome.announcements is False and not outcome.opt_out
        assert [r.key for r in outcome.replies] == ["announce.stopped"]


def test_stop_is_still_stop_and_leaves_announcements_to_the_caller():
    outcome = handle("STOP")
    assert outcome.opt_out and outcome.announcements is None


def test_an_opted_out_resident_cannot_opt_in_to_announcements_without_start():
    for text in ("INFO", "STOP INFO"):
        outcome = handle(text, opted_out=True)
        assert outcome.announcements is None and outcome.replies == ()
        assert outcome.contributions == ()  # a command, never filed as a contribution


def test_info_in_the_middle_of_a_contribution_is_not_a_command():
    outcome = handle("PARC info : il faut des bancs")
    assert outcome.announcements is None and len(outcome.contributions) == 1


# -- residents, as the database knows them -----------------------------------------------------


def resident(
    runtime: Runtime,
    number: str,
    *,
    neighbourhood: str | None = None,
    campaign: str | None = "parc",
    channel: str = "sms",
    info: bool = True,
) -> int:
    """A resident who sent a contribution (naming ``neighbourhood``), then INFO by SMS."""
    with runtime.sessions.begin() as session:
        address_hash = runtime.vault.lookup_hash(channel, number)
        contributor = Contributor(
            public_id=new_contributor_id(),
            channel=channel,
            address_hash=address_hash,
            address_encrypted=runtime.vault.encrypt(
                number, contributor_address(channel, address_hash)
            ),
        )
        session.add(contributor)
        session.flush()
        found = session.scalar(select(Campaign).where(Campaign.slug == campaign))
        session.add(
            Contribution(
                reference=next_reference(session, "PARC"),
                campaign_id=found.id if found else None,
                contributor_id=contributor.id,
                channel=channel,
                text="il faut des bancs",
                neighbourhood=neighbourhood,
                received_at=datetime.now(UTC),
            )
        )
        contributor_id = contributor.id
    if info:
        confirmed, *notice = send_sms(runtime, "INFO", number)
        assert "INFO STOP" in confirmed and len(notice) <= 1  # the data-use notice, once
    return contributor_id


def announced(runtime: Runtime, key: str = announcements.OPENED) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.message_key == key)
                .order_by(OutboundMessage.next_attempt_at)
            )
        )


def recipients_of(runtime: Runtime, rows: list[OutboundMessage]) -> set[str]:
    with runtime.sessions() as session:
        numbers = set()
        for row in rows:
            contributor = session.get(Contributor, row.contributor_id)
            assert contributor is not None
            numbers.add(
                runtime.vault.decrypt(
                    contributor.address_encrypted,
                    contributor_address(contributor.channel, contributor.address_hash),
                )
            )
        return numbers


def opted_in(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return announcements.opted_in(session)


def contributor(runtime: Runtime, contributor_id: int) -> Contributor:
    with runtime.sessions() as session:
        found = session.get(Contributor, contributor_id)
        assert found is not None
        return found


@pytest.fixture
def neighbourhood(runtime: Runtime) -> Runtime:
    """Five residents: opted in with Parc Nord, with Gare (not a Parc neighbourhood), with no
    neighbourhood named; one never opted in; one opted in then said STOP."""
    resident(runtime, NORD, neighbourhood="parc nord")  # as typed: matched loosely
    resident(runtime, GARE, neighbourhood="Gare", campaign="budget")
    resident(runtime, NONE_NAMED)
    resident(runtime, SILENT, neighbourhood="Parc Nord", info=False)
    resident(runtime, STOPPED, neighbourhood="Parc Nord")
    send_sms(runtime, "STOP", STOPPED)
    return runtime


def test_nobody_is_opted_in_by_default(runtime: Runtime):
    silent = resident(runtime, SILENT, info=False)
    send_sms(runtime, "PARC des bancs", SILENT)
    assert contributor(runtime, silent).announcements is False


def test_info_by_sms_opts_in_and_info_stop_opts_out(runtime: Runtime):
    who = resident(runtime, NORD)
    assert contributor(runtime, who).announcements is True
    assert contributor(runtime, who).announcements_at is not None
    (stopped,) = send_sms(runtime, "INFO STOP", NORD)
    assert "plus d'annonces" in stopped
    assert contributor(runtime, who).announcements is False
    assert contributor(runtime, who).opted_out is False  # only announcements ended


# -- a campaign opens ----------------------------------------------------------------------------


def test_opening_a_campaign_from_the_console_announces_it_to_the_neighbourhood_once(
    neighbourhood: Runtime,
):
    runtime = neighbourhood
    campaign_admin.set_campaign_status(runtime, ADMIN, "parc", "closed")
    campaign_admin.set_campaign_status(runtime, ADMIN, "parc", "open")
    rows = announced(runtime)
    # Parc Nord, and the one who named no neighbourhood; not Gare, not the silent one, not
    # the one who said STOP.
    assert recipients_of(runtime, rows) == {NORD, NONE_NAMED}
    assert len(rows) == 2
    text = rows[0].text
    assert "Rénovation du quartier du Parc" in text and "PARC" in text
    assert "+33100000001" in text  # the campaign's number, to call
    # Sent from an SMS number: the campaign's is a landline (voice only), so the default one.
    assert all(r.channel == "sms" and r.sender == "+33100000009" for r in rows)
    assert all(r.status == "queued" and r.next_attempt_at is not None for r in rows)
    # Reopened: nothing more.
    campaign_admin.set_campaign_status(runtime, ADMIN, "parc", "closed")
    campaign_admin.set_campaign_status(runtime, ADMIN, "parc", "open")
    assert len(announced(runtime)) == 2


def test_a_campaign_without_neighbourhoods_is_announced_to_every_opted_in_resident(
    neighbourhood: Runtime,
):
    runtime = neighbourhood
    campaign_admin.set_campaign_status(runtime, ADMIN, "velo", "open")  # a draft, no neighbourhoods
    assert recipients_of(runtime, announced(runtime)) == {NORD, GARE, NONE_NAMED}


def test_a_campaign_file_that_opens_a_campaign_announces_it_once_however_often_loaded(
    neighbourhood: Runtime, tmp_path
):
    runtime = neighbourhood
    spec = tmp_path / "gare.yaml"
    spec.write_text(
        "slug: gare\ntitle: Quartier de la Gare\nquestion: Et la gare ?\nkeywords: [GARE]\n"
        "status: open\nneighbourhoods: [Gare]\n",
        encoding="utf-8",
    )
    for _ in range(2):
        with runtime.sessions.begin() as session:
            campaigns.upsert(session, campaigns.read_files([spec]), runtime)
    rows = announced(runtime)
    assert recipients_of(runtime, rows) == {GARE, NONE_NAMED}
    assert len(rows) == 2 and "GARE" in rows[0].text
    # Loading without a runtime (a plain upsert) never sends anything either.
    with runtime.sessions.begin() as session:
        campaigns.upsert(session, campaigns.read_files([spec]))
    assert len(announced(runtime)) == 2


def test_a_campaign_file_that_leaves_a_campaign_open_announces_nothing(neighbourhood: Runtime):
    from tests.conftest import TEST_CAMPAIGNS

    with neighbourhood.sessions.begin() as session:
        campaigns.upsert(session, campaigns.read_files([TEST_CAMPAIGNS]), neighbourhood)
    assert announced(neighbourhood) == []  # parc and budget were open already


def test_stop_after_the_announcement_was_queued_withdraws_it(neighbourhood: Runtime):
    runtime = neighbourhood
    campaign_admin.set_campaign_status(runtime, ADMIN, "velo", "open")
    send_sms(runtime, "STOP", GARE)
    by_contributor = {r.contributor_id: r for r in announced(runtime)}
    with runtime.sessions() as session:
        gare = session.scalar(
            select(Contributor).where(
                Contributor.address_hash == runtime.vault.lookup_hash("sms", GARE)
            )
        )
        assert gare is not None and gare.announcements is False
    withdrawn = by_contributor[gare.id]
    assert withdrawn.status == "withheld" and withdrawn.recipient_encrypted is None
    others = [r for r in announced(runtime) if r.contributor_id != gare.id]
    assert {r.status for r in others} == {"queued"}
    # Sending it now changes nothing: it is not queued any more.
    assert outbound.send(runtime, withdrawn.id) == "skipped"


def test_oublier_erases_the_opt_in_and_the_queued_announcement(neighbourhood: Runtime):
    runtime = neighbourhood
    campaign_admin.set_campaign_status(runtime, ADMIN, "velo", "open")
    send_sms(runtime, "OUBLIER", NORD)
    assert recipients_of(runtime, announced(runtime)) == {GARE, NONE_NAMED}
    with runtime.sessions() as session:
        left = session.scalars(
            select(Contributor).where(
                Contributor.address_hash == runtime.vault.lookup_hash("sms", NORD)
            )
        ).all()
    assert left == []
    assert opted_in(runtime) == 2


def test_a_caller_is_announced_by_sms_and_a_landline_caller_is_not(runtime: Runtime):
    mobile = resident(runtime, "+33699000001", channel="voice", info=False)
    landline = resident(runtime, "+33147000001", channel="voice", info=False)
    with runtime.sessions.begin() as session:
        for who in (mobile, landline):
            found = session.get(Contributor, who)
            assert found is not None
            announcements.subscribe(session, found, True, datetime.now(UTC))
    campaign_admin.set_campaign_status(runtime, ADMIN, "velo", "open")
    (row,) = announced(runtime)
    assert row.contributor_id == mobile and row.channel == "sms"


# -- pacing and hours ----------------------------------------------------------------------------


def test_the_schedule_is_one_message_per_interval_within_the_hours():
    slots = announcements.schedule(paris(8, 19, 59, 57), 5, 1.0, (9, 20), "Europe/Paris")
    assert slots == [
        paris(8, 19, 59, 57),
        paris(8, 19, 59, 58),
        paris(8, 19, 59, 59),
        paris(9, 9),  # 20:00 is past the hours: the next morning, and on from there
        paris(9, 9, 0, 1),
    ]
    fast = announcements.schedule(paris(8, 10), 3, 25.0, (9, 20), "Europe/Paris")
    assert [b - a for a, b in pairwise(fast)] == [timedelta(seconds=0.04)] * 2


def test_a_campaign_opened_at_night_is_announced_in_the_morning(neighbourhood: Runtime):
    with neighbourhood.sessions.begin() as session:
        velo = session.scalar(select(Campaign).where(Campaign.slug == "velo"))
        assert velo is not None
        announcements.campaign_opened(neighbourhood, session, velo, paris(8, 23, 30))
    slots = [r.next_attempt_at for r in announced(neighbourhood)]
    assert slots == [paris(9, 9), paris(9, 9, 0, 1), paris(9, 9, 0, 2)]


def test_each_provider_sets_its_pace_and_the_setting_slows_them(settings: Settings):
    assert announcements.rate(settings, "sms") == 1.0  # Twilio's long code
    assert announcements.rate(settings, "telegram") == 1.0  # not configured: the default
    slower = settings.with_overrides(announcement_rate=0.5)
    assert announcements.rate(slower, "sms") == 0.5


def test_two_campaigns_opened_together_share_the_pace(neighbourhood: Runtime):
    now = paris(8, 10)
    with neighbourhood.sessions.begin() as session:
        for slug in ("velo", "ecoles"):
            campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
            assert campaign is not None
            announcements.campaign_opened(neighbourhood, session, campaign, now)
    slots = sorted(r.next_attempt_at for r in announced(neighbourhood))
    assert slots == [now + timedelta(seconds=n) for n in range(6)]


def test_announcements_are_sent_when_due_and_not_before(
    neighbourhood: Runtime, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
):
    now = [paris(8, 10)]
    monkeypatch.setattr(outbound, "now_utc", lambda: now[0])
    with neighbourhood.sessions.begin() as session:
        velo = session.scalar(select(Campaign).where(Campaign.slug == "velo"))
        assert velo is not None
        announcements.campaign_opened(neighbourhood, session, velo, now[0])
    first, second, _third = announced(neighbourhood)
    assert outbound.send(neighbourhood, second.id) == "skipped"  # its turn is a second later
    assert outbound.send(neighbourhood, first.id) == "sent"
    now[0] += timedelta(seconds=1)
    assert outbound.send(neighbourhood, second.id) == "sent"
    sent = [m for m in fake_twilio.messages if "Plan vélo" in m["Body"]]
    assert len(sent) == 2
    assert {m["To"] for m in sent} <= {NORD, GARE, NONE_NAMED}
    assert all(m["From"] == "+33100000009" for m in sent)  # velo has no number: the default


# -- a synthesis is published -------------------------------------------------------------------


def test_a_synthesis_is_announced_once_to_the_contributors_and_the_neighbourhood(
    neighbourhood: Runtime,
):
    runtime = neighbourhood
    elsewhere = resident(runtime, "+33612000009", neighbourhood="Gare", campaign="parc")
    synthesis.publish_synthesis(
        runtime, ADMIN, "parc", "https://ville.example/parc-synthese.pdf", "Trois priorités."
    )
    rows = announced(runtime, announcements.SYNTHESIS)
    # Parc Nord and no neighbourhood (interested), and the one from Gare who contributed.
    assert recipients_of(runtime, rows) == {NORD, NONE_NAMED, "+33612000009"}
    assert elsewhere in {r.contributor_id for r in rows}
    assert "https://ville.example/parc-synthese.pdf" in rows[0].text
    assert "Trois priorités." in rows[0].text
    # Corrected: the page changes, nobody is told twice.
    synthesis.publish_synthesis(runtime, ADMIN, "parc", "https://ville.example/v2.pdf", "")
    assert len(announced(runtime, announcements.SYNTHESIS)) == 3
    with runtime.sessions() as session:
        parc = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert parc is not None and parc.synthesis_url == "https://ville.example/v2.pdf"
        assert parc.synthesis_published_at is not None
        counts = announcements.announced(session, parc)
    assert counts[announcements.SYNTHESIS].queued == 3
    assert counts[announcements.OPENED].total == 0


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://ville.example/x",
        "https://",
        "https://ville.example/a b",
        "https://ville.example/\x00",
        "https://ville.example/" + "a" * 500,
        "",
    ],
)
def test_a_bad_synthesis_link_is_refused_and_changes_nothing(runtime: Runtime, url: str):
    with pytest.raises(ActionError) as refused:
        synthesis.publish_synthesis(runtime, ADMIN, "parc", url, "")
    assert refused.value.key == "console.errors.bad_synthesis_url"
    with runtime.sessions() as session:
        parc = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert parc is not None and parc.synthesis_url is None


def test_only_an_admin_publishes_a_synthesis(runtime: Runtime):
    with pytest.raises(ActionError) as refused:
        synthesis.publish_synthesis(
            runtime, Actor(name="bob", role="moderator"), "parc", "https://ville.example/s", ""
        )
    assert refused.value.status == 403


def test_the_console_counts_people_not_rows(runtime: Runtime):
    resident(runtime, NORD)
    resident(runtime, GARE)
    resident(runtime, SILENT, info=False)
    assert opted_in(runtime) == 2


def test_announcements_follow_the_residents_language(runtime: Runtime):
    resident(runtime, NORD)
    send_sms(runtime, "ENGLISH", NORD)
    campaign_admin.set_campaign_status(runtime, ADMIN, "velo", "open")
    (row,) = announced(runtime)
    assert row.text.startswith("New consultation: Plan vélo.")


def test_a_second_runtime_with_slower_pace_spaces_more(settings: Settings):
    slow = runtime_with(settings, announcement_rate=0.5)
    try:
        resident(slow, NORD)
        resident(slow, GARE)
        with slow.sessions.begin() as session:
            velo = session.scalar(select(Campaign).where(Campaign.slug == "velo"))
            assert velo is not None
            announcements.campaign_opened(slow, session, velo, paris(8, 10))
        slots = [r.next_attempt_at for r in announced(slow)]
        assert slots == [paris(8, 10), paris(8, 10, 0, 2)]
    finally:
        slow.close()


def test_an_announcement_due_at_night_waits_for_the_morning(
    neighbourhood: Runtime, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
):
    """A worker down overnight, or a retry that falls after the hours: not sent at night."""
    with neighbourhood.sessions.begin() as session:
        velo = session.scalar(select(Campaign).where(Campaign.slug == "velo"))
        assert velo is not None
        announcements.campaign_opened(neighbourhood, session, velo, paris(8, 19, 59, 59))
    first = announced(neighbourhood)[0]
    monkeypatch.setattr(outbound, "now_utc", lambda: paris(8, 23))
    assert outbound.send(neighbourhood, first.id) == "queued"
    with neighbourhood.sessions() as session:
        row = session.get(OutboundMessage, first.id)
        assert row is not None
        assert (row.status, row.next_attempt_at, row.attempts) == ("queued", paris(9, 9), 0)
    assert not [m for m in fake_twilio.messages if "Plan vélo" in m["Body"]]
    monkeypatch.setattr(outbound, "now_utc", lambda: paris(9, 9))
    assert outbound.send(neighbourhood, first.id) == "sent"


def test_what_a_person_named_on_another_channel_of_their_number_counts(runtime: Runtime):
    """INFO by SMS, a message left by phone naming Gare: one person, who lives at Gare."""
    resident(runtime, NORD, campaign=None)  # INFO by SMS, nothing named there
    resident(runtime, NORD, neighbourhood="Gare", channel="voice", info=False)
    resident(runtime, NONE_NAMED)
    campaign_admin.set_campaign_status(runtime, ADMIN, "parc", "closed")
    campaign_admin.set_campaign_status(runtime, ADMIN, "parc", "open")
    assert recipients_of(runtime, announced(runtime)) == {NONE_NAMED}
    # Told of a campaign with no neighbourhood, once, by SMS (not once per channel).
    campaign_admin.set_campaign_status(runtime, ADMIN, "velo", "open")
    velo = [r for r in announced(runtime) if "Plan vélo" in r.text]
    assert recipients_of(runtime, velo) == {NORD, NONE_NAMED} and len(velo) == 2
    assert {r.channel for r in velo} == {"sms"}
