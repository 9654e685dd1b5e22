"""The SQL functions: a whole row or the 11 fields, and one struct with everything in one pass."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pyarrow.parquet as pq
import pytest

from cashscore.artefact.store import load_verified
from cashscore.cli import main
from cashscore.core.errors import CashscoreError
from cashscore.scoring import batch
from cashscore.scoring.scorer import Scorer


def test_whole_row_and_fields_agree_and_score_returns_everything(trained):
    db, models, _ = trained
    scorer = Scorer(load_verified(models))
    with duckdb.connect(str(db), read_only=True) as con:
        batch.register_udfs(con, scorer)
        rows = con.execute(
            """
            select
                score_default(a) as by_row,
                score_default(person_age, person_income, person_home_ownership, person_emp_length, loan_intent,
                    loan_grade, loan_amnt, loan_int_rate, loan_percent_income, cb_person_default_on_file,
                    cb_person_cred_hist_length) as by_fields,
                score_decision(a) as decision,
                score(a) as s
            from marts.applicants a
            order by loan_id
            """
        ).fetchall()
    scored = [r for r in rows if r[0] is not None]
    assert len(scored) > 100 and len(rows) > len(scored)  # rejected rows give NULL everywhere
    for by_row, by_fields, decision, s in rows:
        assert by_row == by_fields
        if by_row is None:
            assert s is None and decision is None
            continue
        assert s["default_probability"] == by_row and s["decision"] == decision
        z = s["base_log_odds"] + sum(s["contributions"].values())
        assert abs(1 / (1 + 2.718281828459045**-z) - by_row) < 1e-6
        assert s["risk_band"] in ("very low", "low", "medium", "high", "very high")
    assert any(s["reasons"] for *_, s in scored)


def test_score_gives_the_reasons_as_a_list_an_analyst_can_index_and_unnest(trained):
    db, models, _ = trained
    with duckdb.connect(str(db), read_only=True) as con:
        batch.register_udfs(con, Scorer(load_verified(models)))
        con.execute("create temp table s as select loan_id, score(a) as s from marts.applicants a")
        rows = con.execute("select s.reasons[1], len(s.reasons), s.reasons from s where s.decision = 'deny'").fetchall()
        unnested = con.execute("select count(*) from (select unnest(s.reasons) from s)").fetchone()[0]
        typed = con.execute("select typeof(s.reasons) from s where s is not null limit 1").fetchone()[0]
    assert typed == "VARCHAR[]"
    assert sum(n for _, n, _ in rows) > 100
    for first, n, reasons in rows:
        assert first == (reasons[0] if reasons else None) and n == len(reasons) <= 4
        assert all(" | " not in words and "which multiplies the odds of default by" in words for words in reasons)
    assert unnested >= sum(n for _, n, _ in rows)


def test_score_pt_words_the_reasons_as_cashscore_score_lang_pt_does(trained, tmp_path):
    db, models, _ = trained
    out = tmp_path / "pt.parquet"
    assert main(["score", "--table", "marts.applicants", "--out", str(out), "--db", str(db), "--models", str(models),
                 "--reasons", "all", "--lang", "pt"]) == 0  # fmt: skip
    by_file = {r["loan_id"]: r["reasons"] for r in pq.read_table(out).to_pylist()}
    with duckdb.connect(str(db), read_only=True) as con:
        batch.register_udfs(con, Scorer(load_verified(models)))
        rows = con.execute("select loan_id, score(a), score_pt(a) from marts.applicants a").fetchall()
    scored = [(loan_id, en, pt) for loan_id, en, pt in rows if en is not None]
    assert len(scored) == len(by_file) > 100
    for loan_id, en, pt in scored:
        assert {k: v for k, v in pt.items() if k != "reasons"} == {k: v for k, v in en.items() if k != "reasons"}
        assert " | ".join(pt["reasons"]) == by_file[loan_id], loan_id
        assert len(pt["reasons"]) == len(en["reasons"])
    assert sum("o que multiplica a chance de inadimplência" in " ".join(pt["reasons"]) for *_, pt in scored) > 100


def test_connect_gives_python_the_views_and_the_score_functions_read_only(trained, monkeypatch):
    import cashscore

    db, models, _ = trained
    monkeypatch.setenv("CASHSCORE_DB", str(db))
    monkeypatch.setenv("CASHSCORE_MODELS", str(models))
    con = cashscore.connect()  # the settings' database and models, as every command's defaults
    try:
        version, rows = (
            con.execute("select score_model_version()").fetchone()[0],
            con.execute("select score_default(a), score(a) from marts.applicants a order by loan_id").fetchall(),
        )
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("create table mine as select 1")
    finally:
        con.close()
    assert version == load_verified(models).version
    with duckdb.connect(str(db), read_only=True) as plain:
        batch.register_udfs(plain, Scorer(load_verified(models)))
        expected = plain.sql("select score_default(a), score(a) from marts.applicants a order by loan_id").fetchall()
    assert rows == expected and sum(p is not None for p, _ in rows) > 100


def test_connect_refuses_a_missing_model_by_name_and_leaves_the_file_free(trained, tmp_path):
    import cashscore

    db, _, _ = trained
    with pytest.raises(CashscoreError, match=r"missing; run `cashscore train --models .*empty` first"):
        cashscore.connect(db, tmp_path / "empty")
    with duckdb.connect(str(db)) as writer:  # no connection was left holding the file
        assert writer.execute("select count(*) from marts.applicants").fetchone()[0] > 0


def test_importing_cashscore_loads_neither_duckdb_nor_onnxruntime():
    code = "import sys, cashscore; print(sorted({'duckdb', 'onnxruntime'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
