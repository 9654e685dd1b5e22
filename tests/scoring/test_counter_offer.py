"""The counter-offer: the largest loan the model would approve for a refused applicant, against every amount scored."""

from __future__ import annotations

import math

import duckdb
import numpy as np
from cashscore.features import contract

from cashscore.artefact.store import load_verified
from cashscore.scoring.scorer import Scorer


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


def every_amount(scorer, record):
    """Every whole amount below the one asked for, scored on its own row through the column-wise path
    the batches take (the share of income derived again from each): (amounts, approved, probabilities)."""
    amounts = np.arange(1, math.ceil(record["loan_amnt"]), dtype=float)
    columns = {name: [record[name]] * len(amounts) for name in contract.NAMES}
    columns["loan_amnt"], columns["loan_percent_income"] = amounts, [None] * len(amounts)
    decided = scorer.decide(columns, len(amounts), explain=False, contributions=False)
    approved = (decided.scores.p < scorer.threshold) & np.equal(decided.problems, None)
    return amounts, approved, decided.scores.p


def test_counter_offers_against_every_amount_scored_alone(trained):
    scorer = Scorer(load_verified(trained[1]))
    refused = refused_applicants(trained[0], scorer, limit=20)
    assert len(refused) >= 10
    exact_with_offer = 0
    for record, scored in refused:
        amounts, approved, p = every_amount(scorer, record)
        offer = scored.counter_offer
        # Where the probability never falls as the amount grows, the offer is the largest approved amount.
        monotone = not approved.any() or approved[: np.flatnonzero(approved)[-1] + 1].all()
        if monotone:
            assert offer == (
                None
                if not approved.any()
                else {"loan_amnt": amounts[approved][-1], "default_probability": round(p[approved][-1], 6)}
            )
            exact_with_offer += offer is not None
        # Anywhere: approved, one unit more refused, and never below the largest approved amount k/64
        # of the one asked for.
        grid = [math.floor(record["loan_amnt"] * k / 64) for k in range(1, 64)]
        on_grid = max((a for a in grid if a > 0 and approved[a - 1]), default=None)
        if offer is None:
            assert on_grid is None
            continue
        at = int(offer["loan_amnt"]) - 1
        assert approved[at] and not approved[at + 1]
        assert offer["default_probability"] == round(p[at], 6) < scorer.threshold
        assert offer["loan_amnt"] >= (on_grid or 0)
    assert exact_with_offer >= 1


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
