"""The mart's cleaning rules for one applicant, exactly as sql/marts/applicants.sql applies them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd
from cashscore.features.contract import BY_NAME, FEATURES, REQUIRED, WORKING_AGE

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
    text = value.strip()
    if not text:
        return None
    return _SPELLINGS[feature].get(text.lower(), text)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _in_range(name: str, value: float | None) -> float | None:
    feature = BY_NAME[name]
    if value is None:
        return None
    if feature.valid_min is not None and value < feature.valid_min:
        return None
    if feature.valid_max is not None and value > feature.valid_max:
        return None
    return value


def clean(record: Mapping[str, Any]) -> dict[str, float | str | None]:
    """Apply the mart's rules to one applicant.

    Args:
        record: feature name -> raw value (None or NaN for missing, any category spelling).

    Returns:
        The 11 features as the mart would hold them: numbers as float or None, categories as
        canonical strings or None.
    """
    out: dict[str, float | str | None] = {}
    for f in FEATURES:
        if f.kind == "categorical":
            category = normalise_category(f.name, record.get(f.name))
            out[f.name] = category if category in f.categories else None
        else:
            out[f.name] = _in_range(f.name, _number(record.get(f.name)))
    age = out["person_age"]
    income = out["person_income"]
    for name in ("person_emp_length", "cb_person_cred_hist_length"):
        years = out[name]
        if years is not None and age is not None and years > age - WORKING_AGE:  # type: ignore[operator]
            out[name] = None
    cap = BY_NAME["person_income"].cap
    if income is not None and cap is not None:
        # Capped before the share is derived, so cleaning a cleaned row changes nothing.
        income = out["person_income"] = min(income, cap)  # type: ignore[type-var]
    amount = out["loan_amnt"]
    if out["loan_percent_income"] is None and amount is not None and income is not None and income > 0:  # type: ignore[operator]
        out["loan_percent_income"] = _round_half_away(amount / income, 2)  # type: ignore[operator]
    return out


def _round_half_away(value: float, places: int) -> float:
    """DuckDB's round(): the exact binary value, halves away from zero (not banker's rounding)."""
    return float(Decimal(value).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))


def _category_column(feature: str, raw: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Canonical categories (None for blank or unknown) and a mask of unknown non-blank spellings."""
    values = np.asarray(raw if raw is not None else [None] * n, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = [normalise_category(feature, u) for u in uniques]
    canonical = np.array([m if m in BY_NAME[feature].categories else None for m in mapped] + [None], dtype=object)
    unknown = np.array([m is not None and m not in BY_NAME[feature].categories for m in mapped] + [False])
    return canonical[codes], unknown[codes]


def _numeric_column(raw: Any, n: int) -> np.ndarray:
    if raw is None:
        return np.full(n, np.nan)
    return pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def clean_columns(columns: Mapping[str, Any], n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`clean` for whole columns at once, and the reason each row must be rejected (None when valid).

    A row is rejected, as the HTTP API answers 400, when a required field is missing, a number lies
    outside its valid range or a category spelling is unknown.

    Args:
        columns: feature name -> array-like of raw values (a missing column means all missing).
        n: the number of rows.

    Returns:
        (cleaned columns: float64 with NaN, or object with None; per-row rejection reason or None).
    """
    out: dict[str, np.ndarray] = {}
    problems = np.full(n, None, dtype=object)

    def flag(mask: np.ndarray, message: str) -> None:
        problems[mask & (problems == None)] = message  # noqa: E711 - elementwise comparison

    for f in FEATURES:
        raw = columns.get(f.name)
        if f.kind == "categorical":
            out[f.name], unknown = _category_column(f.name, raw, n)
            flag(unknown, f"{f.name}: unknown category; expected one of {', '.join(f.categories)}")
        else:
            x = _numeric_column(raw, n)
            with np.errstate(invalid="ignore"):
                outside = (x < (f.valid_min if f.valid_min is not None else -np.inf)) | (
                    x > (f.valid_max if f.valid_max is not None else np.inf)
                )
            flag(outside, f"{f.name}: outside {f.valid_min}..{f.valid_max}")
            out[f.name] = np.where(outside, np.nan, x)
        if f.name in REQUIRED:
            flag(pd.isna(out[f.name]), f"{f.name}: required")
    age = out["person_age"]
    with np.errstate(invalid="ignore"):
        for name in ("person_emp_length", "cb_person_cred_hist_length"):
            out[name] = np.where(out[name] > age - WORKING_AGE, np.nan, out[name])
        cap = BY_NAME["person_income"].cap
        if cap is not None:
            out["person_income"] = np.where(out["person_income"] > cap, cap, out["person_income"])
        income, amount, stated = out["person_income"], out["loan_amnt"], out["loan_percent_income"]
        derived = np.where(income > 0, amount / np.where(income > 0, income, 1.0), np.nan)
    percent = stated.copy()
    for i in np.flatnonzero(np.isnan(stated) & ~np.isnan(derived)):
        percent[i] = _round_half_away(float(derived[i]), 2)
    out["loan_percent_income"] = percent
    return out, problems
