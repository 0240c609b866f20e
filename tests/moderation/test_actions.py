"""Every moderation action, on SQLite and PostgreSQL, with the real pipeline filing the
contributions, a real Redis queue and a fake Twilio receiving the residents' notices."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.clock import now_utc
from gateway.models import Contribution, Contributor, ModerationEvent, OutboundMessage
from gateway.moderation import actions
from gateway.moderation import campaigns as campaign_admin
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError
from gateway.privacy import contributor_address, new_contributor_id
from gateway.references import next_reference
from gateway.runtime import Runtime
from tests.helpers import contributions, drain, runtime_with, send_sms

PARC = "+33100000001"
ALICE = Actor(name="alice", role="moderator")
ADMIN = Actor(name="root", role="admin")


def file_sms(runtime: Runtime, text: str, sender: str) -> Contribution:
    send_sms(runtime, f"PARC {text}", sender, PARC)
    with runtime.sessions() as session:
        return session.scalars(select(Contribution).order_by(Contribution.id.desc()).limit(1)).one()


def file_voice(runtime: Runtime, number: str, transcript: str = "il faut des bancs") -> int:
    """A voice contribution as the recording job files it, with its transcript done."""
    with runtime.sessions.begin() as session:
        contributor = Contributor(
            public_id=new_contributor_id(),
            channel="voice",
            address_hash=runtime.vault.lookup_hash("voice", number),
            address_encrypted=runtime.vault.encrypt(
                number, contributor_address("voice", runtime.vault.lookup_hash("voice", number))
            ),
        )
        session.add(contributor)
        session.flush()
        contribution = Contribution(
            reference=next_reference(session, "PARC"),
            contributor_id=contributor.id,
            channel="voice",
            text=transcript,
            transcript=transcript,
            transcription_status="done",
            audio_path="audio/x.wav",
            received_at=now_utc(),
        )
        session.add(contribution)
        session.flush()
        return contribution.id


def notices(runtime: Runtime, contribution_id: int) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboundMessage)
                .where(
                    OutboundMessage.contribution_id == contribution_id,
                    OutboundMessage.message_key.like("outcome.%"),
                )
                .order_by(OutboundMessage.id)
            )
        )


def events(runtime: Runtime, contribution_id: int | None = None) -> list[ModerationEvent]:
    with runtime.sessions() as session:
        query = select(ModerationEvent).order_by(ModerationEvent.id)
        if contribution_id is not None:
            query = query.where(ModerationEvent.contribution_id == contribution_id)
        return list(session.scalars(query))


def reload(runtime: Runtime, contribution_id: int) -> Contribution:
    with runtime.sessions() as session:
        found = session.get(Contribution, contribution_id)
        assert found is not None
        return found


def test_publish_logs_anonymises_and_tells_the_resident(runtime: Runtime, fake_twilio: FakeTwilio):
    c = file_sms(runtime, "Des bancs svp, rappelez-moi au 06 12 34 56 78", "+33611111111")
    done = actions.decide(runtime, ALICE, [c.id], "publish")
    assert done.changed == [c.id] and len(done.outbound) == 1
    after = reload(runtime, c.id)
    assert after.status == "published" and after.moderated_by == "alice"
    # Published without a public version written: the suggested redactions are applied.
    assert after.public_text == "Des bancs svp, rappelez-moi au [téléphone]"
    assert after.text.endswith("06 12 34 56 78")  # the original is kept as received
    (event,) = events(runtime, c.id)
    assert (event.actor, event.action) == ("alice", "publish")
    assert event.before == {"status": "pending", "public_text": None}
    assert event.after is not None and event.after["status"] == "published"
    assert event.after["notice"] == "queued"
    (notice,) = notices(runtime, c.id)
    assert notice.message_key == "outcome.published" and notice.channel == "sms"
    assert c.reference in notice.text
    drain(runtime)
    last = fake_twilio.messages[-1]
    assert last["To"] == "+33611111111" and c.reference in last["Body"]
    assert last["From"] == PARC  # answered from the number the resident texted


def test_a_repeated_decision_changes_nothing_and_sends_nothing_twice(runtime: Runtime):
    c = file_sms(runtime, "Un terrain de basket", "+33611111112")
    actions.decide(runtime, ALICE, [c.id], "publish")
    again = actions.decide(runtime, ALICE, [c.id], "publish")
    assert again.changed == [] and again.outbound == []
    assert len(events(runtime, c.id)) == 1 and len(notices(runtime, c.id)) == 1


def test_reject_needs_a_public_reason_which_the_resident_receives(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    c = file_sms(runtime, "Hors sujet total", "+33611111113")
    for reason in (None, "", "   "):
        with pytest.raises(ActionError) as refused:
            actions.decide(runtime, ALICE, [c.id], "reject", reason=reason)
        assert refused.value.key == "console.errors.reason_required"
    assert reload(runtime, c.id).status == "pending" and events(runtime, c.id) == []
    actions.decide(runtime, ALICE, [c.id], "reject", reason="Hors du périmètre du projet")
    after = reload(runtime, c.id)
    assert after.status == "rejected" and after.decision_reason == "Hors du périmètre du projet"
    (notice,) = notices(runtime, c.id)
    assert notice.message_key == "outcome.rejected"
    assert "Hors du périmètre du projet" in notice.text
    drain(runtime)
    assert "Hors du périmètre du projet" in fake_twilio.messages[-1]["Body"]


def test_spam_and_reopen_tell_the_resident_nothing(runtime: Runtime):
    c = file_sms(runtime, "Gagnez un iPhone", "+33611111114")
    actions.decide(runtime, ALICE, [c.id], "spam")
    assert reload(runtime, c.id).status == "spam"
    actions.decide(runtime, ALICE, [c.id], "reopen")
    assert reload(runtime, c.id).status == "pending"
    assert notices(runtime, c.id) == []
    assert [e.action for e in events(runtime, c.id)] == ["spam", "reopen"]


def test_unknown_decision_and_unknown_contribution_are_refused(runtime: Runtime):
    c = file_sms(runtime, "Des fleurs", "+33611111115")
    with pytest.raises(ActionError) as bad:
        actions.decide(runtime, ALICE, [c.id], "delete")
    assert bad.value.status == 400
    with pytest.raises(ActionError) as missing:
        actions.decide(runtime, ALICE, [c.id, 999_999], "publish")
    assert missing.value.status == 404
    # One missing id refuses the whole batch: nothing half-done.
    assert reload(runtime, c.id).status == "pending"


def test_opted_out_and_forgotten_residents_are_not_notified(runtime: Runtime):
    quiet = file_sms(runtime, "Plus de lumière", "+33611111116")
    send_sms(runtime, "STOP", "+33611111116", PARC)
    gone = file_sms(runtime, "Moins de bruit", "+33611111117")
    send_sms(runtime, "OUBLIER", "+33611111117", PARC)
    done = actions.decide(runtime, ALICE, [quiet.id, gone.id], "publish")
    assert done.outbound == []
    assert notices(runtime, quiet.id) == [] and notices(runtime, gone.id) == []
    outcome = {e.contribution_id: e.after["notice"] for e in events(runtime) if e.after}
    assert outcome == {quiet.id: "opted_out", gone.id: "forgotten"}


def test_callers_are_told_by_sms_from_a_mobile_and_not_from_a_landline(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    mobile = file_voice(runtime, "+33622222222")
    landline = file_voice(runtime, "+33144444444")
    actions.decide(runtime, ALICE, [mobile, landline], "publish")
    (notice,) = notices(runtime, mobile)
    assert notice.channel == "sms"
    # A landline cannot be texted: the notice is kept as failed, for moderators to see.
    (unsent,) = notices(runtime, landline)
    assert unsent.status == "failed" and unsent.recipient_encrypted is None
    assert unsent.error == actions.NOTICE_PROBLEMS["landline"]
    (event,) = events(runtime, landline)
    assert event.after is not None and event.after["notice"] == "landline"
    drain(runtime)
    assert fake_twilio.messages[-1]["To"] == "+33622222222"


def test_notices_and_answers_are_under_the_per_resident_cap(runtime: Runtime):
    """A bulk decision or a moderator's answers count with the conversation's replies: past
    REPLIES_PER_HOUR, notices are withheld (visible) and a free answer is refused (429)."""
    rt = runtime_with(runtime.settings, replies_per_hour=4)
    try:
        for i in range(2):  # receipt and first-contact notice, then a receipt: 3 this hour
            send_sms(rt, f"BUDGET Idée {i}", "+33611111120", "+33100000002")
        filed = contributions(rt)
        done = actions.decide(rt, ALICE, [c.id for c in filed], "publish")
        assert len(done.outbound) == 1  # the fourth message of the hour; the fifth is held
        held = notices(rt, filed[1].id)
        assert [n.status for n in held] == ["withheld"]
        with pytest.raises(ActionError) as refused:
            actions.reply(rt, ALICE, filed[0].id, "Merci pour votre idée !")
        assert refused.value.status == 429 and refused.value.key == "console.notice.withheld"
        assert [e.action for e in events(rt, filed[0].id)] == ["publish"]  # nothing kept
    finally:
        rt.close()


def test_bulk_decision_logs_and_notifies_each_contribution(runtime: Runtime):
    first = file_sms(runtime, "Un kiosque", "+33611111118")
    second = file_sms(runtime, "Une fontaine", "+33611111119")
    done = actions.decide(runtime, ALICE, [first.id, second.id, first.id], "publish")
    assert sorted(done.changed) == sorted([first.id, second.id])
    assert len(done.outbound) == 2 and len(done.events) == 2
    with pytest.raises(ActionError):
        actions.decide(runtime, ALICE, [], "publish")


def test_a_tract_sent_by_several_residents_is_one_group_decided_at_once(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    tract = "Non à la bétonisation du parc, gardons nos arbres et nos espaces verts !"
    senders = ["+33633333331", "+33633333332", "+33633333333", "+33633333334"]
    filed = [
        file_sms(runtime, tract, senders[0]),
        file_sms(runtime, tract.upper(), senders[1]),  # same text, other case
        file_sms(runtime, tract.replace("gardons", "protégeons"), senders[2]),  # near-identical
        file_sms(runtime, "Je voudrais une aire de jeux pour les petits", senders[3]),
    ]
    groups = [reload(runtime, c.id).group_id for c in filed]
    assert groups[0] == groups[1] == groups[2] == filed[0].id
    assert groups[3] == filed[3].id
    before = len(fake_twilio.messages)
    done = actions.decide_group(runtime, ALICE, filed[0].id, "reject", reason="Pétition transmise")
    assert sorted(done.changed) == sorted(c.id for c in filed[:3])
    assert reload(runtime, filed[3].id).status == "pending"
    drain(runtime)
    told = [m["To"] for m in fake_twilio.messages[before:]]
    assert sorted(told) == sorted(senders[:3])  # each sender counted and told
    with pytest.raises(ActionError) as empty:
        actions.decide_group(runtime, ALICE, filed[0].id, "publish")
    assert empty.value.status == 409  # nothing pending left in the group


def test_classify_validates_and_logs_only_what_changed(runtime: Runtime):
    c = file_sms(runtime, "Des buts de foot", "+33611111120")
    done = actions.classify(
        runtime,
        ALICE,
        c.id,
        category="proposal",
        themes=["Jeux et sport"],
        tags=["foot", " Foot ", "jeunes"],
        neighbourhood="Parc Sud",
        kind="collective",
    )
    after = reload(runtime, c.id)
    assert after.category == "proposal" and after.themes == ["Jeux et sport"]
    assert after.tags == ["foot", "jeunes"] and after.neighbourhood == "Parc Sud"
    assert after.kind == "collective"
    (event,) = events(runtime, c.id)
    assert event.action == "classify" and event.before == {
        "category": None,
        "themes": [],
        "tags": [],
        "neighbourhood": None,
        "kind": "individual",
    }
    assert done.outbound == []
    actions.classify(runtime, ALICE, c.id, category="proposal", tags=["foot", "jeunes", "été"])
    last = events(runtime, c.id)[-1]
    assert last.before == {"tags": ["foot", "jeunes"]} and last.after == {
        "tags": ["foot", "jeunes", "été"]
    }
    for bad in ({"category": "rant"}, {"kind": "crowd"}, {"themes": ["Pas un thème"]}):
        with pytest.raises(ActionError):
            actions.classify(runtime, ALICE, c.id, **bad)  # type: ignore[arg-type]
    with pytest.raises(ActionError):
        actions.classify(runtime, ALICE, c.id, tags=[f"t{i}" for i in range(50)])
    assert len(events(runtime, c.id)) == 2


def test_transcript_correction_keeps_the_machine_version(runtime: Runtime):
    voice = file_voice(runtime, "+33622222223", "il faut des banques")
    actions.correct_transcript(runtime, ALICE, voice, "Il faut des bancs.")
    actions.correct_transcript(runtime, ALICE, voice, "Il faut des bancs, merci.")
    after = reload(runtime, voice)
    assert after.transcript == after.text == "Il faut des bancs, merci."
    assert after.transcript_machine == "il faut des banques"  # the first, machine, version
    assert [e.action for e in events(runtime, voice)] == ["correct_transcript"] * 2
    sms = file_sms(runtime, "Texte écrit", "+33611111121")
    with pytest.raises(ActionError) as refused:
        actions.correct_transcript(runtime, ALICE, sms.id, "autre")
    assert refused.value.status == 409


def test_public_version_is_kept_apart_from_the_text(runtime: Runtime):
    c = file_sms(runtime, "Je m'appelle Marie Dupont, 12 rue des Lilas", "+33611111122")
    actions.set_public_text(runtime, ALICE, c.id, "Je m'appelle [nom], [adresse]")
    after = reload(runtime, c.id)
    assert after.public_text == "Je m'appelle [nom], [adresse]"
    assert after.text == "Je m'appelle Marie Dupont, 12 rue des Lilas"
    actions.decide(runtime, ALICE, [c.id], "publish")
    assert reload(runtime, c.id).public_text == "Je m'appelle [nom], [adresse]"
    with pytest.raises(ActionError):
        actions.set_public_text(runtime, ALICE, c.id, "  ")
    with pytest.raises(ActionError):
        actions.set_public_text(runtime, ALICE, c.id, "x" * 6000)


def test_reply_reaches_the_resident_or_is_refused_and_not_logged(
    runtime: Runtime, fake_twilio: FakeTwilio
):
    c = file_sms(runtime, "Quand les travaux ?", "+33611111123")
    done = actions.reply(runtime, ALICE, c.id, "Les travaux commencent en mars.")
    (notice,) = notices(runtime, c.id)
    assert notice.message_key == "outcome.answer" and done.outbound == [notice.id]
    assert "Les travaux commencent en mars." in notice.text and c.reference in notice.text
    drain(runtime)
    assert fake_twilio.messages[-1]["To"] == "+33611111123"
    send_sms(runtime, "STOP", "+33611111123", PARC)
    with pytest.raises(ActionError) as refused:
        actions.reply(runtime, ALICE, c.id, "Encore un mot")
    assert refused.value.key == "console.notice.opted_out"
    assert [e.action for e in events(runtime, c.id)] == ["reply"]
    with pytest.raises(ActionError):
        actions.reply(runtime, ALICE, c.id, "")


def test_only_admins_change_a_campaign_status(runtime: Runtime):
    with pytest.raises(ActionError) as refused:
        campaign_admin.set_campaign_status(runtime, ALICE, "parc", "closed")
    assert refused.value.status == 403
    campaign_admin.set_campaign_status(runtime, ADMIN, "parc", "closed")
    replies = send_sms(runtime, "PARC encore une idée", "+33611111124", PARC)
    assert contributions(runtime) == [] and replies  # closed: answered, not filed
    (event,) = events(runtime)
    assert event.after == {"campaign": "parc", "status": "closed"} and event.actor == "root"
    with pytest.raises(ActionError):
        campaign_admin.set_campaign_status(runtime, ADMIN, "parc", "archived")
    with pytest.raises(ActionError) as missing:
        campaign_admin.set_campaign_status(runtime, ADMIN, "nope", "open")
    assert missing.value.status == 404
