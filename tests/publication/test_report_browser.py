"""The report in Debian's Chromium: it loads nothing but itself, every text on it is readable
(WCAG AA contrast), and it prints to a PDF of several A4 pages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.runtime import Runtime
from tests.conftest import unavailable
from tests.publication.test_report import _seed, run  # noqa: F401 - run is a fixture

CHROMIUM = Path("/usr/bin/chromium")

# Every element that holds text of its own: its colour and the background it sits on (the
# nearest ancestor's that is not transparent, the page's white otherwise).
_COLOURS = """
() => {
  const out = [];
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const bg = getComputedStyle(e).backgroundColor;
      if (bg && bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') return bg;
    }
    return 'rgb(255, 255, 255)';
  };
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest('.visually-hidden, title, desc')) continue;
    const style = getComputedStyle(el);
    const colour = el instanceof SVGElement ? style.fill : style.color;
    out.push([el.tagName, el.textContent.trim().slice(0, 40), colour, background(el)]);
  }
  return out;
}
"""


def _luminance(css: str) -> float:
    values = css[css.index("(") + 1 : css.index(")")].split(",")
    channels = [int(float(v)) / 255 for v in values[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(foreground: str, background: str) -> float:
    high, low = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_report_in_chromium(runtime: Runtime, run: Any, tmp_path: Path) -> None:  # noqa: F811
    if not CHROMIUM.exists():
        unavailable("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    _seed(runtime)
    output = tmp_path / "bilan.html"
    assert run("--campaign", "parc", "--output", str(output)).exit_code == 0

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            failures: list[str] = []
            page.on("console", lambda message: failures.append(message.text))
            page.goto(output.as_uri())
            page.wait_for_load_state("networkidle")
            assert requested == [output.as_uri()]
            assert failures == []  # a CSP violation would be reported here

            assert page.locator("svg[role=img]").count() == 5
            for medium in ("screen", "print"):
                page.emulate_media(media=medium)
                colours = page.evaluate(_COLOURS)
                assert len(colours) > 50
                low = [
                    (tag, text, round(_contrast(fg, bg), 2))
                    for tag, text, fg, bg in colours
                    if _contrast(fg, bg) < 4.5
                ]
                assert low == [], medium

            pdf = page.pdf(format="A4")
        finally:
            browser.close()
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) >= 2  # several A4 pages
