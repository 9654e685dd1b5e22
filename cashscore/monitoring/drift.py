"""Drift of a population against the training population the model card keeps, and fairness by
age, measured in one streamed pass over a DuckDB relation (the rows are never all in memory).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

from cashscore.artefact.card import AgeBand, Bins, Population
from cashscore.features import contract
from cashscore.monitoring import population as pop
from cashscore.monitoring.fairness import Tally
from cashscore.scoring import batch
from cashscore.scoring.scorer import Scorer

SCORE = "default_probability"


@dataclass(frozen=True)
class FeatureDrift:
    """One feature (or the score) of a population against its reference bins."""

    feature: str
    rows: int
    psi: float
    statistic: float
    p_value: float
    status: str
    shares: list[float]
    reference: list[float]
    labels: list[str]


@dataclass
class Measurement:
    """What one pass over a population found."""

    model_version: str
    measured_at: str
    population: str
    rows: int = 0
    rejected: int = 0
    labelled: int = 0
    mean_predicted: float | None = None
    realised_rate: float | None = None
    drift: list[FeatureDrift] = field(default_factory=list)
    fairness: list[AgeBand] = field(default_factory=list)


class Counts:
    """Bin counts of every feature and of the score, added chunk by chunk."""

    def __init__(self, reference: Population) -> None:
        self.reference = reference
        self.bins: list[Bins] = [*reference.features, reference.score]
        self.totals = [np.zeros(len(b.labels)) for b in self.bins]

    def add(self, cleaned: dict[str, np.ndarray], p: np.ndarray) -> None:
        for i, bins in enumerate(self.bins):
            values = p if bins.name == SCORE else cleaned[bins.name]
            self.totals[i] += pop.counts(bins, values)

    def drift(self) -> list[FeatureDrift]:
        out = []
        for bins, observed in zip(self.bins, self.totals, strict=True):
            value = pop.psi(bins.shares, observed)
            statistic, p_value = pop.chi_square(bins.shares, observed)
            total = observed.sum()
            out.append(
                FeatureDrift(
                    feature=bins.name,
                    rows=int(total),
                    psi=value,
                    statistic=statistic,
                    p_value=p_value,
                    status=pop.status(value),
                    shares=(observed / total).tolist() if total else [0.0] * len(observed),
                    reference=list(bins.shares),
                    labels=list(bins.labels),
                )
            )
        return out


def measure(
    con: duckdb.DuckDBPyConnection,
    scorer: Scorer,
    query: str,
    label: str,
    age_bands: Sequence[float],
    bound_cache: bool = False,
) -> Measurement:
    """Clean and score every row the query returns, chunk by chunk, binning inputs and scores and
    tallying decisions by age band; outcomes come from a `loan_status` column when there is one.
    `bound_cache` bounds DuckDB's block cache once the rows flow (`batch.open_reader`).

    Raises:
        CashscoreError: on SQL DuckDB rejects or rows lacking a required field.
    """
    reader = batch.open_reader(con, query, bound_cache)
    labelled = contract.TARGET in reader.schema.names
    result = Measurement(scorer.version, datetime.now(UTC).isoformat(timespec="seconds"), label)
    counts, tally = Counts(scorer.model.card.population), Tally(age_bands)
    p_sum, y_sum = 0.0, 0.0
    for chunk in reader:
        split = batch.split_chunk(chunk)
        ok, good = split.ok, split.good
        result.rejected += int((~ok).sum())
        if not ok.any():
            continue
        p = scorer.evaluate(good, detail=False).p
        y = _outcomes(chunk.column(contract.TARGET), ok) if labelled else None
        counts.add(good, p)
        tally.add(good[contract.AGE], p, p >= scorer.threshold, y)
        result.rows += len(p)
        p_sum += float(p.sum())
        if y is not None:
            known = ~np.isnan(y)
            result.labelled += int(known.sum())
            y_sum += float(y[known].sum())
    result.mean_predicted = p_sum / result.rows if result.rows else None
    result.realised_rate = y_sum / result.labelled if result.labelled else None
    result.drift = counts.drift()
    result.fairness = tally.bands()
    return result


def _outcomes(column: pa.Array, ok: np.ndarray) -> np.ndarray:
    """loan_status as 0/1 floats (NaN where unknown or not 0/1), for the accepted rows."""
    try:
        y = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.full(int(ok.sum()), np.nan)
    y = y[ok]
    return np.where((y == 0) | (y == 1), y, np.nan)


def reference(X: Mapping[str, np.ndarray], p: np.ndarray) -> Population:
    """The training part's reference: its cleaned inputs and out-of-fold probabilities, binned.

    Numbers must come as the mart holds them (float64), not as the model's float32 inputs: 0.7 in
    float32 is below 0.7, and an edge there would move every later 0.7 into the next bin.
    """
    features = [
        pop.numeric_bins(f.name, X[f.name])
        if f.kind == "numeric"
        else pop.categorical_bins(f.name, X[f.name], f.categories)
        for f in contract.FEATURES
    ]
    return Population(rows=len(p), features=features, score=pop.numeric_bins(SCORE, p))
