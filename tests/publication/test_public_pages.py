"""The public pages and the open-data downloads, as a resident, a journalist or a script sees
them: no login, everything public shown, nothing personal anywhere in the bytes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from sqlalchemy import select, update

from gateway import ingest
from gateway.cli import main
from gateway.messages import IncomingMessage
from gateway.models import Campaign, Contribution
from gateway.moderation import answers
from gateway.moderation.accounts import Actor
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.console import seed
from tests.console.dom import parse
from tests.privacy_scan import phone_forms

CITY = Actor(name="mairie", role="moderator")
PHONE = "+33612345678"
PHONE_2 = "+33698765432"
CHAT_ID = "987654321"
EMAIL = "camille.dupont@example.net"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def world(runtime: Runtime) -> dict[str, Any]:
    """A campaign with SMS, voice, Telegram and email contributions: published, rejected,
    answered, pending and spam; and what must never leave the gateway."""
    sms_person = seed.contributor(runtime, PHONE, "sms")
    voice_person = seed.contributor(runtime, PHONE, "voice")  # the same person by phone
    telegram_person = seed.contributor(runtime, CHAT_ID, "telegram")
    email_person = seed.contributor(runtime, EMAIL, "email")
    ids = {
        "sms": seed.published(
            runtime,
            "Des bancs svp, appelez-moi au 06 12 34 56 78, Mme Dupont",
            "Des bancs svp, appelez-moi au [téléphone], [nom]",
            person=sms_person,
            neighbourhood="Parc Nord",
            category="proposal",
            themes=["Espaces verts"],
            received_at=datetime(2026, 3, 12, 17, 4, tzinfo=UTC),
        ),
        "voice": seed.published(
            runtime,
            "réparer la fontaine du square je suis au 12 rue des Lilas",
            "Réparer la fontaine du square.",
            person=voice_person,
            channel="voice",
            transcript="réparer la fontaine du square je suis au 12 rue des Lilas",
            broadcast_consent=True,
            audio=seed.WAV,
            audio_duration=3.0,
            neighbourhood="Centre",
        ),
        "voice_private": seed.published(
            runtime,
            "un message qui ne doit pas passer à la radio",
            "Un message sans accord de diffusion.",
            channel="voice",
            broadcast_consent=None,
            audio=seed.WAV,
        ),
        "telegram": seed.published(
            runtime,
            "Plus de jeux pour les petits",
            "Plus de jeux pour les petits.",
            person=telegram_person,
            channel="telegram",
            category="diagnostic",
            neighbourhood="Parc Sud",
        ),
        "email": seed.published(
            runtime,
            f'Bonjour, {EMAIL} ici : =HYPERLINK("http://evil") {XSS}',
            f'=HYPERLINK("http://evil") {XSS}',
            person=email_person,
            channel="email",
        ),
        "rejected": seed.contribution(
            runtime,
            "Texte hors sujet de Paul Martin",
            status="rejected",
            public_text="Texte hors sujet.",
            decision_reason="Hors sujet",
        ),
        "pending": seed.contribution(runtime, "En attente : secret du 07 00 00 00 01"),
        "spam": seed.contribution(runtime, "Achetez des montres", status="spam"),
        "draft": seed.published(runtime, "Pistes cyclables", "Pistes cyclables.", campaign="velo"),
    }
    answers.answer(runtime, CITY, [ids["sms"]], "accepted", "Des bancs seront posés en avril.")
    answers.answer(runtime, CITY, [ids["telegram"]], "evaluating", "")
    with runtime.sessions() as session:
        refs = {
            name: session.get(Contribution, cid).reference  # type: ignore[union-attr]
            for name, cid in ids.items()
        }
    return {"ids": ids, "refs": refs}


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, runtime: Runtime) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))


PRIVATE = [
    *phone_forms(PHONE),
    CHAT_ID,
    EMAIL,
    "Dupont",
    "Paul Martin",
    "Lilas",
    "07 00 00 00 01",
    "Achetez des montres",
    "Pistes cyclables",
    "ne doit pas passer",
]


def assert_nothing_personal(body: str) -> None:
    found = [value for value in PRIVATE if value in body]
    assert found == [], found


async def test_the_campaign_page_shows_what_was_published_rejected_and_answered(
    client: TestClient[Any, Any], world: dict[str, Any]
) -> None:
    refs = world["refs"]
    response = await client.get("/campaigns/parc")
    assert response.status == 200
    assert "no login" and response.headers["Content-Type"].startswith("text/html")
    body = await response.text()
    dom = parse(body)
    shown = {n.attrs["data-reference"]: n for n in dom.select("article[data-reference]")}
    assert set(shown) == {
        refs[k] for k in ("sms", "voice", "voice_private", "telegram", "email", "rejected")
    }
    sms = shown[refs["sms"]]
    assert "Recueilli par SMS le 12 mars à 18 h 04, quartier Parc Nord" in sms.text
    assert "Des bancs svp, appelez-moi au [téléphone], [nom]" in sms.text
    assert "Des bancs seront posés en avril." in sms.text and "acceptée" in sms.text
    assert sms.attrs["data-answer"] == "accepted"
    rejected = shown[refs["rejected"]]
    assert rejected.attrs["data-outcome"] == "rejected"
    assert "Hors sujet" in rejected.text and "Texte hors sujet." in rejected.text
    # Audio only where the caller said yes.
    players = [n.attrs["src"] for n in dom.select("audio")]
    assert players == [f"/campaigns/parc/audio/{refs['voice']}.mp3"]
    # Links to the open data.
    assert dom.select("a#download-csv")[0].attrs["href"] == "/campaigns/parc/contributions.csv"
    assert_nothing_personal(body)
    # What a resident wrote cannot run: escaped, and the policy forbids scripts anyway.
    assert XSS not in body and "&lt;script&gt;" in body
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


async def test_filters_work_without_javascript(
    client: TestClient[Any, Any], world: dict[str, Any]
) -> None:
    refs = world["refs"]

    async def shown(query: str) -> set[str]:
        response = await client.get(f"/campaigns/parc?{query}")
        assert response.status == 200
        dom = parse(await response.text())
        return {n.attrs["data-reference"] for n in dom.select("article[data-reference]")}

    assert await shown("state=rejected") == {refs["rejected"]}
    assert await shown("state=accepted") == {refs["sms"]}
    assert await shown("state=evaluating") == {refs["telegram"]}
    assert await shown("state=unanswered") == {refs["voice"], refs["voice_private"], refs["email"]}
    assert await shown("channel=voice") == {refs["voice"], refs["voice_private"]}
    assert await shown("category=diagnostic") == {refs["telegram"]}
    assert await shown("neighbourhood=Parc+Sud") == {refs["telegram"]}
    assert await shown("channel=voice&neighbourhood=Centre") == {refs["voice"]}
    # An unknown value filters nothing rather than failing.
    assert len(await shown("channel=pigeon")) == 6
    page = parse(await (await client.get("/campaigns/parc?state=accepted")).text())
    selected = page.select("#filter-state option[selected]")
    assert [n.attrs["value"] for n in selected] == ["accepted"]
    assert page.select("label[for=filter-state]")  # every control has its label


async def test_a_large_campaign_is_read_page_by_page_in_order(
    client: TestClient[Any, Any], runtime: Runtime, world: dict[str, Any]
) -> None:
    """Fifty to a page, oldest first, each page read from the database alone (the filters'
    neighbourhood list included), a page past the end showing the last."""
    start = datetime(2026, 4, 1, tzinfo=UTC)
    more = [
        seed.published(
            runtime,
            f"idée {n}",
            f"Idée numéro {n}.",
            channel="voice" if n % 2 else "sms",
            neighbourhood="Quartier Est" if n == 119 else None,
            received_at=start + timedelta(minutes=n),
        )
        for n in range(120)
    ]
    added = [seed.get(runtime, cid).reference for cid in more]
    refs = world["refs"]

    async def page(query: str) -> tuple[list[str], str]:
        response = await client.get(f"/campaigns/parc?{query}")
        assert response.status == 200
        html = await response.text()
        dom = parse(html)
        return [n.attrs["data-reference"] for n in dom.select("article[data-reference]")], html

    first, html = await page("")
    assert len(first) == 50 and "Quartier Est" in html  # offered though on the last page only
    second, _ = await page("page=2")
    last, _ = await page("page=3")
    beyond, _ = await page("page=99")
    assert len(second) == 50 and len(last) == 26 and beyond == last
    everything = first + second + last
    assert len(set(everything)) == 126
    # Oldest first: the SMS of March, April's 120, then the world's others (received today).
    assert everything[0] == refs["sms"] and everything[1:121] == added
    voice, html = await page("channel=voice&page=2")
    odd = [added[n] for n in range(120) if n % 2]  # 60 voice messages, then the world's two
    assert voice[:10] == odd[50:] and set(voice[10:]) == {refs["voice"], refs["voice_private"]}
    assert "page=1" not in html  # the first page's link has no page number


async def test_a_campaign_can_hide_the_text_of_rejected_contributions(
    client: TestClient[Any, Any], runtime: Runtime, world: dict[str, Any]
) -> None:
    with runtime.sessions.begin() as session:
        session.execute(
            update(Campaign).where(Campaign.slug == "parc").values(public_rejected_text=False)
        )
    body = await (await client.get("/campaigns/parc")).text()
    article = {n.attrs["data-reference"]: n for n in parse(body).select("article[data-reference]")}[
        world["refs"]["rejected"]
    ]
    assert "Hors sujet" in article.text  # the reason stays public
    assert "Texte hors sujet." not in body
    csv_body = await (await client.get("/campaigns/parc/contributions.csv")).text()
    assert "Texte hors sujet." not in csv_body and "Hors sujet" in csv_body


async def test_the_index_lists_open_and_closed_campaigns_and_drafts_stay_hidden(
    client: TestClient[Any, Any], world: dict[str, Any]
) -> None:
    response = await client.get("/campaigns")
    assert response.status == 200
    dom = parse(await response.text())
    slugs = [n.attrs["data-slug"] for n in dom.select("li[data-slug]")]
    assert "parc" in slugs and "ecoles" in slugs and "velo" not in slugs
    for path in ("/campaigns/velo", "/campaigns/nowhere", "/campaigns/velo/contributions.csv"):
        missing = await client.get(path)
        assert missing.status == 404, path
        assert "Pistes cyclables" not in await missing.text()


async def test_the_page_reads_in_english(
    client: TestClient[Any, Any], world: dict[str, Any]
) -> None:
    body = await (await client.get("/campaigns/parc?lang=en")).text()
    assert '<html lang="en">' in body
    assert "Received by SMS on March 12 at 18:04, Parc Nord neighbourhood" in body
    assert "The city&#39;s answer" in body or "The city's answer" in body
    # The language link keeps the filters.
    dom = parse(await (await client.get("/campaigns/parc?lang=en&channel=sms")).text())
    assert dom.select("a.lang")[0].attrs["href"] == "/campaigns/parc?channel=sms"


def _read_csv(raw: bytes) -> list[dict[str, str]]:
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM French spreadsheet software needs
    text = raw.decode("utf-8-sig")
    assert "\r\n" in text
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


async def test_concurrent_downloads_share_one_build_and_leave_the_server_answering(
    client: TestClient[Any, Any], world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow open-data build (a large campaign) runs on its own thread and takes no write
    lock: ten concurrent downloads of one file make one build, and /healthz, the campaign
    page and an SMS webhook's storage are served while it runs."""
    from gateway.publication import opendata

    started, release = threading.Event(), threading.Event()
    calls: list[str] = []
    real = opendata.records_for

    def slow(*args: Any, **kwargs: Any) -> Any:
        calls.append("build")
        started.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(opendata, "records_for", slow)
    downloads = [
        asyncio.create_task(client.get("/campaigns/parc/contributions.csv")) for _ in range(10)
    ]
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    health = await client.get("/healthz")
    page = await client.get("/campaigns/parc")
    assert health.status == 200 and page.status == 200
    sms = IncomingMessage(
        channel="sms",
        provider_message_id="SM-during-the-build",
        sender="+33611111111",
        recipient=None,
        text="Des bancs au parc",
        received_at=datetime.now(UTC),
    )
    loop = asyncio.get_running_loop()
    (stored,) = await loop.run_in_executor(None, ingest.store, client.app[RUNTIME], [sms])
    assert stored.message_id is not None
    assert [d for d in downloads if d.done()] == []  # still waiting for the build
    release.set()
    responses = await asyncio.gather(*downloads)
    bodies = {await r.read() for r in responses}
    assert [r.status for r in responses] == [200] * 10
    assert len(bodies) == 1 and world["refs"]["sms"].encode() in bodies.pop()
    assert calls == ["build"]


async def test_open_data_downloads_hold_public_data_only(
    client: TestClient[Any, Any], world: dict[str, Any]
) -> None:
    refs = world["refs"]
    response = await client.get("/campaigns/parc/contributions.csv")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    raw = await response.read()
    rows = {row["reference"]: row for row in _read_csv(raw)}
    assert set(rows) == {
        refs[k] for k in ("sms", "voice", "voice_private", "telegram", "email", "rejected")
    }
    sms = rows[refs["sms"]]
    assert sms["outcome"] == "published" and sms["answer_state"] == "accepted"
    assert sms["themes"] == "Espaces verts" and sms["channel"] == "sms"
    assert sms["received_at"] == "2026-03-12T17:04:00Z"
    assert rows[refs["rejected"]]["rejection_reason"] == "Hors sujet"
    # The same person by SMS and by phone has one pseudonym; another person another one.
    assert sms["contributor"] and sms["contributor"] == rows[refs["voice"]]["contributor"]
    assert rows[refs["telegram"]]["contributor"] not in ("", sms["contributor"])
    # A formula sent by a resident is text in a spreadsheet.
    assert rows[refs["email"]]["text"].startswith("'=HYPERLINK")
    assert rows[refs["voice"]]["audio_url"].endswith(f"/campaigns/parc/audio/{refs['voice']}.mp3")
    assert rows[refs["voice_private"]]["audio_url"] == ""
    assert_nothing_personal(raw.decode("utf-8-sig"))

    data = await (await client.get("/campaigns/parc/contributions.json")).json()
    assert data["campaign"]["slug"] == "parc"
    by_ref = {item["reference"]: item for item in data["contributions"]}
    assert by_ref[refs["email"]]["text"].startswith('=HYPERLINK("http://evil")')  # exact in JSON
    assert by_ref[refs["sms"]]["themes"] == ["Espaces verts"]
    assert_nothing_personal(json.dumps(data, ensure_ascii=False))


def test_gateway_export_writes_the_same_files(
    runtime: Runtime, settings: Settings, world: dict[str, Any], tmp_path: Path
) -> None:
    env = {
        "GATEWAY_DATA_DIR": settings.data_dir,
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_REDIS_URL": settings.redis_url,
        "GATEWAY_SECRET_KEY": settings.secret_key,
        "GATEWAY_CAMPAIGNS_DIR": settings.campaigns_dir,
        "GATEWAY_PUBLIC_URL": settings.public_url,
    }
    out = tmp_path / "parc.csv"
    result = CliRunner(env=env).invoke(
        main, ["export", "--campaign", "parc", "--format", "csv", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = _read_csv(out.read_bytes())
    assert len(rows) == 6
    assert not list(tmp_path.glob(".*partial"))
    result = CliRunner(env=env).invoke(main, ["export", "--campaign", "parc", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout_bytes)
    assert {c["reference"] for c in data["contributions"]} == {r["reference"] for r in rows}
    assert_nothing_personal(out.read_bytes().decode("utf-8-sig") + result.stdout_bytes.decode())
    unknown = CliRunner(env=env).invoke(main, ["export", "--campaign", "nope", "--format", "csv"])
    assert unknown.exit_code != 0 and "no campaign" in unknown.output


def test_pseudonyms_cannot_be_linked_across_campaigns(runtime: Runtime) -> None:
    vault = runtime.vault
    person = vault.lookup_hash("sms", PHONE)
    assert vault.pseudonym("parc", person) != vault.pseudonym("budget", person)
    assert vault.pseudonym("parc", person) == vault.pseudonym("parc", person)
    assert person not in vault.pseudonym("parc", person)
    with runtime.sessions() as session:
        assert session.scalar(select(Campaign).where(Campaign.slug == "parc")) is not None
