"""Drift of live traffic: the latest applicants a server worker scored, binned as the training
population is, in a fixed-size ring (memory does not grow with traffic).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from cashscore.artefact.card import Population
from cashscore.monitoring import population as pop
from cashscore.monitoring.drift import SCORE

# Below this many applicants a PSI says more about the sample than the population: NaN instead.
MIN_ROWS = 100
# Below this many applicants, binning one value at a time beats numpy's per-call cost.
SMALL = 32
# One applicant field over many applicants: a list of values, or a cleaned numpy column.
Values = Sequence[Any] | np.ndarray


class Window:
    """The bins of the latest `size` applicants, per feature and for the score."""

    def __init__(self, population: Population, size: int, min_rows: int = MIN_ROWS) -> None:
        self.min_rows = min_rows
        self.bins = [*population.features, population.score]
        self.size = max(int(size), 1)
        # One row per applicant, one column per binned value; filled as a ring.
        self.codes = np.zeros((self.size, len(self.bins)), dtype=np.int16)
        self.filled = 0
        self.position = 0
        self._lock = threading.Lock()
        self._numeric = [
            (i, b.name, list(b.edges), len(b.labels) - 1) for i, b in enumerate(self.bins) if b.kind == "numeric"
        ]
        self._edges = {i: np.asarray(edges, dtype=np.float64) for i, _, edges, _ in self._numeric}
        self._categories: list[tuple[int, str, dict[Any, int], int]] = [
            (i, b.name, {label: k for k, label in enumerate(b.labels[:-1])}, len(b.labels) - 1)
            for i, b in enumerate(self.bins)
            if b.kind != "numeric"
        ]
        # The applicant fields binned (the score comes apart, as the probabilities).
        self._names = [b.name for b in self.bins if b.name != SCORE]

    def add(self, records: Sequence[Mapping[str, Any]], probabilities: Sequence[float]) -> None:
        """Bin cleaned applicants (numbers as floats or None, categories canonical or None) and their PD.

        A batch column by column (1,000 rows: 0.6 ms, 1.3 ms row by row); fewer than SMALL row by
        row (one applicant: 3 µs, 20 µs column by column).
        """
        if len(records) != len(probabilities):
            raise ValueError(f"{len(records)} applicants but {len(probabilities)} probabilities")
        records, probabilities = records[-self.size :], probabilities[-self.size :]
        n = len(records)
        if not n:
            return
        if n < SMALL:
            self._keep(self._rows(records, probabilities))
        else:
            self._keep(self._columns({name: [r.get(name) for r in records] for name in self._names}, probabilities))

    def add_columns(self, columns: Mapping[str, Values], probabilities: Sequence[float] | np.ndarray) -> None:
        """`add` for applicants given as cleaned columns (a batch the scorer cleaned column-wise)."""
        n = len(probabilities)
        if n:
            keep = slice(max(n - self.size, 0), n)
            self._keep(self._columns({k: v[keep] for k, v in columns.items()}, probabilities[keep]))

    def _keep(self, block: np.ndarray) -> None:
        """Write binned applicants into the ring."""
        n = len(block)
        with self._lock:
            end = self.position + n
            if end <= self.size:
                self.codes[self.position : end] = block
            else:
                split = self.size - self.position
                self.codes[self.position :] = block[:split]
                self.codes[: n - split] = block[split:]
            self.position = end % self.size
            self.filled = min(self.filled + n, self.size)

    def _rows(self, records: Sequence[Mapping[str, Any]], probabilities: Sequence[float]) -> np.ndarray:
        """The bins of a few applicants, one value at a time (numpy's per-call cost is the whole job here)."""
        rows = []
        for record, p in zip(records, probabilities, strict=True):
            row = [0] * len(self.bins)
            for i, name, edges, missing in self._numeric:
                value = p if name == SCORE else record.get(name)
                row[i] = missing if value is None or value != value else bisect_left(edges, value)
            for i, name, lookup, missing in self._categories:
                row[i] = lookup.get(record.get(name), missing)
            rows.append(row)
        return np.asarray(rows, dtype=np.int16)

    def _columns(self, columns: Mapping[str, Values], probabilities: Sequence[float] | np.ndarray) -> np.ndarray:
        """The bins of a batch, column by column."""
        block = np.empty((len(probabilities), len(self.bins)), dtype=np.int16)
        for i, name, _, missing in self._numeric:
            # None becomes NaN here; NaN and None land in the missing bin.
            values = np.asarray(probabilities if name == SCORE else columns[name], dtype=np.float64)
            codes = np.searchsorted(self._edges[i], values, side="left")
            codes[np.isnan(values)] = missing
            block[:, i] = codes
        for i, name, lookup, missing in self._categories:
            get = lookup.get
            block[:, i] = [get(value, missing) for value in columns[name]]
        return block

    def psi(self) -> dict[str, float]:
        """PSI of every feature and of the score over the window (NaN below `min_rows` applicants)."""
        with self._lock:
            codes = self.codes[: self.filled].copy()
        if len(codes) < max(self.min_rows, 1):
            return {bins.name: float("nan") for bins in self.bins}
        out = {}
        for i, bins in enumerate(self.bins):
            observed = np.bincount(codes[:, i], minlength=len(bins.labels)).astype(np.float64)
            out[bins.name] = pop.psi(bins.shares, observed)
        return out


class Tracker:
    """The serving model's window, replaced when the model changes, published at most once per `every` seconds."""

    def __init__(self, size: int, publish: Callable[[str, dict[str, float], int], None], every: float = 1.0) -> None:
        self.size = size
        self.publish = publish
        self.every = every
        self.version: str | None = None
        self.window: Window | None = None
        self._published = 0.0

    def observe(
        self, version: str, population: Population, records: Sequence[Mapping[str, Any]], probabilities: Sequence[float]
    ) -> None:
        """Add scored applicants to the window of `version` (a new model starts a new window)."""
        self._window(version, population).add(records, probabilities)
        self._publish()

    def observe_columns(
        self, version: str, population: Population, columns: Mapping[str, Values], probabilities: np.ndarray
    ) -> None:
        """`observe` for applicants given as cleaned columns."""
        self._window(version, population).add_columns(columns, probabilities)
        self._publish()

    def _window(self, version: str, population: Population) -> Window:
        if self.version != version or self.window is None:
            self.version, self.window = version, Window(population, self.size)
        return self.window

    def _publish(self) -> None:
        now = time.monotonic()
        if now - self._published >= self.every:
            self._published = now
            self.flush()

    def flush(self) -> None:
        """Publish the current window's PSI now."""
        if self.window is not None and self.version is not None:
            self.publish(self.version, self.window.psi(), self.window.filled)

    def snapshot(self) -> tuple[str | None, dict[str, float], int]:
        """(model version, PSI per feature and score, applicants in the window)."""
        if self.window is None:
            return None, {}, 0
        return self.version, self.window.psi(), self.window.filled
