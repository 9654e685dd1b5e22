"""Drift against the training population: stable on held-out rows of it, an alert on shifted incomes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from cashscore.features import contract
from sklearn.model_selection import train_test_split

from cashscore.artefact import store
from cashscore.cli import main
from cashscore.monitoring import drift, population
from cashscore.training import trainer
from cashscore.warehouse.restore import restore

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def _held_out(db: Path, models: Path) -> Path:
    """A copy of the database with table `heldout`: the training run's own test split, never trained on."""
    card = store.load_verified(models).card
    df = trainer.load_training(db)
    _, test = train_test_split(
        df["loan_id"], test_size=card.config.test_size, stratify=df[contract.TARGET], random_state=card.config.seed
    )
    copy = db.with_name(f"{db.stem}-heldout.duckdb")
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    try:
        con.execute(
            "create table heldout as select * from marts.training_set where loan_id in (select unnest(?))",
            [test.tolist()],
        )
    finally:
        con.close()
    return copy


def _monitor(db: Path, models: Path, *extra: str, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["monitor", "--db", str(db), "--models", str(models), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _statuses(found: dict) -> dict[str, str]:
    return {d["feature"]: d["status"] for d in found["drift"]}


def _check_stable_then_alert(db: Path, models: Path, tmp_path: Path, capsys) -> None:
    heldout = _held_out(db, models)
    code, found = _monitor(heldout, models, "--table", "heldout", "--fail-on", "watch", capsys=capsys)
    assert code == 0, found["drift"]
    assert set(_statuses(found).values()) == {"ok"}
    # Beyond the PSI cut-off: no input is even detectably different (a reference holding rows the
    # monitor never sees, such as the contract's rejects, fails here while its PSI stays "ok").
    # The score is left out: the final model scores unseen rows a little more sharply than the
    # out-of-fold models of the reference did, which thousands of rows detect (PSI 0.007 on the real dump).
    assert min(d["p_value"] for d in found["drift"] if d["feature"] != drift.SCORE) > 0.01
    assert found["rows"] > 500 and found["realised_rate"] is not None
    scaled = "select * replace (person_income * 1.5 as person_income) from heldout"
    code, found = _monitor(heldout, models, "--sql", scaled, "--fail-on", "alert", capsys=capsys)
    statuses = _statuses(found)
    assert code == 3
    assert statuses["person_income"] == "alert"
    # Income alone moved: every other input stays where it was.
    assert {s for f, s in statuses.items() if f not in ("person_income", drift.SCORE)} == {"ok"}
    con = duckdb.connect(str(heldout), read_only=True)
    try:
        stored = con.execute(
            "select population, feature, status, rows from monitoring.drift order by measured_at, population, feature"
        ).fetchall()
    finally:
        con.close()
    assert len(stored) == 2 * (len(contract.NAMES) + 1)
    assert ("sql " + scaled, "person_income", "alert", found["rows"]) in stored


def test_drift_is_ok_on_held_out_rows_and_alerts_on_income_scaled(trained, tmp_path, capsys):
    _check_stable_then_alert(trained[0], trained[1], tmp_path, capsys)


def test_drift_on_the_real_dump(real_db, real_model, tmp_path, capsys):
    _check_stable_then_alert(real_db, real_model, tmp_path, capsys)


def test_psi_and_chi_square_by_hand():
    reference = [0.5, 0.3, 0.2, 0.0]
    observed = np.array([40.0, 40.0, 20.0, 0.0])
    floored = np.array([0.5, 0.3, 0.2, 1e-4]) / 1.0001
    actual = np.array([0.4, 0.4, 0.2, 1e-4]) / 1.0001
    assert population.psi(reference, observed) == pytest.approx(np.sum((actual - floored) * np.log(actual / floored)))
    statistic, p_value = population.chi_square(reference, observed)
    expected = floored * 100
    assert statistic == pytest.approx(np.sum((observed - expected) ** 2 / expected))
    assert 0 < p_value < 1
    assert [population.status(v) for v in (0.05, 0.1, 0.2, 0.25, float("nan"))] == [
        "ok", "watch", "watch", "alert", "unknown"
    ]  # fmt: skip


def test_bins_put_edges_and_missing_where_they_say():
    bins = population.numeric_bins("x", np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, np.nan]))
    index = population.assign(bins, np.array([bins.edges[0], bins.edges[0] + 1e-9, -1e9, 1e9, np.nan]))
    assert index.tolist() == [0, 1, 0, len(bins.edges), len(bins.labels) - 1]
    assert sum(bins.shares) == pytest.approx(1.0) and bins.shares[-1] == pytest.approx(1 / 11)
    cats = population.categorical_bins("c", np.array(["A", "B", None, "A"], dtype=object), ("A", "B"))
    assert cats.shares == [0.5, 0.25, 0.25]


def test_monitor_refuses_bad_input_by_name(trained, capsys):
    db, models = trained[0], trained[1]
    assert (
        main(["monitor", "--db", str(db), "--models", str(models), "--table", 'x"; drop table y; --', "--no-store"])
        == 1
    )
    assert "--table" in capsys.readouterr().err
    assert main(["monitor", "--db", str(db), "--models", str(models), "--sql", "select 1 as a", "--no-store"]) == 1
    assert "required column" in capsys.readouterr().err
    assert main(["fairness", "--db", str(db), "--models", str(models), "--table", "marts.applicants",
                 "--age-bands", "40,30", "--no-store"]) == 1  # fmt: skip
    assert "--age-bands" in capsys.readouterr().err


def _model_eval_rows(db) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute("select table_name from duckdb_tables() where schema_name = 'model_eval'").fetchall()
        return {t: con.execute(f"select count(*) from model_eval.{t}").fetchall()[0][0] for (t,) in tables}


def test_restore_keeps_the_monitoring_history_and_the_models_evaluations(trained, tmp_path, capsys):
    db = tmp_path / "kept.duckdb"
    shutil.copy(trained[0], db)
    assert main(["monitor", "--db", str(db), "--models", str(trained[1]), "--table", "marts.applicants"]) == 0
    evaluations = _model_eval_rows(db)
    assert evaluations.get("roc_points") and evaluations.get("calibration_bins")  # what the dashboard draws
    from cashscore.warehouse.sample import write_sample

    dump = tmp_path / "again.sql"
    write_sample(dump, rows=3000, seed=11)
    restore([dump], db, SQL_DIR, say=lambda _: None)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("select count(*) from monitoring.drift").fetchall()[0][0] == len(contract.NAMES) + 1
    finally:
        con.close()
    # The nightly job restores every night and never retrains: the model's curves must stay.
    assert _model_eval_rows(db) == evaluations
