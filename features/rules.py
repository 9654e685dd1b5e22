"""The contract's cleaning rules, column-wise: the one implementation the API, batch scoring and the UDFs run.

Every rule is read from what `contract.FEATURES` declares (bounds, caps, `min_start_age`, `derived`);
sql/marts/applicants.sql applies the same declarations from the `ref` tables. One applicant is a
one-row call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd
from cashscore.features.contract import AGE, BLANKS, BY_NAME, FEATURES, NAMES, REQUIRED

from cashscore.core.rounding import WHOLE

# Lower-cased spelling -> canonical category, per categorical feature.
_SPELLINGS: dict[str, dict[str, str]] = {
    f.name: {c.lower(): c for c in f.categories} | {k.lower(): v for k, v in f.synonyms.items()}
    for f in FEATURES
    if f.kind == "categorical"
}


def normalise_category(feature: str, value: object) -> str | None:
    """Map a spelling (any case, English or Portuguese) to the contract's category.

    Args:
        feature: a categorical feature name.
        value: the spelling given; blank means missing.

    Returns:
        The canonical category, None for blank, or the trimmed value itself when unknown.
    """
    if not isinstance(value, str):
        return None  # None, or NaN from a pandas column
    text = value.strip(BLANKS)
    if not text:
        return None
    return _SPELLINGS[feature].get(text.lower(), text)


def round_half_away(value: float, places: int) -> float:
    """DuckDB's round(): the exact binary value, halves away from zero (not banker's rounding)."""
    if not math.isfinite(value) or abs(value) >= WHOLE:
        # Already whole, or infinite (a loan over an income of 1e-300): as DuckDB leaves it. Decimal's
        # 28 digits could not hold it with its places anyway.
        return value
    return float(Decimal(value).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))


# Below this many rows plain Python beats pandas' per-call cost (one applicant over HTTP is one row).
SMALL = 64


def _category_column(feature: str, raw: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Canonical categories (None for blank or unknown) and a mask of unknown non-blank spellings."""
    values = np.asarray(raw if raw is not None else [None] * n, dtype=object)
    categories = BY_NAME[feature].categories
    if n > SMALL and _all_canonical(feature, values):
        # The common column (a batch, the mart): every value already a canonical spelling or None,
        # so nothing to map (a third of factorize's cost: 23 µs against 70 for 955 rows).
        return values, np.zeros(n, dtype=bool)
    if n <= SMALL:
        mapped = [normalise_category(feature, v) for v in values]
        known = [m if m in categories else None for m in mapped]
        return np.array(known, dtype=object), np.array(
            [m is not None and k is None for m, k in zip(mapped, known, strict=True)]
        )
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = [normalise_category(feature, u) for u in uniques]
    canonical = np.array([m if m in BY_NAME[feature].categories else None for m in mapped] + [None], dtype=object)
    unknown = np.array([m is not None and m not in BY_NAME[feature].categories for m in mapped] + [False])
    return canonical[codes], unknown[codes]


def _all_canonical(feature: str, values: np.ndarray) -> bool:
    try:
        return set(values) <= _CANONICAL[feature]
    except TypeError:  # an unhashable value: the general path says what it is
        return False


def _numeric_column(raw: Any, n: int) -> np.ndarray:
    if raw is None:
        return np.full(n, np.nan)
    try:  # numbers and None (NaN), at numpy's speed; anything else takes pandas' coercion below
        return np.array(raw, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    return pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


# Per categorical feature, the values that need no mapping: its canonical spellings, and None.
_CANONICAL = {f.name: frozenset(f.categories) | {None} for f in FEATURES if f.kind == "categorical"}
_NUMERIC = [f for f in FEATURES if f.kind == "numeric"]
_LOW = np.array([-np.inf if f.valid_min is None else f.valid_min for f in _NUMERIC])
_HIGH = np.array([np.inf if f.valid_max is None else f.valid_max for f in _NUMERIC])
_CAP = np.array([np.inf if f.cap is None else f.cap for f in _NUMERIC])
# Two checks per feature, in contract order: its value (unknown category or out of range), then
# whether a required value is missing. A row's reason is the first check it fails.
_MESSAGES = np.array(
    [
        message
        for f in FEATURES
        for message in (
            f"{f.name}: unknown category; expected one of {', '.join(f.categories)}"
            if f.kind == "categorical"
            else f"{f.name}: outside {f.valid_min}..{f.valid_max}",
            f"{f.name}: required",
        )
    ],
    dtype=object,
)
_REQUIRED = [f.name in REQUIRED for f in FEATURES]


def clean_columns(columns: Mapping[str, Any], n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Apply the contract's rules to whole columns, and say why each row must be rejected (None when valid).

    In order, as the SQL mart applies them: categories to their canonical spelling; a number outside
    its valid range becomes missing (and rejects the row), then is capped; a required field missing
    rejects the row; years that would start before `min_start_age` become missing; a missing
    `derived` value is derived from the (capped) values it depends on. The numbers are checked as
    one matrix: a per-feature pass cost more in numpy calls than in work for one applicant.

    Args:
        columns: feature name -> array-like of raw values (a missing column means all missing).
        n: the number of rows.

    Returns:
        (cleaned columns: float64 with NaN, or object with None; per-row rejection reason or None).
    """
    out: dict[str, np.ndarray] = {}
    # Column-major, so that each feature's column is contiguous.
    numbers = np.empty((n, len(_NUMERIC)), order="F")
    for j, f in enumerate(_NUMERIC):
        numbers[:, j] = _numeric_column(columns.get(f.name), n)
    checks = np.zeros((n, 2 * len(FEATURES)), dtype=bool)
    # Overflow too: a loan over an income of 1e-300 is an infinite share, as in SQL.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        outside = (numbers < _LOW) | (numbers > _HIGH)
        numbers = np.minimum(np.where(outside, np.nan, numbers), _CAP)  # NaN stays NaN
        numbers = np.asfortranarray(numbers)
        j = 0
        for i, f in enumerate(FEATURES):
            if f.kind == "categorical":
                out[f.name], checks[:, 2 * i] = _category_column(f.name, columns.get(f.name), n)
                missing = out[f.name] == None  # noqa: E711 (elementwise)
            else:
                out[f.name] = numbers[:, j]
                checks[:, 2 * i] = outside[:, j]
                missing = np.isnan(out[f.name])
                j += 1
            if _REQUIRED[i]:
                checks[:, 2 * i + 1] = missing
        age = out[AGE]
        for f in FEATURES:
            if f.min_start_age is not None:
                out[f.name] = np.where(out[f.name] > age - f.min_start_age, np.nan, out[f.name])
        for f in FEATURES:
            if f.derived is not None:
                top, bottom = out[f.derived.numerator], out[f.derived.denominator]
                ratio = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)
                value = out[f.name].copy()
                for row in np.flatnonzero(np.isnan(value) & ~np.isnan(ratio)):
                    value[row] = round_half_away(float(ratio[row]), f.derived.places)
                out[f.name] = value
    problems = np.full(n, None, dtype=object)
    bad = checks.any(axis=1)
    if bad.any():
        problems[bad] = _MESSAGES[np.argmax(checks[bad], axis=1)]
    return out, problems


def as_python(column: np.ndarray) -> list[Any]:
    """A cleaned column as Python values: floats, canonical strings, None for missing."""
    if column.dtype.kind != "f":
        return column.tolist()
    values = column.astype(object)
    values[np.isnan(column)] = None
    return values.tolist()


def python_value(value: Any) -> Any:
    """`as_python` for one cleaned value (numpy's per-call cost is the whole job for a few)."""
    if value is None or isinstance(value, str):
        return value
    return None if value != value else float(value)


def clean_record(record: Mapping[str, Any]) -> dict[str, float | str | None]:
    """`clean_columns` for one applicant: numbers as float or None, categories as canonical strings or None."""
    cleaned, _ = clean_columns({name: [record.get(name)] for name in NAMES}, 1)
    # Python values, not numpy scalars: JSON encoders take them as they are, without a hook per value.
    return {name: as_python(column)[0] for name, column in cleaned.items()}
