"""The protected-age rule: from CASHSCORE_PROTECTED_AGE on, age never raises an applicant's risk,
never gives a positive age contribution and is never a reason: checked over every applicant, as
they are and as if they were older.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from cashscore.features import contract, rules

from cashscore.artefact import store
from cashscore.cli import main
from cashscore.core.errors import CashscoreError
from cashscore.scoring import reasons
from cashscore.scoring.scorer import Scorer
from cashscore.training import evaluation, trainer

AGE = contract.NAMES.index(contract.AGE)


def _applicants(db: Path) -> dict[str, np.ndarray]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        table = con.sql("select * from marts.applicants").to_arrow_table()
    finally:
        con.close()
    columns = {n: table.column(n).to_numpy(zero_copy_only=False) for n in contract.NAMES}
    cleaned, problems = rules.clean_columns(columns, table.num_rows)
    ok = problems == None  # noqa: E711
    return {n: v[ok] for n, v in cleaned.items()}


def _check_every_applicant(db: Path, models: Path) -> int:
    scorer = Scorer(store.load_verified(models))
    protected = scorer.model.card.protected_age.age
    cleaned = _applicants(db)
    n = len(cleaned[contract.AGE])
    checked = 0
    for age in (None, protected, protected + 2, 75.0, 100.0):
        rows = dict(cleaned) if age is None else {**cleaned, contract.AGE: np.full(n, age)}
        old = rows[contract.AGE] >= protected
        scores = scorer.evaluate(rows, detail=True)
        assert not (scores.contributions[old, AGE] > 0).any(), f"age {age}: a risk-raising age contribution"
        picked = reasons.pick(scores.p, scores.contributions, old)
        assert not (picked.features[old] == AGE).any(), f"age {age}: age named as a reason"
        if age is not None:
            # An older applicant is never scored riskier than the same applicant at the protected age.
            at_protected = scorer.evaluate({**cleaned, contract.AGE: np.full(n, protected)}, detail=False).p
            assert (scores.p <= at_protected + 1e-9).all()
        checked += int(old.sum())
    return checked


def test_protected_age_holds_for_every_real_applicant(real_db, real_model):
    assert _check_every_applicant(real_db, real_model) > 4 * 30_000


@pytest.mark.slow
def test_the_logistic_model_keeps_the_rule_and_adds_up_for_every_real_applicant(real_db, tmp_path):
    db, models = tmp_path / "real.duckdb", tmp_path / "models"
    shutil.copy(real_db, db)  # training writes its model_eval rows: never into the shared fixture
    card = trainer.run(db, models, quick=True, say=lambda _: None, families=("logreg",), strategies=("none",))
    assert card.model.family == "logreg" and card.metrics.test.roc_auc > 0.84
    assert card.parity.decision_flips == 0 and not any(card.monotonic_violations.values())
    assert _check_every_applicant(db, models) > 4 * 30_000
    scores = Scorer(store.load_verified(models)).evaluate(_applicants(db))
    z = scores.base + scores.contributions.sum(axis=1)
    assert np.abs(1 / (1 + np.exp(-z)) - scores.p).max() <= 1e-6


def test_protected_age_holds_for_every_synthetic_applicant(trained):
    assert _check_every_applicant(trained[0], trained[1]) > 4 * 2_000
    assert trained[2].protected_age.positive_age_contributions == 0


def test_training_refuses_a_model_that_breaks_the_protected_age(trained, tmp_path, monkeypatch):
    models = tmp_path / "models"
    monkeypatch.setattr(
        evaluation, "protected_age_check", lambda *a: {"age": 60.0, "rows_checked": 10, "positive_age_contributions": 3}
    )
    with pytest.raises(CashscoreError, match="3 applicants at or above the protected age 60"):
        trainer.run(trained[0], models, quick=True, say=lambda _: None, families=("lightgbm",), strategies=("none",))
    assert not store.versions(models)


def test_the_protected_age_is_a_setting_the_graph_keeps(trained, tmp_path, monkeypatch):
    models, db = tmp_path / "models62", tmp_path / "copy.duckdb"
    shutil.copy(trained[0], db)  # training writes its model_eval rows: never into the shared fixture
    monkeypatch.setenv("CASHSCORE_PROTECTED_AGE", "62")
    assert main(["train", "--db", str(db), "--models", str(models), "--quick", "--families", "lightgbm"]) == 0
    scorer = Scorer(store.load_verified(models))
    assert scorer.model.card.protected_age.age == 62
    cleaned = _applicants(trained[0])
    n = len(cleaned[contract.AGE])
    # The graph itself caps: every age from 62 on scores exactly as 62.
    at = {a: scorer.evaluate({**cleaned, contract.AGE: np.full(n, a)}, detail=False).p for a in (62.0, 80.0, 100.0)}
    assert np.array_equal(at[62.0], at[80.0]) and np.array_equal(at[62.0], at[100.0])


def test_a_protected_age_outside_the_contract_is_refused(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CASHSCORE_PROTECTED_AGE", "150")
    assert main(["train", "--db", str(trained[0]), "--models", str(tmp_path / "m"), "--quick"]) == 1
    assert "CASHSCORE_PROTECTED_AGE" in capsys.readouterr().err
