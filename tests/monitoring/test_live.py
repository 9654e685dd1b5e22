"""Live drift in the server: a window of the latest applicants, published as Prometheus gauges and on the dashboard."""

from __future__ import annotations

import bisect
import re

import duckdb
import numpy as np
import pytest
from cashscore.features import contract
from cashscore.server.app import create_app
from litestar.testing import TestClient

from cashscore.artefact import store
from cashscore.core import config
from cashscore.monitoring.live import Window


def _applicants(db, scale: float = 1.0, limit: int = 1000) -> list[dict]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            f"select {', '.join(contract.NAMES)} from marts.applicants where person_age is not null "
            "and person_income is not null and loan_amnt is not null and loan_grade is not null "
            "and loan_intent is not null order by loan_id limit ?",
            [limit],
        ).fetchall()
    finally:
        con.close()
    out = []
    for row in rows:
        record = {k: v for k, v in zip(contract.NAMES, row, strict=True) if v is not None}
        record["person_income"] = record["person_income"] * scale
        record.pop("loan_percent_income", None)  # derived again from the scaled income
        out.append(record)
    return out


def _psi(text: str, feature: str, version: str) -> float:
    match = re.search(rf'cashscore_drift_psi\{{feature="{feature}",model_version="{version}"\}} (\S+)', text)
    assert match, f"no drift gauge for {feature}"
    return float(match.group(1))


def test_live_drift_gauges_follow_the_latest_applicants(trained, tmp_path):
    db, models = trained[0], trained[1]
    version = store.load_verified(models).version
    settings = config.load({"CASHSCORE_DRIFT_WINDOW": "800", "CASHSCORE_AUDIT_LOG": str(tmp_path / "audit")})
    with TestClient(app=create_app(models, api_key="", db=db, settings=settings)) as client:
        assert client.post("/v1/score/batch", json=_applicants(db)).status_code == 200
        text = client.get("/metrics").text
        assert f'cashscore_drift_window_applicants{{model_version="{version}"}} 800.0' in text
        assert _psi(text, "person_income", version) < 0.1
        assert _psi(text, "loan_grade", version) < 0.1
        # The same applicants with incomes 1.5 times higher fill the window: income alerts, grade does not.
        assert client.post("/v1/score/batch", json=_applicants(db, scale=1.5)).status_code == 200
        text = client.get("/metrics").text
        assert _psi(text, "person_income", version) >= 0.25
        assert _psi(text, "loan_grade", version) < 0.1
        page = client.get("/").text
        assert 'id="drift-live"' in page and "the latest 800 applicant(s)" in page


def test_window_is_a_ring_of_the_latest_rows(trained):
    card = store.load_verified(trained[1]).card
    window = Window(card.population, 3, min_rows=1)
    grade = next(i for i, b in enumerate(window.bins) if b.name == "loan_grade")
    window.add([{"loan_grade": g} for g in "AAB"], [0.1, 0.1, 0.1])
    window.add([{"loan_grade": g} for g in "GG"], [0.1, 0.1])
    assert window.filled == 3
    labels = window.bins[grade].labels
    assert sorted(labels[i] for i in window.codes[:, grade]) == ["B", "G", "G"]
    # Missing and unknown values land in the missing bin, never an error.
    window.add([{"loan_grade": None, "person_income": float("nan")}], [float("nan")])
    assert labels[window.codes[(window.position - 1) % 3, grade]] == "missing"
    assert np.isfinite(list(window.psi().values())).all()
    # Too few applicants for a PSI: NaN, not an alert.
    assert np.isnan(list(Window(card.population, 10).psi().values())).all()


def test_window_bins_columns_as_bisecting_each_value_would(trained):
    card = store.load_verified(trained[1]).card
    window = Window(card.population, 5000, min_rows=1)
    rng = np.random.default_rng(11)
    records, probabilities = [], []
    for _ in range(3000):
        record = {}
        for bins in window.bins[:-1]:
            if bins.kind == "numeric":
                # Values on the edges themselves, between them, beyond them, NaN and None.
                pool = [*bins.edges, *(e + 0.5 for e in bins.edges), -1e9, 1e9, float("nan"), None]
            else:
                pool = [*bins.labels[:-1], "Unknown", None]
            record[bins.name] = pool[rng.integers(len(pool))]
        records.append(record)
        probabilities.append(float(rng.choice([0.0, 0.5, 1.0, float("nan"), *window.bins[-1].edges])))
    # A batch column by column, then a few at a time row by row (live.SMALL): the same bins.
    window.add(records[:2000], probabilities[:2000])
    for start in range(2000, 3000, 5):
        window.add(records[start : start + 5], probabilities[start : start + 5])
    for row, (record, p) in enumerate(zip(records, probabilities, strict=True)):
        for i, bins in enumerate(window.bins):
            missing = len(bins.labels) - 1
            value = p if i == len(window.bins) - 1 else record[bins.name]
            if bins.kind == "numeric":
                expected = missing if value is None or value != value else bisect.bisect_left(bins.edges, value)
            else:
                expected = {label: k for k, label in enumerate(bins.labels[:-1])}.get(value, missing)
            assert window.codes[row, i] == expected, (bins.name, value)


def test_a_batch_given_as_columns_bins_as_its_records_do(trained):
    # The batch endpoint hands the window the scorer's cleaned columns (NaN and None for missing);
    # a batch longer than the window keeps its latest rows, as records do.
    card = store.load_verified(trained[1]).card
    rng = np.random.default_rng(5)
    n = 700
    columns = {}
    for f in contract.FEATURES:
        if f.kind == "numeric":
            columns[f.name] = rng.choice([0.0, 3.0, 25.0, 9_000.0, 70_000.0, np.nan], n)
        else:
            columns[f.name] = rng.choice(np.array([*f.categories, None], dtype=object), n)
    p = rng.random(n)
    records = [
        {k: (None if isinstance(v[i], float) and np.isnan(v[i]) else v[i]) for k, v in columns.items()}
        for i in range(n)
    ]
    for size in (1000, 300):
        by_rows, by_columns = Window(card.population, size), Window(card.population, size)
        by_rows.add(records, p.tolist())
        by_columns.add_columns(columns, p)
        assert by_columns.filled == by_rows.filled == min(n, size)
        assert np.array_equal(by_columns.codes, by_rows.codes)
        assert by_columns.position == by_rows.position


@pytest.mark.parametrize("size", ["0"])
def test_live_drift_can_be_switched_off(trained, tmp_path, size):
    settings = config.load({"CASHSCORE_DRIFT_WINDOW": size, "CASHSCORE_AUDIT_LOG": str(tmp_path / "audit")})
    with TestClient(app=create_app(trained[1], api_key="", settings=settings)) as client:
        assert client.post("/v1/score/batch", json=_applicants(trained[0], limit=5)).status_code == 200
        assert "no applicant scored since" in client.get("/").text
