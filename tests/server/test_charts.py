"""The dashboard's SVG charts: round axes, and titles that stay inside their chart."""

from __future__ import annotations

import math
import re

import pytest
from cashscore.server import challenge, charts

TEXT = re.compile(
    r'<text x="([\d.-]+)" y="([\d.-]+)" font-size="11" text-anchor="middle"[^>]*?( transform[^>]*)?>([^<]*)</text>'
)
SIZE = re.compile(r'<svg viewBox="0 0 (\d+) (\d+)"')


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        (35_000, (40_000, 4)),
        (23.22, (25, 5)),
        (0.9, (1.0, 5)),
        (7, (8, 4)),
        (100, (100, 5)),
        # Nothing to show, or nothing finite to round: a plain axis, never an error on the page.
        (0, (1.0, 4)),
        (float("inf"), (1.0, 4)),
        (float("nan"), (1.0, 4)),
    ],
)
def test_nice_axis_rounds_the_maximum_with_at_most_six_steps(top, expected):
    found, steps = charts.nice_axis(top)
    assert found == pytest.approx(expected[0]) and steps == expected[1]
    assert (found >= top or not math.isfinite(top)) and 1 <= steps <= 6


def titles(svg: str) -> tuple[int, int, list[tuple[float, float, bool, str]]]:
    width, height = map(int, SIZE.search(svg).groups())
    found = [(float(x), float(y), bool(turn), words) for x, y, turn, words in TEXT.findall(svg) if words]
    return width, height, found


@pytest.mark.parametrize(
    "svg",
    [
        charts.rate_bars([("A", 0.2, 10)], "By grade", "mean probability of default · probabilidade média"
                         " de inadimplência"),
        charts.line([(0, 0), (1, 1)], "ROC", "false positive rate · taxa de falsos positivos",
                    "true positive rate · taxa de verdadeiros positivos"),
        charts.histogram([5, 3], "PD", "probability of default · probabilidade de inadimplência",
                         "applicants · clientes"),
    ],
)  # fmt: skip
def test_axis_titles_stay_inside_the_chart(svg):
    width, height, found = titles(svg)
    assert found
    for x, y, rotated, words in found:
        half = len(words) * charts.TITLE_CHAR_WIDTH / 2
        along, room = (y, height) if rotated else (x, width)
        assert along - half >= 0 and along + half <= room, (words, along, room)


def test_a_long_title_goes_on_two_lines_and_the_chart_grows_for_it():
    short = charts.rate_bars([("A", 0.2, 10)], "t", "rate · taxa")
    long = charts.rate_bars([("A", 0.2, 10)], "t", "mean probability of default · probabilidade média de inadimplência")
    assert titles(long)[1] == titles(short)[1] + charts.LINE_GAP
    assert [w for *_, w in titles(long)[2]] == ["mean probability of default", "· probabilidade média de inadimplência"]


def test_scatter_ticks_are_round():
    svg = charts.scatter([(1000, 12.0, 1)], 35_000, 23.22, "t", "x", "y", lambda v: f"{v:,.0f}", lambda v: f"{v:.0f} %")
    ticks = re.findall(r'font-size="10"[^>]*>([^<]+)</text>', svg)
    assert ticks == ["0", "10,000", "20,000", "30,000", "40,000", "0 %", "5 %", "10 %", "15 %", "20 %", "25 %"]


def test_category_labels_are_english_words_with_the_portuguese_value():
    assert challenge.label("loan_intent", "Debtconsolidation") == "Debt consolidation (Pagamento de débitos)"
    assert challenge.label("person_home_ownership", "Rent") == "Rent (Alugada)"
    assert challenge.label("loan_grade", "A") == "A"
    assert challenge.label("loan_grade", None) == "missing"
