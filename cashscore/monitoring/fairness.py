"""Decisions and outcomes by age band: approval, adverse impact, calibration and error-rate gaps.

"Positive" means default (loan_status = 1) and a predicted positive is a refusal, as everywhere in
cashscore: the true-positive rate is the share of defaulters refused, the false-positive rate the
share of good payers refused. Gaps and the adverse impact ratio are taken against the band with the
highest approval rate. The 0.8 flag is the four-fifths rule of US employment law (29 CFR 1607.4):
a heuristic for where to look, not a legal test of credit decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cashscore.artefact.card import AgeBand
from cashscore.core.errors import CashscoreError

FOUR_FIFTHS = 0.8
DEFAULT_BANDS = (25.0, 35.0, 45.0, 60.0)
UNKNOWN = "unknown age"


def parse_bands(text: str, where: str = "CASHSCORE_AGE_BANDS") -> tuple[float, ...]:
    """Band bounds from "25,35,45,60" (each band starts at a bound): strictly increasing ages.

    Raises:
        CashscoreError: naming `where` and the value it cannot use.
    """
    try:
        bounds = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise CashscoreError(f"{where}={text[:60]!r}: expected ages separated by commas, e.g. 25,35,45,60") from None
    if not bounds or any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)) or not bounds[0] > 0:
        raise CashscoreError(f"{where}={text[:60]!r}: expected increasing ages above 0, e.g. 25,35,45,60")
    if any(not np.isfinite(b) or b > 150 for b in bounds):
        raise CashscoreError(f"{where}={text[:60]!r}: an age bound must be at most 150")
    return bounds


def labels(bounds: Sequence[float]) -> list[str]:
    """Readable band names: <25, 25-34, ..., 60+ (bounds are whole years in practice)."""
    names = [f"<{bounds[0]:g}"]
    names += [
        f"{lo:g}-{hi - 1:g}" if float(hi).is_integer() else f"{lo:g}-{hi:g}"
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    return [*names, f"{bounds[-1]:g}+", UNKNOWN]


class Tally:
    """Counts per age band, added chunk by chunk: a population of any size in constant memory."""

    FIELDS = ("rows", "approved", "p_sum", "labelled", "defaults", "refused_defaults", "refused_good")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.names = labels(bounds)
        self.sums = {name: np.zeros(len(self.names)) for name in self.FIELDS}

    def add(self, age: np.ndarray, p: np.ndarray, deny: np.ndarray, y: np.ndarray | None = None) -> None:
        """One chunk: ages (NaN = unknown), probabilities of default, refusals, outcomes (NaN = not known yet)."""
        age = np.asarray(age, dtype=np.float64)
        band = np.where(np.isnan(age), len(self.names) - 1, np.searchsorted(self.bounds, age, side="right"))
        size = len(self.names)

        def tally(weights: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(band, weights=weights, minlength=size)

        deny = np.asarray(deny, dtype=bool)
        self.sums["rows"] += tally()
        self.sums["approved"] += tally((~deny).astype(np.float64))
        self.sums["p_sum"] += tally(np.asarray(p, dtype=np.float64))
        if y is not None:
            y = np.asarray(y, dtype=np.float64)
            known = ~np.isnan(y)
            bad = known & (y == 1)
            self.sums["labelled"] += tally(known.astype(np.float64))
            self.sums["defaults"] += tally(bad.astype(np.float64))
            self.sums["refused_defaults"] += tally((bad & deny).astype(np.float64))
            self.sums["refused_good"] += tally((known & (y == 0) & deny).astype(np.float64))

    def bands(self) -> list[AgeBand]:
        """The figures per band (bands without rows are left out)."""
        s = self.sums

        def ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
            return [float(n / d) if d > 0 else None for n, d in zip(num, den, strict=True)]

        approval = ratio(s["approved"], s["rows"])
        realised = ratio(s["defaults"], s["labelled"])
        tpr = ratio(s["refused_defaults"], s["defaults"])
        fpr = ratio(s["refused_good"], s["labelled"] - s["defaults"])
        present = [i for i in range(len(self.names)) if s["rows"][i] > 0]
        rated = [i for i in present if approval[i] is not None and self.names[i] != UNKNOWN]
        top = max(rated, key=lambda i: approval[i] or 0.0) if rated else None

        def gap(values: list[float | None], i: int) -> float | None:
            if top is None or values[i] is None or values[top] is None:
                return None
            return float(values[i] - values[top])  # type: ignore[operator]

        out = []
        for i in present:
            air = None
            if top is not None and approval[i] is not None and approval[top]:
                air = float(approval[i] / approval[top])  # type: ignore[operator]
            out.append(
                AgeBand(
                    band=self.names[i],
                    rows=int(s["rows"][i]),
                    approval_rate=approval[i],
                    adverse_impact_ratio=air,
                    flagged=air is not None and air < FOUR_FIFTHS,
                    mean_predicted=float(s["p_sum"][i] / s["rows"][i]),
                    realised_rate=realised[i],
                    true_positive_rate=tpr[i],
                    false_positive_rate=fpr[i],
                    tpr_gap=gap(tpr, i),
                    fpr_gap=gap(fpr, i),
                )
            )
        return out


def by_age(
    age: np.ndarray, p: np.ndarray, threshold: float, y: np.ndarray | None, bounds: Sequence[float]
) -> list[AgeBand]:
    """The figures of one table at once (the training report's held-out split)."""
    tally = Tally(bounds)
    tally.add(age, p, np.asarray(p) >= threshold, y)
    return tally.bands()
