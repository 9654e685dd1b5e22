"""The feature contract is the single source of truth: every channel derives from it and follows a change to it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import duckdb
from cashscore.features import contract, inputs, rules
from cashscore.server.schemas import Applicant, field_schema

from cashscore.training import preprocess


def test_every_derived_form_agrees_with_the_contract(small_db):
    with duckdb.connect(str(small_db), read_only=True) as con:
        mart = [r[0] for r in con.execute("describe marts.applicants").fetchall()]
        ref = {r[0] for r in con.execute("select feature from ref.feature_rules").fetchall()}
    assert [c for c in mart if c in contract.NAMES] == list(contract.NAMES)
    assert ref == set(contract.NUMERIC)
    required = [n for n in contract.NAMES if n in contract.REQUIRED]
    assert list(Applicant.__struct_fields__) == [*required, *(n for n in contract.NAMES if n not in required)]
    assert [t[0] for t in preprocess.onnx_input_types()] == list(contract.NAMES)
    assert set(rules.clean_record({})) == set(contract.NAMES)
    for f in contract.FEATURES:
        schema = field_schema(f)
        if f.kind == "numeric":
            assert (schema.minimum, schema.maximum) == (f.valid_min, f.valid_max)
    assert tuple(f.name for f in contract.FEATURES if f.ordered) == preprocess.ORDERED
    assert inputs.frame  # the model's inputs come from the same module
    for f in contract.FEATURES:  # every category has its words in every language reasons speak
        assert len(f.categories_pt) == len(f.categories) and len(f.categories_en) in (0, len(f.categories))


# Run in a fresh interpreter: the contract is patched before anything reads it, as an edit of
# features/contract.py would be, and nothing else changes.
MODIFIED = textwrap.dedent(
    """
    import dataclasses, json, sys
    from pathlib import Path
    import cashscore.features.contract as c

    c.FEATURES = tuple(
        dataclasses.replace(f, cap=20000, valid_max=30000) if f.name == "loan_amnt" else f for f in c.FEATURES
    )
    c.BY_NAME = {f.name: f for f in c.FEATURES}

    import duckdb
    import numpy as np
    from litestar.testing import TestClient
    from cashscore.artefact.store import load_verified
    from cashscore.scoring import batch
    from cashscore.scoring.scorer import Scorer
    from cashscore.server.app import create_app
    from cashscore.warehouse.restore import restore

    dump, models, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    db = work / "modified.duckdb"
    restore([dump], db, Path(sys.argv[4]), say=lambda _: None)
    out = {}
    with duckdb.connect(str(db)) as con:
        out["sql"] = con.execute("select loan_id, loan_amnt from marts.applicants order by loan_id").fetchall()
        scorer = Scorer(load_verified(models))
        batch.register_udfs(con, scorer)
        applicant = json.loads(sys.argv[5])
        args = ", ".join(f"?::{'double' if n in c.NUMERIC else 'varchar'}" for n in c.NAMES)
        udf = lambda amount: con.execute(
            f"select score_default({args})", [{**applicant, "loan_amnt": amount}.get(n) for n in c.NAMES]
        ).fetchone()[0]
        out["udf"] = [udf(25000), udf(20000), udf(35000)]
    columns = lambda amount: {k: np.array([v], dtype=object) for k, v in {**applicant, "loan_amnt": amount}.items()}
    out["batch"] = [float(scorer.clean_and_evaluate(columns(a), 1)[2].p[0]) for a in (25000, 20000)]
    with TestClient(app=create_app(models, api_key="")) as client:
        api = [client.post("/v1/score", json={**applicant, "loan_amnt": a}) for a in (25000, 20000, 35000)]
    out["api"] = [r.json().get("default_probability") for r in api[:2]] + [api[2].status_code]
    print(json.dumps(out))
    """
)


def test_a_cap_declared_in_the_contract_reaches_sql_api_batch_and_udf(trained, write, tmp_path):
    from helpers.applicants import GOOD
    from helpers.dumps import SQL_DIR, full_dump, table_sql

    loans = table_sql(
        "emprestimos",
        "('l1','Education','B',25000,16.02,1,NULL),('l2','médico','a',5000,NULL,0,0.04),"
        "('l3','Venture','C',1000,11.1,NULL,NULL)",
    )
    dump = write("capped.sql", full_dump(emprestimos=loans))
    applicant = {k: v for k, v in GOOD.items() if k != "loan_percent_income"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            MODIFIED,
            str(dump),
            str(trained[1]),
            str(tmp_path),
            str(SQL_DIR),
            json.dumps(applicant),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # SQL: 25,000 is capped at the new 20,000; the others are under it.
    assert dict(map(tuple, out["sql"])) == {"l1": 20000, "l2": 5000, "l3": 1000}
    # API, batch and the UDF: an amount above the cap scores as the cap; one above the new maximum is refused.
    assert out["udf"][0] == out["udf"][1] and out["udf"][2] is None
    assert out["batch"][0] == out["batch"][1] == out["udf"][0]
    assert out["api"][0] == out["api"][1] == round(out["udf"][0], 6)
    assert out["api"][2] == 400
