"""The SSRF guard on every media download (gateway.downloads), through each path that fetches
a provider's file: Twilio MMS media, Twilio call recordings, Telegram files. Each runs against a
hostile host on loopback configured as the provider's API base (the one origin the guard lets
through), which answers with a redirect to this machine's other services, to the cloud's
metadata address, to another host, with a redirect loop, with a body over the cap (with and
without a length), with a page instead of a file, and with the file (the control: the path
works). A DNS name that resolves to a private address is refused without a request: the guard's
resolver is replaced (no DNS, no Internet)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import requests
from aiohttp import web

from channels.telegram.bot import MediaError, MediaFetcher
from channels.twilio import media as twilio_media
from channels.twilio import recordings as twilio_recordings
from channels.twilio.settings import of as twilio_of
from gateway import downloads
from gateway.recordings import RecordingRefused
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.fakes.serving import ThreadedServer

CAP = 64 * 1024
ACCOUNT = "AC" + "1" * 32
MESSAGE = "MM" + "2" * 32
MEDIUM = "ME" + "3" * 32
RECORDING = "RE" + "4" * 32
TOKEN = "123456:telegram-token"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 2048
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


@dataclass
class Host:
    """A server on 127.0.0.1 that answers each path as ``plan`` says and counts the hits."""

    name: str
    plan: dict[str, Callable[[web.Request], Any]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    base: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        if request.path.endswith("/getMe"):  # the Bot API, as the bot starts
            user = {"id": 1, "is_bot": True, "first_name": "Agora", "username": "agora_bot"}
            return web.json_response({"ok": True, "result": user})
        if request.path.endswith("/getFile"):  # the Bot API's getFile: the file's path
            result = {"file_id": "AgAD", "file_unique_id": "u", "file_path": "photos/f.jpg"}
            return web.json_response({"ok": True, "result": result})
        answer = self.plan.get(request.path)
        if answer is None:
            return web.Response(status=404)
        return cast(web.StreamResponse, await answer(request))


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    """The provider's (hostile) API host, and another service on this machine."""
    servers, made = [], []
    for name in ("provider", "internal"):
        host = Host(name)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", host.handle)
        server = ThreadedServer(f"hostile-{name}")
        host.base = server.start(app)
        servers.append(server)
        made.append(host)
    yield made[0], made[1]
    for server in servers:
        server.stop()


def file(body: bytes, content_type: str) -> Callable[[web.Request], Any]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    return answer


def redirect(to: str | Callable[[], str]) -> Callable[[web.Request], Any]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": to() if callable(to) else to})

    return answer


def streamed(size: int, content_type: str) -> Callable[[web.Request], Any]:
    """``size`` bytes, chunked: no length to refuse them on."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            while sent < size:
                await response.write(b"\xff" * 8192)
                sent += 8192
            await response.write_eof()
        except ConnectionError:
            pass  # the guard hung up: the point
        return response

    return answer


# (case, answer given the two hosts): the same hostile answers on every path.
def hostile(case: str, provider: Host, internal: Host, path: str, good: Callable) -> Callable:
    return {
        "loopback": redirect(lambda: internal.base + "/admin"),
        "metadata": redirect(METADATA),
        "other_host": redirect("https://attacker.example/x.jpg"),
        "loop": redirect(path),  # on the API's own origin, for ever
        "too_large": streamed(4 * CAP, "image/jpeg"),
        "too_large_declared": file(b"\xff" * (CAP + 1), "image/jpeg"),
        "page": file(b"<html><script>alert(1)</script></html>", "text/html"),
        "ok": good,
    }[case]


CASES = ["loopback", "metadata", "other_host", "loop", "too_large", "too_large_declared", "page"]
REASONS = {
    "loopback": "origin",
    "metadata": "origin",
    "other_host": "origin",
    "loop": "origin",
    "too_large": "too_large",
    "too_large_declared": "too_large",
    "page": "type",
}


def settings_for(tmp_path: Path, provider: Host, **more: Any) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"),
        twilio_account_sid=ACCOUNT,
        twilio_auth_token="secret-token",
        twilio_api_base=provider.base,
        twilio_media_redirect_origins="https://mms.twiliocdn.com",
        **more,
    )


# -- Twilio MMS -----------------------------------------------------------------------------------


def mms(settings: Settings, url: str) -> twilio_media.Fetched:
    with requests.Session() as http:
        return twilio_media.download(http, twilio_of(settings), url, "image/jpeg", CAP)


@pytest.mark.parametrize("case", [*CASES, "ok"])
def test_twilio_mms(case: str, hosts: tuple[Host, Host], tmp_path: Path) -> None:
    provider, internal = hosts
    settings = settings_for(tmp_path, provider, twilio_media_max_bytes=CAP)
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{MESSAGE}/Media/{MEDIUM}"
    provider.plan[path] = hostile(case, provider, internal, path, file(JPEG, "image/jpeg"))
    if case == "ok":
        assert mms(settings, provider.base + path).data == JPEG
        return
    with pytest.raises(twilio_media.MediaRefused) as refused:
        mms(settings, provider.base + path)
    assert refused.value.reason == REASONS[case]
    assert internal.hits == []
    if case == "loop":
        assert len(provider.hits) == twilio_media.MAX_REDIRECTS + 1


@pytest.mark.parametrize(
    "addresses", [["10.0.0.7"], ["169.254.169.254"], ["::ffff:127.0.0.1"], ["fd00::1"], []]
)
def test_twilio_mms_cdn_name_resolving_to_a_private_address(
    addresses: list[str],
    hosts: tuple[Host, Host],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CDN is a configured origin, but its name leads inside: refused, no request."""
    provider, _ = hosts
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return addresses

    monkeypatch.setattr(downloads, "resolve", resolver)
    settings = settings_for(tmp_path, provider, twilio_media_max_bytes=CAP)
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{MESSAGE}/Media/{MEDIUM}"
    provider.plan[path] = redirect("https://mms.twiliocdn.com/presigned/x.jpg")
    with pytest.raises(twilio_media.MediaRefused) as refused:
        mms(settings, provider.base + path)
    assert refused.value.reason == "origin"
    assert asked == ["mms.twiliocdn.com"]


def test_twilio_mms_cdn_name_resolving_to_public_addresses_is_followed(
    hosts: tuple[Host, Host], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: a public address passes the guard (the request itself is then made to a
    loopback server named in the setting, standing for the CDN)."""
    provider, cdn = hosts
    monkeypatch.setattr(downloads, "resolve", lambda host, port: ["93.184.215.14"])
    guard = downloads.Guard(home=provider.base, others=("https://cdn.example.org",), max_bytes=CAP)
    assert guard.check("https://cdn.example.org/x.jpg") == ("https", "cdn.example.org", 443)
    cdn.plan["/x.jpg"] = file(JPEG, "image/jpeg")
    settings = settings_for(tmp_path, provider, twilio_media_max_bytes=CAP)
    settings = settings.with_overrides(twilio_media_redirect_origins=cdn.base)
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{MESSAGE}/Media/{MEDIUM}"
    provider.plan[path] = redirect(cdn.base + "/x.jpg")
    assert mms(settings, provider.base + path).data == JPEG
    assert cdn.hits == ["/x.jpg"]


# -- Twilio recordings ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", [*CASES, "ok"])
def test_twilio_recording(case: str, hosts: tuple[Host, Host], tmp_path: Path) -> None:
    provider, internal = hosts
    settings = settings_for(tmp_path, provider, max_recording_bytes=CAP)
    runtime = cast(Runtime, SimpleNamespace(settings=settings))
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{RECORDING}"
    provider.plan[path + ".wav"] = hostile(
        case, provider, internal, path + ".wav", file(WAV, "audio/x-wav")
    )
    if case == "too_large":
        provider.plan[path + ".wav"] = streamed(4 * CAP, "audio/wav")
    if case == "too_large_declared":
        provider.plan[path + ".wav"] = file(b"\x00" * (CAP + 1), "audio/wav")
    folder = tmp_path / "audio"
    folder.mkdir()
    if case == "ok":
        kept, content_type = twilio_recordings.fetch_recording(
            runtime, provider.base + path, RECORDING, folder
        )
        assert kept.read_bytes() == WAV and content_type == "audio/wav"
        return
    with pytest.raises(RecordingRefused):
        twilio_recordings.fetch_recording(runtime, provider.base + path, RECORDING, folder)
    assert internal.hits == []
    assert list(folder.iterdir()) == []  # no partial file left


# -- Telegram files -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [*CASES, "ok"])
def test_telegram_file(case: str, hosts: tuple[Host, Host], tmp_path: Path) -> None:
    provider, internal = hosts
    path = f"/file/bot{TOKEN}/photos/f.jpg"
    provider.plan[path] = hostile(case, provider, internal, path, file(JPEG, "image/jpeg"))
    fetcher = MediaFetcher(TOKEN, provider.base, max_bytes=CAP)
    target = tmp_path / "media" / "telegram" / "1-0.jpg"
    try:
        if case == "ok":
            assert fetcher.fetch("AgADBAAD", target) == len(JPEG)
            assert target.read_bytes() == JPEG
            return
        with pytest.raises(MediaError) as refused:
            fetcher.fetch("AgADBAAD", target)
    finally:
        fetcher.close()
    assert refused.value.permanent
    assert TOKEN not in str(refused.value)
    assert internal.hits == []
    assert list(target.parent.iterdir()) == []


# -- The guard itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("https://api.provider.example/f", ["127.0.0.1"]),
        ("https://api.provider.example/f", ["93.184.215.14", "10.1.1.1"]),  # one inside is enough
        ("https://api.provider.example/f", ["169.254.169.254"]),
        ("https://api.provider.example/f", ["::1"]),
        ("https://api.provider.example/f", ["100.64.0.1"]),  # carrier-grade NAT
        ("https://api.provider.example/f", ["224.0.0.1"]),
        ("https://api.provider.example:444/f", ["93.184.215.14"]),  # another port
        ("http://api.provider.example/f", ["93.184.215.14"]),  # another scheme
        ("https://user@api.provider.example/f", ["93.184.215.14"]),
        ("https://api.provider.example.attacker.net/f", ["93.184.215.14"]),
        ("https://[::ffff:a9fe:a9fe]/f", []),
        ("https://%31%32%37.0.0.1/f", []),
        ("file:///etc/passwd", []),
        ("gopher://api.provider.example/f", []),
        ("https://api.provider.example:99999/f", []),
    ],
)
def test_the_guard_refuses(url: str, addresses: list[str]) -> None:
    guard = downloads.Guard(
        home="https://api.provider.example",
        max_bytes=CAP,
        resolver=lambda host, port: addresses,
    )
    with pytest.raises(downloads.Refused):
        guard.check(url)


def test_the_guard_lets_the_configured_origin_through() -> None:
    guard = downloads.Guard(
        home="https://api.provider.example",
        max_bytes=CAP,
        resolver=lambda host, port: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    )
    assert guard.check("https://API.provider.example/f?x=1") == (
        "https",
        "api.provider.example",
        443,
    )
    # An address the operator wrote in the setting is taken as written (tests, a local proxy).
    local = downloads.Guard(home="http://127.0.0.1:8080", max_bytes=CAP)
    assert local.check("http://127.0.0.1:8080/f")[1] == "127.0.0.1"
    with pytest.raises(downloads.Refused):
        local.check("http://127.0.0.1:8081/f")


# A line that calls an HTTP API and downloads nothing a provider named (gateway doctor's
# credential probes, against the configured API base) says so with this mark and a reason.
NOT_A_DOWNLOAD = "# not a download:"


def test_no_path_fetches_a_provider_url_without_the_guard() -> None:
    """Every streamed download in the code goes through gateway.downloads: a new path that
    calls ``requests.get(..., stream=True)`` itself would skip the guard."""
    root = Path(__file__).resolve().parent.parent
    offenders = [
        f"{p.relative_to(root)}:{number}"
        for folder in ("channels", "gateway", "workers")
        for p in (root / folder).rglob("*.py")
        if "tests" not in p.parts and p.name != "downloads.py"
        for number, line in enumerate(p.read_text().splitlines(), start=1)
        if ("stream=True" in line or "requests.get(" in line) and NOT_A_DOWNLOAD not in line
    ]
    assert offenders == []
