"""One contribution, form by form, as a moderator works through it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from gateway.models import InboundMessage
from gateway.runtime import Runtime
from tests.console import seed
from tests.console.conftest import Browser
from tests.helpers import send_sms

WORDS = [
    {"word": "le", "start": 0.2, "end": 0.4, "confidence": 0.97},
    {"word": "parc", "start": 0.4, "end": 0.9, "confidence": 0.41},
    {"word": "est", "start": 0.9, "end": 1.1, "confidence": 0.88},
    {"word": "sombre", "start": 1.1, "end": 1.8, "confidence": 0.59},
]


def voice(rt: Runtime, **fields: object) -> int:
    values: dict[str, object] = {
        "transcript": "le parc est sombre",
        "transcription_status": "done",
        "transcript_detail": {"text": "le parc est sombre", "words": WORDS},
        "audio": seed.WAV,
        "audio_duration": 2.0,
        "broadcast_consent": True,
    }
    values.update(fields)
    return seed.contribution(rt, "le parc est sombre", channel="voice", **values)  # type: ignore[arg-type]


async def test_the_page_says_where_and_when_it_came_from(rt, moderator: Browser):
    cid = seed.contribution(
        rt,
        "Il faut des bancs\nà l'ombre",
        neighbourhood="Parc Nord",
        received_at=datetime(2026, 3, 12, 17, 4, tzinfo=UTC),
    )
    page = await moderator.get(f"/moderation/contributions/{cid}")
    dom = page.dom
    main = dom.one("main")
    assert main.get("data-contribution-id") == str(cid)
    assert main.get("data-reference") == "PARC-0001"
    assert dom.one("#status").get("data-status") == "pending"
    assert dom.one("#provenance").text == (
        "Recueillie par SMS le 12 mars 2026 à 18:04, quartier Parc Nord"
    )
    # As received, line break included.
    assert dom.one("#contribution-text").raw_text == "Il faut des bancs\nà l'ombre"


async def test_publish_queues_the_notice_and_moves_on_to_the_next(rt, moderator: Browser):
    first = seed.contribution(rt, "Des bancs, merci")
    second = seed.contribution(rt, "Une fontaine à eau")
    page = await moderator.post(
        f"/moderation/contributions/{first}/decision?channel=sms", {"action": "publish"}
    )
    assert page.status == 303
    assert page.location == f"/moderation/contributions/{second}?channel=sms"
    assert seed.get(rt, first).status == "published"
    assert seed.get(rt, first).moderated_by == "camille"
    ((key, status, text),) = seed.notices(rt, first)
    assert (key, status) == ("outcome.published", "queued")
    assert "PARC-0001" in text
    shown = await moderator.get(page.location)
    assert shown.flashes() == [
        "Contribution PARC-0001 publiée.",
        "Voici la contribution suivante : PARC-0002.",
    ]
    dom = (await moderator.get(f"/moderation/contributions/{first}")).dom
    assert dom.one("#status").get("data-status") == "published"
    notice = dom.one("#notices li[data-key=outcome.published]")
    assert notice.get("data-status") == "queued"
    assert notice.text.startswith("Avis de publication — en file d’attente")
    assert dom.one("#history li[data-action=publish]").text.startswith("Publication · camille")


async def test_the_last_decision_goes_back_to_the_queue(rt, moderator: Browser):
    cid = seed.contribution(rt)
    page = await moderator.post(f"/moderation/contributions/{cid}/decision", {"action": "spam"})
    assert page.location == "/moderation/queue"
    shown = await moderator.get(page.location)
    assert shown.flashes() == [
        "Contribution PARC-0001 marquée indésirable.",
        "Plus aucune contribution dans la file : bravo !",
    ]
    assert seed.notices(rt, cid) == []  # spam is never answered


async def test_reject_needs_a_public_reason_which_the_resident_receives(rt, moderator: Browser):
    cid = seed.contribution(rt)
    page = await moderator.post(f"/moderation/contributions/{cid}/decision", {"action": "reject"})
    assert page.status == 400
    assert page.flashes(error=True) == [
        "Un refus demande un motif, qui sera public et envoyé à la personne."
    ]
    assert page.dom.one("textarea#reason")
    assert seed.get(rt, cid).status == "pending"
    assert seed.notices(rt, cid) == []
    page = await moderator.post(
        f"/moderation/contributions/{cid}/decision",
        {"action": "reject", "reason": "Hors du périmètre de la consultation"},
    )
    assert page.status == 303
    c = seed.get(rt, cid)
    assert (c.status, c.decision_reason) == ("rejected", "Hors du périmètre de la consultation")
    ((key, status, text),) = seed.notices(rt, cid)
    assert (key, status) == ("outcome.rejected", "queued")
    assert "Hors du périmètre de la consultation" in text


async def test_reopen_puts_it_back_and_stays_on_the_page(rt, moderator: Browser):
    cid = seed.contribution(rt, status="spam")
    page = await moderator.post(f"/moderation/contributions/{cid}/decision", {"action": "reopen"})
    assert page.location == f"/moderation/contributions/{cid}"
    assert seed.get(rt, cid).status == "pending"
    dom = (await moderator.get(page.location)).dom
    assert dom.one("#history li[data-action=reopen]")
    assert dom.select(".flash[role=status]")[0].text == "Contribution PARC-0001 remise en attente."


async def test_classification(rt, moderator: Browser):
    cid = seed.contribution(rt, neighbourhood="Quartier inconnu")
    dom = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    form = dom.one("form#classify-form")
    assert [o.text for o in form.select("select#category option")] == [
        "Non classée",
        "Constat",
        "Proposition",
        "Question",
    ]
    assert [i.get("value") for i in form.select("input[name=themes][type=checkbox]")] == [
        "Espaces verts",
        "Jeux et sport",
        "Sécurité",
    ]
    neighbourhoods = [o.get("value") for o in form.select("select#neighbourhood option")]
    assert neighbourhoods == [
        "",
        "Parc Nord",
        "Parc Sud",
        "Centre",
        "Université",
        "Quartier inconnu",
    ]
    page = await moderator.post(
        f"/moderation/contributions/{cid}/classify",
        [
            ("category", "proposal"),
            ("themes", "Sécurité"),
            ("themes", "Espaces verts"),
            ("tags", "éclairage, nuit , éclairage"),
            ("neighbourhood", "Centre"),
            ("kind", "collective"),
        ],
    )
    assert page.status == 303
    c = seed.get(rt, cid)
    assert (c.category, c.themes, c.tags, c.neighbourhood, c.kind) == (
        "proposal",
        ["Espaces verts", "Sécurité"],
        ["éclairage", "nuit"],
        "Centre",
        "collective",
    )
    dom = (await moderator.get(page.location)).dom
    assert dom.one("select#category option[selected]").get("value") == "proposal"
    assert dom.one("input#tags").get("value") == "éclairage, nuit"
    assert dom.one("select#kind option[selected]").get("value") == "collective"
    assert len(dom.select("input[name=themes][checked]")) == 2
    history = dom.one("#history li[data-action=classify]").text
    assert "Catégorie : Non classée → Proposition" in history.replace("—", "Non classée")


async def test_a_theme_outside_the_campaign_is_refused(rt, moderator: Browser):
    cid = seed.contribution(rt)
    page = await moderator.post(
        f"/moderation/contributions/{cid}/classify", {"themes": "Inventé", "kind": "individual"}
    )
    assert page.status == 400
    assert page.flashes(error=True) == ["Ce thème n’appartient pas à la consultation."]
    assert seed.get(rt, cid).themes == []


async def test_voice_transcript_word_by_word_and_its_correction(rt, moderator: Browser):
    cid = voice(rt)
    dom = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    audio = dom.one("audio#contribution-audio")
    assert audio.get("src") == f"/moderation/contributions/{cid}/audio"
    assert audio.get("preload") == "metadata" and audio.get("controls") is not None
    words = dom.select("#transcript span.word")
    assert [w.text for w in words] == ["le", "parc", "est", "sombre"]
    assert [w.get("data-start") for w in words] == ["0.20", "0.40", "0.90", "1.10"]
    low = [w.text for w in dom.select("#transcript span.word.low-confidence")]
    assert low == ["parc", "sombre"]
    assert not dom.select("#machine-transcript")
    assert dom.one("textarea#transcript-text").text == "le parc est sombre"

    page = await moderator.post(
        f"/moderation/contributions/{cid}/transcript", {"transcript": "Le parc est sombre."}
    )
    assert page.status == 303
    c = seed.get(rt, cid)
    assert (c.transcript, c.transcript_machine) == ("Le parc est sombre.", "le parc est sombre")
    dom = (await moderator.get(page.location)).dom
    assert "le parc est sombre" in dom.one("#machine-transcript").text
    assert dom.one("#corrected-transcript").text.endswith("Le parc est sombre.")
    assert dom.one("textarea#transcript-text").text == "Le parc est sombre."
    assert dom.one("#history li[data-action=correct_transcript]")


async def test_the_recording_is_served_to_moderators_only_from_the_audio_folder(
    rt, moderator: Browser
):
    cid = voice(rt)
    async with moderator.client.get(f"/moderation/contributions/{cid}/audio") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/wav"
        assert response.headers["Cache-Control"] == "no-store"
        assert await response.read() == seed.WAV
    async with moderator.client.get(
        f"/moderation/contributions/{cid}/audio", headers={"Range": "bytes=0-3"}
    ) as response:
        assert response.status == 206 and await response.read() == b"RIFF"  # seeking works
    (rt.settings.data_path / "secret.txt").write_text("not a recording")
    escaped = seed.contribution(rt, "x", channel="voice", audio_path="audio/../secret.txt")
    page = await moderator.get(f"/moderation/contributions/{escaped}/audio")
    assert page.status == 403 and "not a recording" not in page.text
    absolute = seed.contribution(
        rt, "y", channel="voice", audio_path=str(rt.settings.data_path / "secret.txt")
    )
    assert (await moderator.get(f"/moderation/contributions/{absolute}/audio")).status == 403
    missing = seed.contribution(rt, "z", channel="voice", audio_path="audio/missing.wav")
    assert (await moderator.get(f"/moderation/contributions/{missing}/audio")).status == 404
    written = seed.contribution(rt, "écrit")
    assert (await moderator.get(f"/moderation/contributions/{written}/audio")).status == 404


async def test_anonymisation_suggests_and_saves_a_public_version(rt, moderator: Browser):
    text = "Bonjour, appelez-moi au 06 12 34 56 78 ou jean.dupont@example.org pour les bancs"
    cid = seed.contribution(rt, text)
    dom = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    kinds = [li.get("data-kind") for li in dom.select("#suggested-redactions li[data-kind]")]
    assert kinds == ["phone", "email"]
    assert [m.text for m in dom.select("#anonymise .original mark")] == [
        "06 12 34 56 78",
        "jean.dupont@example.org",
    ]
    prefilled = dom.one("form#public-text-form textarea#public-text").text
    assert prefilled == "Bonjour, appelez-moi au [téléphone] ou [e-mail] pour les bancs"
    page = await moderator.post(
        f"/moderation/contributions/{cid}/public-text", {"public_text": "Plus de bancs svp"}
    )
    assert page.status == 303
    assert seed.get(rt, cid).public_text == "Plus de bancs svp"
    dom = (await moderator.get(page.location)).dom
    assert dom.one("textarea#public-text").text == "Plus de bancs svp"
    assert dom.one("#contribution-text").text == text  # the original is kept beside it
    await moderator.post(f"/moderation/contributions/{cid}/decision", {"action": "publish"})
    assert seed.get(rt, cid).public_text == "Plus de bancs svp"


async def test_publishing_without_a_public_version_hides_the_phone_number(rt, moderator):
    cid = seed.contribution(rt, "Rappelez-moi au 06 12 34 56 78")
    await moderator.post(f"/moderation/contributions/{cid}/decision", {"action": "publish"})
    assert seed.get(rt, cid).public_text == "Rappelez-moi au [téléphone]"


async def test_reply_reaches_the_resident_or_says_why_not(rt, moderator: Browser):
    cid = seed.contribution(rt)
    page = await moderator.post(
        f"/moderation/contributions/{cid}/reply", {"text": "Merci, nous transmettons."}
    )
    assert page.status == 303
    ((key, status, text),) = seed.notices(rt, cid)
    assert (key, status) == ("outcome.answer", "queued")
    assert "Merci, nous transmettons." in text
    shown = await moderator.get(page.location)
    assert shown.flashes() == ["Réponse mise en file d’envoi."]
    assert shown.dom.one("#notices li[data-key=outcome.answer]").get("data-status") == "queued"

    away = seed.contribution(rt, person=seed.contributor(rt, "+33698765432", opted_out=True))
    page = await moderator.post(
        f"/moderation/contributions/{away}/reply", {"text": "Une question ?"}
    )
    assert page.status == 409
    assert page.flashes(error=True) == [
        "La personne s’est désinscrite (STOP) : elle ne reçoit plus de messages."
    ]
    assert page.dom.one("textarea#reply-text").text == "Une question ?"  # nothing lost
    assert seed.notices(rt, away) == []


async def test_previous_and_next_keep_the_queue_filters(rt, moderator: Browser):
    a = seed.contribution(rt, "Premier texte sur les bancs")
    seed.contribution(rt, "Un message vocal", channel="voice")
    c = seed.contribution(rt, "Troisième texte, la fontaine")
    dom = (await moderator.get(f"/moderation/contributions/{a}?channel=sms")).dom
    assert (
        dom.one("a#next-contribution").get("href") == f"/moderation/contributions/{c}?channel=sms"
    )
    assert not dom.select("a#prev-contribution")
    dom = (await moderator.get(f"/moderation/contributions/{c}?channel=sms")).dom
    assert (
        dom.one("a#prev-contribution").get("href") == f"/moderation/contributions/{a}?channel=sms"
    )
    assert dom.one("form#decision-form").get("action") == (
        f"/moderation/contributions/{c}/decision?channel=sms"
    )


async def test_the_conversation_and_receipt_of_a_real_sms(rt, moderator: Browser):
    send_sms(rt, "PARC Il faut plus de bancs", "+33612345678", "+33100000001")
    dom = (await moderator.get("/moderation/queue")).dom
    link = dom.one("a.contribution-link").get("href") or ""
    dom = (await moderator.get(link)).dom
    lines = dom.select("#conversation li[data-direction]")
    assert [li.get("data-direction") for li in lines][:2] == ["in", "out"]
    assert "PARC Il faut plus de bancs" in lines[0].text
    receipt = dom.one("#notices li[data-key=receipt.default]")
    assert receipt.get("data-status") == "sent"
    assert receipt.text.startswith("Accusé de réception — envoyé")
    assert "+33612345678" not in dom.text  # the number is never shown


async def test_an_unknown_contribution_is_a_404_page(rt, moderator: Browser):
    page = await moderator.get("/moderation/contributions/424242")
    assert page.status == 404
    assert page.flashes(error=True) == ["Cette page ou cette contribution n’existe pas."]
    assert (await moderator.get("/moderation/contributions/abc")).status == 404


def _inbound(rt: Runtime, number: str, channel: str, text: str) -> None:
    with rt.sessions.begin() as session:
        session.add(
            InboundMessage(
                channel=channel,
                provider_message_id=f"{channel}-{secrets.token_hex(6)}",
                sender_hash=rt.vault.lookup_hash(channel, number),
                text=text,
                received_at=datetime.now(UTC),
                state="processed",
            )
        )


async def test_a_call_reads_as_a_voice_message_in_the_conversation(rt, moderator: Browser):
    number = "+33655555555"
    person = seed.contributor(rt, number, channel="voice")
    _inbound(rt, number, "voice", "")
    cid = voice(rt, person=person)
    dom = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    (line,) = dom.select("#conversation li[data-direction=in]")
    assert line.one(".bubble__text").text == "Appel au répondeur (message vocal)"
    await moderator.post("/moderation/language", {"language": "en"})
    dom = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    text = dom.one("#conversation li[data-direction=in] .bubble__text").text
    assert text == "Call to the answering machine (voice message)"


async def test_an_empty_message_says_so_in_the_conversation(rt, moderator: Browser):
    number = "+33666666666"
    person = seed.contributor(rt, number)
    _inbound(rt, number, "sms", "  ")
    _inbound(rt, number, "sms", "PARC Des bancs")
    cid = seed.contribution(rt, "Des bancs", person=person)
    dom = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    texts = [li.one(".bubble__text").text for li in dom.select("#conversation li")]
    assert sorted(texts) == ["(message vide)", "PARC Des bancs"]
    assert all(t.strip() for t in texts)


async def test_a_call_back_and_its_attempts_are_on_the_contribution_page(
    rt: Runtime, moderator: Browser
):
    """A caller with only a landline who asked to be called back (gateway.callbacks): the
    publication schedules a call back, shown with each attempt, instead of a failed SMS."""
    from gateway import callbacks

    landline = seed.contributor(rt, "+33147000001", "voice")
    cid = seed.contribution(
        rt, "Des bancs", channel="voice", person=landline, callback_consent=True
    )
    await moderator.post(
        f"/moderation/contributions/{cid}/decision?channel=voice", {"action": "publish"}
    )
    assert seed.notices(rt, cid) == []  # no SMS to a landline: a call back instead
    dom = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    (shown,) = [li for li in dom.select("#callbacks li") if li.get("data-status")]
    assert "scheduled" in shown.text  # its log, step by step
    assert dom.one("#history li[data-action=publish]") is not None
    with rt.sessions() as session:
        (row,) = callbacks.of_contribution(session, cid)
    assert row.log[0]["event"] == "scheduled"
    assert shown.get("data-status") in ("queued", "calling", "failed")  # as the page was read
