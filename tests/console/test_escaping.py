"""Residents write whatever they like: every page shows it as text, never as markup."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from gateway import console
from tests.console import seed
from tests.console.conftest import Browser
from tests.console.dom import Node

PAYLOADS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "javascript:alert(1)",
)
HOSTILE = " ".join(PAYLOADS)
RAW = (*PAYLOADS[:3], "<script>alert", "<img src=x", "<svg onload", "onerror=alert(1)>")


def assert_inert(path: str, html: str, dom: Node) -> None:
    for raw in RAW:
        assert raw not in html, (path, raw)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path  # shown, as text
    for node in dom.descendants():
        assert not [a for a in node.attrs if a.startswith("on")], (path, node.tag)
        for name in ("href", "src", "action"):
            assert not (node.get(name) or "").strip().lower().startswith("javascript:"), path
        if node.tag == "script":
            assert node.get("src") == "/moderation/static/console.js", path


def hostile(rt) -> tuple[int, int]:
    cid = seed.contribution(
        rt,
        HOSTILE,
        channel="voice",
        transcript=HOSTILE,
        transcript_machine=HOSTILE,
        transcription_status="done",
        transcript_detail={
            "words": [{"word": p, "start": 0, "end": 1, "confidence": 0.2} for p in PAYLOADS]
        },
        tags=list(PAYLOADS),
        neighbourhood=HOSTILE,
        group_description=HOSTILE,
        public_text=HOSTILE,
        kind="collective",
        audio=seed.WAV,
    )
    seed.contribution(rt, HOSTILE, neighbourhood=HOSTILE)  # the same text: one group
    group = seed.get(rt, cid).group_id
    assert group is not None
    return cid, group


async def test_hostile_text_is_escaped_on_every_page(rt, moderator: Browser):
    cid, group = hostile(rt)
    reply = await moderator.post(f"/moderation/contributions/{cid}/reply", {"text": HOSTILE[:500]})
    assert reply.status == 303
    await moderator.post(
        f"/moderation/contributions/{cid}/decision", {"action": "reject", "reason": HOSTILE}
    )
    for path in (
        "/moderation/queue?status=all",
        f"/moderation/queue?status=all&q={PAYLOADS[0]}",
        f"/moderation/contributions/{cid}",
        f"/moderation/groups/{group}",
        "/moderation/log",
        "/moderation/live",
        "/moderation/dashboard",
    ):
        page = await moderator.get(path)
        assert page.status == 200, path
        assert_inert(path, page.text, page.dom)
    dom = (await moderator.get(f"/moderation/contributions/{cid}")).dom
    assert dom.one("#contribution-text").text == HOSTILE
    assert [w.text for w in dom.select("#transcript span.word")] == list(PAYLOADS)
    assert dom.one("textarea#public-text").text == HOSTILE
    assert dom.one("input#tags").get("value") == ", ".join(PAYLOADS)
    assert HOSTILE in dom.one("#group-description").text
    assert HOSTILE[:500] in dom.one("#notices li[data-key=outcome.answer]").text


async def test_hostile_text_travels_as_data_on_the_event_stream(rt, moderator: Browser):
    async with moderator.client.get("/moderation/live/events") as response:
        await asyncio.sleep(0.2)
        seed.contribution(rt, HOSTILE, channel="voice", transcript=HOSTILE)
        data = b""
        while b"\ndata: " not in data:
            data += await asyncio.wait_for(response.content.readline(), 3)
        line = (await asyncio.wait_for(response.content.readline(), 3)).decode()
        data += line.encode()
    payload = data.decode().split("\ndata: ", 1)[1].split("\n", 1)[0]
    event = json.loads(payload)
    assert event["text"] == HOSTILE and event["transcript"] == HOSTILE


def test_the_script_inserts_text_never_markup():
    script = (Path(console.__file__).parent / "static" / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "textContent" in script


def test_templates_never_switch_escaping_off():
    templates = Path(console.__file__).parent / "templates"
    for template in templates.glob("*.html"):
        text = template.read_text()
        # The one exception: charts, drawn by gateway.moderation.charts, which escapes labels.
        unsafe = re.findall(r"\|\s*safe", text)
        assert len(unsafe) == (1 if template.name == "dashboard.html" else 0), template.name
        assert "autoescape false" not in text and "Markup(" not in text


async def test_a_forged_flash_cookie_shows_nothing(rt, moderator: Browser):
    moderator.client.session.cookie_jar.update_cookies(
        {"agora_flash": "W1siPHNjcmlwdD4iLCB7fSwgdHJ1ZV1d.forged"}
    )
    page = await moderator.get("/moderation/queue")
    assert page.flashes() == [] and page.flashes(error=True) == []
