"""The Power Query functions in powerbi/: their fields follow the contract and their requests work."""

from __future__ import annotations

import json
import re

import duckdb
import pytest
from cashscore.features import contract
from cashscore.server.app import create_app
from litestar.testing import TestClient

from cashscore.core import config

POWERBI = config.PROJECT_ROOT / "powerbi"


def m_source(name: str) -> str:
    return (POWERBI / name).read_text(encoding="utf-8")


def applicant_fields() -> list[str]:
    record = m_source("ScoreApplicant.pq").split("Applicant = [", 1)[1].split("]", 1)[0]
    return re.findall(r"(\w+) = \1", record)


def table_fields() -> list[str]:
    block = m_source("ScoreTable.pq").split("Fields = {", 1)[1].split("}", 1)[0]
    return re.findall(r'"(\w+)"', block)


def test_m_functions_use_the_contract_fields_and_endpoints():
    assert table_fields() == list(contract.NAMES)
    assert applicant_fields() == [n for n in contract.NAMES if n != "loan_percent_income"]
    assert 'RelativePath = "v1/score"' in m_source("ScoreApplicant.pq")
    assert 'RelativePath = "v1/score/batch"' in m_source("ScoreTable.pq")
    assert "Table.Split(" in m_source("ScoreTable.pq")


@pytest.fixture
def client(trained):
    with TestClient(app=create_app(trained[1], api_key="pbi-key")) as c:
        yield c


def m_json(value: object) -> bytes:
    """What Json.FromValue writes: compact JSON, fields in record order, nulls kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


HEADERS = {"Content-Type": "application/json", "X-API-Key": "pbi-key"}


def test_score_applicant_request(client):
    values = [22, 59000, "Alugada", None, "Pessoal", "D", 35000, 16.02, "S", 3]
    record = dict(zip(applicant_fields(), values, strict=True))
    r = client.post("/v1/score", content=m_json(record), headers=HEADERS)
    assert r.status_code in (200, 201), r.text
    body = r.json()
    # The fields the M function reads from the response.
    assert {"default_probability", "decision", "risk_band", "threshold", "model_version", "reasons"} <= body.keys()
    assert all("text" in reason for reason in body["reasons"])


def test_score_table_requests_in_batches(client, trained):
    with duckdb.connect(str(trained[0]), read_only=True) as con:
        table = con.execute("select * from marts.applicants order by loan_id limit 2500").df()
    rows = []
    for i, record in enumerate(table.to_dict("records")):
        row = {name: record[name] for name in table_fields()}
        row = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        rows.append({**row, "id": i})  # Table.RenameColumns(cashscore_row -> id)
    batches = [rows[i : i + 1000] for i in range(0, len(rows), 1000)]  # Table.Split(Renamed, 1000)
    assert [len(b) for b in batches] == [1000, 1000, 500]
    seen = []
    for batch in batches:
        r = client.post("/v1/score/batch", content=m_json(batch), headers=HEADERS)
        assert r.status_code in (200, 201), r.text
        for result in r.json()["results"]:
            assert {"id", "ok"} <= result.keys()
            assert result["ok"] == (result["score"] is not None) == (result["error"] is None)
            seen.append(result["id"])
    assert seen == list(range(len(rows)))
