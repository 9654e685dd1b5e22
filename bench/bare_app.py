"""The ceiling: a bare Litestar app on uvicorn that reads the applicant and answers a constant score.

No model, no rules, no middleware: what any Litestar + uvicorn service can serve on this machine.
bench/serve.py runs it beside cashscore and the baseline, so a throughput target can be compared
with what the framework alone allows.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, post


@post("/v1/score", status_code=200)
async def score(data: dict[str, Any]) -> dict[str, Any]:
    return {"default_probability": 0.5, "decision": "deny", "fields": len(data)}


app = Litestar([score])
