"""The mart's cleaning rules for one applicant, exactly as sql/marts/applicants.sql applies them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from features.contract import BY_NAME, FEATURES, PERCENT_INCOME_TOLERANCE, WORKING_AGE

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
    amount = out["loan_amnt"]
    stated = out["loan_percent_income"]
    if amount is not None and income is not None and income > 0:  # type: ignore[operator]
        derived = amount / income  # type: ignore[operator]
        if stated is None or abs(stated - derived) > PERCENT_INCOME_TOLERANCE:  # type: ignore[operator]
            out["loan_percent_income"] = _round_half_away(derived, 2)
    cap = BY_NAME["person_income"].cap
    if income is not None and cap is not None:
        out["person_income"] = min(income, cap)  # type: ignore[type-var]
    return out


def _round_half_away(value: float, places: int) -> float:
    """DuckDB's round(): the exact binary value, halves away from zero (not banker's rounding)."""
    return float(Decimal(value).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))
