"""The moderation console in a real browser, as moderators use it, against `gateway serve`.

Every test asserts what a moderator sees on the page (contract: notes/console-contract.md) and
what residents receive (the FakeTwilio's messages).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    ADMIN,
    MODERATOR,
    Console,
    NewContext,
    Shoot,
    Speak,
    resident,
    until,
)

pytestmark = pytest.mark.e2e

XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=1</script>"


def row(reference: str) -> str:
    return f'table#queue tbody tr[data-reference="{reference}"]'


def open_contribution(page: Page, reference: str) -> None:
    """From the queue (every status), follow the contribution's link."""
    page.goto("/moderation/queue?status=all&grouped=0&per_page=200")
    page.locator(row(reference)).locator("a.contribution-link").click()
    expect(page.locator("main[data-contribution-id]")).to_have_attribute(
        "data-reference", reference
    )


def decide(page: Page, action: str, reason: str = "", back: bool = True) -> None:
    """Decide through form#decision-form; with ``back``, come back to this contribution's
    page (after a decision the console may go on to the next contribution of the queue)."""
    here = page.url
    form = page.locator("form#decision-form")
    form.locator("textarea#reason").fill(reason)
    with page.expect_navigation():
        form.locator(f'button[name=action][value="{action}"]').click()
    if back and page.url != here:
        page.goto(here)


def assert_no_script_ran(page: Page) -> None:
    """The payloads are inert: no handler or script of theirs ran, no element of theirs exists."""
    page.wait_for_load_state("networkidle")
    assert page.evaluate("typeof window.__xss") == "undefined", page.url
    expect(page.locator('img[src="x"]')).to_have_count(0)
    injected = page.evaluate(
        "[...document.querySelectorAll('script')].filter(s => s.textContent.includes('__xss'))"
        ".length"
    )
    assert injected == 0, page.url


def test_moderator_journey(
    console: Console, new_context: NewContext, speak: Speak, shoot: Shoot
) -> None:
    marie, spammer, hurried = resident(1, 1), resident(1, 2), resident(1, 3)
    voice = console.contribute_voice(resident(1, 0), speak("안녕하세요 감사합니다"))
    sms = console.contribute_sms(
        marie,
        "Bonjour, je m'appelle Marie Dupont, rappelez-moi au 06 12 34 56 78. "
        "Il faudrait des bancs à l'ombre près des jeux.",
    )
    spam = console.contribute_sms(spammer, "Achetez des montres pas chères sur mon site")
    pending = console.contribute_sms(hurried, "Plus de poubelles le long de l'allée centrale")

    page = new_context().new_page()
    page.goto("/moderation/queue")
    expect(page).to_have_url(re.compile(r"/moderation/login\?next="))
    expect(page.locator("form#login-form")).to_be_visible()
    shoot(page, "login")
    form = page.locator("form#login-form")
    form.locator("input#name").fill(MODERATOR.name)
    form.locator("input#password").fill(MODERATOR.password)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/moderation/queue"))

    # The queue shows what residents sent, by SMS and by phone.
    expect(page.locator(row(sms))).to_have_attribute("data-channel", "sms")
    expect(page.locator(row(voice))).to_have_attribute("data-channel", "voice")
    expect(page.locator(row(sms)).locator("a.contribution-link")).to_have_text(sms)
    shoot(page, "queue")

    page.locator("select#filter-channel").select_option("voice")
    page.locator("button#apply-filters").click()
    expect(page).to_have_url(re.compile(r"channel=voice"))
    expect(page.locator(row(voice))).to_be_visible()
    expect(page.locator(row(sms))).to_have_count(0)
    others = 'table#queue tbody tr[data-contribution-id]:not([data-channel="voice"])'
    expect(page.locator(others)).to_have_count(0)

    # The voice contribution: its recording plays, its transcript is word by word.
    page.locator(row(voice)).locator("a.contribution-link").click()
    main = page.locator("main[data-contribution-id]")
    expect(main).to_have_attribute("data-reference", voice)
    voice_id = main.get_attribute("data-contribution-id")
    audio = page.locator("audio#contribution-audio")
    expect(audio).to_have_count(1)
    src = audio.evaluate("a => a.currentSrc || a.src || a.querySelector('source').src")
    assert f"/moderation/contributions/{voice_id}/audio" in src
    fetched = page.evaluate(
        """async (src) => {
            const r = await fetch(src);
            const bytes = await r.arrayBuffer();
            return {status: r.status, type: r.headers.get('content-type'), size: bytes.byteLength};
        }""",
        src,
    )
    assert fetched["status"] == 200 and fetched["type"].startswith("audio/"), fetched
    assert fetched["size"] > 1000, fetched
    loaded = audio.evaluate(
        """a => new Promise(resolve => {
            const done = () => resolve({ready: a.readyState, duration: a.duration,
                                        error: a.error ? a.error.code : null});
            if (a.readyState >= 1) return done();
            a.addEventListener('loadedmetadata', done, {once: true});
            a.addEventListener('error', done, {once: true});
            a.preload = 'auto';
            a.load();
            setTimeout(done, 10000);
        })"""
    )
    assert loaded["ready"] >= 1 and loaded["duration"] > 0, loaded
    played = audio.evaluate(
        "a => { a.muted = true; return a.play().then(() => 'playing', e => String(e)); }"
    )
    assert played == "playing", played

    words = page.locator("#transcript span.word")

    def transcribed() -> bool:
        page.reload()
        return words.count() > 0

    until(transcribed, f"{voice}: #transcript span.word (the transcript)", timeout=120)
    expect(words.first).to_have_attribute("data-start", re.compile(r"\d"))
    expect(words.first).to_have_attribute("data-confidence", re.compile(r"\d"))
    shoot(page, "voice")

    corrected = "Bonjour, merci pour le parc."
    page.locator("textarea#transcript-text").fill(corrected)
    page.locator("button#save-transcript").click()
    expect(page.locator(".flash[role=status]")).to_be_visible()
    page.reload()
    expect(page.locator("textarea#transcript-text")).to_have_value(corrected)
    expect(page.locator("#machine-transcript")).to_have_text(re.compile(r"\S"))
    expect(page.locator("#machine-transcript")).not_to_have_text(corrected)

    # An SMS with a phone number and a name: the redactions are suggested and applied.
    open_contribution(page, sms)
    suggested = page.locator("#suggested-redactions")
    expect(suggested.locator('li[data-kind="phone"]')).to_have_count(1)
    expect(suggested.locator('li[data-kind="name"]')).to_have_count(1)
    expect(suggested).to_contain_text("06 12 34 56 78")
    expect(suggested).to_contain_text("Marie Dupont")
    public = page.locator("textarea#public-text")
    expect(public).to_have_value(re.compile(r"bancs à l'ombre"))
    expect(public).not_to_have_value(re.compile(r"06 12 34 56 78|Marie|Dupont"))
    shoot(page, "sms")
    public_text = public.input_value()
    page.locator("button#save-public-text").click()
    expect(page.locator(".flash[role=status]")).to_be_visible()
    page.reload()
    expect(page.locator("textarea#public-text")).to_have_value(public_text)

    classify = page.locator("form#classify-form")
    classify.locator("select#category").select_option("proposal")
    theme = classify.locator("input[name=themes][type=checkbox]").first
    theme_value = theme.get_attribute("value")
    theme.check()
    classify.locator("input#tags").fill("bancs, ombre")
    classify.locator("select#neighbourhood").select_option("Parc Nord")
    classify.locator("button#save-classification").click()
    expect(page.locator(".flash[role=status]")).to_be_visible()
    page.reload()
    expect(page.locator("select#category")).to_have_value("proposal")
    expect(page.locator(f'input[name=themes][value="{theme_value}"]')).to_be_checked()
    expect(page.locator("input#tags")).to_have_value(re.compile(r"bancs.*ombre"))
    expect(page.locator("select#neighbourhood")).to_have_value("Parc Nord")

    decide(page, "publish")
    expect(page.locator("#status")).to_have_attribute("data-status", "published")
    expect(page.locator('#notices li[data-key="outcome.published"]')).to_have_count(1)
    published = console.wait_for_sms(marie, sms, "publiée")
    assert "06 12 34 56 78" not in published["Body"]

    # Rejecting needs a reason, which the resident receives.
    open_contribution(page, spam)
    reason = "Les messages publicitaires ne sont pas des contributions."
    decide(page, "reject", reason)
    expect(page.locator("#status")).to_have_attribute("data-status", "rejected")
    expect(page.locator('#notices li[data-key="outcome.rejected"]')).to_have_count(1)
    console.wait_for_sms(spammer, spam, reason)

    # Without a reason, the page refuses at once; without JavaScript, the server does.
    open_contribution(page, pending)
    page.locator("form#decision-form button[name=action][value=reject]").click()
    reason_field = page.locator("textarea#reason")
    assert reason_field.evaluate("t => t.validationMessage"), "an empty reason is accepted"
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-status", "pending")
    without_js = new_context(javascript=False).new_page()
    console.login(without_js, MODERATOR, page.url.removeprefix(console.url))
    decide(without_js, "reject", "", back=False)
    expect(without_js.locator(".flash.error")).to_be_visible()
    expect(without_js.locator("main[data-contribution-id]")).to_have_attribute(
        "data-reference", pending
    )
    expect(without_js.locator("#status")).to_have_attribute("data-status", "pending")

    # The log says who did what.
    page.locator("nav#main-nav a[href$='/moderation/log']").click()
    expect(page).to_have_url(re.compile(r"/moderation/log"))
    for action, reference in (
        ("publish", sms),
        ("reject", spam),
        ("classify", sms),
        ("correct_transcript", voice),
        ("anonymise", sms),
    ):
        entry = page.locator(
            f'table#log tbody tr[data-action="{action}"][data-reference="{reference}"]'
        )
        expect(entry).to_have_count(1)
        expect(entry).to_contain_text(MODERATOR.name)
    expect(page.locator(f'table#log tbody tr[data-reference="{pending}"]')).to_have_count(0)
    shoot(page, "log")

    page.locator("nav#main-nav a[href$='/moderation/dashboard']").click()
    expect(page.locator("#waiting-count")).to_have_text(re.compile(r"\d"))
    expect(page.locator("figure.chart svg").first).to_be_visible()
    shoot(page, "dashboard")


def test_live_board_sees_new_sms_without_reload(
    console: Console, new_context: NewContext, speak: Speak, shoot: Shoot
) -> None:
    boards = []
    for moderator in (MODERATOR, ADMIN):
        page = new_context().new_page()
        console.login(page, moderator, "/moderation/live")
        expect(page).to_have_url(re.compile(r"/moderation/live"))
        expect(page.locator("#live-status")).to_have_attribute("data-state", "open")
        page.evaluate("window.__marker = 1")
        boards.append((page, page.evaluate("performance.timeOrigin")))

    text = "Un point d'eau près du terrain de pétanque, s'il vous plaît"
    reference = console.contribute_sms(resident(2, 0), text)
    for page, origin in boards:
        item = page.locator(f'#live-list article.live-item[data-reference="{reference}"]')
        expect(item).to_be_visible(timeout=10_000)
        expect(item).to_have_attribute("data-channel", "sms")
        expect(item.locator(".live-text")).to_contain_text("terrain de pétanque")
        expect(page.locator("#live-list article.live-item").first).to_have_attribute(
            "data-reference", reference
        )
        assert page.evaluate("window.__marker") == 1  # the same page, never reloaded
        assert page.evaluate("performance.timeOrigin") == origin

    # A call appears too, and its transcript fills in when the speech model is done: the
    # same words as the contribution page shows, on the board that was never reloaded.
    call = console.contribute_voice(resident(2, 1), speak("오늘 공원에 사람이 많습니다"))
    page = boards[0][0]
    item = page.locator(f'#live-list article.live-item[data-reference="{call}"]')
    expect(item).to_have_attribute("data-channel", "voice", timeout=10_000)
    contribution = boards[1][0]
    open_contribution(contribution, call)
    words = contribution.locator("#transcript span.word")

    def transcribed() -> bool:
        contribution.reload()
        return words.count() > 0

    until(transcribed, f"{call}: #transcript span.word (the transcript)", timeout=120)
    first_word = (words.first.text_content() or "").strip()
    assert first_word
    expect(item.locator(".live-transcript")).to_contain_text(first_word)
    assert page.evaluate("window.__marker") == 1
    assert page.evaluate("performance.timeOrigin") == boards[0][1]
    shoot(page, "live")


def test_keyboard_shortcuts(console: Console, new_context: NewContext) -> None:
    texts = [
        "Un kiosque à journaux près de l'entrée nord",
        "Réparer le kiosque à musique du parc",
        "Des concerts le dimanche au kiosque",
    ]
    references = [console.contribute_sms(resident(3, n), t) for n, t in enumerate(texts)]
    page = new_context().new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    console.login(page, MODERATOR, "/moderation/queue?q=kiosque")
    rows = page.locator("table#queue tbody tr[data-contribution-id]")
    expect(rows).to_have_count(3)
    assert [r.get_attribute("data-reference") for r in rows.all()] == references

    focused_row = "document.activeElement.closest('tr[data-contribution-id]')?.dataset.reference"
    page.keyboard.press("j")
    assert page.evaluate(focused_row) == references[0]
    page.keyboard.press("j")
    assert page.evaluate(focused_row) == references[1]
    page.keyboard.press("k")
    assert page.evaluate(focused_row) == references[0]
    page.keyboard.press("x")
    expect(page.locator(row(references[0])).locator("input.select-row")).to_be_checked()
    expect(page.locator(row(references[1])).locator("input.select-row")).not_to_be_checked()

    page.keyboard.press("?")
    expect(page.locator("dialog#shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog#shortcuts")).to_be_hidden()

    search = page.locator("input#filter-q")
    page.keyboard.press("/")
    expect(search).to_be_focused()
    expect(search).to_have_value("kiosque")  # the "/" was not typed
    page.keyboard.press("j")  # typing in a field: a letter, not a shortcut
    expect(search).to_be_focused()
    expect(search).to_have_value(re.compile(r"j"))

    open_contribution(page, references[1])
    page.keyboard.press("r")
    expect(page.locator("textarea#reason")).to_be_focused()
    page.locator("textarea#reason").blur()
    here = page.url
    with page.expect_navigation():
        page.keyboard.press("a")
    page.goto(here)
    expect(page.locator("#status")).to_have_attribute("data-status", "published")
    console.wait_for_sms(resident(3, 1), references[1], "publiée")


def test_bulk_and_group_decision(console: Console, new_context: NewContext, shoot: Shoot) -> None:
    tract = (
        "Non à la bétonisation du parc ! Nous demandons que les arbres centenaires de "
        "l'allée des Tilleuls soient protégés et que le projet de parking soit abandonné."
    )
    variants = [
        tract,
        tract,
        tract.replace("Non à la bétonisation", "NON A LA BETONISATION"),  # same words
        tract.replace("centenaires", "anciens") + " Signé : un voisin",  # near-identical
    ]
    signers = [resident(4, n) for n in range(len(variants))]
    members = {console.contribute_sms(s, v) for s, v in zip(signers, variants, strict=True)}

    page = new_context().new_page()
    console.login(page, ADMIN, "/moderation/queue?q=tilleuls")
    rows = page.locator("table#queue tbody tr[data-contribution-id]")
    expect(rows).to_have_count(1)
    expect(rows.locator(".group-size")).to_contain_text(str(len(variants)))

    group_link = rows.locator("a[href*='/moderation/groups/']")
    expect(group_link).not_to_have_count(0)
    group_link.first.click()
    expect(page.locator("main[data-group-id]")).to_be_visible()
    listed = page.locator("table#group-members tbody tr[data-contribution-id]")
    expect(listed).to_have_count(len(variants))
    ids = [r.get_attribute("data-contribution-id") for r in listed.all()]
    shoot(page, "group")

    reason = "Cette consultation porte sur l'aménagement du parc, pas sur le parking."
    form = page.locator("form#group-decision-form")
    form.locator("textarea#reason").fill(reason)
    form.locator('button[name=action][value="reject"]').click()
    expect(page.locator(".flash[role=status]")).to_be_visible()
    for contribution_id in ids:
        page.goto(f"/moderation/contributions/{contribution_id}")
        expect(page.locator("#status")).to_have_attribute("data-status", "rejected")
        members.discard(page.locator("main").get_attribute("data-reference") or "")
    assert not members, f"not in the group: {members}"
    for signer in signers:
        console.wait_for_sms(signer, reason)

    # Bulk: two unrelated contributions published at once from the queue.
    chosen = [
        console.contribute_sms(resident(4, 10), "Des toilettes publiques près de la roseraie"),
        console.contribute_sms(resident(4, 11), "Un abri à vélos à côté de la roseraie"),
    ]
    page.goto("/moderation/queue?q=roseraie")
    expect(rows).to_have_count(2)
    for reference in chosen:
        page.locator(row(reference)).locator("input.select-row").check()
    page.locator("select#bulk-action").select_option("publish")
    page.locator("button#bulk-apply").click()
    expect(page.locator(".flash[role=status]")).to_be_visible()
    page.goto("/moderation/queue?q=roseraie&status=published")
    expect(rows).to_have_count(2)
    for n, reference in enumerate(chosen):
        expect(page.locator(row(reference))).to_have_attribute("data-status", "published")
        console.wait_for_sms(resident(4, 10 + n), reference, "publiée")


def test_security_in_browser(console: Console, new_context: NewContext, speak: Speak) -> None:
    moderator = new_context().new_page()
    console.login(moderator, ADMIN, "/moderation/live")
    expect(moderator.locator("#live-status")).to_have_attribute("data-state", "open")
    image = console.contribute_sms(resident(5, 0), f"{XSS_IMG} des bancs")
    script = console.contribute_sms(resident(5, 1), f"{XSS_SCRIPT} plus d'arbres")
    call = console.contribute_voice(resident(5, 2), speak("나무를 더 심어 주세요"))

    # Arriving live (rendered by the page's script), then on a fresh load of the board.
    for reference in (image, script):
        item = moderator.locator(f'article.live-item[data-reference="{reference}"]')
        expect(item).to_be_visible(timeout=10_000)
    expect(moderator.locator("#live-list")).to_contain_text(XSS_IMG)
    expect(moderator.locator("#live-list")).to_contain_text(XSS_SCRIPT)
    assert_no_script_ran(moderator)
    moderator.reload()
    assert_no_script_ran(moderator)

    moderator.goto("/moderation/queue?q=__xss")
    expect(moderator.locator(row(image))).to_contain_text(XSS_IMG)
    expect(moderator.locator(row(script))).to_contain_text(XSS_SCRIPT)
    assert_no_script_ran(moderator)

    open_contribution(moderator, image)
    expect(moderator.locator("#contribution-text")).to_contain_text(XSS_IMG)
    assert_no_script_ran(moderator)
    moderator.locator("textarea#public-text").fill(f"{XSS_IMG} des bancs")
    moderator.locator("button#save-public-text").click()
    expect(moderator.locator(".flash[role=status]")).to_be_visible()
    assert_no_script_ran(moderator)

    open_contribution(moderator, script)
    expect(moderator.locator("#contribution-text")).to_contain_text(XSS_SCRIPT)
    assert_no_script_ran(moderator)
    decide(moderator, "reject", f"Motif {XSS_SCRIPT}")
    expect(moderator.locator("#status")).to_have_attribute("data-status", "rejected")
    assert_no_script_ran(moderator)

    moderator.goto("/moderation/log")
    expect(moderator.locator("table#log")).to_contain_text("window.__xss=1")
    assert_no_script_ran(moderator)

    # Someone not logged in gets the login page, never the console, a decision or the audio.
    open_contribution(moderator, call)
    audio_path = moderator.locator("audio#contribution-audio").evaluate(
        "a => a.currentSrc || a.src || a.querySelector('source').src"
    )
    audio_url = urljoin(console.url, audio_path)
    assert moderator.request.get(audio_url).status == 200
    call_id = moderator.locator("main").get_attribute("data-contribution-id")

    stranger = new_context().new_page()
    stranger.goto("/moderation/queue")
    expect(stranger).to_have_url(re.compile(r"/moderation/login\?"))
    assert parse_qs(urlsplit(stranger.url).query)["next"] == ["/moderation/queue"]
    expect(stranger.locator("form#login-form")).to_be_visible()
    expect(stranger.locator("table#queue")).to_have_count(0)
    response = stranger.request.get(audio_url, max_redirects=0)
    assert not response.body().startswith(b"RIFF")
    assert not response.headers.get("content-type", "").startswith("audio/")
    if 300 <= response.status < 400:
        assert "/moderation/login" in response.headers["location"]
    else:
        assert response.status in (401, 403), response.status
    response = stranger.request.post(
        f"{console.url}/moderation/contributions/{call_id}/decision",
        form={"action": "publish"},
        max_redirects=0,
    )
    assert response.status in (401, 403), response.status

    # Logged in, but without the CSRF token: refused, nothing changed.
    response = moderator.request.post(
        f"{console.url}/moderation/contributions/{call_id}/decision",
        form={"action": "publish"},
        max_redirects=0,
    )
    assert response.status == 403, response.status
    moderator.reload()
    expect(moderator.locator("#status")).to_have_attribute("data-status", "pending")
