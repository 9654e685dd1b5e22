"""Inline SVG charts for the dashboard: every chart has labelled axes with values and units.

Pure functions from numbers to markup; every text they draw is escaped. Nothing is fetched, so the
page works offline and its Content-Security-Policy allows no script or style beyond its own.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

INK = "#1d2733"
BLUE = "#14325c"
RED = "#b3261e"
GREEN = "#1b7a3a"
GRID = "#e3e7ec"
# Room around the plot for the tick values and the axis titles.
LEFT, BOTTOM, TOP, RIGHT = 52, 40, 8, 24
# Category labels of bar charts: about this many pixels a character at 10 px.
CHAR_WIDTH = 5.6
# Axis titles: about this many pixels a character at 11 px, and the gap between two lines.
TITLE_CHAR_WIDTH = 6.2
LINE_GAP = 13


def pct(value: float, places: int = 0) -> str:
    return f"{100 * value:.{places}f} %"


def _text(x: float, y: float, words: str, anchor: str = "middle", size: int = 11, rotate: bool = False) -> str:
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{INK}"{turn}>'
        f"{html.escape(words)}</text>"
    )


def title_lines(words: str, room: float) -> list[str]:
    """An axis title on one line, or on two at its " · " (English, then Portuguese) when one line
    would not fit in `room` pixels."""
    english, dot, portuguese = words.partition(" · ")
    if len(words) * TITLE_CHAR_WIDTH <= room or not dot:
        return [words]
    return [english, f"· {portuguese}"]


def _centred(centre: float, words: str, low: float, high: float) -> float:
    """Where to centre a title near `centre` so that it stays within [low, high]."""
    half = len(words) * TITLE_CHAR_WIDTH / 2
    return min(max(centre, low + half), high - half) if high - low > 2 * half else (low + high) / 2


def frame(
    width: int,
    height: int,
    x_ticks: Sequence[tuple[float, str]],
    y_ticks: Sequence[tuple[float, str]],
    x_title: str,
    y_title: str,
    title: str,
    body: Callable[[Callable[[float], float], Callable[[float], float]], str],
    left: int = LEFT,
    right: int = RIGHT,
) -> str:
    """A chart: grid, tick values, axis titles, and the body drawn through the two scales. A title
    too long for its axis goes on two lines (the chart grows to hold them), never past its edge.

    Args:
        width, height: the whole chart in pixels.
        x_ticks, y_ticks: (value in 0..1 of the axis, label) pairs.
        x_title, y_title: what each axis measures, with its unit.
        title: the accessible name of the chart.
        body: draws the data, given x(value) and y(value) for values in 0..1.
        left, right: room beside the plot for labels.
    """
    x_lines = title_lines(x_title, width - 8)
    y_lines = title_lines(y_title, height - TOP - BOTTOM)
    height += LINE_GAP * (len(x_lines) - 1)
    left += LINE_GAP * (len(y_lines) - 1)
    plot_w, plot_h = width - left - right, height - TOP - BOTTOM - LINE_GAP * (len(x_lines) - 1)

    def x(v: float) -> float:
        return left + v * plot_w

    def y(v: float) -> float:
        return TOP + (1 - v) * plot_h

    parts = [f'<rect x="{left}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#bbb"/>']
    for v, label in x_ticks:
        parts.append(f'<line x1="{x(v):.1f}" y1="{TOP}" x2="{x(v):.1f}" y2="{TOP + plot_h}" stroke="{GRID}"/>')
        parts.append(_text(x(v), TOP + plot_h + 14, label, size=10))
    for v, label in y_ticks:
        parts.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" stroke="{GRID}"/>')
        parts.append(_text(left - 4, y(v) + 3, label, anchor="end", size=10))
    parts.append(body(x, y))
    for i, words in enumerate(x_lines):
        below = height - 6 - LINE_GAP * (len(x_lines) - 1 - i)
        parts.append(_text(_centred(left + plot_w / 2, words, 4, width - 4), below, words))
    for i, words in enumerate(y_lines):
        parts.append(_text(12 + LINE_GAP * i, _centred(TOP + plot_h / 2, words, 2, TOP + plot_h), words, rotate=True))
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">{"".join(parts)}</svg>'
    )


def fraction_ticks(percent: bool = True, step: float = 0.25) -> list[tuple[float, str]]:
    count = round(1 / step)
    return [(i * step, pct(i * step) if percent else f"{i * step:g}") for i in range(count + 1)]


def nice_axis(top: float, most: int = 6) -> tuple[float, int]:
    """A round axis maximum at or above `top` and its intervals: the smallest step of 1, 2, 2.5 or
    5 times a power of ten that needs at most `most` of them (35,000: 10,000 to 40,000; 23.2: 5 to 25)."""
    if not 0 < top < math.inf:  # nothing to show, or no number to round: a plain 0..1 axis
        return 1.0, 4
    power = 10.0 ** math.floor(math.log10(top / most))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * power
        intervals = math.ceil(top / step - 1e-9)
        if intervals <= most:
            return step * intervals, intervals
    raise AssertionError("unreachable: a step of 10 powers always fits")


def count_ticks(top: int) -> tuple[int, list[tuple[float, str]]]:
    """A round axis maximum at or above `top` and four ticks to it."""
    nice = 1
    while nice * 4 < top:
        nice = nice * 2 if str(nice)[0] in "15" else nice * 5 // 2
    return nice * 4, [(i / 4, f"{nice * i:,}") for i in range(5)]


def line(points: Sequence[tuple[float, float]], title: str, x_title: str, y_title: str, diagonal: bool = True) -> str:
    """A curve over [0, 1] x [0, 1] (ROC, calibration), with the diagonal for reference."""
    clean = [(float(a), float(b)) for a, b in points if a is not None and b is not None]

    def body(x: Callable[[float], float], y: Callable[[float], float]) -> str:
        path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in clean)
        diag = f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#999" stroke-dasharray="4"/>'
        return (diag if diagonal else "") + f'<polyline points="{path}" fill="none" stroke="{BLUE}" stroke-width="2"/>'

    ticks = fraction_ticks(percent=False)
    return frame(300, 270, ticks, ticks, x_title, y_title, title, body)


def histogram(counts: Sequence[int], title: str, x_title: str, y_title: str) -> str:
    """Counts in equal bins over [0, 1] (default probability in tenths)."""
    top, y_ticks = count_ticks(max(counts, default=0) or 1)
    n = len(counts)

    def body(x: Callable[[float], float], y: Callable[[float], float]) -> str:
        bars = []
        for i, c in enumerate(counts):
            left, right, high = x(i / n) + 1, x((i + 1) / n) - 1, y(c / top)
            bars.append(
                f'<rect x="{left:.1f}" y="{high:.1f}" width="{right - left:.1f}" height="{y(0) - high:.1f}" '
                f'fill="{BLUE}"><title>{i * 100 // n}-{(i + 1) * 100 // n} %: {c:,}</title></rect>'
            )
        return "".join(bars)

    # Room on the left for five-digit counts beside the rotated axis title.
    return frame(340, 230, fraction_ticks(step=0.2), y_ticks, x_title, y_title, title, body, left=62)


def rate_bars(rows: Sequence[tuple[str, float | None, int]], title: str, x_title: str, limit: float = 1.0) -> str:
    """Horizontal bars of a rate per category, labelled with the rate and the rows behind it.

    Args:
        rows: (category, rate in 0..1 or None, rows).
        limit: the axis maximum (rates above are drawn to it).
    """
    height = TOP + BOTTOM + 22 * max(len(rows), 1)
    step = limit / 4
    left = 8 + round(CHAR_WIDTH * max((len(str(r[0])) for r in rows), default=4))

    def body(x: Callable[[float], float], y: Callable[[float], float]) -> str:
        parts = []
        for i, (name, rate, n) in enumerate(rows):
            top = TOP + 4 + 22 * i
            width = x(min(rate or 0, limit) / limit) - x(0)
            parts.append(_text(left - 4, top + 12, str(name), anchor="end", size=10))
            parts.append(f'<rect x="{x(0):.1f}" y="{top}" width="{width:.1f}" height="15" fill="{BLUE}"/>')
            shown = "-" if rate is None else pct(rate, 1)
            parts.append(_text(x(0) + width + 4, top + 12, f"{shown} · n = {n:,}", anchor="start", size=10))
        return "".join(parts)

    ticks = [(i / 4, pct(i * step)) for i in range(5)]
    # Room on the right for the value written after the longest bar.
    return frame(left + 330, height, ticks, [], x_title, "", title, body, left=left, right=110)


def scatter(
    points: Sequence[tuple[float, float, int | None]],
    x_max: float,
    y_max: float,
    title: str,
    x_title: str,
    y_title: str,
    x_format: Callable[[float], str],
    y_format: Callable[[float], str],
) -> str:
    """Points coloured by outcome (1 red, 0 blue, unknown grey) over [0, x_max] x [0, y_max], each
    axis widened to a round maximum with round ticks."""
    colour = {1: RED, 0: BLUE, None: "#999"}
    (x_max, x_steps), (y_max, y_steps) = nice_axis(x_max), nice_axis(y_max)

    def body(x: Callable[[float], float], y: Callable[[float], float]) -> str:
        return "".join(
            f'<circle cx="{x(min(a / x_max, 1)):.1f}" cy="{y(min(b / y_max, 1)):.1f}" r="2.2" '
            f'fill="{colour.get(s, "#999")}" fill-opacity="0.55"/>'
            for a, b, s in points
        )

    x_ticks = [(i / x_steps, x_format(x_max * i / x_steps)) for i in range(x_steps + 1)]
    y_ticks = [(i / y_steps, y_format(y_max * i / y_steps)) for i in range(y_steps + 1)]
    return frame(560, 330, x_ticks, y_ticks, x_title, y_title, title, body)
