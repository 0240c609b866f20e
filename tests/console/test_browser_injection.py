"""The table of hostile strings (tests/hostile_strings.py) in a real browser (Debian's Chromium
through Playwright): as residents' texts, neighbourhoods, public texts, rejection reasons, the
city's answers and the campaign's title an admin typed, on the queue, a contribution's page,
the live board (loaded, and then receiving a new hostile contribution through its event
stream) and the public campaign page. No dialog opens, no script of theirs runs
(``window.__pwned`` stays unset) and the browser reports no policy violation (an injected
inline script, even one the policy blocks, would be reported). The control: a script the
page's own code inserts does set the marker's twin, so the listener works."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from gateway import textnorm
from gateway.models import Campaign
from gateway.moderation import answers
from gateway.moderation.accounts import Actor
from tests.console import seed
from tests.console.test_browser_csp import admin_tab  # noqa: F401  (fixture)
from tests.hostile_strings import PAYLOADS

CITY = Actor(name="mairie", role="moderator")
NEIGHBOURHOOD = PAYLOADS["attribute"]


def seeded(rt: Any) -> list[int]:
    with rt.sessions.begin() as session:
        session.execute(
            update(Campaign).where(Campaign.slug == "parc").values(title=PAYLOADS["svg"])
        )
    ids = []
    # As every way in keeps them: without control characters (a NUL never reaches the database).
    for n, payload in enumerate(map(textnorm.drop_controls, PAYLOADS.values())):
        if n % 3 == 0:
            cid = seed.published(rt, payload, payload, neighbourhood=NEIGHBOURHOOD)
            answers.answer(rt, CITY, [cid], "accepted", payload)
        elif n % 3 == 1:
            cid = seed.contribution(
                rt,
                payload,
                status="rejected",
                public_text=payload,
                decision_reason=payload,
                neighbourhood=payload,
            )
        else:
            cid = seed.contribution(rt, payload, neighbourhood=payload, collected_place=payload)
        ids.append(cid)
    # The longest text the gateway keeps (MAX_TEXT_CHARS): a 1 MB line is refused at the door
    # (413, tests/test_body_caps.py) or cut to this (gateway.textcap).
    ids.append(seed.contribution(rt, "A" * rt.settings.max_text_chars + PAYLOADS["script"]))
    return ids


async def watch(tab: Any) -> list[str]:
    """The dialogs the tab opens; a tab that records them itself (and dismisses them) already
    has its list."""
    if isinstance(getattr(tab, "dialogs", None), list):
        recorded: list[str] = tab.dialogs
        return recorded
    dialogs: list[str] = []

    async def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    tab.on("dialog", on_dialog)
    return dialogs


async def assert_inert(tab: Any, path: str, dialogs: list[str]) -> None:
    await tab.wait_for_load_state("load")
    await tab.wait_for_timeout(200)  # an onerror of a broken image fires after load
    assert dialogs == [], path
    assert await tab.evaluate("window.__pwned") is None, path
    assert await tab.evaluate("window.__violations") == [], path


async def test_hostile_strings_run_nowhere_in_the_console_or_the_public_page(
    rt: Any,
    admin_tab: Any,  # noqa: F811 - the fixture imported above
) -> None:
    tab = admin_tab
    dialogs = await watch(tab)
    ids = seeded(rt)
    paths = [
        "/moderation/queue?status=all",
        "/moderation/queue",
        *(f"/moderation/contributions/{cid}" for cid in ids),
        "/moderation/live",
        "/campaigns",
        "/campaigns/parc",
    ]
    for path in paths:
        response = await tab.goto(tab.base + path)
        assert response is not None and response.status == 200, path
        await assert_inert(tab, path, dialogs)
    # The text is shown, as text.
    await tab.goto(tab.base + f"/moderation/contributions/{ids[0]}")
    assert "<script>window.__pwned" in await tab.inner_text("body")

    # The live board receives a new hostile contribution through its stream.
    await tab.goto(tab.base + "/moderation/live")
    await tab.wait_for_load_state("load")
    marker = "DROP TABLE contributions; -- en direct"
    seed.contribution(rt, PAYLOADS["attribute"] + " " + PAYLOADS["script"] + " " + marker)
    await tab.wait_for_function(
        "(m) => document.body.innerText.includes(m)", arg=marker, timeout=20_000
    )
    await assert_inert(tab, "/moderation/live (streamed)", dialogs)

    # The control: the listeners see a dialog and the marker when something does run.
    await tab.evaluate("() => { window.__pwned = 1; alert('control'); }")
    assert dialogs == ["control"]
    assert await tab.evaluate("window.__pwned") == 1
