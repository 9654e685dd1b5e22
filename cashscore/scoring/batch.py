"""Score whole DuckDB relations: vectorised rules, onnxruntime, rejects, atomic files, DuckDB UDFs."""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from cashscore.core.errors import CashscoreError
from cashscore.features import contract, rules
from cashscore.scoring.scorer import Scorer, Scores, bands

REASONS = ("all", "deny", "none")
CHUNK = 100_000


def score_columns(scorer: Scorer, columns: dict[str, Any], n: int) -> tuple[dict[str, np.ndarray], np.ndarray, Scores]:
    """The contract's rules on whole columns, then the model on the rows they accept.

    Returns:
        (cleaned columns, per-row rejection reason or None, the model's outputs: NaN where rejected).
    """
    cleaned, problems = rules.clean_columns(columns, n)
    ok = problems == None  # noqa: E711
    scores = Scores(np.full(n, np.nan), np.full((n, len(contract.NAMES)), np.nan), np.full(n, np.nan))
    if ok.any():
        good = scorer.evaluate({k: v[ok] for k, v in cleaned.items()})
        scores.p[ok], scores.contributions[ok], scores.base[ok] = good.p, good.contributions, good.base
    return cleaned, problems, scores


def reason_texts(scorer: Scorer, cleaned: dict[str, np.ndarray], scores: Scores, which: np.ndarray) -> np.ndarray:
    """The server's reasons, joined as text, for the rows in `which` ("" elsewhere)."""
    explained = scorer.explain(cleaned, scores, which)
    return np.array([" | ".join(r["text"] for r in why) for why in explained], dtype=object)


@dataclass
class Outcome:
    """What a streamed scoring run did."""

    scored: int
    rejected: int
    seconds: float


def score_relation(
    con: duckdb.DuckDBPyConnection,
    scorer: Scorer,
    query: str,
    on_scored: Callable[[pa.Table], None],
    on_rejected: Callable[[pa.Table], None] | None = None,
    reasons: str = "deny",
    progress: Callable[[int], None] | None = None,
    counter_offer: bool = False,
) -> Outcome:
    """Score every row a query returns, chunk by chunk, handing each chunk on as soon as it is scored.

    Args:
        con: the database.
        scorer: the verified model.
        query: a SELECT whose columns include the contract's fields (extra columns are kept).
        on_scored: receives each chunk of scored rows: the input columns, then default_probability,
            decision, risk_band, reasons, model_version.
        on_rejected: receives each chunk of rejected rows: the input columns, then reject_reason.
        reasons: explain all rows, only denied ones (default: what an adverse-action notice needs), or none.
        progress: called with the number of rows done after each chunk.
        counter_offer: add counter_offer_amount and counter_offer_probability for refused rows.

    Returns:
        Rows scored and rejected, and the time taken; memory holds one chunk at a time.

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
    scored = rejected = done = 0
    for batch in reader:
        n = batch.num_rows
        columns = {name: batch.column(name).to_numpy(zero_copy_only=False) for name in contract.NAMES if name in names}
        cleaned, problems, all_scores = score_columns(scorer, columns, n)
        ok = problems == None  # noqa: E711
        if (~ok).any():
            rejected += int((~ok).sum())
            if on_rejected is not None:
                bad = pa.Table.from_batches([batch.filter(pa.array(~ok))])
                on_rejected(bad.append_column("reject_reason", pa.array(problems[~ok].tolist(), pa.string())))
        good = {k: v[ok] for k, v in cleaned.items()}
        kept = Scores(all_scores.p[ok], all_scores.contributions[ok], all_scores.base[ok])
        p = kept.p
        decisions = scorer.decisions(p)
        which = {"all": np.ones(len(p), bool), "deny": decisions == "deny", "none": np.zeros(len(p), bool)}[reasons]
        table = pa.Table.from_batches([batch.filter(pa.array(ok))])
        for name, values in (
            ("default_probability", pa.array(p, pa.float64())),
            ("decision", pa.array(decisions.tolist(), pa.string())),
            ("risk_band", pa.array(bands(p).tolist(), pa.string())),
            ("reasons", pa.array(reason_texts(scorer, good, kept, which).tolist(), pa.string())),
            ("model_version", pa.array([scorer.version] * len(p), pa.string())),
        ):
            table = table.append_column(name, values)
        if counter_offer:
            offers = scorer.counter_offers(good, kept, decisions == "deny")
            amounts = [o["loan_amnt"] if o else None for o in offers]
            probabilities = [o["default_probability"] if o else None for o in offers]
            table = table.append_column("counter_offer_amount", pa.array(amounts, pa.float64()))
            table = table.append_column("counter_offer_probability", pa.array(probabilities, pa.float64()))
        if table.num_rows:
            on_scored(table)
        scored += table.num_rows
        done += n
        if progress:
            progress(done)
    return Outcome(scored, rejected, time.perf_counter() - started)


def register_udfs(con: duckdb.DuckDBPyConnection, scorer: Scorer) -> None:
    """Register score_default(...) and score_decision(...): vectorised Arrow UDFs over onnxruntime.

    Both take the 11 contract fields in contract order and apply the server's rules; a row the
    server would reject (missing required field, value out of range, unknown category) gives NULL.
    """
    types = [duckdb.sqltypes.DOUBLE if f.kind == "numeric" else duckdb.sqltypes.VARCHAR for f in contract.FEATURES]

    def _probabilities(*arrays: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        columns = {f.name: a.to_numpy(zero_copy_only=False) for f, a in zip(contract.FEATURES, arrays, strict=True)}
        _, problems, scores = score_columns(scorer, columns, len(arrays[0]))
        p = scores.p
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
