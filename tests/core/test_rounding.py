"""round_like_python: the answers' figures are Python's round(), bit for bit, at numpy's speed."""

from __future__ import annotations

import numpy as np
import pytest

from cashscore.core.rounding import round_like_python


def python_rounds(values: np.ndarray, places: int) -> np.ndarray:
    return np.array([round(float(v), places) for v in values.reshape(-1)]).reshape(values.shape)


def assert_bitwise_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), np.flatnonzero(got != want)[:5]


@pytest.mark.parametrize("places", [1, 2, 6, 9])
def test_values_next_to_a_half_round_as_python_does(places: int) -> None:
    # The decimal halves themselves and their neighbours one and two units in the last place away:
    # where np.round picks the other whole number on about one value in eight.
    halves = (np.arange(-20_000, 20_000) + 0.5) / 10**places
    near = np.concatenate([halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf), halves * (1 + 3e-16)])
    assert (np.round(near, places) != python_rounds(near, places)).any()
    assert_bitwise_equal(round_like_python(near, places), python_rounds(near, places))


def test_random_probabilities_and_log_odds_round_as_python_does() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.random(50_000), rng.normal(0, 4, 50_000), rng.random(1_000) * 1e-7])
    assert_bitwise_equal(round_like_python(values, 6), python_rounds(values, 6))


def test_special_and_huge_values_round_as_python_does() -> None:
    values = np.array(
        [0.0, -0.0, -1e-9, np.nan, -np.nan, np.inf, -np.inf, 1e300, -1e303, 1.7e308]
        + [2.0**52, 2.0**53 + 2, 4.5e15, 4503599627.370497, 5e-324, 2.675, -2.5]
    )
    # A whole column of them, and one applicant's few.
    for given in (np.tile(values, 4), values[:3], values[3:9], values[9:]):
        for places in (0, 2, 6):
            assert_bitwise_equal(round_like_python(given, places), python_rounds(given, places))


def test_a_table_keeps_its_shape() -> None:
    table = np.random.default_rng(3).normal(0, 1, (40, 11))
    assert_bitwise_equal(round_like_python(table, 6), python_rounds(table, 6))


def test_places_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="places must be between 0 and 15"):
        round_like_python(np.zeros(3), 16)
