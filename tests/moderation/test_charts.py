"""Dashboard charts: well-formed, accessible SVG that shows the figures it was given."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

import pytest

from gateway.moderation.charts import bar_chart, day_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    # Our own output, parsed to prove it is well-formed: not untrusted input.
    root = ET.fromstring(svg)  # noqa: S314
    assert root.tag == f"{SVG}svg"
    return root


def by_class(root: ET.Element, tag: str, css_class: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if css_class in e.get("class", "").split()]


def texts(root: ET.Element, css_class: str) -> list[str]:
    return [e.text or "" for e in by_class(root, "text", css_class)]


def bar_titles(root: ET.Element, css_class: str) -> list[str]:
    return [g.findtext(f"{SVG}title") or "" for g in by_class(root, "g", css_class)]


def assert_accessible(root: ET.Element, title: str) -> None:
    assert root.get("role") == "img"
    title_id, desc_id = (root.get("aria-labelledby") or "").split()
    assert root.findtext(f"{SVG}title") == title
    assert root.find(f"{SVG}title").get("id") == title_id  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").get("id") == desc_id  # type: ignore[union-attr]


CHANNELS = [("SMS", 120), ("Voix", 45), ("Telegram", 8), ("E-mail", 0)]


def test_bar_chart_draws_one_bar_per_entry_with_label_and_value() -> None:
    root = parse(bar_chart(CHANNELS, title="Contributions par canal"))
    assert_accessible(root, "Contributions par canal")
    assert len(by_class(root, "g", "chart-bar")) == 4
    assert texts(root, "chart-label") == ["SMS", "Voix", "Telegram", "E-mail"]
    assert texts(root, "chart-value") == ["120", "45", "8", "0"]
    assert bar_titles(root, "chart-bar") == ["SMS: 120", "Voix: 45", "Telegram: 8", "E-mail: 0"]
    assert root.findtext(f"{SVG}desc") == "SMS: 120; Voix: 45; Telegram: 8; E-mail: 0"


def test_bar_lengths_are_proportional_to_values() -> None:
    root = parse(bar_chart([("a", 100), ("b", 50), ("c", 0)], title="t"))
    widths = [float(r.get("width", "")) for r in by_class(root, "rect", "chart-bar-rect")]
    assert widths[0] > 0
    assert widths[1] == pytest.approx(widths[0] / 2, abs=0.01)
    assert widths[2] == 0


def test_bars_fit_in_the_chart_width() -> None:
    root = parse(bar_chart([("Centre-ville", 99999), ("Nord", 3)], title="t", width=400))
    for rect in by_class(root, "rect", "chart-bar-rect"):
        assert float(rect.get("x", "")) + float(rect.get("width", "")) <= 400
    assert root.get("viewBox") == f"0 0 400 {root.get('height')}"


def test_bar_chart_height_grows_with_the_bars() -> None:
    short = parse(bar_chart(CHANNELS[:1], title="t", bar_height=20))
    tall = parse(bar_chart(CHANNELS, title="t", bar_height=20))
    assert int(tall.get("height", "")) > int(short.get("height", "")) + 3 * 20


def test_all_zero_values_draw_empty_bars() -> None:
    root = parse(bar_chart([("a", 0), ("b", 0)], title="t"))
    assert [r.get("width") for r in by_class(root, "rect", "chart-bar-rect")] == ["0", "0"]


@pytest.mark.parametrize(
    "label",
    [
        "<script>alert(1)</script>",
        '"><script>alert(1)</script>',
        "Parc & jardins",
        "l'école « Jean Macé »",
    ],
)
def test_labels_come_out_as_text_never_as_markup(label: str) -> None:
    svg = bar_chart([(label, 3)], title=label)
    assert "<script" not in svg
    root = parse(svg)
    assert not list(root.iter("script")) and not list(root.iter(f"{SVG}script"))
    assert root.findtext(f"{SVG}title") == label
    assert bar_titles(root, "chart-bar") == [f"{label}: 3"]


def test_characters_xml_forbids_are_dropped() -> None:
    root = parse(bar_chart([("Parc\x00\x07 Nord\x1b", 2)], title="t\x0b"))
    assert texts(root, "chart-label") == ["Parc Nord"]


def test_a_long_label_is_shortened_on_screen_but_whole_in_its_tooltip() -> None:
    label = "Quartier de la Croix-Rousse, pentes et plateau, jusqu'au boulevard"
    root = parse(bar_chart([(label, 5)], title="t", width=320))
    (shown,) = texts(root, "chart-label")
    assert shown.endswith("…") and len(shown) < len(label)
    assert label.startswith(shown[:-1])
    assert bar_titles(root, "chart-bar") == [f"{label}: 5"]


def test_bars_use_the_page_colour() -> None:
    root = parse(bar_chart(CHANNELS, title="t"))
    assert root.get("fill") == "currentColor"
    for rect in root.iter(f"{SVG}rect"):
        assert rect.get("fill") in (None, "currentColor")  # inherited from the svg


@pytest.mark.parametrize("empty_label", ["—", "Aucune donnée"])
def test_empty_bar_chart_says_so(empty_label: str) -> None:
    root = parse(bar_chart([], title="Par quartier", empty_label=empty_label))
    assert_accessible(root, "Par quartier")
    assert by_class(root, "g", "chart-bar") == []
    assert texts(root, "chart-empty") == [empty_label]
    assert root.findtext(f"{SVG}desc") == empty_label


def test_negative_values_are_refused() -> None:
    with pytest.raises(ValueError):
        bar_chart([("a", -1)], title="t")
    with pytest.raises(ValueError):
        day_chart([(date(2024, 3, 1), -1)], title="t")


def test_ids_differ_between_charts_of_one_page() -> None:
    charts = [
        bar_chart(CHANNELS, title="Par canal"),
        bar_chart(CHANNELS, title="Par catégorie"),
        bar_chart(CHANNELS[:2], title="Par canal"),
        bar_chart([], title="Par canal"),
        day_chart([(date(2024, 3, 1), 2)], title="Par canal"),
    ]
    ids = [e.get("id") for svg in charts for e in parse(svg).iter() if e.get("id")]
    assert len(ids) == 2 * len(charts)
    assert len(set(ids)) == len(ids)


def test_the_same_chart_is_drawn_identically() -> None:
    assert bar_chart(CHANNELS, title="t") == bar_chart(CHANNELS, title="t")


def test_ids_are_valid_for_a_title_without_letters() -> None:
    root = parse(bar_chart(CHANNELS, title="😀 !!"))
    title_id = root.find(f"{SVG}title").get("id", "")  # type: ignore[union-attr]
    assert title_id[0].isalpha() and " " not in title_id


def day_labels(root: ET.Element) -> list[str]:
    return [t for t in texts(root, "chart-axis") if "/" in t]


def test_day_chart_draws_every_day_of_the_range_filling_gaps_with_zero() -> None:
    days = [(date(2024, 3, 1), 4), (date(2024, 3, 5), 10), (date(2024, 3, 3), 1)]
    root = parse(day_chart(days, title="Contributions par jour"))
    assert_accessible(root, "Contributions par jour")
    assert bar_titles(root, "chart-day") == [
        "01/03/2024: 4",
        "02/03/2024: 0",
        "03/03/2024: 1",
        "04/03/2024: 0",
        "05/03/2024: 10",
    ]
    heights = [float(r.get("height", "")) for r in by_class(root, "rect", "chart-bar-rect")]
    assert heights[1] == heights[3] == 0
    assert heights[4] == max(heights)
    assert heights[0] == pytest.approx(heights[4] * 0.4, abs=0.01)
    assert root.findtext(f"{SVG}desc", "").startswith("01/03/2024: 4; 02/03/2024: 0")


def test_day_chart_names_the_highest_value_on_the_y_axis() -> None:
    root = parse(day_chart([(date(2024, 3, 1), 4), (date(2024, 3, 2), 37)], title="t"))
    assert "37" in texts(root, "chart-axis")


def test_a_day_given_twice_counts_the_sum() -> None:
    days = [(date(2024, 3, 2), 3), (date(2024, 3, 1), 1), (date(2024, 3, 2), 4)]
    root = parse(day_chart(days, title="t"))
    assert bar_titles(root, "chart-day") == ["01/03/2024: 1", "02/03/2024: 7"]


def test_day_chart_across_months_and_years() -> None:
    days = [(date(2023, 12, 30), 1), (date(2024, 1, 2), 2)]
    root = parse(day_chart(days, title="t"))
    assert len(by_class(root, "g", "chart-day")) == 4
    assert day_labels(root) == ["30/12", "31/12", "01/01", "02/01"]


def test_a_long_range_labels_first_last_and_a_few_days_between() -> None:
    days = [(date(2024, 3, 1), 2), (date(2024, 4, 29), 5)]
    root = parse(day_chart(days, title="t"))
    assert len(by_class(root, "g", "chart-day")) == 60
    labels = day_labels(root)
    assert labels[0] == "01/03" and labels[-1] == "29/04"
    assert 3 <= len(labels) <= 5
    assert len(set(labels)) == len(labels)


def test_day_bars_stay_inside_the_chart() -> None:
    days = [(date(2024, 1, 1), 3), (date(2024, 12, 31), 9)]
    root = parse(day_chart(days, title="t", width=300, height=120))
    rects = by_class(root, "rect", "chart-bar-rect")
    assert len(rects) == 366
    for rect in rects:
        assert (
            0
            <= float(rect.get("x", ""))
            <= float(rect.get("x", "")) + float(rect.get("width", ""))
            <= 300
        )
        assert (
            0
            <= float(rect.get("y", ""))
            <= float(rect.get("y", "")) + float(rect.get("height", ""))
            <= 120
        )


def test_a_single_day() -> None:
    root = parse(day_chart([(date(2024, 3, 8), 6)], title="t"))
    assert bar_titles(root, "chart-day") == ["08/03/2024: 6"]
    assert day_labels(root) == ["08/03"]


def test_days_without_contributions_draw_flat_bars() -> None:
    root = parse(day_chart([(date(2024, 3, 8), 0), (date(2024, 3, 9), 0)], title="t"))
    assert [r.get("height") for r in by_class(root, "rect", "chart-bar-rect")] == ["0", "0"]


@pytest.mark.parametrize("empty_label", ["—", "Pas encore de contribution"])
def test_empty_day_chart_says_so(empty_label: str) -> None:
    root = parse(day_chart([], title="Par jour", empty_label=empty_label))
    assert_accessible(root, "Par jour")
    assert by_class(root, "g", "chart-day") == []
    assert texts(root, "chart-empty") == [empty_label]


def test_day_chart_title_is_escaped() -> None:
    svg = day_chart([(date(2024, 3, 8), 1)], title="<b>Par jour</b> & semaine")
    assert parse(svg).findtext(f"{SVG}title") == "<b>Par jour</b> & semaine"


@pytest.mark.parametrize(
    "svg",
    [
        bar_chart(CHANNELS, title="t"),
        day_chart([(date(2024, 3, 1), 4), (date(2024, 3, 9), 2)], title="t"),
    ],
)
def test_chart_text_is_readable_even_scaled_down_to_a_dashboard_column(svg: str) -> None:
    root = parse(svg)
    size = float(root.get("font-size", ""))
    # 13 px at least where the page shrinks the 640-wide chart to a 580 px column.
    assert size * 580 / float(root.get("width", "")) >= 13
    for text in root.iter(f"{SVG}text"):
        assert text.get("font-size") is None  # every label inherits the chart's size


def test_a_single_day_is_one_bar_of_a_bar_s_width_centred_not_a_wall() -> None:
    root = parse(day_chart([(date(2024, 3, 8), 6)], title="t", width=640))
    (rect,) = by_class(root, "rect", "chart-bar-rect")
    x, bar = float(rect.get("x", "")), float(rect.get("width", ""))
    assert 0 < bar <= 40
    (label,) = [t for t in by_class(root, "text", "chart-axis") if "/" in (t.text or "")]
    assert label.get("text-anchor") == "middle"
    assert x + bar / 2 == pytest.approx(float(label.get("x", "")), abs=0.01)


def test_a_few_days_keep_bars_narrow_with_labels_under_them() -> None:
    days = [(date(2024, 3, 8), 6), (date(2024, 3, 9), 3), (date(2024, 3, 10), 1)]
    root = parse(day_chart(days, title="t"))
    rects = by_class(root, "rect", "chart-bar-rect")
    assert all(float(r.get("width", "")) <= 40 for r in rects)
    middles = [float(r.get("x", "")) + float(r.get("width", "")) / 2 for r in rects]
    labels = [t for t in by_class(root, "text", "chart-axis") if "/" in (t.text or "")]
    assert [float(t.get("x", "")) for t in labels] == pytest.approx(middles, abs=0.01)
