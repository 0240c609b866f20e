"""Reading one email: the corpus of real-shaped mails (channels/email/tests/corpus, with
expected.json, which the IMAP and SMTP tests reuse) and targeted cases built here: charsets,
HTML, quotes and signatures, forwards, attachments (voice messages made from real speech by
espeak-ng), loop detection, identifiers, and hostile input that must neither raise nor hang."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import struct
import subprocess
import time
import zlib
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import pytest

from channels.email.attachments import Attachment
from channels.email.parsing import ParsedEmail, parse
from tests.fixtures import require_tool
from tests.transcription.conftest import encode

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = json.loads(
    (CORPUS / "expected.json").read_text(encoding="utf-8")
)
GATEWAY = "participez@participez.ville.example"


# -- helpers ---------------------------------------------------------------------------------


def raw_mail(
    body: str | bytes,
    *,
    subject: str = "PARC des bancs",
    content_type: str = "text/plain; charset=utf-8",
    encoding: str = "8bit",
    headers: str = "",
    sender: str = "Marie Dupont <marie.dupont@example.org>",
) -> bytes:
    """A single-part mail as a mailer writes it, CRLF line endings."""
    head = (
        f"From: {sender}\r\n"
        f"To: {GATEWAY}\r\n"
        f"Subject: {subject}\r\n"
        "Message-ID: <test.1@example.org>\r\n"
        "Date: Mon, 3 Mar 2025 10:00:00 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Transfer-Encoding: {encoding}\r\n"
        f"{headers}"
        "\r\n"
    ).encode()
    data = body if isinstance(body, bytes) else body.replace("\n", "\r\n").encode("utf-8")
    return head + data


def multipart(parts: list[bytes], *, subtype: str = "mixed", headers: str = "") -> bytes:
    """A multipart mail from already-written parts (each: its headers, a blank line, body)."""
    boundary = "=_agora_test_boundary"
    out = (
        "From: Marie Dupont <marie.dupont@example.org>\r\n"
        f"To: {GATEWAY}\r\n"
        "Subject: PARC photos\r\n"
        "Message-ID: <test.multipart@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n'
        f"{headers}\r\n"
    ).encode()
    for part in parts:
        out += f"--{boundary}\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def part(
    content_type: str,
    data: bytes,
    *,
    filename: str | None = None,
    disposition: str | None = "attachment",
    content_id: str | None = None,
    encoding: str = "base64",
) -> bytes:
    head = f"Content-Type: {content_type}"
    head += f'; name="{filename}"\r\n' if filename else "\r\n"
    if disposition:
        head += f"Content-Disposition: {disposition}"
        head += f'; filename="{filename}"\r\n' if filename else "\r\n"
    if content_id:
        head += f"Content-ID: <{content_id}>\r\n"
    head += f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    body = base64.encodebytes(data).replace(b"\n", b"\r\n") if encoding == "base64" else data
    return head.encode() + body


def text_part(text: str, subtype: str = "plain") -> bytes:
    return part(
        f"text/{subtype}; charset=utf-8",
        text.replace("\n", "\r\n").encode(),
        disposition=None,
        encoding="8bit",
    )


def png(width: int, height: int, *, seed: int = 0) -> bytes:
    """A real PNG; random pixels do not compress, so its size is about width x height x 3."""
    rng = random.Random(seed)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int) -> bytes:
    """A real JPEG from PyAV's bundled MJPEG encoder."""
    codec = cast(av.VideoCodecContext, av.CodecContext.create("mjpeg", "w"))
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    row = bytes((x * 5) % 256 for x in range(width * 3))
    plane.update((row + bytes(plane.line_size - len(row))) * height)
    packets = codec.encode(frame.reformat(format="yuvj420p")) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def one_line(value: str) -> bool:
    return not any(ch in value for ch in "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


# -- the corpus ------------------------------------------------------------------------------


def test_corpus_and_expectations_match_file_for_file() -> None:
    files = {path.name for path in CORPUS.glob("*.eml")}
    assert files == set(EXPECTED)
    senders = [expect["sender"] for expect in EXPECTED.values()]
    assert len(senders) == len(set(senders)), "each corpus mail has its own sender"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_is_a_real_shaped_mail(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    assert raw.count(b"\n") == raw.count(b"\r\n"), "CRLF line endings only"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n")), "SMTP line length"
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nFrom: " in b"\r\n" + head
    assert b"MIME-Version: " in head or b"Mime-Version: " in head


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_parses_as_expected(name: str) -> None:
    expect = EXPECTED[name]
    raw = (CORPUS / name).read_bytes()
    parsed = parse(raw)

    if "text" in expect:
        assert parsed.text == expect["text"]
    for fragment in expect.get("text_contains", []):
        assert fragment in parsed.text
    assert parsed.subject == expect["subject"]
    assert parsed.sender == expect["sender"]
    if "sender_name" in expect:
        assert parsed.sender_name == expect["sender_name"]
    assert parsed.automatic == expect["automatic"]
    kept = [[a.kind, a.filename, a.content_type] for a in parsed.attachments]
    assert kept == expect["attachments"]
    assert len(parsed.refused) == expect["refused_count"]
    if "refused" in expect:
        assert list(parsed.refused) == expect["refused"]
    if expect["message_id"] == "sha256":
        assert parsed.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    else:
        assert parsed.message_id == expect["message_id"]
    if "in_reply_to" in expect:
        assert parsed.in_reply_to == expect["in_reply_to"]
    if "references" in expect:
        assert list(parsed.references) == expect["references"]

    # What holds for every mail.
    assert GATEWAY in parsed.recipients or any("participez+" in r for r in parsed.recipients)
    assert parsed.date is not None and parsed.date.tzinfo is not None
    assert one_line(parsed.subject) and one_line(parsed.sender_name)
    assert all(one_line(a.filename) and "/" not in a.filename for a in parsed.attachments)
    assert "\r" not in parsed.text and "\r" not in parsed.original_text
    assert len(parsed.message_id) <= 128
    if parsed.text:
        # The words kept are the resident's: each of their lines is in the whole body.
        assert parsed.original_text
    for attachment in parsed.attachments:
        assert attachment.data


def test_corpus_attachments_are_the_real_files() -> None:
    photo = parse((CORPUS / "photo.eml").read_bytes()).attachments[0]
    with av.open(io.BytesIO(photo.data), "r") as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (64, 48)
    for name in ("collective.eml", "forwarded-attached.eml"):
        pdf = parse((CORPUS / name).read_bytes()).attachments[0]
        assert pdf.data.startswith(b"%PDF-1.4") and pdf.data.rstrip().endswith(b"%%EOF")


def test_corpus_details_beyond_expected_json() -> None:
    collective = parse((CORPUS / "collective.eml").read_bytes())
    assert collective.recipients == (
        "participez+budget@participez.ville.example",
        "f.haddad@centre-social.example",
    )
    plain = parse((CORPUS / "plain.eml").read_bytes())
    assert plain.original_text.endswith("Merci !\n\n--\nMarie")
    assert plain.date == datetime(2025, 3, 3, 9, 12, 40, tzinfo=timezone(timedelta(hours=1)))
    reply = parse((CORPUS / "reply.eml").read_bytes())
    assert "> 2. BUDGET : budget participatif 2025" in reply.original_text
    forwarded = parse((CORPUS / "forwarded.eml").read_bytes())
    assert "Message transféré" in forwarded.original_text
    assert "helene.roux@example.com" not in forwarded.text
    bounce = parse((CORPUS / "bounce.eml").read_bytes())
    assert "Final-Recipient" not in bounce.original_text  # the machine part is not text
    empty = parse((CORPUS / "empty-body.eml").read_bytes())
    assert (empty.text, empty.original_text) == ("", "")


# -- charsets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "data", "expected"),
    [
        ("utf-8", "été à l’ombre".encode(), "été à l’ombre"),
        ("iso-8859-1", "été à l'ombre".encode("latin-1"), "été à l'ombre"),
        ("latin1", "Cœur".encode("cp1252"), "Cœur"),  # Windows-1252 bytes labelled Latin-1
        ("iso-8859-1", b"l\x92\xe9t\xe9 \x93oui\x94 \x80", "l’été “oui” €"),
        ("windows-1252", "qu’on “œuvre” 15 €".encode("cp1252"), "qu’on “œuvre” 15 €"),
        ("iso-8859-15", "15 € œuvre".encode("iso-8859-15"), "15 € œuvre"),
        ("koi8-r", "Привет, парк".encode("koi8-r"), "Привет, парк"),
        ("us-ascii", "déjà".encode(), "déjà"),  # 8-bit bytes under an ASCII label: UTF-8
        ("utf-88", "débordent".encode(), "débordent"),  # unknown label, UTF-8 bytes
        ("x-unknown", "débordent".encode("latin-1"), "débordent"),  # unknown label, Latin-1
        ("utf-8", "été".encode("latin-1"), "été"),  # wrong label: Latin-1 sent as UTF-8
        ("rot13", b"abc", "abc"),  # not a text codec
        ("unicode_escape", b"a\\nb", "a\\nb"),  # not taken from a mail
    ],
)
def test_charsets(charset: str, data: bytes, expected: str) -> None:
    parsed = parse(raw_mail(data, content_type=f'text/plain; charset="{charset}"'))
    assert parsed.text == expected


def test_utf8_with_a_broken_byte_keeps_utf8() -> None:
    data = "Les allées du parc sont très abîmées, il faut les réparer ".encode() + b"\xff!"
    parsed = parse(raw_mail(data))
    assert parsed.text == "Les allées du parc sont très abîmées, il faut les réparer \ufffd!"


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("quoted-printable", b"Caf=C3=A9 =E2=82=AC=\r\n soft break"),
        ("base64", base64.encodebytes("Café € soft break".encode()).replace(b"\n", b"\r\n")),
        ("8bit", "Café € soft break".encode()),
        ("binary", "Café € soft break".encode()),
    ],
)
def test_transfer_encodings(encoding: str, body: bytes) -> None:
    assert parse(raw_mail(body, encoding=encoding)).text == "Café € soft break"


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        (" Quoted-Printable ", b"Caf=C3=A9 =E2=82=AC soft break"),
        ("BASE64 (from a webmail)", b"Q2Fmw6kg4oKsIHNvZnQgYnJlYWs="),
        ("x-uuencode", b"begin 644 texte\r\n40V%FPZD@XH*L('-O9G0@8G)E86L`\r\n`\r\nend\r\n"),
    ],
)
def test_transfer_encodings_as_mailers_spell_them(encoding: str, body: bytes) -> None:
    assert parse(raw_mail(body, encoding=encoding)).text == "Café € soft break"


def test_quoted_printable_with_raw_8bit_bytes() -> None:
    """A sloppy mailer leaves some Latin-1 bytes unencoded in a quoted-printable part."""
    body = "déjà et d=E9j=E0".encode("latin-1")
    parsed = parse(
        raw_mail(body, encoding="quoted-printable", content_type="text/plain; charset=iso-8859-1")
    )
    assert parsed.text == "déjà et déjà"


def test_newlines_normalised_and_trailing_spaces_removed() -> None:
    body = b"ligne un   \r\nligne deux\t\rligne trois\n\r\n"
    parsed = parse(raw_mail(body))
    assert parsed.original_text == "ligne un\nligne deux\nligne trois"


def test_format_flowed_is_joined() -> None:
    body = "Un paragraphe écrit \nsur deux lignes.\n>> une citation \n>> coupée\n"
    flowed = parse(raw_mail(body, content_type="text/plain; charset=utf-8; format=flowed"))
    assert flowed.original_text == "Un paragraphe écrit sur deux lignes.\n>> une citation coupée"
    delsp = parse(
        raw_mail("Bon \njour\n", content_type="text/plain; charset=utf-8; format=flowed; delsp=yes")
    )
    assert delsp.text == "Bonjour"


def test_raw_8bit_headers_are_decoded() -> None:
    """Some mailers put UTF-8 or Latin-1 bytes in headers without encoded-words."""
    utf8 = raw_mail("x", subject="PARC été", sender="Zoé Lefèvre <zoe@example.org>")
    parsed = parse(utf8)
    assert (parsed.subject, parsed.sender_name) == ("PARC été", "Zoé Lefèvre")
    latin = "From: Zoé <zoe@example.org>\r\nSubject: PARC été\r\n\r\nx".encode("latin-1")
    parsed = parse(latin)
    assert (parsed.subject, parsed.sender_name) == ("PARC été", "Zoé")


def test_encoded_words_in_any_charset_and_bad_ones() -> None:
    subject = (
        "=?ISO-8859-15?Q?15_=A4?= =?KOI8-R?B?8NLJ18XU?= =?utf-88?Q?caf=C3=A9?= =?UTF-8?Q?_fin?="
    )
    assert parse(raw_mail("x", subject=subject)).subject == "15 €Приветcafé fin"


# -- HTML ------------------------------------------------------------------------------------


def test_html_becomes_clean_text() -> None:
    html = """<!DOCTYPE html><html><head><title>Titre caché</title>
<style>p { color: red; }</style><script>alert("non")</script></head>
<body><div>Bonjour,</div><div><br></div>
<p>Je propose&nbsp;: un <a href="https://example.org/x">abri vélo</a> &amp; des
   <b>bancs</b>&hellip;</p>
<ul><li>devant l&#39;école</li><li>au square</li></ul>
<table><tr><td>Coût</td><td>15&nbsp;000 &euro;</td></tr></table>
<pre>  garder   les
  espaces</pre>
<p>Merci<br>Marie</p><img src="cid:x" alt="logo"></body></html>"""
    parsed = parse(raw_mail(html, content_type="text/html; charset=utf-8"))
    assert parsed.text == (
        "Bonjour,\n\nJe propose : un abri vélo & des bancs…\n\n- devant l'école\n- au square"
        "\n\nCoût 15 000 €\n\n  garder   les\n  espaces\n\nMerci\nMarie"
    )
    for hidden in ("Titre", "color", "alert", "https://", "logo"):
        assert hidden not in parsed.text


def test_html_with_an_unclosed_head_still_gives_the_body() -> None:
    html = "<html><head><meta charset=utf-8><body><p>Des arbres, svp.</p></body></html>"
    assert parse(raw_mail(html, content_type="text/html")).text == "Des arbres, svp."


def test_alternative_prefers_plain_but_not_an_empty_one() -> None:
    both = multipart(
        [text_part("Le texte brut."), text_part("<p>Le <b>HTML</b>.</p>", "html")],
        subtype="alternative",
    )
    assert parse(both).text == "Le texte brut."
    empty_plain = multipart(
        [text_part("  \n"), text_part("<p>Seul le HTML a du texte.</p>", "html")],
        subtype="alternative",
    )
    assert parse(empty_plain).text == "Seul le HTML a du texte."


def test_html_only_reply_loses_its_gmail_quote() -> None:
    html = (
        '<div dir="ltr">Oui, le 2 !</div><br><div class="gmail_quote"><div dir="ltr" '
        'class="gmail_attr">Le lun. 3 mars 2025 à 10:15, Participez &lt;<a href="mailto:'
        'participez@participez.ville.example">participez@participez.ville.example</a>&gt; '
        'a écrit&nbsp;:<br></div><blockquote class="gmail_quote">Votre choix ?<br>1. PARC<br>'
        "2. BUDGET</blockquote></div>"
    )
    parsed = parse(raw_mail(html, content_type="text/html; charset=utf-8"))
    assert parsed.text == "Oui, le 2 !"
    assert "> 1. PARC" in parsed.original_text


@pytest.mark.parametrize(
    "hostile",
    ["<a " * 300_000, "<!--" * 300_000, "<a b='" * 150_000, "<" * 1_000_000, "</" * 500_000],
)
def test_hostile_html_is_read_in_linear_time(hostile: str) -> None:
    """Python 3.11's html.parser needs minutes for these; the pre-pass keeps it in seconds."""
    started = time.monotonic()
    parsed = parse(raw_mail(hostile, content_type="text/html"))
    assert time.monotonic() - started < 15
    assert isinstance(parsed, ParsedEmail)


# -- quotes, signatures, footers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Gmail, French, the attribution wrapped over two lines.
        (
            "2\n\nLe lun. 3 mars 2025 à 10:15, Participez <\nparticipez@x.example> a écrit :\n\n"
            "> Votre choix ?\n> 1. PARC\n",
            "2",
        ),
        # Gmail, English.
        (
            "Number 2.\n\nOn Mon, Mar 3, 2025 at 10:15 AM Participez <p@x.example> wrote:\n\n"
            "> Your choice?\n",
            "Number 2.",
        ),
        # iPhone: the footer above the quoted attribution.
        (
            "Le 2\n\nEnvoyé de mon iPhone\n\n> Le 3 mars 2025 à 10:15, P <p@x> a écrit :\n>\n"
            "> Votre choix ?\n",
            "Le 2",
        ),
        # Thunderbird's attribution without a date, with the address.
        ("Oui.\n\nParticipez <p@x.example> a écrit :\n> Question ?\n", "Oui."),
        # Inline answers between quoted lines are kept.
        (
            "Le 3 mars 2025 à 10:00, P <p@x> a écrit :\n> Quel parc ?\nLes Tilleuls\n"
            "> Quel besoin ?\nDes bancs\n",
            "Les Tilleuls\nDes bancs",
        ),
        # Bottom posting: the answer below the quote is kept.
        (
            "Le 3 mars 2025 à 10:00, P <p@x> a écrit :\n> Votre choix ?\n\nLe BUDGET.\n-- \nMarie",
            "Le BUDGET.",
        ),
        # A dated attribution without a quote nor an address: a resident's sentence.
        (
            "Le 3 mars 2025, le maire a écrit :\n« Nous ferons des bancs. »\nRien n'a été fait.",
            "Le 3 mars 2025, le maire a écrit :\n« Nous ferons des bancs. »\nRien n'a été fait.",
        ),
        # A letter pasted in the mail is not an Outlook header block.
        (
            "Ma lettre :\n\nDe : Marie Dupont\nÀ : Monsieur le Maire\nDate : 3 mars 2025\n"
            "Objet : bancs\n\nMonsieur le Maire, des bancs.",
            "Ma lettre :\n\nDe : Marie Dupont\nÀ : Monsieur le Maire\nDate : 3 mars 2025\n"
            "Objet : bancs\n\nMonsieur le Maire, des bancs.",
        ),
        # ... but with an address after "De :" and a "Date :" it is.
        ("Oui\n\nDe : P <p@x.example>\nDate : 3 mars 2025\nÀ : M\n\nancien", "Oui"),
        # "Le maire a écrit :" has no date: a resident's sentence, not an attribution.
        ("Le maire a écrit :\nil faut des bancs", "Le maire a écrit :\nil faut des bancs"),
        # An attribution followed by an unquoted copy: everything from it is cut.
        (
            "Merci.\n\nLe 3 mars 2025 à 10:00, P <p@x> a écrit :\n\nVotre contribution est "
            "enregistrée.",
            "Merci.",
        ),
        # Outlook: separator and "De : ... Envoyé : ..." block.
        (
            "Je complète.\n\n________________________________\nDe : P <p@x>\nEnvoyé : lundi 3 "
            "mars 2025 10:20\nÀ : M\nObjet : PARC\n\nMerci pour votre contribution.",
            "Je complète.",
        ),
        # Outlook in English, no separator, bold markers as Outlook writes them in plain text.
        (
            "Adding a photo.\n\n*From:* P <p@x>\n*Sent:* Monday, March 3, 2025 10:20 AM\n*To:* M"
            "\n*Subject:* PARC\n\nThanks.",
            "Adding a photo.",
        ),
        # Outlook web: the whole block on one line (HTML converted by another client).
        (
            "Oui\nDe : P <p@x> Envoyé : lundi 3 mars 2025 10:20 À : M Objet : PARC\nMerci",
            "Oui",
        ),
        ("Réponse\n\n-----Original Message-----\nFrom: P\nSent: today\n\nold", "Réponse"),
        (
            "Réponse\n\n-------- Message d'origine --------\nDe : P <p@x>\nDate : 03/03/2025 "
            "10:00 (GMT+01:00)\nÀ : M\nObjet : PARC\n\nold",
            "Réponse",
        ),
        # Signatures: "-- " and "--", then nothing else is the resident's.
        ("Des bancs.\n-- \nMarie Dupont\n06 12 34 56 78", "Des bancs."),
        ("Des bancs.\n--\nMarie", "Des bancs."),
        # A dash line that is not a signature delimiter stays.
        ("Des bancs.\n---\nEt des arbres.", "Des bancs.\n---\nEt des arbres."),
        # Blank lines: never more than two in a row.
        ("Un\n\n\n\n\n\nDeux", "Un\n\n\nDeux"),
        ("\n\n\nUn\n\n", "Un"),
    ],
)
def test_quotes_and_signatures_are_cut(body: str, expected: str) -> None:
    assert parse(raw_mail(body, subject="Re: PARC")).text == expected


@pytest.mark.parametrize(
    "footer",
    [
        "Envoyé de mon iPhone",
        "Envoyé de mon iPad",
        "Envoyé depuis mon smartphone Samsung Galaxy.",
        "Envoyé depuis Yahoo Mail pour Android",
        "Envoyé à partir de Outlook pour Android",
        "Envoyé avec la messagerie sécurisée Proton Mail.",
        "Sent from my iPhone",
        "Sent from my Galaxy",
        "Get Outlook for Android",
        "Téléchargez Outlook pour Android",
        "Obtenez Outlook pour iOS<https://aka.ms/o0ukef>",
    ],
)
def test_mobile_footers_are_dropped_at_the_end(footer: str) -> None:
    assert parse(raw_mail(f"Des fontaines, svp.\n\n{footer}\n")).text == "Des fontaines, svp."
    # In the middle of the text it is the resident's sentence.
    body = f"{footer}\nEt aussi des bancs."
    assert parse(raw_mail(body)).text == body


def test_a_sentence_like_a_footer_stays() -> None:
    body = "Dossier complet.\nEnvoyé par courrier le 3 mars."
    assert parse(raw_mail(body)).text == body


@pytest.mark.parametrize(
    "body",
    [
        "> Tout mon message est cité\n> par erreur.",
        "-- \nMarie Dupont, présidente de l'association des Tilleuls",
        "Envoyé de mon iPhone",
        "On Mon, Mar 3, 2025 at 10:00 AM M <m@x.fr> wrote:\n> seulement une citation",
    ],
)
def test_words_are_never_lost_when_cutting_leaves_nothing(body: str) -> None:
    parsed = parse(raw_mail(body))
    assert parsed.text == parsed.original_text == body.replace("-- \n", "--\n")


# -- forwards --------------------------------------------------------------------------------


def test_gmail_forward_keeps_the_forwarded_words_after_the_signature() -> None:
    body = (
        "À lire :\n\n-- \nMarie\n\n---------- Forwarded message ---------\n"
        "De : Jean Martin <jean.martin@example.org>\nDate: lun. 3 mars 2025 à 10:00\n"
        "Subject: Des bancs\nTo: Marie <m@example.org>\n\n\nIl faudrait des bancs au parc.\n\n"
        "Jean\n\nSent from my Galaxy\n"
    )
    parsed = parse(raw_mail(body, subject="Fwd: Des bancs"))
    assert parsed.text == "À lire :\n\nIl faudrait des bancs au parc.\n\nJean"


def test_apple_mail_forward_in_html_is_unquoted_and_kept() -> None:
    html = (
        '<html><body dir="auto"><div dir="ltr">Voici ce que m’écrit ma voisine.</div>'
        '<div dir="ltr"><br></div><div dir="ltr">Envoyé de mon iPhone</div><div dir="ltr"><br>'
        'Début du message réexpédié&nbsp;:<br><br></div><blockquote type="cite"><div dir='
        '"ltr"><b>De:</b> Hélène Roux &lt;helene.roux@example.com&gt;<br><b>Date:</b> 2 mars '
        "2025 à 18:40:12 UTC+1<br><b>À:</b> Paul &lt;paul@example.net&gt;<br><b>Objet:</b> "
        '<b>Jeux</b><br><br></div></blockquote><blockquote type="cite"><div dir="ltr"><div>Il '
        "manque des jeux pour les petits.</div><div>Hélène</div></div></blockquote></body></html>"
    )
    parsed = parse(raw_mail(html, subject="Fwd: Jeux", content_type="text/html; charset=utf-8"))
    assert parsed.text == (
        "Voici ce que m’écrit ma voisine.\n\nIl manque des jeux pour les petits.\nHélène"
    )


def test_apple_mail_forward_in_plain_text() -> None:
    body = (
        "Pour la consultation.\n\nDébut du message réexpédié :\n\nDe: Hélène <h@example.com>\n"
        "Objet: Jeux\nDate: 2 mars 2025 à 18:40:12 UTC+1\nÀ: Paul <p@example.net>\n\n"
        "Il manque des jeux.\n"
    )
    parsed = parse(raw_mail(body, subject="Fwd: Jeux"))
    assert parsed.text == "Pour la consultation.\n\nIl manque des jeux."


def test_outlook_and_samsung_forwards_look_like_replies_but_are_kept() -> None:
    outlook = (
        "Pour info.\n\n________________________________\nDe : Jean <j@example.org>\nEnvoyé : "
        "lundi 3 mars 2025 10:20\nÀ : Marie <m@example.org>\nObjet : Bancs\n\nIl faut des bancs."
    )
    assert parse(raw_mail(outlook, subject="TR : Bancs")).text == "Pour info.\n\nIl faut des bancs."
    assert parse(raw_mail(outlook, subject="RE : Bancs")).text == "Pour info."
    samsung = (
        "Voilà\n\n\n-------- Message d'origine --------\nDe : Jean <j@example.org>\nDate : "
        "03/03/2025 10:00 (GMT+01:00)\nÀ : Marie <m@example.org>\nObjet : Bancs\n\nIl faut des "
        "bancs."
    )
    assert parse(raw_mail(samsung, subject="Fwd: Bancs")).text == "Voilà\n\nIl faut des bancs."
    assert parse(raw_mail(samsung, subject="Re: Bancs")).text == "Voilà"


def test_forward_attached_as_message_rfc822() -> None:
    inner = EmailMessage()
    inner["From"] = "Jean Martin <jean.martin@example.org>"
    inner["To"] = "Marie <m@example.org>"
    inner["Subject"] = "Des jeux"
    inner.set_content("Il manque des jeux.\n\n> cité\n\n-- \nJean\n")
    inner.add_attachment(PDF, maintype="application", subtype="pdf", filename="plan.pdf")
    inner.add_attachment(
        b"MZ\x90\x00", maintype="application", subtype="x-msdownload", filename="jeu.exe"
    )
    outer = EmailMessage()
    outer["From"] = "Marie Dupont <marie.dupont@example.org>"
    outer["To"] = GATEWAY
    outer["Subject"] = "Fwd: Des jeux"
    outer.set_content("Voici le message de Jean.\n")
    outer.add_attachment(inner)
    parsed = parse(outer.as_bytes())
    assert parsed.text == "Voici le message de Jean.\n\nIl manque des jeux."
    assert [(a.kind, a.filename, a.data) for a in parsed.attachments] == [("pdf", "plan.pdf", PDF)]
    assert parsed.refused == ("jeu.exe (application/x-msdownload)",)
    assert "--\nJean" in parsed.original_text


# -- attachments -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A resident's voice message, spoken by espeak-ng in French, as phones record them."""
    folder = tmp_path_factory.mktemp("email-speech")
    wav = folder / "message.wav"
    subprocess.run(
        [
            require_tool("espeak-ng"),
            "-v",
            "fr",
            "-w",
            str(wav),
            "Bonjour, je voudrais des bancs à l'ombre dans le parc des Tilleuls.",
        ],
        check=True,
    )
    ogg = encode(wav, folder / "message.ogg", container="ogg", codec="libopus", rate=48000)
    m4a = encode(wav, folder / "message.m4a", container="mp4", codec="aac", rate=16000)
    return {"wav": wav.read_bytes(), "ogg": ogg.read_bytes(), "m4a": m4a.read_bytes()}


def seconds_of_audio(data: bytes) -> float:
    with av.open(io.BytesIO(data), "r") as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
        rate = container.streams.audio[0].rate
    return samples / rate


def test_voice_messages_are_kept_as_audio(speech: dict[str, bytes]) -> None:
    raw = multipart(
        [
            text_part("Mon message vocal pour le parc."),
            part("audio/ogg", speech["ogg"], filename="message vocal.ogg"),
            # Phones send recordings as octet-stream: the extension decides.
            part("application/octet-stream", speech["m4a"], filename="Enregistrement 12.m4a"),
            part("audio/x-wav", speech["wav"], filename="message.wav", disposition="inline"),
            part("application/ogg", speech["ogg"][:-1] + b"\x00", filename="copie.ogg"),
        ]
    )
    parsed = parse(raw)
    assert [(a.kind, a.filename, a.content_type) for a in parsed.attachments] == [
        ("audio", "message vocal.ogg", "audio/ogg"),
        ("audio", "Enregistrement 12.m4a", "audio/mp4"),
        ("audio", "message.wav", "audio/wav"),  # the one spelling stored (gateway.filetypes)
        ("audio", "copie.ogg", "audio/ogg"),
    ]
    assert parsed.attachments[0].data == speech["ogg"]
    assert parsed.refused == ()
    for attachment in parsed.attachments[:3]:
        assert seconds_of_audio(attachment.data) > 2.0  # the whole sentence is there


@pytest.mark.parametrize(
    ("content_type", "data", "filename", "expected"),
    [
        ("image/jpeg", "jpeg", "banc.jpg", ("image", "image/jpeg")),
        ("image/jpg", "jpeg", "banc.jpg", ("image", "image/jpeg")),
        ("image/pjpeg", "jpeg", "banc.jpg", ("image", "image/jpeg")),
        ("image/png", "png", "plan.png", ("image", "image/png")),
        ("image/png", "jpeg", "mal-nommé.png", ("image", "image/jpeg")),  # the bytes decide
        ("image/gif", "gif", "a.gif", ("image", "image/gif")),
        ("image/webp", "webp", "a.webp", ("image", "image/webp")),
        ("image/heic", "heic", "IMG_0001.HEIC", ("image", "image/heic")),
        ("application/pdf", "pdf", "cr.pdf", ("pdf", "application/pdf")),
        ("application/octet-stream", "pdf", "cr.pdf", ("pdf", "application/pdf")),
        ("application/octet-stream", "jpeg", "photo.JPG", ("image", "image/jpeg")),
        ("application/octet-stream", "amr", "voix.amr", ("audio", "audio/amr")),
        ("application/octet-stream", "amr", "voix.3gp", ("audio", "audio/3gpp")),
        ("application/octet-stream", "amr", "voix.opus", ("audio", "audio/ogg")),
    ],
)
def test_kept_kinds(content_type: str, data: str, filename: str, expected: tuple[str, str]) -> None:
    samples = {
        "jpeg": jpeg(32, 24),
        "png": png(8, 8),
        "gif": b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04"
        b"\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
        "webp": b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10"
        b"\x11\x11\x88\x88\xfe\x07\x00",
        "heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
        "pdf": PDF,
        "amr": b"#!AMR\n" + bytes(64),
    }
    parsed = parse(
        multipart(
            [text_part("Voir pièce jointe."), part(content_type, samples[data], filename=filename)]
        )
    )
    assert parsed.refused == ()
    (attachment,) = parsed.attachments
    assert (attachment.kind, attachment.content_type) == expected
    assert attachment.filename == filename
    assert attachment.data == samples[data]


@pytest.mark.parametrize(
    ("content_type", "data", "filename", "refusal"),
    [
        (
            "application/x-msdownload",
            b"MZ\x90\x00",
            "setup.exe",
            "setup.exe (application/x-msdownload)",
        ),
        (
            "image/svg+xml",
            b"<svg><script>alert(1)</script></svg>",
            "plan.svg",
            "plan.svg (image/svg+xml)",
        ),
        ("application/zip", b"PK\x03\x04", "photos.zip", "photos.zip (application/zip)"),
        (
            "application/octet-stream",
            b"PK\x03\x04",
            "photos.zip",
            "photos.zip (application/octet-stream)",
        ),
        ("text/plain", b"mes notes", "notes.txt", "notes.txt (text/plain)"),
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42", "video.mp4", "video.mp4 (video/mp4)"),
        (
            "application/vnd.ms-outlook",
            b"\xd0\xcf\x11\xe0",
            "msg.msg",
            "msg.msg (application/vnd.ms-outlook)",
        ),
        ("image/jpeg", b"MZ\x90\x00 not a picture", "photo.jpg", "photo.jpg (unreadable)"),
        ("application/pdf", b"<html>not a pdf</html>", "cr.pdf", "cr.pdf (unreadable)"),
        ("application/octet-stream", b"MZ\x90\x00", "photo.jpg", "photo.jpg (unreadable)"),
        ("image/heic", b"\x00\x00\x00\x18ftypavif" + bytes(32), "a.heic", "a.heic (unreadable)"),
        ("application/x-msdownload", b"MZ", None, "(application/x-msdownload)"),
    ],
)
def test_refused_attachments(
    content_type: str, data: bytes, filename: str | None, refusal: str
) -> None:
    parsed = parse(
        multipart([text_part("Le texte reste."), part(content_type, data, filename=filename)])
    )
    assert parsed.attachments == ()
    assert parsed.refused == (refusal,)
    assert parsed.text == "Le texte reste."


def test_a_base64_part_that_does_not_decode_is_refused() -> None:
    broken = (
        b'Content-Type: image/jpeg; name="banc.jpg"\r\nContent-Disposition: attachment; '
        b'filename="banc.jpg"\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ%%%!!\r\n'
    )
    parsed = parse(multipart([text_part("Photo jointe."), broken]))
    assert parsed.refused == ("banc.jpg (unreadable)",)
    assert parsed.text == "Photo jointe."


def test_size_cap() -> None:
    data = PDF + bytes(1000 - len(PDF))
    at_cap = parse(
        multipart([part("application/pdf", data, filename="a.pdf")]), max_attachment_bytes=1000
    )
    assert [a.filename for a in at_cap.attachments] == ["a.pdf"]
    over = parse(
        multipart([part("application/pdf", data + b"\n", filename="a.pdf")]),
        max_attachment_bytes=1000,
    )
    assert (over.attachments, over.refused) == ((), ("a.pdf (too large)",))


def test_a_12_mb_recording_is_refused_by_the_default_cap(speech: dict[str, bytes]) -> None:
    message = EmailMessage()
    message["From"] = "Marie Dupont <marie.dupont@example.org>"
    message["To"] = GATEWAY
    message["Subject"] = "PARC mon enregistrement"
    message.set_content("Mon enregistrement de la réunion.")
    big = speech["m4a"] * (12 * 1024 * 1024 // len(speech["m4a"]) + 1)
    assert len(big) > 12 * 1024 * 1024
    message.add_attachment(big, maintype="audio", subtype="mp4", filename="réunion.m4a")
    message.add_attachment(speech["ogg"], maintype="audio", subtype="ogg", filename="court.ogg")
    parsed = parse(message.as_bytes())
    assert parsed.refused == ("réunion.m4a (too large)",)
    assert [a.filename for a in parsed.attachments] == ["court.ogg"]
    assert parsed.text == "Mon enregistrement de la réunion."


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\Marie\\Documents\\compte rendu.pdf", "compte rendu.pdf"),
        ("photo\u202egpj.pdf", "photogpj.pdf"),  # a right-to-left override disguising a name
        ("a\x01b\x7f.pdf", "ab.pdf"),
        ("=?UTF-8?B?Y29tcHRlLXJlbmR1IMOpdMOpLnBkZg==?=", "compte-rendu été.pdf"),
        ("x" * 150 + ".pdf", "x" * 96 + ".pdf"),
        ("..", ""),
    ],
)
def test_filenames_are_safe_for_display(filename: str, expected: str) -> None:
    head = (
        f'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="{filename}"'
        "\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    parsed = parse(multipart([head + base64.encodebytes(PDF)]))
    (attachment,) = parsed.attachments
    assert attachment.filename == expected
    assert len(attachment.filename) <= 100


def test_rfc2231_and_8bit_filenames() -> None:
    rfc2231 = (
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
        b" filename*0*=utf-8''compte-rendu%20;\r\n filename*1*=%C3%A9t%C3%A9.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(PDF)
    )
    latin = (
        'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="réunion.pdf"'
        "\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode("latin-1") + base64.encodebytes(PDF)
    parsed = parse(multipart([rfc2231, latin]))
    assert [a.filename for a in parsed.attachments] == ["compte-rendu été.pdf", "réunion.pdf"]


def test_inline_logo_of_an_html_layout_is_ignored_but_a_pasted_photo_is_kept() -> None:
    logo = png(16, 16)
    photo = png(120, 90, seed=1)
    assert len(logo) < 20 * 1024 <= len(photo)
    html = (
        '<p>Voir la photo :</p><img src="cid:photo-1@example"><p>--<br>Marie</p>'
        '<img src="cid:logo%40asso">'
    )
    related = multipart(
        [
            text_part(html, "html"),
            part(
                "image/png", logo, filename="logo.png", disposition="inline", content_id="logo@asso"
            ),
            part(
                "image/png",
                photo,
                filename="IMG_2041.png",
                disposition="inline",
                content_id="photo-1@example",
            ),
            # Inline too, but the HTML does not show it: a photo the resident added.
            part(
                "image/png", logo, filename="petite.png", disposition="inline", content_id="other@x"
            ),
        ],
        subtype="related",
    )
    parsed = parse(related)
    assert [a.filename for a in parsed.attachments] == ["IMG_2041.png", "petite.png"]
    assert parsed.refused == ()
    assert parsed.text == "Voir la photo :"


def nested(subtype: str, parts: list[bytes], boundary: str) -> bytes:
    """A multipart part (its own headers and boundary) to put inside another one."""
    out = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    for inner in parts:
        out += f"--{boundary}\r\n".encode() + inner + b"\r\n"
    return out + f"--{boundary}--".encode()


def test_apple_mail_photo_inside_the_html_alternative_is_kept() -> None:
    """Apple Mail: alternative(plain, related(html, photo)); the plain part is read, and the
    photo, which only the HTML branch carries, is still kept (it is no logo: over 20 KB)."""
    photo = png(160, 120, seed=3)
    html = '<html><body><div>Le banc cassé :</div><img src="cid:AB12@apple"></body></html>'
    related = nested(
        "related",
        [
            text_part(html, "html"),
            part(
                "image/png",
                photo,
                filename="IMG_2041.png",
                disposition="inline",
                content_id="AB12@apple",
            ),
        ],
        "Apple-Mail=_related",
    )
    alternative = multipart(
        [text_part("Le banc cassé :\n\nEnvoyé de mon iPhone"), related], subtype="alternative"
    )
    parsed = parse(alternative)
    assert parsed.text == "Le banc cassé :"
    assert [(a.filename, a.content_type, a.data) for a in parsed.attachments] == [
        ("IMG_2041.png", "image/png", photo)
    ]


def test_the_same_file_in_both_alternatives_is_kept_once() -> None:
    photo = jpeg(64, 48)
    plain_branch = nested(
        "mixed",
        [text_part("Le banc."), part("image/jpeg", photo, filename="banc.jpg")],
        "plain-branch",
    )
    html_branch = nested(
        "related",
        [text_part("<p>Le banc.</p>", "html"), part("image/jpeg", photo, filename="banc.jpg")],
        "html-branch",
    )
    parsed = parse(multipart([plain_branch, html_branch], subtype="alternative"))
    assert parsed.text == "Le banc."
    assert [a.filename for a in parsed.attachments] == ["banc.jpg"]


def test_iphone_photo_between_two_text_parts() -> None:
    photo = jpeg(64, 48)
    parsed = parse(
        multipart(
            [
                text_part("Le banc près du bassin :"),
                part("image/jpeg", photo, filename="IMG_2042.jpeg", disposition="inline"),
                text_part("\n\nEnvoyé de mon iPhone"),
            ]
        )
    )
    assert parsed.text == "Le banc près du bassin :"
    assert [a.data for a in parsed.attachments] == [photo]


def test_signatures_and_delivery_reports_are_neither_kept_nor_refused() -> None:
    signed = multipart(
        [
            text_part("Texte signé."),
            part("application/pgp-signature", b"-----BEGIN PGP SIGNATURE-----", filename="sig.asc"),
        ],
        subtype='signed; protocol="application/pgp-signature"; micalg=pgp-sha256',
    )
    parsed = parse(signed)
    assert (parsed.text, parsed.attachments, parsed.refused) == ("Texte signé.", (), ())


# -- automatic mail --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "sender", "subject", "reason"),
    [
        ("Auto-Submitted: auto-replied\r\n", None, None, "auto-submitted"),
        ("Auto-Submitted: auto-generated (failure)\r\n", None, None, "auto-submitted"),
        ("Auto-Submitted: no\r\n", None, None, None),
        ("X-Autoreply: yes\r\n", None, None, "auto-reply"),
        ("X-Autorespond: vacation\r\n", None, None, "auto-reply"),
        ("X-Auto-Response-Suppress: All\r\n", None, None, "auto-reply"),
        ("X-Auto-Response-Suppress: DR, OOF, AutoReply\r\n", None, None, "auto-reply"),
        ("X-Auto-Response-Suppress: DR\r\n", None, None, None),
        ("Precedence: bulk\r\n", None, None, "precedence: bulk"),
        ("Precedence: junk\r\n", None, None, "precedence: junk"),
        ("Precedence: list\r\nList-Id: <a.b>\r\n", None, None, "precedence: list"),
        ("Precedence: auto_reply\r\n", None, None, "precedence: auto_reply"),
        ("Precedence: first-class\r\n", None, None, None),
        ("List-Id: Quartier <quartier.listes.example>\r\n", None, None, "mailing list"),
        ("List-Unsubscribe: <mailto:u@listes.example>\r\n", None, None, "mailing list"),
        ("", "MAILER-DAEMON@mx.example.com", None, "no-reply sender"),
        ("", "Mail Delivery System <MAILER-DAEMON>", None, "no-reply sender"),
        ("", "postmaster@example.com", None, "no-reply sender"),
        ("", "Ville <no-reply@notifications.example>", None, "no-reply sender"),
        ("", "noreply@example.com", None, "no-reply sender"),
        ("", "NoReply-Alerts@example.com", None, "no-reply sender"),
        ("", "do-not-reply@example.com", None, "no-reply sender"),
        ("", "donotreply@example.com", None, "no-reply sender"),
        ("", "bounces+12345-abc=example.org@mail.example.com", None, "no-reply sender"),
        ("", "bounce@example.com", None, "no-reply sender"),
        ("", "noreplyer.fan@example.com", None, None),
        ("", "jean.bounce@example.com", None, None),
        ("Return-Path: <>\r\n", None, None, "null return path"),
        ("Return-Path: < >\r\n", None, None, "null return path"),
        ("", None, "Réponse automatique : absent", "auto-reply subject"),
        ("", None, "Reponse automatique: absent", "auto-reply subject"),
        ("", None, "Automatic reply: Out of office", "auto-reply subject"),
        ("", None, "Out of Office: back on Monday", "auto-reply subject"),
        ("", None, "Absence", "auto-reply subject"),
        ("", None, "Absence du bureau", "auto-reply subject"),
        ("", None, "Auto: je suis absent", "auto-reply subject"),
        ("", None, "Absence de bancs au parc", None),
        ("", None, "PARC : réponse automatique du parcmètre cassée", None),
        # The first rule that matches gives the reason.
        ("Auto-Submitted: auto-replied\r\nPrecedence: bulk\r\n", None, None, "auto-submitted"),
        ("X-Autoreply: yes\r\nList-Id: <a.b>\r\n", None, None, "auto-reply"),
        ("List-Id: <a.b>\r\nReturn-Path: <>\r\n", "noreply@x.example", None, "mailing list"),
        ("Return-Path: <>\r\n", "noreply@x.example", None, "no-reply sender"),
        ("Return-Path: <>\r\n", None, "Réponse automatique", "null return path"),
    ],
)
def test_automatic_mail(
    headers: str, sender: str | None, subject: str | None, reason: str | None
) -> None:
    raw = raw_mail(
        "Message.",
        headers=headers,
        sender=sender or "Marie Dupont <marie.dupont@example.org>",
        subject=subject or "PARC des bancs",
    )
    assert parse(raw).automatic == reason


def test_a_delivery_report_is_a_bounce() -> None:
    report = multipart(
        [
            text_part("Delivery failed."),
            b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
            b"Final-Recipient: rfc822; a@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n",
        ],
        subtype="report; report-type=delivery-status",
    )
    parsed = parse(report)
    assert parsed.automatic == "bounce"
    assert (parsed.text, parsed.refused) == ("Delivery failed.", ())


def test_an_ordinary_mail_is_not_automatic() -> None:
    assert parse(raw_mail("Des bancs.")).automatic is None


# -- identifiers, addresses, dates -----------------------------------------------------------


def test_message_id_forms() -> None:
    def with_id(value: str) -> str:
        return parse(raw_mail("x").replace(b"<test.1@example.org>", value.encode())).message_id

    assert with_id("<abc.123@example.org>") == "abc.123@example.org"
    assert with_id("  < abc.123\r\n @example.org >  ") == "abc.123@example.org"
    assert with_id("abc.123@example.org") == "abc.123@example.org"
    long_id = "a" * 150 + "@example.org"
    assert with_id(f"<{long_id}>") == "sha256:" + hashlib.sha256(long_id.encode()).hexdigest()
    exactly = "b" * 108 + "@example.org"
    assert len(exactly) == 120 and with_id(f"<{exactly}>") == exactly
    raw = raw_mail("x").replace(b"<test.1@example.org>", b"<>")
    assert parse(raw).message_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_message_id_absent_is_the_hash_of_the_raw_mail() -> None:
    raw = raw_mail("x").replace(b"Message-ID: <test.1@example.org>\r\n", b"")
    parsed = parse(raw)
    assert parsed.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert len(parsed.message_id) == 71


def test_threading_headers() -> None:
    long_ref = "r" * 130 + "@example.org"
    headers = (
        "In-Reply-To: <agora.out.41@participez.ville.example> (message de Participez)\r\n"
        f"References: <root@example.org>\r\n <agora.out.41@participez.ville.example>\r\n"
        f" <agora.out.41@participez.ville.example> <{long_ref}>\r\n"
    )
    parsed = parse(raw_mail("2", headers=headers))
    assert parsed.in_reply_to == "agora.out.41@participez.ville.example"
    assert parsed.references == (
        "root@example.org",
        "agora.out.41@participez.ville.example",
        "sha256:" + hashlib.sha256(long_ref.encode()).hexdigest(),  # as message_id stores it
    )


def test_recipients_in_order_lower_cased_and_deduplicated() -> None:
    raw = (
        b"From: Marie <marie.dupont@example.org>\r\n"
        b'To: "Dupont, Jean" <Jean.Dupont@Example.org>, Participez <PARTICIPEZ@participez.ville.'
        b"example>\r\n"
        b"Cc: =?UTF-8?Q?Jos=C3=A9?= <jose@example.org>, jean.dupont@example.org\r\n"
        b"Cc: undisclosed-recipients:;\r\n"
        b"Delivered-To: participez+parc@participez.ville.example\r\n"
        b"X-Original-To: participez@participez.ville.example\r\n"
        b"Subject: x\r\n\r\nx"
    )
    assert parse(raw).recipients == (
        "jean.dupont@example.org",
        "participez@participez.ville.example",
        "jose@example.org",
        "participez+parc@participez.ville.example",
    )


@pytest.mark.parametrize(
    ("value", "sender", "name"),
    [
        ("Marie Dupont <Marie.Dupont@Example.ORG>", "marie.dupont@example.org", "Marie Dupont"),
        ('"Dupont, Marie" <m@example.org>', "m@example.org", "Dupont, Marie"),
        ("=?UTF-8?B?w4lsb2TDqWU=?= <e@example.org>", "e@example.org", "Élodée"),
        ("m@example.org (Marie)", "m@example.org", "Marie"),
        ("Marie Dupont <marie.dupont@example.org", "marie.dupont@example.org", "Marie Dupont"),
        ("<<<>>>", "", ""),
        ("marie", "", ""),
        ('@@@, "', "", ""),
        ("", "", ""),
        ("Marie <marie@>", "", "Marie"),
    ],
)
def test_from_header(value: str, sender: str, name: str) -> None:
    parsed = parse(raw_mail("x", sender=value))
    assert (parsed.sender, parsed.sender_name) == (sender, name)


def test_no_from_at_all() -> None:
    parsed = parse(b"Subject: PARC\r\n\r\nDes bancs.")
    assert (parsed.sender, parsed.sender_name, parsed.text) == ("", "", "Des bancs.")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 3 Mar 2025 10:00:00 +0100", datetime(2025, 3, 3, 9, 0, tzinfo=UTC)),
        ("3 Mar 2025 10:00 GMT", datetime(2025, 3, 3, 10, 0, tzinfo=UTC)),
        ("Mon, 3 Mar 2025 10:00:00 -0000", datetime(2025, 3, 3, 10, 0, tzinfo=UTC)),
        ("hier soir", None),
        ("Mon, 32 Mar 2025 10:00:00 +0100", None),
    ],
)
def test_dates(value: str, expected: datetime | None) -> None:
    raw = raw_mail("x").replace(b"Mon, 3 Mar 2025 10:00:00 +0100", value.encode())
    date = parse(raw).date
    assert date == expected
    assert date is None or date.tzinfo is not None


def test_no_date() -> None:
    raw = raw_mail("x").replace(b"Date: Mon, 3 Mar 2025 10:00:00 +0100\r\n", b"")
    assert parse(raw).date is None


def test_subject_one_line_collapsed_and_cut() -> None:
    folded = raw_mail("x", subject="PARC   des\r\n\tbancs  \r\n  partout")
    assert parse(folded).subject == "PARC des bancs partout"
    long = parse(raw_mail("x", subject="BUDGET " + "très long " * 60)).subject
    assert len(long) == 300 and long.startswith("BUDGET très long")


# -- header injection ------------------------------------------------------------------------


def test_header_injection_is_impossible() -> None:
    crlf = base64.b64encode(b"PARC\r\nBcc: victim@example.org\x00\x1b[2J\xe2\x80\xa8x").decode()
    name = "=?UTF-8?Q?Mallory=0D=0AReply-To=3A_evil=40example=2Eorg?="
    file = "=?UTF-8?Q?a=0D=0AContent-Type=3A_text=2Fhtml=0A=2Epdf?="
    raw = (
        multipart(
            [text_part("x"), part("application/pdf", PDF, filename=file)],
            headers="",
        )
        .replace(b"Subject: PARC photos", f"Subject: =?UTF-8?B?{crlf}?=".encode())
        .replace(
            b"From: Marie Dupont <marie.dupont@example.org>",
            f"From: {name} <mallory@example.net>".encode(),
        )
    )
    parsed = parse(raw)
    assert parsed.subject == "PARC Bcc: victim@example.org [2J x"
    assert parsed.sender_name == "Mallory Reply-To: evil@example.org"
    assert parsed.sender == "mallory@example.net"
    (attachment,) = parsed.attachments
    assert attachment.filename == "html .pdf"  # "a\r\nContent-Type: text/" was a directory
    for value in (parsed.subject, parsed.sender_name, attachment.filename):
        assert one_line(value) and "\x1b" not in value


# -- never raising ---------------------------------------------------------------------------


def assert_well_formed(parsed: ParsedEmail) -> None:
    assert isinstance(parsed, ParsedEmail)
    assert parsed.message_id and len(parsed.message_id) <= 128
    assert one_line(parsed.subject) and one_line(parsed.sender_name)
    assert all(isinstance(a, Attachment) and one_line(a.filename) for a in parsed.attachments)
    for value in (parsed.text, parsed.original_text, parsed.subject, parsed.sender_name):
        value.encode("utf-8")  # no lone surrogate: it can be stored and logged


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n",
        b"\x00" * 1000,
        b"not an email at all",
        b"Subject: \r\n\r\n",
        b"Content-Type: multipart/mixed\r\n\r\n--\r\n--\r\n",  # no boundary
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",  # nothing after
        b"Content-Type: message/rfc822\r\n\r\nnot a message",
        b'Content-Type: text/plain; charset="\r\n\r\nx',
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!!",
        b"Content-Transfer-Encoding: x-unknown\r\n\r\nbody",
        b'From: "\r\nTo: ,,,,<<@>>\r\nDate: 99 Foo 99999 99:99:99 +9999\r\n\r\nx',
        b"Message-ID: <\r\nIn-Reply-To: >\r\nReferences: <<<>>>\r\n\r\nx",
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: image/png"
        b"\r\n\r\n\x89PNG\r\n--b--",
    ],
)
def test_garbage_never_raises(raw: bytes) -> None:
    parsed = parse(raw)
    assert_well_formed(parsed)
    if not raw.strip(b"\r\n"):
        assert parsed.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_random_bytes_never_raise() -> None:
    rng = random.Random(20250303)
    for size in (1, 10, 100, 1000, 100_000):
        for _ in range(5):
            assert_well_formed(parse(rng.randbytes(size)))


def test_mutated_corpus_never_raises() -> None:
    """Every corpus mail, cut short and with bytes flipped, still gives a ParsedEmail."""
    rng = random.Random(7)
    for name in sorted(EXPECTED):
        raw = (CORPUS / name).read_bytes()
        for cut in (1, len(raw) // 3, len(raw) // 2, len(raw) - 3):
            assert_well_formed(parse(raw[:cut]))
        for _ in range(10):
            mutated = bytearray(raw)
            for _ in range(20):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            assert_well_formed(parse(bytes(mutated)))


@pytest.mark.parametrize(
    "raw",
    [
        raw_mail(b"a" * 5_000_000),
        b"Subject: " + b"a b " * 1_250_000 + b"\r\n\r\nx",
        b"From: " + b'"a' * 2_500_000 + b"\r\n\r\nx",
        b"To: " + b"a@b.example, " * 400_000 + b"\r\n\r\nx",
        b"Content-Type: multipart/mixed; " + b'a="' * 1_600_000 + b"\r\n\r\nx",
        b"Message-ID: <" + b"a" * 5_000_000 + b">\r\n\r\nx",
        raw_mail(b">" * 5_000_000),
        raw_mail(b"Le 3 mars " + b"\r\nLe a" * 200_000),
        b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
        + b"".join(
            b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
            for i in range(2000)
        ),
    ],
    ids=[
        "5MB-body-line",
        "5MB-subject",
        "5MB-from-of-quotes",
        "5MB-to-list",
        "5MB-content-type",
        "5MB-message-id",
        "5MB-of-quote-markers",
        "200k-attribution-starts",
        "2000-nested-multiparts",
    ],
)
def test_huge_input_is_read_quickly(raw: bytes) -> None:
    started = time.monotonic()
    parsed = parse(raw)
    assert time.monotonic() - started < 15
    assert_well_formed(parsed)


def test_a_huge_line_keeps_the_words() -> None:
    parsed = parse(raw_mail("Des bancs " * 500_000))
    assert parsed.text == ("Des bancs " * 500_000).rstrip()
    assert parsed.original_text == parsed.text
