"""Ceilings: bare Litestar apps on uvicorn, without cashscore's edge, guards, schemas or metrics.

`/v1/score` reads the applicant and answers a constant: what any Litestar + uvicorn service can
serve on this machine. `/v1/score-model` answers `Scorer.score` for it (the model folder in
BARE_MODELS), one call per request: what scoring each request alone leaves of that (cashscore
scores the requests read in the same turn of its event loop in one call, server/gather.py).
bench/serve.py runs them beside cashscore and the baseline, so a throughput target can be set
against what the framework allows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from litestar import Litestar, post

from cashscore.artefact import store
from cashscore.scoring.scorer import Scorer

SCORER = Scorer(store.load_verified(Path(os.environ["BARE_MODELS"])))


@post("/v1/score", status_code=200)
async def score(data: dict[str, Any]) -> dict[str, Any]:
    return {"default_probability": 0.5, "decision": "deny", "fields": len(data)}


@post("/v1/score-model", status_code=200)
async def score_model(data: dict[str, Any]) -> dict[str, Any]:
    return SCORER.score([data])[0]._asdict()


app = Litestar([score, score_model])
