"""The training population as bins, and how far another population has moved from it.

Numbers are cut at the training part's deciles, categories keep their own bins, and missing values
get a bin of their own (a feed that starts losing a field is drift too). The distance is the
Population Stability Index with the usual 0.1 / 0.25 conventions; a fixed cut-off ignores the
sample size, so a chi-square test of the observed counts against the reference shares, with its
p-value and the number of rows, sits beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cashscore.artefact.card import Bins

QUANTILES = np.linspace(0.1, 0.9, 9)
# PSI conventions (as optbinning and most credit teams use them): below WATCH the population is
# stable, from ALERT on it has shifted.
WATCH, ALERT = 0.1, 0.25
# An empty bin on either side would make PSI infinite: shares are floored here, then renormalised.
FLOOR = 1e-4
MISSING = "missing"


def numeric_bins(name: str, values: np.ndarray) -> Bins:
    """Decile bins of a numeric column (NaN = missing); tied deciles merge into one bin."""
    values = np.asarray(values, dtype=np.float64)
    known = values[~np.isnan(values)]
    edges = np.unique(np.quantile(known, QUANTILES)).tolist() if known.size else []
    labels = _numeric_labels(edges)
    shares = counts(Bins(name=name, kind="numeric", edges=edges, labels=labels, shares=[]), values)
    return Bins(name=name, kind="numeric", edges=edges, labels=labels, shares=(shares / max(len(values), 1)).tolist())


def categorical_bins(name: str, values: np.ndarray, categories: Sequence[str]) -> Bins:
    """One bin per category (None or "" = missing)."""
    empty = Bins(name=name, kind="categorical", edges=[], labels=[*categories, MISSING], shares=[])
    shares = counts(empty, values) / max(len(values), 1)
    return Bins(name=name, kind="categorical", edges=[], labels=empty.labels, shares=shares.tolist())


def _numeric_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all", MISSING]
    inner = [f"({lo:g}, {hi:g}]" for lo, hi in zip(edges, edges[1:], strict=False)]
    return [f"<= {edges[0]:g}", *inner, f"> {edges[-1]:g}", MISSING]


def assign(bins: Bins, values: np.ndarray) -> np.ndarray:
    """Each value's bin index (the last bin is missing; an unknown category counts as missing)."""
    missing = len(bins.labels) - 1
    if bins.kind == "numeric":
        values = np.asarray(values, dtype=np.float64)
        index = np.searchsorted(np.asarray(bins.edges, dtype=np.float64), values, side="left")
        return np.where(np.isnan(values), missing, index)
    lookup = {label: i for i, label in enumerate(bins.labels[:-1])}
    return np.fromiter((lookup.get(v, missing) for v in values), dtype=np.int64, count=len(values))


def counts(bins: Bins, values: np.ndarray) -> np.ndarray:
    """How many values fall in each bin."""
    return np.bincount(assign(bins, values), minlength=len(bins.labels)).astype(np.float64)


def _floored(shares: np.ndarray) -> np.ndarray:
    shares = np.maximum(np.asarray(shares, dtype=np.float64), FLOOR)
    return shares / shares.sum()


def psi(reference: Sequence[float], observed: np.ndarray) -> float:
    """Population Stability Index of observed counts against reference shares."""
    total = observed.sum()
    if total == 0:
        return float("nan")
    expected, actual = _floored(np.asarray(reference)), _floored(observed / total)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def chi_square(reference: Sequence[float], observed: np.ndarray) -> tuple[float, float]:
    """Pearson's chi-square of observed counts against reference shares: (statistic, p-value)."""
    total = observed.sum()
    if total == 0 or len(observed) < 2:
        return float("nan"), float("nan")
    from scipy import stats  # here: the server's live PSI does without it

    result = stats.chisquare(observed, _floored(np.asarray(reference)) * total)
    return float(result.statistic), float(result.pvalue)


def status(value: float) -> str:
    """ok below 0.1, watch below 0.25, alert from there (unknown when nothing was observed)."""
    if np.isnan(value):
        return "unknown"
    return "ok" if value < WATCH else "watch" if value < ALERT else "alert"
