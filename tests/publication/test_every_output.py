"""Every hand-over of issue 13 from one campaign, as an operator and the public produce them.

One campaign holds SMS, voice (real French speech, with and without the caller's consent to
broadcast), Telegram and email contributions: published, rejected with a reason, answered in
each state, pending and spam. From it, every output is made the way it is made in
production: the `gateway` commands (open data, the three Decidim import files, publication to
a fake Decidim 0.32, its answers file, the studio folder, the report in both languages) and
the public web (the campaigns index, the campaign page in French and English and filtered,
the open-data downloads, the podcast feed and an episode). Each output is checked for what it
must carry, then every byte of all of them (an XLSX's compressed sheets and what was sent to
Decidim included) is searched for the residents' numbers, chat id, email address, the
original texts and the raw transcript.

The detailed behaviour of each output has its own test module; this one proves they agree.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from sqlalchemy import update

from gateway.cli import main as cli
from gateway.models import Campaign
from gateway.moderation import answers
from gateway.moderation.accounts import Actor
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from tests.console import seed
from tests.fakes.decidim_api import FakeDecidim
from tests.helpers import cli_env
from tests.privacy_scan import phone_forms
from tests.publication.test_decidim_files import decidim_body_ok, decidim_title_ok

CITY = Actor(name="mairie", role="moderator")
PHONE = "+33612345678"
CHAT_ID = "987654321"
EMAIL = "camille.dupont@example.net"
SAID = "bonjour ici Marie Dupont au 12 rue des Lilas il faut réparer la fontaine du square"
PUBLIC = "https://gateway.example.org"
COMPONENT = 7

# What must never leave the gateway, in any output.
PRIVATE = [
    *phone_forms(PHONE),
    CHAT_ID,
    EMAIL,
    "camille.dupont",
    "Dupont",
    "Paul Martin",
    "Lilas",
    SAID,
    "appelez-moi",
    "secret du 07",
    "Achetez des montres",
    "une remarque sans accord",
]


@pytest.fixture
def fake() -> Iterator[FakeDecidim]:
    with FakeDecidim() as server:
        yield server


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, runtime: Runtime) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))


def build_campaign(rt: Runtime, speech: bytes) -> dict[str, str]:
    """The campaign's contributions; returns their references by name."""
    sms = seed.contributor(rt, PHONE, "sms")
    voice = seed.contributor(rt, PHONE, "voice")  # the same person by phone
    telegram = seed.contributor(rt, CHAT_ID, "telegram")
    email = seed.contributor(rt, EMAIL, "email")
    ids = {
        "sms": seed.published(
            rt,
            "Des bancs au parc svp, appelez-moi au 06 12 34 56 78, Mme Dupont",
            "Des bancs au parc s'il vous plaît, [téléphone], [nom]",
            person=sms,
            neighbourhood="Parc Nord",
            category="proposal",
            themes=["Espaces verts"],
            received_at=datetime(2026, 3, 12, 17, 4, tzinfo=UTC),
        ),
        "voice": seed.published(
            rt,
            SAID,
            "Il faut réparer la fontaine du square.",
            person=voice,
            channel="voice",
            transcript=SAID,
            broadcast_consent=True,
            audio=speech,
            audio_duration=5.0,
            neighbourhood="Centre",
            received_at=datetime(2026, 3, 12, 18, 30, tzinfo=UTC),
        ),
        "voice_private": seed.published(
            rt,
            "une remarque sans accord de diffusion",
            "Une remarque publiée, mais pas à la radio.",
            channel="voice",
            transcript="une remarque sans accord de diffusion",
            broadcast_consent=False,
            audio=speech,
            audio_duration=5.0,
        ),
        "telegram": seed.published(
            rt,
            "Plus de jeux pour les petits",
            "Plus de jeux pour les petits enfants.",
            person=telegram,
            channel="telegram",
            category="diagnostic",
            neighbourhood="Parc Sud",
        ),
        "email": seed.published(
            rt,
            f'Bonjour, {EMAIL} ici : =HYPERLINK("http://evil") <script>alert(1)</script>',
            '=HYPERLINK("http://evil") des pistes cyclables <script>alert(1)</script>',
            person=email,
            channel="email",
        ),
        "rejected": seed.contribution(
            rt,
            "Texte hors sujet de Paul Martin",
            status="rejected",
            public_text="Un texte hors sujet.",
            decision_reason="Hors sujet pour cette consultation",
        ),
        "pending": seed.contribution(rt, "En attente : secret du 07 00 00 00 01"),
        "spam": seed.contribution(rt, "Achetez des montres", status="spam"),
    }
    answers.answer(rt, CITY, [ids["sms"]], "accepted", "Des bancs seront posés en avril.")
    answers.answer(rt, CITY, [ids["telegram"]], "evaluating", "L'équipe des parcs étudie l'idée.")
    answers.answer(rt, CITY, [ids["voice"]], "done", "La fontaine a été réparée le 2 mai.")
    return {name: seed.get(rt, cid).reference for name, cid in ids.items()}


def gateway(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, (args, result.output, result.stderr)
    return result


def readable(data: bytes) -> str:
    """Everything a file says: an XLSX's compressed XML included."""
    if data.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "".join(archive.read(n).decode("utf-8", "replace") for n in archive.namelist())
    return data.decode("utf-8", "replace")


async def fetch(client: TestClient[Any, Any], path: str) -> tuple[int, bytes]:
    async with client.get(path) as response:
        return response.status, await response.read()


async def test_every_output_of_a_campaign_carries_what_is_public_and_nothing_personal(
    client: TestClient[Any, Any],
    runtime: Runtime,
    settings: Settings,
    fake: FakeDecidim,
    voices: dict[str, bytes],
    tmp_path: Path,
):
    refs = build_campaign(runtime, voices["mid"])
    listed = {refs[k] for k in ("sms", "voice", "voice_private", "telegram", "email", "rejected")}
    published = listed - {refs["rejected"]}
    unlisted = {refs["pending"], refs["spam"]}
    with runtime.sessions.begin() as session:
        session.execute(
            update(Campaign).where(Campaign.slug == "parc").values(decidim_component=COMPONENT)
        )
    env = {
        **cli_env(settings),
        "GATEWAY_PUBLIC_URL": settings.public_url,
        "GATEWAY_DECIDIM_URL": fake.base_url,
        "GATEWAY_DECIDIM_API_KEY": fake.key,
        "GATEWAY_DECIDIM_API_SECRET": fake.secret,
    }
    outputs: dict[str, bytes] = {}

    # -- open data: the command and the public download agree --------------------------
    for fmt in ("csv", "json"):
        out = tmp_path / f"parc.{fmt}"
        gateway(env, "export", "--campaign", "parc", "--format", fmt, "--output", str(out))
        outputs[f"export.{fmt}"] = out.read_bytes()
        status, body = await fetch(client, f"/campaigns/parc/contributions.{fmt}")
        assert status == 200
        outputs[f"download.{fmt}"] = body
    rows = list(
        csv.DictReader(io.StringIO(outputs["export.csv"].decode("utf-8-sig")), delimiter=";")
    )
    downloaded = list(
        csv.DictReader(io.StringIO(outputs["download.csv"].decode("utf-8-sig")), delimiter=";")
    )
    assert len(rows) == len(downloaded)
    differences = [
        {k: (a[k], b[k]) for k in a if a[k] != b[k]} for a, b in zip(rows, downloaded, strict=True)
    ]
    assert differences == [{}] * len(rows)
    by_ref = {r["reference"]: r for r in rows}
    assert set(by_ref) == listed
    assert {r["channel"] for r in rows} == {"sms", "voice", "telegram", "email"}
    assert by_ref[refs["sms"]]["answer_state"] == "accepted"
    assert by_ref[refs["sms"]]["answer_text"] == "Des bancs seront posés en avril."
    assert by_ref[refs["voice"]]["answer_state"] == "done"
    assert by_ref[refs["rejected"]]["rejection_reason"] == "Hors sujet pour cette consultation"
    assert by_ref[refs["email"]]["text"].startswith("'=HYPERLINK")  # never run as a formula
    # One person by SMS and by phone: one pseudonym; a different one for the others.
    assert by_ref[refs["sms"]]["contributor"] == by_ref[refs["voice"]]["contributor"]
    assert by_ref[refs["sms"]]["contributor"] != by_ref[refs["telegram"]]["contributor"]
    document = json.loads(outputs["export.json"])
    assert {c["reference"] for c in document["contributions"]} == listed

    # -- Decidim: the three import files ------------------------------------------------
    for fmt in ("csv", "json", "xlsx"):
        out = tmp_path / f"decidim.{fmt}"
        gateway(
            env, "export", "--campaign", "parc", "--format", f"decidim-{fmt}", "--output", str(out)
        )
        outputs[f"decidim.{fmt}"] = out.read_bytes()
    proposals = json.loads(outputs["decidim.json"])
    assert {p["body/fr"].rsplit(" ", 1)[1] for p in proposals} == published
    for proposal in proposals:
        assert decidim_title_ok(proposal["title/fr"]), proposal["title/fr"]
        assert decidim_body_ok(proposal["body/fr"]), proposal["body/fr"]
    csv_rows = list(csv.DictReader(io.StringIO(outputs["decidim.csv"].decode()), delimiter=";"))
    assert [r["title/fr"] for r in csv_rows] == [p["title/fr"] for p in proposals]

    # -- Decidim 0.32: direct publication, then the answers file ------------------------
    gateway(env, "decidim", "publish", "--campaign", "parc")
    assert len(fake.proposals) == len(published)
    titles = {p["title/fr"] for p in proposals}
    assert {p["title"]["fr"] for p in fake.proposals} == titles  # one rulebook, one title
    outputs["sent to decidim"] = json.dumps(fake.requests, ensure_ascii=False).encode()
    out = tmp_path / "answers.csv"
    gateway(
        env, "decidim", "answers", "--campaign", "parc", "--format", "csv", "--output", str(out)
    )
    outputs["decidim answers"] = out.read_bytes()
    answer_rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8")), delimiter=";"))
    assert sorted(r["state"] for r in answer_rows) == ["accepted", "accepted", "evaluating"]
    assert all(r["id"] for r in answer_rows)

    # -- Radio Agora: the studio folder, the feed and the episode -------------------------
    studio = tmp_path / "studio"
    gateway(env, "radio", "pack", "--campaign", "parc", "--output", str(studio))
    clips = sorted(p.name for p in studio.iterdir())
    assert clips == [f"001-{refs['voice']}.mp3", "cues.csv"]  # only the caller who said yes
    for path in studio.iterdir():
        outputs[f"studio/{path.name}"] = path.read_bytes()
    status, feed = await fetch(client, "/campaigns/parc/podcast.xml")
    assert status == 200
    outputs["podcast.xml"] = feed
    episodes = feedparser.parse(feed).entries
    assert [e.title.startswith(refs["voice"]) for e in episodes] == [True]
    status, audio = await fetch(client, episodes[0].enclosures[0].href.removeprefix(PUBLIC))
    assert status == 200 and audio[:3] != b"ID3" and len(audio) > 1000
    outputs["episode.mp3"] = audio
    status, _ = await fetch(client, f"/campaigns/parc/audio/{refs['voice_private']}.mp3")
    assert status == 404

    # -- the report, in French and in English ---------------------------------------------
    for language in ("fr", "en"):
        out = tmp_path / f"report-{language}.html"
        gateway(
            env,
            "report",
            "--campaign",
            "parc",
            "--language",
            language,
            "--output",
            str(out),
        )
        outputs[f"report.{language}"] = out.read_bytes()
    assert "Des bancs seront posés en avril." in outputs["report.fr"].decode()

    # -- the public pages --------------------------------------------------------------
    for path in (
        "/campaigns",
        "/campaigns/parc",
        "/campaigns/parc?lang=en",
        "/campaigns/parc?channel=voice",
        "/campaigns/parc?state=rejected",
    ):
        status, page = await fetch(client, path)
        assert status == 200, path
        outputs[path] = page
    page = outputs["/campaigns/parc"].decode()
    for ref in listed:
        assert ref in page
    for ref in unlisted:
        assert ref not in page
    assert "Hors sujet pour cette consultation" in page  # rejected, listed with the reason
    assert "La fontaine a été réparée le 2 mai." in page
    assert "<script>alert(1)</script>" not in page  # escaped, inert
    assert "contributions.csv" in page and "podcast.xml" in page
    assert f"/campaigns/parc/audio/{refs['voice']}.mp3" in page  # the player
    assert f"/campaigns/parc/audio/{refs['voice_private']}.mp3" not in page
    voice_only = outputs["/campaigns/parc?channel=voice"].decode()
    assert refs["voice"] in voice_only and refs["sms"] not in voice_only

    # -- nothing personal, anywhere ------------------------------------------------------
    assert len(outputs) >= 20
    lookups = [runtime.vault.lookup_hash(ch, a) for ch, a in (("sms", PHONE), ("email", EMAIL))]
    for name, data in outputs.items():
        text = readable(data)
        for secret in [*PRIVATE, *lookups]:
            assert secret not in text, (name, secret)
            assert secret.encode("utf-16-le") not in data, (name, secret)
        for ref in unlisted:
            assert ref not in text, (name, ref)
