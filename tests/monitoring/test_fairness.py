"""Fairness by age band: figures equal a hand computation, and the CLI equals pandas over `cashscore score`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cashscore.cli import main
from cashscore.core.errors import CashscoreError
from cashscore.monitoring import fairness


def test_fairness_figures_equal_a_hand_computation():
    # Ten applicants; deny when p >= 0.5. y: 1 = defaulted, NaN = outcome not known yet.
    age = np.array([20, 22, 24, 30, 31, 33, 50, 61, 70, np.nan])
    p = np.array([0.6, 0.2, 0.1, 0.7, 0.8, 0.1, 0.3, 0.9, 0.4, 0.5])
    y = np.array([1, 0, 0, 1, 0, 0, np.nan, 1, 0, 1])
    bands = {b.band: b for b in fairness.by_age(age, p, 0.5, y, (25, 35, 45, 60))}
    assert list(bands) == ["<25", "25-34", "45-59", "60+", "unknown age"]  # 35-44 has nobody
    young, mid, older, old, unknown = (bands[k] for k in bands)
    # <25: 3 rows, 1 refused -> approval 2/3, the highest of all bands.
    assert young.rows == 3 and young.approval_rate == pytest.approx(2 / 3)
    assert mid.approval_rate == pytest.approx(1 / 3) and older.approval_rate == 1.0
    # The most-approved band is 45-59 (1/1): ratios are against it.
    assert young.adverse_impact_ratio == pytest.approx(2 / 3) and young.flagged
    assert mid.adverse_impact_ratio == pytest.approx(1 / 3) and mid.flagged
    assert older.adverse_impact_ratio == 1.0 and not older.flagged
    assert old.approval_rate == 0.5 and old.adverse_impact_ratio == 0.5
    # Means and outcomes: 45-59's only outcome is unknown.
    assert young.mean_predicted == pytest.approx(0.3) and young.realised_rate == pytest.approx(1 / 3)
    assert older.realised_rate is None and older.true_positive_rate is None
    # <25: the one defaulter refused (TPR 1), no good payer refused (FPR 0 of 2).
    assert young.true_positive_rate == 1.0 and young.false_positive_rate == 0.0
    # 25-34: defaulter refused, one of two good payers refused.
    assert mid.true_positive_rate == 1.0 and mid.false_positive_rate == 0.5
    # Gaps against 45-59, which has no outcomes: unknown, not zero.
    assert young.tpr_gap is None and young.fpr_gap is None
    # Unknown age: reported, never the reference band.
    assert unknown.rows == 1 and unknown.approval_rate == 0.0


def test_gaps_are_against_the_most_approved_band():
    age = np.array([20, 21, 40, 41, 42, 43])
    p = np.array([0.9, 0.1, 0.1, 0.1, 0.9, 0.1])
    y = np.array([1, 1, 1, 0, 0, 0])
    young, mid = fairness.by_age(age, p, 0.5, y, (30, 50))
    assert mid.approval_rate == 0.75 and young.approval_rate == 0.5
    assert mid.true_positive_rate == 0.0 and mid.false_positive_rate == pytest.approx(1 / 3)
    assert young.true_positive_rate == 0.5 and young.false_positive_rate is None  # no good payer among them
    assert young.tpr_gap == 0.5 and mid.tpr_gap == 0.0 and young.fpr_gap is None


@pytest.mark.parametrize("text", ["", "abc", "40,30", "0,10", "25,25", "25,nan", "25,1e9"])
def test_bad_age_bands_are_refused_by_name(text):
    with pytest.raises(CashscoreError, match="CASHSCORE_AGE_BANDS"):
        fairness.parse_bands(text)


def test_fairness_command_equals_pandas_over_the_scored_rows(trained, tmp_path, capsys):
    db, models = trained[0], trained[1]
    out = tmp_path / "scored.parquet"
    assert main(["score", "--db", str(db), "--models", str(models), "--table", "marts.training_set",
                 "--out", str(out), "--reasons", "none"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["fairness", "--db", str(db), "--models", str(models), "--table", "marts.training_set",
                 "--json", "--no-store"]) == 0  # fmt: skip
    found = {b["band"]: b for b in json.loads(capsys.readouterr().out)["fairness"]}
    scored = pd.read_parquet(out)
    band = pd.cut(scored["person_age"], [-np.inf, 25, 35, 45, 60, np.inf], right=False,
                  labels=["<25", "25-34", "35-44", "45-59", "60+"])  # fmt: skip
    for name, rows in scored.groupby(band, observed=True):
        deny = rows["decision"] == "deny"
        bad = rows["loan_status"] == 1
        got = found[str(name)]
        assert got["rows"] == len(rows)
        assert got["approval_rate"] == pytest.approx(1 - deny.mean())
        assert got["mean_predicted"] == pytest.approx(rows["default_probability"].mean())
        assert got["realised_rate"] == pytest.approx(bad.mean())
        if bad.any():
            assert got["true_positive_rate"] == pytest.approx((deny & bad).sum() / bad.sum())
