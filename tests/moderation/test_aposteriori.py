"""Moderation a posteriori (gateway.moderation.aposteriori): the campaign file's key, what is
published at once and what waits for a moderator, and what each decision does afterwards.
Through the real SMS pipeline (storage, worker, engine) on SQLite and PostgreSQL with a real
Redis; the voice path with real Vosk on a recording served by the fake Twilio."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from channels.twilio.tests.fake_api import FakeTwilio
from channels.twilio.tests.test_voice_recordings import (
    CALLER,
    drain_all,
    korean_model,
    recording_callback,
    speech_wav,
    start_call,
)
from gateway import campaigns
from gateway.clock import now_utc
from gateway.models import Campaign, Contribution, ModerationEvent, OutboundMessage
from gateway.moderation import actions, aposteriori, queries
from gateway.moderation.accounts import Actor
from gateway.publication import decidim_api
from gateway.publication.records import broadcastable, public_records
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.helpers import contributions, runtime_with, send_sms

__all__ = ["korean_model", "speech_wav"]  # fixtures, used by name

PARC = "+33100000001"
ALICE = Actor(name="alice", role="moderator")
BASE: dict[str, Any] = {"slug": "parc", "title": "Parc", "keywords": ["PARC"]}


def set_mode(runtime: Runtime, mode: str = "a_posteriori", slug: str = "parc") -> None:
    with runtime.sessions.begin() as session:
        session.execute(update(Campaign).where(Campaign.slug == slug).values(moderation_mode=mode))


def latest(runtime: Runtime) -> Contribution:
    return contributions(runtime)[-1]


def outcome_keys(runtime: Runtime, contribution_id: int) -> list[str | None]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboundMessage.message_key)
                .where(OutboundMessage.contribution_id == contribution_id)
                .order_by(OutboundMessage.id)
            )
        )


def public_refs(runtime: Runtime) -> dict[str, str]:
    with runtime.sessions() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert campaign is not None
        return {r.reference: r.outcome for r in public_records(session, campaign, runtime.vault)}


# -- the campaign file ------------------------------------------------------------------------


def test_the_campaign_file_says_the_mode_and_a_priori_is_the_default() -> None:
    assert campaigns.parse(BASE, "parc.yaml").moderation_mode == "a_priori"
    spec = campaigns.parse({**BASE, "moderation": "a_posteriori"}, "parc.yaml")
    assert spec.moderation_mode == "a_posteriori"


@pytest.mark.parametrize("value", ["a posteriori", "posteriori", "A_POSTERIORI", 1, ["a_priori"]])
def test_an_unknown_mode_is_refused_with_the_file_named(value: Any) -> None:
    with pytest.raises(campaigns.CampaignFileError) as error:
        campaigns.parse({**BASE, "moderation": value}, "parc.yaml")
    assert "parc.yaml" in str(error.value) and "a_priori, a_posteriori" in str(error.value)


def test_loading_the_file_again_changes_the_mode(runtime: Runtime) -> None:
    spec = campaigns.parse({**BASE, "moderation": "a_posteriori"}, "parc.yaml")
    with runtime.sessions.begin() as session:
        assert campaigns.upsert(session, [spec]) == [("parc", "updated")]
    with runtime.sessions() as session:
        mode = session.scalar(select(Campaign.moderation_mode).where(Campaign.slug == "parc"))
    assert mode == "a_posteriori"


# -- filing -----------------------------------------------------------------------------------


def test_a_priori_nothing_changes(runtime: Runtime) -> None:
    replies = send_sms(runtime, "PARC Il faut des bancs, 06 11 22 33 44", "+33611111111", PARC)
    c = latest(runtime)
    assert (c.status, c.awaiting_review, c.public_text) == ("pending", False, None)
    assert "enregistrée" in replies[0]
    assert public_refs(runtime) == {}


def test_a_posteriori_published_at_once_redacted_and_logged(runtime: Runtime) -> None:
    set_mode(runtime)
    replies = send_sms(
        runtime, "PARC Il faut des bancs. Je suis au 06 11 22 33 44", "+33611111111", PARC
    )
    c = latest(runtime)
    assert (c.status, c.awaiting_review, c.moderated_by) == ("published", True, "system")
    assert c.public_text == "Il faut des bancs. Je suis au [téléphone]"
    assert c.text.endswith("06 11 22 33 44")  # what the resident wrote is kept for moderators
    assert replies[0].startswith("Merci ! Contribution publiée, réf. PARC-")
    assert public_refs(runtime) == {c.reference: "published"}
    with runtime.sessions() as session:
        (event,) = session.scalars(select(ModerationEvent))
    assert (event.actor, event.action, event.contribution_id) == ("system", "auto_publish", c.id)
    assert event.after is not None and event.after["public_text"] == c.public_text


def test_text_added_afterwards_is_redacted_into_the_public_version(runtime: Runtime) -> None:
    set_mode(runtime)
    send_sms(runtime, "PARC Il faut des bancs", "+33611111111", PARC)
    # Not a neighbourhood: the engine appends it to the contribution just filed.
    send_sms(runtime, "et écrivez-moi à paul@example.net", "+33611111111", PARC)
    c = latest(runtime)
    assert "paul@example.net" in c.text
    assert c.public_text == "Il faut des bancs\net écrivez-moi à [e-mail]"


def test_a_moderators_public_version_is_not_overwritten_by_an_addition(runtime: Runtime) -> None:
    set_mode(runtime)
    send_sms(runtime, "PARC Il faut des bancs", "+33611111111", PARC)
    c = latest(runtime)
    actions.set_public_text(runtime, ALICE, c.id, "Des bancs, s'il vous plaît.")
    send_sms(runtime, "et des arbres aussi", "+33611111111", PARC)
    assert latest(runtime).public_text == "Des bancs, s'il vous plaît."


def test_a_copied_text_waits_for_a_moderator(runtime: Runtime) -> None:
    set_mode(runtime)
    tract = "PARC Non à la fermeture du square, signez la pétition de l'association"
    send_sms(runtime, tract, "+33611111111", PARC)
    replies = send_sms(runtime, tract, "+33622222222", PARC)
    first, copy = contributions(runtime)
    assert first.status == "published"
    assert (copy.status, copy.awaiting_review, copy.group_id) == ("pending", False, first.id)
    assert "enregistrée" in replies[0]  # the receipt says what is true
    assert public_refs(runtime) == {first.reference: "published"}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sender_verified": False}, "unverified_sender"),
        ({"text": "   "}, "empty"),
        ({"transcription_status": "pending"}, "no_transcript"),
        ({"transcription_status": "failed"}, "no_transcript"),
        ({"status": "rejected"}, "decided"),
    ],
)
def test_what_is_held_back(changes: dict[str, Any], reason: str) -> None:
    campaign = Campaign(slug="parc", title="Parc", moderation_mode="a_posteriori")
    contribution = Contribution(
        id=7, group_id=7, status="pending", text="Des bancs", sender_verified=None
    )
    assert aposteriori.held_back(contribution, campaign) is None
    for name, value in changes.items():
        setattr(contribution, name, value)
    assert aposteriori.held_back(contribution, campaign) == reason
    assert aposteriori.held_back(contribution, None) == "a_priori"


def test_an_unverified_email_is_not_published(runtime: Runtime) -> None:
    set_mode(runtime)
    send_sms(runtime, "PARC Il faut des bancs", "+33611111111", PARC)
    c = latest(runtime)
    with runtime.sessions.begin() as session:
        found = session.get(Contribution, c.id)
        assert found is not None
        found.status, found.awaiting_review, found.sender_verified = "pending", False, False
        assert aposteriori.publish_at_once(session, found, now_utc()) is False
        assert found.status == "pending"


# -- afterwards: the moderators ----------------------------------------------------------------


def test_the_queue_lists_what_awaits_review(runtime: Runtime, settings: Settings) -> None:
    set_mode(runtime)
    send_sms(runtime, "PARC Il faut des bancs", "+33611111111", PARC)
    send_sms(runtime, "PARC Des arbres le long de l'avenue", "+33622222222", PARC)
    reviewed, waiting = contributions(runtime)
    actions.decide(runtime, ALICE, [reviewed.id], "publish")
    tz = ZoneInfo(settings.timezone)
    with runtime.sessions() as session:
        page = queries.queue(session, queries.QueueFilter.from_params({"status": "review"}), tz)
        published = queries.queue(session, queries.QueueFilter(status="published"), tz)
    assert [row.contribution.id for row in page.rows] == [waiting.id]
    assert page.to_review == 1 and page.total == 1
    assert published.counts["published"] == 2 and published.to_review == 1


def test_rejecting_withdraws_and_tells_the_resident_once(runtime: Runtime) -> None:
    set_mode(runtime)
    send_sms(runtime, "PARC Il faut des bancs", "+33611111111", PARC)
    c = latest(runtime)
    actions.decide(runtime, ALICE, [c.id], "reject", reason="Doublon d'une autre contribution")
    actions.decide(runtime, ALICE, [c.id], "reject", reason="Doublon d'une autre contribution")
    with runtime.sessions() as session:
        found = session.get(Contribution, c.id)
        assert found is not None
        assert (found.status, found.awaiting_review, found.moderated_by) == (
            "rejected",
            False,
            "alice",
        )
    assert public_refs(runtime) == {c.reference: "rejected"}
    keys = outcome_keys(runtime, c.id)
    assert keys.count("outcome.rejected") == 1 and "outcome.published" not in keys


@pytest.mark.parametrize("decision", ["spam", "reopen"])
def test_spam_and_reopen_take_it_off_the_public_page_without_a_notice(
    runtime: Runtime, decision: str
) -> None:
    set_mode(runtime)
    send_sms(runtime, "PARC Achetez des montres", "+33611111111", PARC)
    c = latest(runtime)
    actions.decide(runtime, ALICE, [c.id], decision)
    assert public_refs(runtime) == {}
    assert [k for k in outcome_keys(runtime, c.id) if k and k.startswith("outcome.")] == []
    assert latest(runtime).awaiting_review is False


def test_decidim_waits_for_the_review(runtime: Runtime) -> None:
    set_mode(runtime)
    send_sms(runtime, "PARC Il faut des bancs", "+33611111111", PARC)
    send_sms(runtime, "PARC Des arbres le long de l'avenue", "+33622222222", PARC)
    reviewed, waiting = contributions(runtime)
    actions.decide(runtime, ALICE, [reviewed.id], "publish")
    with runtime.sessions() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert campaign is not None
        records = public_records(session, campaign, runtime.vault, include_rejected=False)
    report = decidim_api.Report(campaign="parc", component=7, dry_run=True)
    decidim_api._dry_run(report, records, {}, runtime.settings, "fr")
    assert [(o.reference, o.action) for o in report.outcomes] == [
        (reviewed.reference, "would_publish"),
        (waiting.reference, "skipped"),
    ]
    assert report.outcomes[1].detail == decidim_api.AWAITING_REVIEW


# -- a voice message ------------------------------------------------------------------------


def test_a_voice_message_is_published_once_transcribed_its_audio_after_review(
    settings: Settings, fake_twilio: FakeTwilio, speech_wav: bytes, korean_model: str
) -> None:
    rt = runtime_with(settings, vosk_model=korean_model)
    try:
        set_mode(rt)
        start_call(rt, "CA" + "1" * 32, consent=True)
        recording_callback(rt, fake_twilio, speech_wav)
        drain_all(rt)
        (c,) = contributions(rt)
        assert c.transcription_status == "done" and c.transcript
        assert (c.status, c.awaiting_review, c.moderated_by) == ("published", True, "system")
        assert c.public_text == aposteriori.automatic_public_text(c.transcript)
        assert broadcastable(c) is False  # the caller said yes, but nobody has listened yet
        bodies = [m["Body"] for m in fake_twilio.wait_for_messages(2) if m["To"] == CALLER]
        assert len(bodies) == 2 and "enregistrée" in bodies[0] and "est publiée" in bodies[1]

        actions.decide(rt, ALICE, [c.id], "publish")
        drain_all(rt)
        (c,) = contributions(rt)
        assert broadcastable(c) is True
        assert outcome_keys(rt, c.id).count("outcome.published") == 1
        assert len([m for m in fake_twilio.messages if m["To"] == CALLER]) == 2
    finally:
        rt.close()
