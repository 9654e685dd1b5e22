"""Export a period of the decision log to Parquet, one row per decision, for analysis in DuckDB."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cashscore.audit import log
from cashscore.core.atomic import write_atomic
from cashscore.features import contract

CHUNK = 50_000
SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("request_id", pa.string()),
        ("channel", pa.string()),
        ("id", pa.string()),
        ("model_version", pa.string()),
        ("threshold", pa.float64()),
        *[(f.name, pa.float64() if f.kind == "numeric" else pa.string()) for f in contract.FEATURES],
        ("default_probability", pa.float64()),
        ("decision", pa.string()),
        ("reasons", pa.string()),
        # The reasons' language (en or pt) and the counter-offer, when one was given.
        ("language", pa.string()),
        ("counter_offer_amount", pa.float64()),
        ("counter_offer_probability", pa.float64()),
        ("hash", pa.string()),
    ]
)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    inputs = record.get("input") or {}
    why = record.get("reasons")
    row_id = record.get("id")
    offer = record.get("counter_offer")
    offer = offer if isinstance(offer, dict) else {}
    return {
        "seq": record.get("seq"),
        "time": _time(record.get("time")),
        "request_id": record.get("request_id"),
        "channel": record.get("channel"),
        "id": None if row_id is None else str(row_id),
        "model_version": record.get("model_version"),
        "threshold": record.get("threshold"),
        **{name: inputs.get(name) for name in contract.NAMES},
        "default_probability": record.get("default_probability"),
        "decision": record.get("decision"),
        "reasons": None if why is None else " | ".join(why),
        "language": None if why is None else record.get("language", "en"),
        "counter_offer_amount": offer.get("loan_amnt"),
        "counter_offer_probability": offer.get("default_probability"),
        "hash": record.get("hash"),
    }


def export(folder: Path, out: Path, since: str | None = None, until: str | None = None) -> int:
    """Write the records whose time is in [since, until) (ISO dates or times, UTC) to a Parquet file.

    Returns:
        The number of records written. The file appears whole, or not at all.
    """
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with pq.ParquetWriter(tmp, SCHEMA) as writer:
            rows: list[dict[str, Any]] = []
            for _, _, record in log.records_in(_months(folder, since, until)):
                time = str(record.get("time", ""))
                if (since and time < since) or (until and time >= until):
                    continue
                rows.append(_row(record))
                if len(rows) >= CHUNK:
                    writer.write_table(_table(rows))
                    count += len(rows)
                    rows = []
            if rows:
                writer.write_table(_table(rows))
                count += len(rows)

    write_atomic(out, write)
    return count


def _months(folder: Path, since: str | None, until: str | None) -> list[Path]:
    """The segments whose month can hold a time in [since, until): a month's export reads that
    month, not the 25 the log keeps (a record filed under another month fails `audit verify`)."""
    first = log.segment_name(since) if since else None
    last = log.segment_name(until) if until else None
    # Segment names sort as their months do.
    return [p for p in log.segments(folder) if (not first or p.name >= first) and (not last or p.name <= last)]


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table([pa.array([r[f.name] for r in rows], f.type) for f in SCHEMA], schema=SCHEMA)
