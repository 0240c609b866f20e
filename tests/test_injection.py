"""Injection payloads proven inert (issue 16): one table of hostile strings
(tests/hostile_strings.py) sent as SMS through the real, signed Twilio webhook and as Telegram
messages through its webhook (with a fake Bot API for the replies), then used by a
moderator as the public text, the rejection reason and the city's answer, by an agent as a
collected contribution and its place, and by an admin as the campaign's title, question and a
neighbourhood (the API's campaign editor); then read back
from the API (JSON, the exact text, never markup), the open-data CSV and JSON downloads and the
`gateway export` files (CSV, JSON, the Decidim CSV, JSON and XLSX: no cell a spreadsheet would
run as a formula), the database (the SQL ran as data: every table is there), and the email a
resident gets (the raw bytes parsed back carry exactly the expected headers). The console and
the public page in Chromium: tests/console/test_browser_injection.py. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from aiohttp import web
from click.testing import CliRunner
from sqlalchemy import inspect, select

from channels.email.sender import build
from channels.telegram.tests import updates as tu
from channels.telegram.tests.fake_api import FakeTelegram
from channels.telegram.webhook import PATH as TELEGRAM_PATH
from channels.telegram.webhook import SECRET_HEADER
from gateway.cli import main as cli
from gateway.messages import OutgoingText
from gateway.models import Campaign, Contribution, InboundMessage
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from tests.api.client import Api
from tests.api.conftest import make_token
from tests.helpers import cli_env, drain, runtime_with, sign, sms_form
from tests.hostile_strings import FORMULA_STARTS, MARKUP, PAYLOADS

SENDERS = {name: f"+336200{n:05d}" for n, name in enumerate(PAYLOADS)}
TELEGRAM_SECRET = "webhook-secret-for-injection-tests_0123"


async def send_sms(client: Any, settings: Settings, body: str, sender: str) -> int:
    form = sms_form(body, sender=sender)
    path = "/webhooks/twilio/sms"
    signature = sign(settings.twilio_auth_token, settings.public_url + path, form)
    response = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    return int(response.status)


def by_sender(runtime: Runtime) -> dict[str, Contribution]:
    """Each payload's contribution (its text holds the payload's name's sender's words)."""
    with runtime.sessions() as session:
        found = list(session.scalars(select(Contribution).order_by(Contribution.id)))
    return {c.text: c for c in found}


def no_formula(cell: str, where: str) -> None:
    assert not cell.startswith(FORMULA_STARTS), (where, cell[:60])


def csv_cells(data: bytes) -> list[str]:
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";" if ";" in text[:200] else ","))
    return [cell for row in rows for cell in row]


@pytest.fixture
def tg_settings(settings: Settings) -> Iterator[Settings]:
    with FakeTelegram() as fake:
        yield settings.with_overrides(
            telegram_bot_token=fake.token,
            telegram_webhook_secret=TELEGRAM_SECRET,
            telegram_api_base=fake.base_url,
        )


@pytest.fixture
def tg_runtime(tg_settings: Settings) -> Iterator[Runtime]:
    rt = runtime_with(tg_settings)
    yield rt
    rt.close()


async def test_hostile_strings_are_data_in_the_api_the_exports_and_email(
    aiohttp_client: Callable[[web.Application], Any],
    tg_settings: Settings,
    tg_runtime: Runtime,
    tmp_path: Path,
) -> None:
    settings, runtime = tg_settings, tg_runtime
    client = await aiohttp_client(create_app(settings))
    api = Api(client, make_token(runtime, "ops", scope="admin"))

    # -- in: by SMS, the webhook as Twilio calls it; by Telegram, its webhook ------------------
    for name, payload in PAYLOADS.items():
        assert await send_sms(client, settings, f"PARC {payload}", SENDERS[name]) == 200, name
    await asyncio.to_thread(drain, runtime)
    for n, payload in enumerate(PAYLOADS.values()):
        update = tu.text(700000 + n, payload)
        response = await client.post(
            TELEGRAM_PATH, json=update, headers={SECRET_HEADER: TELEGRAM_SECRET}
        )
        assert response.status == 200
    await asyncio.to_thread(drain, runtime)
    with runtime.sessions() as session:
        chats = list(
            session.scalars(select(InboundMessage.text).where(InboundMessage.channel == "telegram"))
        )
        rows = list(
            session.scalars(
                select(Contribution).where(Contribution.channel == "sms").order_by(Contribution.id)
            )
        )
    assert len(chats) == len(PAYLOADS)  # stored, each, whatever it says
    assert len(rows) == len(PAYLOADS)
    ids = [c.id for c in rows]
    # The text as the gateway keeps it (NUL and controls dropped, the rest as typed).
    kept = {c.id: c.text for c in rows}
    assert any("<script>window.__pwned" in t for t in kept.values())
    assert any(t.startswith("=HYPERLINK") or "=HYPERLINK" in t for t in kept.values())
    assert not any("\x00" in t for t in kept.values())

    # -- the moderators' and the admin's words ----------------------------------------------
    payloads = list(PAYLOADS.values())
    for n, cid in enumerate(ids):
        payload = payloads[n]
        if n % 3 == 2:
            reply = await api.post(
                f"/contributions/{cid}/decision", {"action": "reject", "reason": payload}
            )
            assert reply.status == 200, reply.text
            continue
        reply = await api.put(f"/contributions/{cid}/public-text", {"public_text": payload})
        assert reply.status == 200, reply.text
        reply = await api.post(f"/contributions/{cid}/decision", {"action": "publish"})
        assert reply.status == 200, reply.text
        reply = await api.post(
            f"/contributions/{cid}/answer", {"state": "accepted", "text": payload}
        )
        assert reply.status == 200, reply.text
    collected = await api.post(
        "/contributions",
        {
            "campaign": "parc",
            "text": PAYLOADS["script"] + " " + PAYLOADS["hyperlink"],
            "channel": "street",
            "place": PAYLOADS["attribute"],
        },
    )
    assert collected.status in (200, 201), collected.text
    campaign = await api.put(
        "/campaigns/parc",
        {
            "slug": "parc",
            "title": PAYLOADS["attribute"],
            "question": PAYLOADS["script"],
            "keywords": ["PARC"],
            "status": "open",
            "phone_numbers": ["+33100000001"],
            "neighbourhoods": ["Parc Nord", PAYLOADS["svg"]],
        },
    )
    assert campaign.status == 200, campaign.text
    with runtime.sessions() as session:
        parc = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert parc is not None and parc.title == PAYLOADS["attribute"]

    # -- the database: the SQL was data ---------------------------------------------------------
    with runtime.engine.connect() as connection:
        assert "contributions" in inspect(connection).get_table_names()
    assert len(by_sender(runtime)) >= len(PAYLOADS)

    # -- the API: JSON, the exact text --------------------------------------------------------
    for cid in ids:
        reply = await api.get(f"/contributions/{cid}")
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.body is not None and reply.body["text"] == kept[cid]
        for raw in MARKUP:  # JSON escapes nothing it need not, but it is never HTML
            if raw in kept[cid]:
                assert raw in reply.body["text"]

    # -- open data: the public downloads and the export command --------------------------------
    outputs: dict[str, bytes] = {}
    for fmt in ("csv", "json"):
        async with client.get(f"/campaigns/parc/contributions.{fmt}") as response:
            assert response.status == 200
            outputs[f"download.{fmt}"] = await response.read()
    env = cli_env(settings)
    for fmt in ("csv", "json", "decidim-csv", "decidim-json", "decidim-xlsx"):
        out = tmp_path / f"export.{fmt}"
        result = CliRunner().invoke(
            cli, ["export", "--campaign", "parc", "--format", fmt, "--output", str(out)], env=env
        )
        assert result.exit_code == 0, (fmt, result.output)
        outputs[fmt] = out.read_bytes()
    for name in ("download.csv", "csv", "decidim-csv"):
        cells = csv_cells(outputs[name])
        assert any("HYPERLINK" in c for c in cells) or name == "decidim-csv", name
        for cell in cells:
            no_formula(cell, name)
    book = openpyxl.load_workbook(io.BytesIO(outputs["decidim-xlsx"]))
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", ("decidim-xlsx", cell.coordinate)
                if isinstance(cell.value, str):
                    no_formula(cell.value, "decidim-xlsx")
    with zipfile.ZipFile(io.BytesIO(outputs["decidim-xlsx"])) as archive:
        assert not any(b"<f>" in archive.read(n) for n in archive.namelist())
    document = json.loads(outputs["download.json"])
    texts = {c.get("text") for c in document["contributions"]}
    assert PAYLOADS["hyperlink"] in texts or any(PAYLOADS["hyperlink"] in (t or "") for t in texts)
    json.loads(outputs["decidim-json"])  # parses: the payloads are strings in it

    # -- email: nothing a resident or a moderator wrote adds a header ----------------------------
    for name, payload in PAYLOADS.items():
        message = OutgoingText(
            channel="email",
            recipient="camille@example.net",
            sender=None,
            text=payload,
            thread={
                "subject": payload,
                "in_reply_to": f"a@example.org>{payload}",
                "references": [f"b@example.org>{payload}"],
            },
            key="outcome.answer",
        )
        raw = build(message, from_address="participez@ville.example", from_name=payload).as_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert sorted(set(parsed.keys())) == sorted(set(EXPECTED_HEADERS) & set(parsed.keys())), (
            name,
            sorted(parsed.keys()),
        )
        assert parsed["Bcc"] is None and parsed["X-Injected"] is None, name
        assert len(parsed.get_all("To") or []) == 1 and parsed["To"] == "camille@example.net"


EXPECTED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "Precedence",
)
