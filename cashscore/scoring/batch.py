"""Score whole DuckDB relations: vectorised rules, onnxruntime, rejects, atomic files, DuckDB UDFs."""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from cashscore.core import sqlnames
from cashscore.core.errors import CashscoreError
from cashscore.features import contract, rules
from cashscore.scoring.scorer import Scorer, bands
from cashscore.warehouse.export import copy_to

REASONS = ("all", "deny", "none")
CHUNK = 100_000


def score_columns(
    scorer: Scorer, columns: dict[str, Any], n: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The contract's rules on whole columns, then the model on the rows they accept.

    Returns:
        (cleaned columns, per-row rejection reason or None, probability of default: NaN where rejected).
    """
    cleaned, problems = rules.clean_columns(columns, n)
    ok = problems == None  # noqa: E711
    p = np.full(n, np.nan)
    if ok.any():
        p[ok] = scorer.probabilities({k: v[ok] for k, v in cleaned.items()})
    return cleaned, problems, p


def reason_texts(scorer: Scorer, cleaned: dict[str, np.ndarray], p: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The server's reasons, joined as text, for the rows in `which` ("" elsewhere)."""
    return np.array([" | ".join(r["text"] for r in why) for why in scorer.explain(cleaned, p, which)], dtype=object)


@dataclass
class Outcome:
    scored: pa.Table
    rejects: pa.Table
    seconds: float


def score_relation(
    con: duckdb.DuckDBPyConnection,
    scorer: Scorer,
    query: str,
    reasons: str = "deny",
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Score every row a query returns.

    Args:
        con: the database.
        scorer: the verified model.
        query: a SELECT whose columns include the contract's fields (extra columns are kept).
        reasons: explain all rows, only denied ones (default: what an adverse-action notice needs), or none.
        progress: called with the number of rows done after each chunk.

    Returns:
        The scored rows (input columns, then default_probability, decision, risk_band, reasons,
        model_version) and the rejected rows (input columns, then reject_reason).

    Raises:
        CashscoreError: on SQL DuckDB rejects or a result lacking a required column.
    """
    started = time.perf_counter()
    try:
        reader = con.sql(query).to_arrow_reader(CHUNK)
    except duckdb.Error as exc:
        raise CashscoreError(f"the query failed: {str(exc).splitlines()[0]}") from None
    names = reader.schema.names
    missing = [n for n in contract.REQUIRED if n not in names]
    if missing:
        raise CashscoreError(f"the rows lack required column(s) {', '.join(missing)}; have {', '.join(names)}")
    scored, rejected, done = [], [], 0
    for batch in reader:
        n = batch.num_rows
        columns = {name: batch.column(name).to_numpy(zero_copy_only=False) for name in contract.NAMES if name in names}
        cleaned, problems, p_all = score_columns(scorer, columns, n)
        ok = problems == None  # noqa: E711
        if (~ok).any():
            bad = batch.filter(pa.array(~ok))
            rejected.append(bad.append_column("reject_reason", pa.array(problems[~ok].tolist(), pa.string())))
        good = {k: v[ok] for k, v in cleaned.items()}
        p = p_all[ok]
        decisions = scorer.decisions(p)
        which = {"all": np.ones(len(p), bool), "deny": decisions == "deny", "none": np.zeros(len(p), bool)}[reasons]
        table = pa.Table.from_batches([batch.filter(pa.array(ok))])
        for name, values in (
            ("default_probability", pa.array(p, pa.float64())),
            ("decision", pa.array(decisions.tolist(), pa.string())),
            ("risk_band", pa.array(bands(p).tolist(), pa.string())),
            ("reasons", pa.array(reason_texts(scorer, good, p, which).tolist(), pa.string())),
            ("model_version", pa.array([scorer.version] * len(p), pa.string())),
        ):
            table = table.append_column(name, values)
        scored.append(table)
        done += n
        if progress:
            progress(done)
    scored_table = pa.concat_tables(scored) if scored else pa.table({})
    rejects = pa.Table.from_batches(rejected) if rejected else pa.table({})
    return Outcome(scored_table, rejects, time.perf_counter() - started)


def write(con: duckdb.DuckDBPyConnection, table: pa.Table, out: Path) -> None:
    """Write an Arrow table as CSV, Parquet or JSON (by extension), atomically."""
    con.register("cashscore_out", table)
    try:
        copy_to(con, "select * from cashscore_out", out)
    finally:
        con.unregister("cashscore_out")


def store(con: duckdb.DuckDBPyConnection, table: pa.Table, name: str) -> str:
    """Store scores in the database as schema `scores`, with the scoring time, in one transaction."""
    sqlnames.plain_name(name, "--into")
    target = sqlnames.qualified("scores", name)
    con.execute("begin transaction")
    try:
        con.execute("create schema if not exists scores")
        con.register("cashscore_out", table)
        con.execute(
            f"create or replace table {target} as select *, ?::timestamptz as scored_at from cashscore_out",
            [datetime.now(UTC)],
        )
        con.unregister("cashscore_out")
        con.execute("commit")
    except duckdb.Error as exc:
        con.execute("rollback")
        raise CashscoreError(f"--into {name}: {str(exc).splitlines()[0]}") from None
    return f"scores.{name}"


def register_udfs(con: duckdb.DuckDBPyConnection, scorer: Scorer) -> None:
    """Register score_default(...) and score_decision(...): vectorised Arrow UDFs over onnxruntime.

    Both take the 11 contract fields in contract order and apply the server's rules; a row the
    server would reject (missing required field, value out of range, unknown category) gives NULL.
    """
    types = [duckdb.sqltypes.DOUBLE if f.kind == "numeric" else duckdb.sqltypes.VARCHAR for f in contract.FEATURES]

    def _probabilities(*arrays: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        columns = {f.name: a.to_numpy(zero_copy_only=False) for f, a in zip(contract.FEATURES, arrays, strict=True)}
        _, problems, p = score_columns(scorer, columns, len(arrays[0]))
        return p, problems == None  # noqa: E711

    def score_default(*arrays: pa.Array) -> pa.Array:
        p, ok = _probabilities(*arrays)
        return pa.array(p, pa.float64(), mask=~ok)

    def score_decision(*arrays: pa.Array) -> pa.Array:
        p, ok = _probabilities(*arrays)
        return pa.array(scorer.decisions(p).tolist(), pa.string(), mask=~ok)

    # DuckDB counts the Python function's parameters: give each UDF one per contract field.
    signature = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in contract.NAMES]
    )
    for name, fn, result in (
        ("score_default", score_default, duckdb.sqltypes.DOUBLE),
        ("score_decision", score_decision, duckdb.sqltypes.VARCHAR),
    ):
        fn.__signature__ = signature  # type: ignore[attr-defined]
        con.create_function(name, fn, types, result, type="arrow", null_handling="special", side_effects=False)


def progress_printer(total: int | None) -> Callable[[int], None]:
    """A one-line progress bar on stderr (only when it is a terminal or the run is long)."""
    started = time.perf_counter()

    def show(done: int) -> None:
        elapsed = time.perf_counter() - started
        if elapsed < 1 and not sys.stderr.isatty():
            return
        if total:
            filled = int(30 * done / total)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\r[{bar}] {done:,}/{total:,} rows, {done / max(elapsed, 1e-9):,.0f} rows/s")
        else:
            sys.stderr.write(f"\r{done:,} rows, {done / max(elapsed, 1e-9):,.0f} rows/s")
        if total and done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show
