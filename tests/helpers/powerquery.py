"""The powerbi/*.pq functions re-enacted step by step in Python, against a test client.

No M engine runs outside Power BI; Microsoft's parser checks the files' syntax, and these functions
send exactly the requests the M sends, step by step (each step is named as in the .pq file), so a
change of endpoint, field, batching, typing or error handling shows here. tests/server/test_powerbi.py
checks that the M still holds each step relied on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from cashscore.features import contract

NUMBERS = [f.name for f in contract.FEATURES if f.kind == "numeric"]
CATEGORIES = [f.name for f in contract.FEATURES if f.kind == "categorical"]
# ScoreType in ScoreTable.pq, in order.
RESULT_COLUMNS = [
    "default_probability",
    "repay_probability",
    "decision",
    "risk_band",
    "reasons",
    "error",
    "model_version",
]


class MError(Exception):
    """An M `error Error.Record("cashscore", message, detail)`: what Power BI shows the user."""


def m_json(value: object) -> bytes:
    """What Json.FromValue writes: compact JSON, fields in record order, nulls kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def number_from_text(text: str, culture: str | None) -> float:
    """Number.FromText for the two cultures the tests use: en-US (1,234.5) and pt-BR (1.234,5)."""
    text = text.replace(".", "").replace(",", ".") if culture == "pt-BR" else text.replace(",", "")
    return float(text)


def to_number(value: Any, culture: str | None) -> float | None:
    """ToNumber in both .pq files."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None if isinstance(value, float) and math.isnan(value) else value
    if isinstance(value, str):
        return None if not value.strip() else number_from_text(value.strip(), culture)
    raise MError(f"not a number: {value!r}")


def _problem(response: Any) -> tuple[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return response.text, None
    if isinstance(body, dict):
        return str(body.get("detail", "")), body.get("extra")
    return response.text, None


def token_headers(client: Any, key: str | None) -> dict[str, str]:
    """Token and Headers: GET v1/token with the credential store's key as api_key (ApiKeyName)."""
    token = client.get("/v1/token", params={"api_key": key} if key else None).json()["token"]
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def score_table(
    client: Any,
    source: Callable[[], Iterable[dict[str, Any]]],
    key: str | None,
    options: dict[str, Any] | None = None,
    buffered: bool = True,
) -> list[dict[str, Any]]:
    """ScoreTable(BaseUrl, Source, Options) step by step.

    Args:
        client: the service (a Litestar TestClient).
        source: reads the source table; each call is one evaluation of `Source` in M.
        key: the key held in Power BI's credential store (None: anonymous).
        options: the Options record.
        buffered: False re-enacts the old function, which evaluated the source once for the index sent
            and once for the join (a source without a stable order gives rows other rows' scores).

    Returns:
        The source rows with the result columns, in the buffered order.
    """
    settings = options or {}
    batch_size = settings.get("BatchSize", 1000)
    reasons = settings.get("Reasons", False)
    culture = settings.get("Culture")
    language = settings.get("Language", "en")
    if not (isinstance(batch_size, int | float) and batch_size == int(batch_size) and 1 <= batch_size <= 10_000):
        raise MError("BatchSize must be a whole number from 1 to 10,000")
    if not isinstance(reasons, bool):
        raise MError("Reasons must be true or false")
    if language not in ("en", "pt"):
        raise MError('Language must be "en" or "pt"')
    # Indexed = Table.Buffer(Table.AddIndexColumn(Source, "cashscore_row", ...)): one evaluation.
    indexed = [{**row, "cashscore_row": i} for i, row in enumerate(source())]
    present = [f for f in contract.NAMES if indexed and f in indexed[0]]
    # Inputs, AsNumbers, AsTexts, Renamed.
    renamed = []
    for row in indexed:
        record: dict[str, Any] = {}
        for name in present:
            value = row[name]
            if name in NUMBERS:
                record[name] = to_number(value, culture)
            else:
                record[name] = None if value is None else str(value)
        record["id"] = row["cashscore_row"]
        renamed.append(record)
    batches = [renamed[i : i + int(batch_size)] for i in range(0, len(renamed), int(batch_size))]
    results: list[dict[str, Any]] = []
    headers: dict[str, str] | None = None
    for number, batch in enumerate(batches):
        headers = headers or token_headers(client, key)  # M evaluates Token lazily: not for an empty source
        response = client.post(
            "/v1/score/batch",
            params={"reasons": "true" if reasons else "false", "lang": language},
            content=m_json(batch),
            headers=headers,
        )
        if response.status_code != 200:
            detail, extra = _problem(response)
            rows = f"rows {min(r['id'] for r in batch)}-{max(r['id'] for r in batch)}"
            raise MError(f"batch {number + 1} ({rows}): HTTP {response.status_code}: {detail} {extra or ''}".strip())
        results += response.json()["results"]
    scores = {}
    for r in results:
        if r["ok"]:
            s = r["score"]
            words = "; ".join(x["text"] for x in s["reasons"]) if reasons else None
            values = [s["default_probability"], s["probabilities"]["repay"], s["decision"], s["risk_band"], words]
            scores[r["id"]] = [*values, None, s["model_version"]]
        else:
            scores[r["id"]] = [None, None, "rejected", None, None, r["error"], None]
    # Joined (left outer on cashscore_row) and Ordered; the old function read the source again here.
    joined_rows = indexed if buffered else [{**row, "cashscore_row": i} for i, row in enumerate(source())]
    out = []
    for row in joined_rows:
        found = scores.get(row["cashscore_row"], [None] * len(RESULT_COLUMNS))
        values = {k: v for k, v in row.items() if k != "cashscore_row"}
        out.append(values | dict(zip(RESULT_COLUMNS, found, strict=True)))
    return out


def score_applicant(
    client: Any, key: str | None, fields: dict[str, Any], culture: str | None = None, language: str | None = None
) -> dict:
    """ScoreApplicant(BaseUrl, ...) step by step: one row as a record."""
    if language not in (None, "en", "pt"):
        raise MError('Language must be "en" or "pt"')
    applicant = {
        name: to_number(fields.get(name), culture) if name in NUMBERS else fields.get(name) for name in contract.NAMES
    }
    response = client.post(
        "/v1/score",
        params={"counter_offer": "true", "lang": language or "en"},
        content=m_json(applicant),
        headers=token_headers(client, key),
    )
    if response.status_code != 200:
        detail, extra = _problem(response)
        words = "".join(f"; {e.get('key', '')}: {e.get('message', '')}" for e in extra or [])
        raise MError(f"HTTP {response.status_code}: {detail}{words}")
    body = response.json()
    offer = body["counter_offer"]
    return {
        "decision": body["decision"],
        "default_probability": body["probabilities"]["default"],
        "repay_probability": body["probabilities"]["repay"],
        "risk_band": body["risk_band"],
        "threshold": body["threshold"],
        "reasons": "; ".join(r["text"] for r in body["reasons"]),
        "counter_offer_amount": None if offer is None else offer["loan_amnt"],
        "counter_offer_probability": None if offer is None else offer["default_probability"],
        "model_version": body["model_version"],
    }
