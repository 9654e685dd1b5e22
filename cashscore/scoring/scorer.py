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
    """A verified model loaded into onnxruntime, with its threshold and reference applicant."""

    def __init__(self, model: LoadedModel, threads: int = 1) -> None:
        options = onnxruntime.SessionOptions()
        # One thread per request keeps latency flat when the other core serves another worker.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(model.onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.model = model
        self.version = model.version
        self.threshold = model.threshold
        self.reference = rules.clean(model.card.reference)

    def probabilities(self, cleaned: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Probabilities of default for applicants already cleaned by `features.rules.clean`."""
        return self.run(self._feeds(cleaned, None))

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

    def _feeds(self, cleaned: Sequence[Mapping[str, Any]], changed: list[list[int]] | None) -> dict[str, np.ndarray]:
        """Model inputs for cleaned applicants. With `changed`, each applicant is followed by one copy
        of itself per feature index in its list, that feature set to the typical applicant's value
        (a feature already at the typical value needs no copy: its effect is zero)."""
        slots = [{k: 1 + m for m, k in enumerate(ks)} for ks in changed] if changed is not None else None
        feeds = {}
        for j, f in enumerate(contract.FEATURES):
            missing = np.nan if f.kind == "numeric" else ""
            typical = self.reference[f.name]
            typical = missing if typical is None else typical
            values: list[Any] = []
            for i, row in enumerate(cleaned):
                own = row[f.name]
                block = [missing if own is None else own] * (1 + len(slots[i]) if slots else 1)
                if slots and j in slots[i]:
                    block[slots[i][j]] = typical
                values += block
            feeds[f.name] = np.array(values, dtype=np.float32 if f.kind == "numeric" else object).reshape(-1, 1)
        return feeds

    def score(self, records: Sequence[Mapping[str, Any]], explain: bool = True) -> list[Scored]:
        """Score applicants: the same rules as the SQL mart, then the model, decision, band and reasons.

        Args:
            records: raw applicant fields (any category spelling; loan_percent_income may be absent).
            explain: compute reasons (one extra model row per feature and applicant).

        Returns:
            One result per record, in order.

        Raises:
            InvalidApplicant: for an unknown category spelling.
        """
        return self.score_valid([validate_categories(r) for r in records], explain)

    def score_valid(self, records: Sequence[Mapping[str, Any]], explain: bool = True) -> list[Scored]:
        """`score` for records whose categories `validate_categories` has already accepted (the batch
        endpoint checks each row itself, to report the invalid ones)."""
        if not explain and len(records) > 32:
            # Many rows, no reasons: the vectorised rules (identical results, tested) and one model call.
            columns = {name: [r.get(name) for r in records] for name in contract.NAMES}
            cleaned_columns, _ = rules.clean_columns(columns, len(records))
            p_all = self.run(inputs.column_feeds(cleaned_columns))
            decisions = self.decisions(p_all).tolist()
            return [
                Scored(p, d, b, []) for p, d, b in zip(p_all.tolist(), decisions, bands(p_all).tolist(), strict=True)
            ]
        cleaned = [rules.clean(r) for r in records]
        if not cleaned:
            return []
        changed = [
            [k for k, f in enumerate(contract.FEATURES) if row[f.name] != self.reference[f.name]] for row in cleaned
        ]
        raw = self.run(self._feeds(cleaned, changed if explain else None))
        out = []
        pos = 0
        for row, ks in zip(cleaned, changed, strict=True):
            p = float(raw[pos])
            reasons: list[dict[str, Any]] = []
            if explain:
                typical = np.full(len(contract.FEATURES), p)
                typical[ks] = raw[pos + 1 : pos + 1 + len(ks)]
                reasons = self.reasons(row, p, typical)
                pos += len(ks)
            pos += 1
            out.append(Scored(p, "deny" if p >= self.threshold else "approve", band(p), reasons))
        return out

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
