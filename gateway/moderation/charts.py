"""Dashboard charts as inline SVG, drawn on the server: no JavaScript, readable by everyone.

Each chart is an ``<svg role="img">`` labelled by its ``<title>`` and ``<desc>``; the
description lists every value, so a screen reader gets the whole data set, and each bar
carries its own ``<title>`` (a tooltip on hover). Everything is drawn in ``currentColor``:
the chart takes the text colour of the page around it, which the page already keeps readable
(WCAG AA) on its background, and a stylesheet can restyle the ``chart-*`` classes.

Ids derive from the title and the data, so several charts on one page do not clash and the
same chart is drawn the same way twice (cacheable, testable).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from datetime import date, timedelta

from gateway.textnorm import fold

# Text size in the chart's own units. Readable at the default width (640), and still at least
# 13 px where a page scales the chart down to fit a narrower column (to 580 px, 90 %).
_FONT_SIZE = 15
# Rough advance of one character at _FONT_SIZE in a sans-serif font; SVG has no text
# measurement on the server, and a slightly generous guess only costs a little whitespace.
_CHAR_WIDTH = 9
_PADDING = 8
_GAP = 6
_X_LABELS = 5
# The widest a day's bar gets: a few days (or one) are bars in their slots, not a wall.
_MAX_DAY_BAR = 40

# Characters XML 1.0 forbids even when escaped: one of them in a label (a broken phone can
# send them) would make the whole page unparseable for an XHTML or SVG reader.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _escape(text: str) -> str:
    return html.escape(_NOT_XML.sub("", text), quote=True)


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _chart_id(kind: str, title: str, data: object) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", fold(title)).strip("-")[:32].rstrip("-")
    digest = hashlib.sha256(repr((kind, title, data)).encode("utf-8")).hexdigest()[:8]
    return f"chart-{slug}-{digest}" if slug else f"chart-{digest}"


def _svg_open(chart_id: str, kind: str, width: int, height: int, title: str, desc: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="sans-serif" font-size="{_FONT_SIZE}" fill="currentColor">'
        f'<title id="{chart_id}-title">{_escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{_escape(desc)}</desc>'
    )


def _empty(chart_id: str, kind: str, width: int, height: int, title: str, label: str) -> str:
    return (
        _svg_open(chart_id, kind, width, height, title, label)
        + f'<text class="chart-empty" x="{width / 2:g}" y="{height / 2:g}" '
        f'text-anchor="middle" dominant-baseline="middle">{_escape(label)}</text></svg>'
    )


def _shorten(label: str, max_chars: int) -> str:
    if len(label) <= max_chars:
        return label
    return label[: max(max_chars - 1, 1)] + "…"


def _check_counts(values: Sequence[int]) -> None:
    if any(value < 0 for value in values):
        raise ValueError("a chart counts things: values cannot be negative")


def bar_chart(
    series: Sequence[tuple[str, int]],
    *,
    title: str,
    width: int = 640,
    bar_height: int = 26,
    empty_label: str = "—",
) -> str:
    """Horizontal bars in the given order, the label on the left and the value after the bar.

    A label too long for its column is shortened with "…" on screen; the bar's tooltip and
    the chart's description keep it whole.
    """
    _check_counts([value for _, value in series])
    chart_id = _chart_id("bar", title, (tuple(series), width, bar_height))
    if not series:
        return _empty(chart_id, "bar", width, bar_height + 2 * _PADDING, title, empty_label)

    longest = max(len(label) for label, _ in series)
    label_width = min(longest * _CHAR_WIDTH + _PADDING, int(width * 0.4))
    max_chars = max((label_width - _PADDING) // _CHAR_WIDTH, 1)
    highest = max(value for _, value in series)
    value_width = len(str(highest)) * _CHAR_WIDTH + _PADDING
    bar_x = _PADDING + label_width
    room = max(width - bar_x - value_width - _PADDING, 0)
    height = 2 * _PADDING + len(series) * bar_height + (len(series) - 1) * _GAP

    desc = "; ".join(f"{label}: {value}" for label, value in series)
    parts = [_svg_open(chart_id, "bar", width, height, title, desc)]
    for index, (label, value) in enumerate(series):
        y = _PADDING + index * (bar_height + _GAP)
        middle = y + bar_height / 2
        length = room * value / highest if highest else 0.0
        parts.append(
            f'<g class="chart-bar"><title>{_escape(f"{label}: {value}")}</title>'
            f'<text class="chart-label" x="{bar_x - _PADDING}" y="{_number(middle)}" '
            f'text-anchor="end" dominant-baseline="middle">{_escape(_shorten(label, max_chars))}'
            f"</text>"
            f'<rect class="chart-bar-rect" x="{bar_x}" y="{y}" width="{_number(length)}" '
            f'height="{bar_height}"/>'
            f'<text class="chart-value" x="{_number(bar_x + length + 4)}" '
            f'y="{_number(middle)}" dominant-baseline="middle">{value}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _fill_days(days: Sequence[tuple[date, int]]) -> list[tuple[date, int]]:
    totals: dict[date, int] = {}
    for day, value in days:
        totals[day] = totals.get(day, 0) + value
    first, last = min(totals), max(totals)
    span = (last - first).days + 1
    every_day = (first + timedelta(days=offset) for offset in range(span))
    return [(day, totals.get(day, 0)) for day in every_day]


def _labelled_indexes(count: int) -> list[int]:
    shown = min(count, _X_LABELS)
    if shown == 1:
        return [0]
    return sorted({round(i * (count - 1) / (shown - 1)) for i in range(shown)})


def day_chart(
    days: Sequence[tuple[date, int]],
    *,
    title: str,
    width: int = 640,
    height: int = 180,
    empty_label: str = "—",
) -> str:
    """One vertical bar per day from the first to the last day given, missing days at 0.

    Days may come in any order; a day given twice counts the sum. The x axis names the
    first and last days and a few between (dd/mm); the y axis names the highest value.
    """
    _check_counts([value for _, value in days])
    chart_id = _chart_id("day", title, (tuple(days), width, height))
    if not days:
        return _empty(chart_id, "day", width, height, title, empty_label)

    filled = _fill_days(days)
    highest = max(value for _, value in filled)
    axis_width = len(str(highest)) * _CHAR_WIDTH + _PADDING
    left = _PADDING + axis_width
    top = _PADDING + _FONT_SIZE // 2
    bottom = height - _PADDING - _FONT_SIZE - 4
    plot_width = max(width - left - _PADDING, 1)
    plot_height = max(bottom - top, 1)
    slot = plot_width / len(filled)
    # A gap between bars keeps days apart, until the bars would become thinner than the gap;
    # with few days, each bar keeps a bar's width, centred in its day's slot.
    bar_width = min(slot * 0.8 if slot >= 4 else slot, _MAX_DAY_BAR)

    desc = "; ".join(f"{day:%d/%m/%Y}: {value}" for day, value in filled)
    parts = [
        _svg_open(chart_id, "day", width, height, title, desc),
        f'<text class="chart-axis" x="{left - 4}" y="{top}" text-anchor="end" '
        f'dominant-baseline="middle">{highest}</text>',
        f'<line class="chart-baseline" x1="{left}" y1="{bottom}" x2="{left + plot_width}" '
        f'y2="{bottom}" stroke="currentColor" stroke-width="1"/>',
    ]
    for index, (day, value) in enumerate(filled):
        bar = plot_height * value / highest if highest else 0.0
        x = left + index * slot + (slot - bar_width) / 2
        parts.append(
            f'<g class="chart-day"><title>{day:%d/%m/%Y}: {value}</title>'
            f'<rect class="chart-bar-rect" x="{_number(x)}" y="{_number(bottom - bar)}" '
            f'width="{_number(bar_width)}" height="{_number(bar)}"/></g>'
        )
    labelled = _labelled_indexes(len(filled))
    # A label sits under its bar; when the slots are narrower than a label, the first and
    # last labels align on the plot's edges instead, so neither is cut off.
    centred = slot >= len("00/00") * _CHAR_WIDTH
    for index in labelled:
        if not centred and len(labelled) > 1 and index == 0:
            anchor, x = "start", float(left)
        elif not centred and len(labelled) > 1 and index == len(filled) - 1:
            anchor, x = "end", float(left + plot_width)
        else:
            anchor, x = "middle", left + (index + 0.5) * slot
        parts.append(
            f'<text class="chart-axis" x="{_number(x)}" y="{height - _PADDING}" '
            f'text-anchor="{anchor}">{filled[index][0]:%d/%m}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
