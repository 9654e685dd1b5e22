"""Pure scoring over an onnxruntime session: cleaning rules, probabilities, decisions, bands and reasons.

Nothing here knows about HTTP; the server, the batch scorer and tests call these functions.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import onnxruntime
import pandas as pd

from cashscore.artefact.store import LoadedModel
from cashscore.features import contract, inputs, rules

# Risk bands by probability of default: upper bounds, exclusive.
BANDS = ((0.05, "very low"), (0.10, "low"), (0.20, "medium"), (0.40, "high"), (1.01, "very high"))
_UPPERS = np.array([upper for upper, _ in BANDS])
_NAMES = np.array([name for _, name in BANDS], dtype=object)
MAX_REASONS = 4
# Model inputs of this many rows or more are scored in two halves at once, one per core.
SPLIT_ROWS = 256
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cashscore-onnx")


class InvalidApplicant(ValueError):
    """An applicant the contract rejects; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Scored(NamedTuple):
    """One applicant's score (a tuple: a frozen dataclass took 2 µs a row to build)."""

    default_probability: float
    decision: str
    risk_band: str
    reasons: list[dict[str, Any]]


def band(p: float) -> str:
    """The risk band of a probability of default."""
    return str(_NAMES[bisect_right(_UPPERS, p)])


def bands(p: np.ndarray) -> np.ndarray:
    """`band` for a whole array of probabilities."""
    return _NAMES[np.searchsorted(_UPPERS, p, side="right")]


def validate_categories(record: Mapping[str, Any]) -> dict[str, Any]:
    """Check category spellings (any case, English or Portuguese synonyms) before cleaning.

    Args:
        record: raw applicant fields.

    Returns:
        The record, unchanged.

    Raises:
        InvalidApplicant: for a spelling no synonym maps to a contract category, or a blank
            required category.
    """
    for name in contract.CATEGORICAL:
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if name in contract.REQUIRED:
                # Refused as `cashscore score` and score_default() refuse it: blank is missing.
                raise InvalidApplicant(name, "required")
            continue
        canonical = rules.normalise_category(name, value)
        if canonical not in contract.BY_NAME[name].categories:
            allowed = ", ".join(contract.BY_NAME[name].categories)
            raise InvalidApplicant(
                name, f"unknown category {value!r}; expected one of {allowed} (any case, or a synonym)"
            )
    return dict(record)


class Scorer:
    """A verified model loaded into onnxruntime, with its threshold and reference applicant.

    One path, column-wise, for every channel: clean (`rules.clean_columns`), feed, run, decide,
    explain. The API's single applicant is a one-row call.
    """

    def __init__(self, model: LoadedModel, threads: int = 1) -> None:
        options = onnxruntime.SessionOptions()
        # One thread per request keeps latency flat when the other core serves another worker.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(model.onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.model = model
        self.version = model.version
        self.threshold = model.threshold
        self.reference = rules.clean_record(model.card.reference)

    def probabilities(self, cleaned: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities of default for columns cleaned by `rules.clean_columns`."""
        return self.run(inputs.column_feeds(dict(cleaned)))

    def decisions(self, p: np.ndarray) -> np.ndarray:
        """ "deny" where the probability of default reaches the threshold, "approve" elsewhere."""
        return np.where(np.asarray(p) >= self.threshold, "deny", "approve")

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The model's probability of default for each row of its inputs.

        From SPLIT_ROWS rows on, two halves are scored at once: each runs single-threaded
        (onnxruntime releases the GIL) and a row's score never depends on the rows beside it, so
        the results are bit-identical to one call.
        """
        n = len(next(iter(feeds.values())))
        if n < SPLIT_ROWS:
            return self.session.run(None, dict(feeds))[0][:, 1].astype(np.float64)
        half = n // 2
        parts = [{k: v[:half] for k, v in feeds.items()}, {k: v[half:] for k, v in feeds.items()}]
        return np.concatenate(list(_POOL.map(lambda part: self.session.run(None, part)[0][:, 1], parts))).astype(
            np.float64
        )

    def typical_probabilities(self, cleaned: Mapping[str, np.ndarray], p: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each selected row and feature, the probability with that feature set to the typical value.

        One model call scores every selected row with each feature in turn set to the typical
        applicant's value; a row whose value already is the typical one needs no model row (its
        effect is zero), about a fifth of them on the real dump.

        Returns:
            An array [len(rows), features].
        """
        sub = {name: col[rows] for name, col in cleaned.items()}
        blocks, differing = [], []
        for f in contract.FEATURES:
            typical = self.reference[f.name]
            own = sub[f.name]
            idx = np.flatnonzero(~pd.isna(own) if typical is None else ~(own == typical))
            column = np.full(len(idx), np.nan if typical is None else typical, dtype=own.dtype)
            blocks.append({**{name: col[idx] for name, col in sub.items()}, f.name: column})
            differing.append(idx)
        variants = {name: np.concatenate([b[name] for b in blocks]) for name in contract.NAMES}
        scored = self.probabilities(variants)
        typical_p = np.repeat(p[rows][:, None], len(contract.FEATURES), axis=1)
        start = 0
        for k, idx in enumerate(differing):
            typical_p[idx, k] = scored[start : start + len(idx)]
            start += len(idx)
        return typical_p

    def explain(
        self, cleaned: Mapping[str, np.ndarray], p: np.ndarray, which: np.ndarray
    ) -> list[list[dict[str, Any]]]:
        """The reasons of every row in `which` (an empty list elsewhere)."""
        out: list[list[dict[str, Any]]] = [[] for _ in range(len(p))]
        rows = np.flatnonzero(which)
        if not len(rows):
            return out
        typical_p = self.typical_probabilities(cleaned, p, rows)
        for j, i in enumerate(rows):
            record = {name: _python(cleaned[name][i]) for name in contract.NAMES}
            out[i] = self.reasons(record, float(p[i]), typical_p[j])
        return out

    def score(self, records: Sequence[Mapping[str, Any]], explain: bool = True) -> list[Scored]:
        """Score applicants: the same rules as the SQL mart, then the model, decision, band and reasons.

        Args:
            records: raw applicant fields (any category spelling; loan_percent_income may be absent).
            explain: compute reasons (one extra model row per feature that differs from the typical value).

        Returns:
            One result per record, in order.

        Raises:
            InvalidApplicant: for an unknown category spelling or a blank required one.
        """
        return self.score_valid([validate_categories(r) for r in records], explain)

    def score_valid(self, records: Sequence[Mapping[str, Any]], explain: bool = True) -> list[Scored]:
        """`score` for records whose categories `validate_categories` has already accepted (the batch
        endpoint checks each row itself, to report the invalid ones).

        Raises:
            InvalidApplicant: for a record the contract's rules reject all the same.
        """
        if not records:
            return []
        n = len(records)
        columns = {name: [r.get(name) for r in records] for name in contract.NAMES}
        cleaned, problems = rules.clean_columns(columns, n)
        bad = np.flatnonzero(problems != None)  # noqa: E711 - elementwise comparison
        if len(bad):
            field, _, message = str(problems[bad[0]]).partition(": ")
            raise InvalidApplicant(field, message)
        p = self.probabilities(cleaned)
        reasons = self.explain(cleaned, p, np.ones(n, bool)) if explain else [[] for _ in range(n)]
        return [
            Scored(prob, decision, risk, why)
            for prob, decision, risk, why in zip(
                p.tolist(), self.decisions(p).tolist(), bands(p).tolist(), reasons, strict=True
            )
        ]

    def reasons(self, row: Mapping[str, Any], p: float, typical: np.ndarray) -> list[dict[str, Any]]:
        """Up to 4 features whose value raises this applicant's risk the most.

        Each feature in turn is set to the typical applicant's value (training medians and most
        common categories); the drop in probability is what the applicant's own value adds. Only
        features that add risk are named, largest first, ties broken by contract order.
        """
        deltas = p - typical
        order = sorted(range(len(contract.FEATURES)), key=lambda k: (-deltas[k], k))
        found = []
        for k in order:
            if deltas[k] <= 1e-4 or len(found) == MAX_REASONS:
                break
            f = contract.FEATURES[k]
            found.append(_reason(f, row[f.name], self.reference[f.name], float(deltas[k])))
        return found


def _python(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return value


def _reason(feature: contract.Feature, value: Any, typical: Any, delta: float) -> dict[str, Any]:
    shown = "missing" if value is None else _fmt(value)
    text = (
        f"{feature.description} is {shown} (typical applicant: {_fmt(typical)}), "
        f"which raises the probability of default by {delta * 100:.1f} points"
    )
    return {
        "feature": feature.name,
        "label_pt": feature.label_pt,
        "value": value,
        "typical": typical,
        "impact": round(delta, 6),
        "text": text,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if not value.is_integer() else f"{value:,.0f}"
    return str(value)
