"""Every scoring channel over the same applicants: the same answer, compared as each returns it.

Channels: HTTP single (POST /v1/score), HTTP batch, `cashscore score` to a file and the SQL
function `score(a)`. The API rounds probabilities to 6 decimals in its answer, so the others are
compared with it at that rounding and with each other exactly.
"""

from __future__ import annotations

import math

import duckdb
import pyarrow.parquet as pq
from cashscore.features import contract
from cashscore.server.app import create_app
from litestar.testing import TestClient

from cashscore.artefact import store
from cashscore.cli import main
from cashscore.scoring import batch
from cashscore.scoring.scorer import Scorer


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def raw_applicants(db):
    """The mart's rows as a client would send them (missing fields left out)."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(f"select loan_id, {', '.join(contract.NAMES)} from marts.applicants order by loan_id")
        names = [d[0] for d in rows.description]
        out = []
        for row in rows.fetchall():
            record = {k: v for k, v in zip(names, row, strict=True) if v is not None}
            out.append({k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))})
    return out


def test_every_channel_gives_the_same_answer_on_the_real_dump(real_db, real_model, tmp_path):
    assert every_channel_agrees(real_db, real_model, tmp_path) == 34_489


def test_every_channel_gives_the_same_answer_with_a_linear_model(trained_linear, tmp_path):
    db, models, _ = trained_linear
    assert every_channel_agrees(db, models, tmp_path) == 3_000


def every_channel_agrees(real_db, real_model, tmp_path):
    """Score the mart's applicants through every channel and compare; returns how many there were."""
    out = tmp_path / "all.parquet"
    assert main(["score", "--table", "marts.applicants", "--out", str(out), "--db", str(real_db)]
                + ["--models", str(real_model), "--reasons", "all"]) == 0  # fmt: skip
    files = {r["loan_id"]: r for r in pq.read_table(out).to_pylist()}
    rejected = {r["loan_id"] for r in pq.read_table(tmp_path / "all.rejects.parquet").to_pylist()}

    with duckdb.connect(str(real_db), read_only=True) as con:
        batch.register_udfs(con, Scorer(store.load_verified(real_model)))
        sql = {loan_id: s for loan_id, s in con.execute("select loan_id, score(a) from marts.applicants a").fetchall()}
    applicants = raw_applicants(real_db)
    http_batch: dict[str, dict] = {}
    http_single: dict[str, dict] = {}
    with TestClient(app=create_app(real_model, api_key="")) as client:
        for start in range(0, len(applicants), 1000):
            chunk = [
                {k: v for k, v in a.items() if k != "loan_id"} | {"id": a["loan_id"]}
                for a in applicants[start : start + 1000]
            ]
            answer = client.post("/v1/score/batch?contributions=true", json=chunk)
            assert answer.status_code == 200
            for row in answer.json()["results"]:
                http_batch[row["id"]] = row
        for a in applicants[::10]:  # every tenth applicant one request at a time
            a = dict(a)
            loan_id = a.pop("loan_id")
            answer = client.post("/v1/score", json=a)
            http_single[loan_id] = answer.json() if answer.status_code == 200 else {"status": answer.status_code}

    assert len(files) + len(rejected) == len(applicants)
    for loan_id, row in files.items():
        s = sql[loan_id]
        # Additive in every channel: the SQL struct's float64s exactly, the API's at its 6 decimals.
        assert abs(sigmoid(s["base_log_odds"] + sum(s["contributions"].values())) - s["default_probability"]) <= 1e-6
        b = http_batch[loan_id]["score"]
        z = b["base_log_odds"] + sum(b["contributions"].values())
        # Its probability, base and 11 contributions each within 5e-7 of their values; slope <= 1/4.
        assert abs(sigmoid(z) - b["default_probability"]) <= 1e-6 + 5e-7 + (len(contract.NAMES) + 1) * 5e-7 / 4
        # The file and SQL: exactly the same numbers and words.
        assert (s["default_probability"], s["decision"], " | ".join(s["reasons"])) == (
            row["default_probability"],
            row["decision"],
            row["reasons"],
        ), loan_id
        assert b["default_probability"] == round(row["default_probability"], 6), loan_id
        assert b["decision"] == row["decision"] and [r["text"] for r in b["reasons"]] == s["reasons"], loan_id
        if loan_id in http_single:
            one = http_single[loan_id]
            assert {k: one[k] for k in ("default_probability", "decision", "reasons", "contributions")} == {
                k: b[k] for k in ("default_probability", "decision", "reasons", "contributions")
            }, loan_id
    for loan_id in rejected:
        assert sql[loan_id] is None and not http_batch[loan_id]["ok"]
        if loan_id in http_single:
            assert http_single[loan_id] == {"status": 400}
    return len(applicants)
