"""The counter-offer: the largest loan the model would approve for a refused applicant, against brute force."""

from __future__ import annotations

import math

import duckdb
from cashscore.features import contract

from cashscore.artefact.store import load_verified
from cashscore.scoring.scorer import COUNTER_OFFER_STEPS, Scorer


def refused_applicants(db, scorer, limit=25):
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(f"select {', '.join(contract.NAMES)} from marts.training_set order by loan_id").fetchall()
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in zip(contract.NAMES, row, strict=True)}
        for row in rows
    ]
    records = [r for r in records if all(r[n] is not None for n in contract.REQUIRED)]
    scored = scorer.score(records, counter_offer=True)
    return [(r, s) for r, s in zip(records, scored, strict=True) if s.decision == "deny"][:limit]


def brute_force(scorer, record):
    """Score every grid amount on its own, largest first; the first approved one is the offer."""
    asked = record["loan_amnt"]
    for k in range(COUNTER_OFFER_STEPS - 1, 0, -1):
        amount = math.floor(asked * k / COUNTER_OFFER_STEPS)
        if amount <= 0:
            continue
        (result,) = scorer.score([{**record, "loan_amnt": amount, "loan_percent_income": None}], explain=False)
        if result.decision == "approve":
            return {"loan_amnt": float(amount), "default_probability": round(result.default_probability, 6)}
    return None


def test_counter_offers_equal_brute_force(trained):
    scorer = Scorer(load_verified(trained[1]))
    refused = refused_applicants(trained[0], scorer)
    assert len(refused) >= 10
    offers = [scored.counter_offer for _, scored in refused]
    assert offers == [brute_force(scorer, record) for record, _ in refused]
    assert any(o is not None for o in offers)
    for (record, _), offer in zip(refused, offers, strict=True):
        if offer is not None:
            assert offer["loan_amnt"] < record["loan_amnt"] and offer["default_probability"] < scorer.threshold


def test_approved_applicants_get_no_counter_offer(trained):
    scorer = Scorer(load_verified(trained[1]))
    with duckdb.connect(str(trained[0]), read_only=True) as con:
        row = con.execute(
            f"select {', '.join(contract.NAMES)} from marts.training_set where loan_grade = 'A' limit 1"
        ).fetchone()
    (result,) = scorer.score([dict(zip(contract.NAMES, row, strict=True))], counter_offer=True)
    assert result.decision == "approve" and result.counter_offer is None


def test_the_api_gives_the_counter_offer_when_asked(trained):
    from cashscore.server.app import create_app
    from litestar.testing import TestClient

    scorer = Scorer(load_verified(trained[1]))
    record, scored = refused_applicants(trained[0], scorer, limit=1)[0]
    body = {k: v for k, v in record.items() if v is not None}
    with TestClient(app=create_app(trained[1], api_key="")) as client:
        plain = client.post("/v1/score", json=body).json()
        asked = client.post("/v1/score?counter_offer=true", json=body).json()
        query = {k: str(v) for k, v in body.items()} | {"counter_offer": "true"}
        by_get = client.get("/v1/score", params=query).json()
    assert "counter_offer" not in plain
    assert asked["counter_offer"] == scored.counter_offer == by_get["counter_offer"]
