"""Who gets in and what a refused request changes: login, throttling, redirects after login,
logout, CSRF on every POST, login on every page, admin pages, security headers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import func, select

from gateway.models import (
    Campaign,
    Contribution,
    ModerationEvent,
    Moderator,
    ModeratorSession,
    OutboundMessage,
)
from gateway.runtime import Runtime
from tests.console import seed
from tests.console.conftest import PASSWORD, Browser, add_account

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)


def state(rt: Runtime) -> dict[str, Any]:
    """Everything a console POST could change."""
    with rt.sessions() as session:
        return {
            "contributions": [
                (
                    c.id,
                    c.status,
                    c.category,
                    list(c.tags),
                    list(c.themes),
                    c.neighbourhood,
                    c.kind,
                    c.text,
                    c.transcript,
                    c.public_text,
                )
                for c in session.scalars(select(Contribution).order_by(Contribution.id)).unique()
            ],
            "events": session.scalar(select(func.count()).select_from(ModerationEvent)),
            "outbound": session.scalar(select(func.count()).select_from(OutboundMessage)),
            "moderators": [
                (m.name, m.role, m.active, m.language)
                for m in session.scalars(select(Moderator).order_by(Moderator.id))
            ],
            "sessions": session.scalar(select(func.count()).select_from(ModeratorSession)),
            "campaigns": [
                (c.slug, c.status) for c in session.scalars(select(Campaign).order_by(Campaign.id))
            ],
        }


def login_next(location: str) -> str | None:
    """Where a redirect to the login page will lead back to."""
    parts = urlsplit(location)
    assert parts.path == "/moderation/login", location
    return dict(parse_qsl(parts.query)).get("next")


def seeded(rt: Runtime) -> tuple[int, int, int]:
    """A voice contribution and an SMS with the same text (one group), and a moderator."""
    voice = seed.contribution(
        rt,
        "Plus de bancs au parc svp",
        channel="voice",
        transcript="Plus de bancs au parc svp",
        transcription_status="done",
        audio=seed.WAV,
    )
    seed.contribution(rt, "Plus de bancs au parc svp")
    group = seed.get(rt, voice).group_id
    assert group is not None
    other = add_account(rt, "dominique")
    return voice, group, other


def post_routes(cid: int, gid: int, moderator_id: int) -> list[tuple[str, dict[str, str]]]:
    """Every console POST with a payload that changes something when the token is right."""
    return [
        ("/moderation/language", {"language": "en"}),
        (
            f"/moderation/contributions/{cid}/classify",
            {
                "category": "proposal",
                "tags": "bancs",
                "neighbourhood": "Centre",
                "kind": "collective",
            },
        ),
        (f"/moderation/contributions/{cid}/transcript", {"transcript": "Plus de bancs, merci"}),
        (f"/moderation/contributions/{cid}/public-text", {"public_text": "Plus de bancs"}),
        (f"/moderation/contributions/{cid}/reply", {"text": "Merci pour votre message"}),
        (f"/moderation/contributions/{cid}/decision", {"action": "publish"}),
        (f"/moderation/groups/{gid}/decision", {"action": "spam"}),
        ("/moderation/queue/bulk", {"ids": str(cid), "action": "reopen"}),
        (
            "/moderation/admin/accounts",
            {"name": "intrus", "password": "0123456789abc", "role": "admin"},
        ),
        (f"/moderation/admin/accounts/{moderator_id}/active", {"active": "0"}),
        ("/moderation/admin/campaigns/parc/status", {"status": "closed"}),
        ("/moderation/logout", {}),
    ]


def get_pages(cid: int, gid: int) -> list[str]:
    return [
        "/moderation/",
        "/moderation/queue?status=all",
        f"/moderation/contributions/{cid}",
        f"/moderation/groups/{gid}",
        "/moderation/log",
        "/moderation/live",
        "/moderation/live/events",
        "/moderation/dashboard",
        "/moderation/admin/accounts",
        "/moderation/admin/campaigns",
        "/moderation/admin/campaigns/parc/synthesis",
        "/moderation/admin/operations",
    ]


# -- login ----------------------------------------------------------------------------------


async def test_login_opens_a_session_with_a_locked_down_cookie(rt, anonymous: Browser):
    add_account(rt, "camille")
    page = await anonymous.login("camille")
    assert page.status == 303
    assert page.location == "/moderation/queue"
    cookie = next(h for h in page.headers.getall("Set-Cookie") if h.startswith("agora_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "path"} <= attributes
    assert "Path=/moderation/" in cookie and "SameSite=Lax" in cookie
    queue = await anonymous.get("/moderation/queue")
    assert queue.status == 200
    assert "camille" in queue.dom.one("header .account").text
    with rt.sessions() as session:
        stored = session.scalars(select(ModeratorSession.token_hash)).all()
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(stored) == 1 and token not in stored  # only its hash is kept


async def test_wrong_password_is_refused_with_a_message_and_no_session(rt, anonymous: Browser):
    add_account(rt, "camille")
    page = await anonymous.login("camille", "not the password")
    assert page.status == 401
    assert page.flashes(error=True) == ["Identifiant ou mot de passe incorrect."]
    assert page.dom.one("input#name").get("value") == "camille"
    assert not any(h.startswith("agora_session=") for h in page.headers.getall("Set-Cookie", []))
    assert (await anonymous.get("/moderation/queue")).status == 302


async def test_repeated_failures_delay_the_next_login_from_that_client(rt, anonymous: Browser):
    add_account(rt, "camille")
    for _ in range(3):
        assert (await anonymous.login("camille", "wrong password")).status == 401
    page = await anonymous.login("camille", PASSWORD)  # even the right password, for now
    assert page.status == 429
    assert 0 < int(page.headers["Retry-After"]) <= 2
    (message,) = page.flashes(error=True)
    assert message.startswith("Trop de tentatives de connexion")
    assert (await anonymous.get("/moderation/queue")).status == 302


async def test_login_without_its_csrf_cookie_and_field_is_refused(rt, anonymous: Browser):
    add_account(rt, "camille")
    await anonymous.get("/moderation/login")
    page = await anonymous.post(
        "/moderation/login", {"name": "camille", "password": PASSWORD}, csrf="forged"
    )
    assert page.status == 403
    assert page.flashes(error=True)
    assert (await anonymous.get("/moderation/queue")).status == 302


async def test_after_login_only_local_console_paths_are_followed(rt, new_browser):
    add_account(rt, "camille")
    cases = {
        "https://evil.example/moderation/": "/moderation/queue",
        "//evil.example/moderation/": "/moderation/queue",
        "/\\evil.example": "/moderation/queue",
        "javascript:alert(1)": "/moderation/queue",
        "/moderation/../admin": "/moderation/queue",
        "/elsewhere": "/moderation/queue",
        "/moderation/log?page=2": "/moderation/log?page=2",
    }
    for asked, expected in cases.items():
        browser = await new_browser()
        page = await browser.login("camille", next_path=asked)
        assert (asked, page.location) == (asked, expected)


async def test_a_page_asked_before_login_is_shown_after_it(rt, anonymous: Browser):
    add_account(rt, "camille")
    first = await anonymous.get("/moderation/log?actor=x")
    assert first.status == 302
    assert login_next(first.location) == "/moderation/log?actor=x"
    form = await anonymous.get(first.location)
    assert (
        form.dom.one("form#login-form input[name=next]").get("value") == "/moderation/log?actor=x"
    )
    page = await anonymous.login("camille", next_path="/moderation/log?actor=x")
    assert page.location == "/moderation/log?actor=x"


async def test_logout_ends_the_session_in_the_database(rt, moderator: Browser):
    assert state(rt)["sessions"] == 1
    page = await moderator.post("/moderation/logout")
    assert page.status == 303 and page.location == "/moderation/login"
    assert state(rt)["sessions"] == 0
    assert (await moderator.get("/moderation/queue")).status == 302
    login = await moderator.get("/moderation/login")
    assert login.flashes() == ["Vous êtes déconnecté·e."]


async def test_a_deactivated_account_loses_its_open_session(rt, moderator: Browser, admin: Browser):
    with rt.sessions() as session:
        camille = session.scalar(select(Moderator).where(Moderator.name == "camille"))
        assert camille is not None
    page = await admin.post(f"/moderation/admin/accounts/{camille.id}/active", {"active": "0"})
    assert page.status == 303
    assert (await moderator.get("/moderation/queue")).status == 302
    assert (await moderator.login("camille")).status == 401


# -- every route ------------------------------------------------------------------------------


async def test_every_page_needs_a_login_and_leaks_nothing(rt, anonymous: Browser):
    cid, gid, _ = seeded(rt)
    for path in get_pages(cid, gid):
        page = await anonymous.get(path)
        assert page.status == 302, path
        assert login_next(page.location) == path, path
        assert "bancs" not in page.text
    audio = await anonymous.get(f"/moderation/contributions/{cid}/audio")
    assert audio.status == 401
    assert seed.WAV[:64].decode("latin-1") not in audio.text
    assert "RIFF" not in audio.text


async def test_every_post_needs_a_login(rt, anonymous: Browser):
    cid, gid, other = seeded(rt)
    before = state(rt)
    for path, data in post_routes(cid, gid, other):
        page = await anonymous.post(path, data, csrf="anything")
        assert page.status == 401, path
    assert state(rt) == before


async def test_every_post_is_refused_without_the_right_csrf_token(rt, admin: Browser):
    cid, gid, other = seeded(rt)
    for path, data in post_routes(cid, gid, other):
        before = state(rt)
        for token in ("", "wrong-" + admin.csrf[6:], admin.csrf[:-1]):
            page = await admin.post(path, data, csrf=token)
            assert page.status == 403, (path, token)
            assert page.dom.select(".flash.error[role=alert]"), path
            assert state(rt) == before, path
        # The same request with the session's token does change something: the refusal
        # above was the token's doing, not a payload that would have been refused anyway.
        page = await admin.post(path, data)
        assert page.status == 303, (path, page.text[-2000:])
        assert state(rt) != before, path


async def test_the_csrf_token_may_come_in_a_header(rt, moderator: Browser):
    cid = seed.contribution(rt)
    async with moderator.client.post(
        f"/moderation/contributions/{cid}/decision",
        data={"action": "spam"},
        headers={"X-CSRF-Token": moderator.csrf},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
    assert seed.get(rt, cid).status == "spam"


async def test_admin_pages_are_forbidden_to_moderators(rt, moderator: Browser):
    other = add_account(rt, "dominique")
    before = state(rt)
    for path in ("/moderation/admin/accounts", "/moderation/admin/campaigns"):
        page = await moderator.get(path)
        assert page.status == 403
        assert "dominique" not in page.text
    for path, data in [
        ("/moderation/admin/accounts", {"name": "intrus", "password": "0123456789abc"}),
        (f"/moderation/admin/accounts/{other}/active", {"active": "0"}),
        ("/moderation/admin/campaigns/parc/status", {"status": "closed"}),
    ]:
        assert (await moderator.post(path, data)).status == 403
    assert state(rt) == before
    nav = (await moderator.get("/moderation/queue")).dom.one("nav#main-nav")
    assert not nav.select("a[href=/moderation/admin/accounts]")


async def test_security_headers_on_pages_errors_files_and_the_login(rt, moderator, anonymous):
    cid = seed.contribution(rt, "", channel="voice", audio=seed.WAV, transcription_status="pending")
    pages = [
        await moderator.get("/moderation/queue"),
        await moderator.get(f"/moderation/contributions/{cid}/audio"),
        await moderator.get("/moderation/contributions/999999"),
        await anonymous.get("/moderation/login"),
        await anonymous.get("/moderation/queue"),
        await anonymous.get(f"/moderation/contributions/{cid}/audio"),
        await moderator.get("/moderation/static/console.css"),
    ]
    for page in pages:
        assert page.headers["Content-Security-Policy"] == CSP, page.url
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "same-origin"
    for page in pages[:5]:
        assert page.headers["Cache-Control"] == "no-store", page.url
    assert pages[2].status == 404


async def test_no_inline_script_or_style_on_any_page(rt, admin: Browser):
    cid, gid, _ = seeded(rt)
    for path in get_pages(cid, gid):
        if path.endswith("/events") or path == "/moderation/":
            continue
        page = await admin.get(path)
        assert page.status == 200, path
        for script in page.dom.select("script"):
            assert script.get("src") == "/moderation/static/console.js"
            assert not script.text
        assert not page.dom.select("style"), path
        assert not [n for n in page.dom.descendants() if "style" in n.attrs], path
        assert not [n for n in page.dom.descendants() if any(a.startswith("on") for a in n.attrs)]
