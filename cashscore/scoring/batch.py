"""Score whole DuckDB relations: vectorised rules, onnxruntime, rejects, atomic files, DuckDB UDFs."""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.func import FunctionNullHandling, PythonUDFType

from cashscore.core import sqlnames
from cashscore.core.errors import CashscoreError
from cashscore.features import contract, rules
from cashscore.scoring import reasons as reasons_module
from cashscore.scoring.scorer import Scorer, Scores, band_array, bands, inputs_records

REASONS = ("all", "deny", "none")
CHUNK = 100_000
# Without CASHSCORE_STREAM_MEMORY, DuckDB's block cache may grow by this much beyond what the query
# holds when its first rows arrive (see `open_reader`).
CACHE_HEADROOM = 64 * 2**20
# Runs the model on the next chunk while the caller's thread finishes the previous one.
_AHEAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cashscore-ahead")


@dataclass
class Outcome:
    """What a streamed scoring run did."""

    scored: int
    rejected: int
    seconds: float


@dataclass
class Chunk:
    """One chunk of input rows after the contract's rules: the rows kept, their cleaned columns, and
    the rejected rows with their `reject_reason` (None when every row passed)."""

    kept: pa.RecordBatch
    good: dict[str, np.ndarray]
    ok: np.ndarray
    rejected: pa.Table | None


def split_chunk(batch: pa.RecordBatch) -> Chunk:
    """Apply the contract's rules to a chunk's columns and split the rows they reject from the rest."""
    names = batch.schema.names
    columns = {name: batch.column(name).to_numpy(zero_copy_only=False) for name in contract.NAMES if name in names}
    cleaned, problems = rules.clean_columns(columns, batch.num_rows)
    ok = problems == None  # noqa: E711
    rejected = None
    if (~ok).any():
        bad = pa.Table.from_batches([batch.filter(pa.array(~ok))])
        rejected = bad.append_column("reject_reason", pa.array(problems[~ok].tolist(), pa.string()))
    good = {k: v[ok] for k, v in cleaned.items()}
    return Chunk(batch.filter(pa.array(ok)), good, ok, rejected)


def decide_chunk(
    scorer: Scorer,
    chunk: Chunk,
    scores: Scores,
    reasons: str,
    counter_offer: bool,
    language: str = "en",
    lists: bool = False,
) -> tuple[pa.Table, list[Any] | None, np.ndarray]:
    """The kept rows with the columns `cashscore score` adds: default_probability, decision,
    risk_band, reasons (worded in `language`), model_version (and the counter-offer's two).

    Returns:
        (the table, with `lists` each row's reasons as a list (None when none were asked for),
        which rows were explained).
    """
    p = scores.p
    deny = p >= scorer.threshold
    which = {"all": np.ones(len(p), bool), "deny": deny, "none": np.zeros(len(p), bool)}[reasons]
    words = None
    if not which.any():
        texts = pa.repeat(pa.scalar("", pa.string()), len(p))
    elif lists:
        words = scorer.reason_lists(chunk.good, scores, which, language)
        texts = reasons_module.joined(words)
    else:
        texts = scorer.reason_texts(chunk.good, scores, which, language)
    table = pa.Table.from_batches([chunk.kept])
    for name, values in (
        ("default_probability", pa.array(p, pa.float64())),
        ("decision", pc.if_else(pa.array(deny), "deny", "approve")),
        ("risk_band", band_array(p)),
        ("reasons", texts),
        ("model_version", pa.repeat(scorer.version, len(p))),
    ):
        table = table.append_column(name, values)
    if counter_offer:
        offers = scorer.counter_offers(chunk.good, scores, deny)
        amounts = [o["loan_amnt"] if o else None for o in offers]
        probabilities = [o["default_probability"] if o else None for o in offers]
        table = table.append_column("counter_offer_amount", pa.array(amounts, pa.float64()))
        table = table.append_column("counter_offer_probability", pa.array(probabilities, pa.float64()))
    return table, words, which


def open_reader(con: duckdb.DuckDBPyConnection, query: str, bound_cache: bool = False) -> pa.RecordBatchReader:
    """The query's rows as a stream of Arrow chunks of CHUNK rows, checked to hold the required fields.

    Args:
        con: the database.
        query: the rows.
        bound_cache: once the first rows arrive, limit DuckDB's memory to what it holds then plus
            CACHE_HEADROOM, until the last (for a connection opened without a memory limit). DuckDB keeps every
            block it reads cached up to its limit, 80 % of RAM by default, so a pass over a large
            table would otherwise grow with the table. By the first rows, every join's hash table
            and every sort is built (DuckDB runs those pipelines before the one that streams), so
            the query keeps the memory it needed; only the cache of blocks read since is bounded.

    Raises:
        CashscoreError: on SQL DuckDB rejects or a result lacking a required column.
    """
    try:
        reader = con.sql(query).to_arrow_reader(CHUNK)
    except duckdb.Error as exc:
        raise CashscoreError(f"the query failed: {str(exc).splitlines()[0]}") from None
    names = reader.schema.names
    missing = [n for n in contract.REQUIRED if n not in names]
    if missing:
        raise CashscoreError(f"the rows lack required column(s) {', '.join(missing)}; have {', '.join(names)}")
    if not bound_cache:
        return reader
    return pa.RecordBatchReader.from_batches(reader.schema, _bounding(con, reader))


def _bounding(con: duckdb.DuckDBPyConnection, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The reader's chunks; from the first to the last, DuckDB's memory limit is what it holds when
    the first arrives plus CACHE_HEADROOM, then DuckDB's default again (the connection had no limit)."""
    chunks = iter(reader)
    first = next(chunks, None)
    if first is None:
        return
    # Another cursor of the same database: the streaming query stays open on `con`.
    with con.cursor() as cursor:
        held = cursor.execute("select sum(memory_usage_bytes) from duckdb_memory()").fetchall()[0][0] or 0
        cursor.execute(f"set memory_limit = '{(int(held) + CACHE_HEADROOM) // 2**20}MB'")  # a number, never text
        try:
            yield first
            yield from chunks
        finally:
            # A run that failed may have closed the connection before the reader lets go of this.
            with contextlib.suppress(duckdb.Error):
                cursor.execute("reset memory_limit")


def _read(reader: pa.RecordBatchReader, counts: dict[str, int]) -> Iterator[pa.RecordBatch]:
    """The reader's rows in chunks of CHUNK rows (the last one shorter).

    DuckDB hands out the rest of each row group (122,880 rows) as a chunk of its own: a short chunk
    ran on the cores while this thread still worded and wrote the long one before it, and the cores
    waited. Even chunks keep the model busy (1M rows, median of 3: --reasons none 3 % faster,
    deny 2 %).
    """

    def joined(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
        return pa.concat_batches(parts) if len(parts) > 1 else parts[0]  # one part: no copy

    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in _batches(reader, counts):
        pending.append(batch)
        held += batch.num_rows
        while held >= CHUNK:
            whole = joined(pending)
            yield whole.slice(0, CHUNK)
            rest = whole.slice(CHUNK)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows
    if held:
        yield joined(pending)


def _batches(reader: pa.RecordBatchReader, counts: dict[str, int]) -> Iterator[pa.RecordBatch]:
    """The reader's chunks; a query that fails part way (a cast on row 900,000) is the user's SQL.

    DuckDB's error reaches here through Arrow's stream as an OSError, not a duckdb.Error.
    """
    chunks = iter(reader)
    while True:
        try:
            batch = next(chunks)
        except StopIteration:
            return
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            message = str(exc).strip().splitlines()[0]
            raise CashscoreError(f"the query failed after {counts['done']:,} rows: {message}") from None
        yield batch


def score_relation(
    con: duckdb.DuckDBPyConnection,
    scorer: Scorer,
    query: str,
    on_scored: Callable[[pa.Table], None],
    on_rejected: Callable[[pa.Table], None] | None = None,
    reasons: str = "deny",
    progress: Callable[[int], None] | None = None,
    counter_offer: bool = False,
    on_decided: Callable[[pa.Table, list[Any], list[list[str] | None]], None] | None = None,
    language: str = "en",
    bound_cache: bool = False,
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
        on_decided: receives each scored chunk (before `on_scored`) with the cleaned values the
            model saw and each row's reasons (None where none were asked for): the decision log.
        language: the reasons' words, one of reasons.LANGUAGES.
        bound_cache: bound DuckDB's block cache once the rows flow (`open_reader`).

    Returns:
        Rows scored and rejected, and the time taken; memory holds one chunk at a time.

    Raises:
        CashscoreError: on SQL DuckDB rejects or a result lacking a required column.
    """
    started = time.perf_counter()
    reader = open_reader(con, query, bound_cache)
    counts = {"scored": 0, "rejected": 0, "done": 0}
    # Explaining refusals needs their contributions; one pass over every row with them costs less
    # than a plain pass plus a second one over the refused rows once a fifth or more are refused.
    detail = reasons != "none"

    def prepare(batch: pa.RecordBatch) -> tuple[Chunk, Future]:
        chunk = split_chunk(batch)
        if chunk.rejected is not None:
            counts["rejected"] += chunk.rejected.num_rows
            if on_rejected is not None:
                on_rejected(chunk.rejected)
        return chunk, _AHEAD.submit(scorer.evaluate, chunk.good, detail)

    def finish(chunk: Chunk, running: Future) -> None:
        logged = on_decided is not None
        table, lists, which = decide_chunk(scorer, chunk, running.result(), reasons, counter_offer, language, logged)
        if on_decided is not None and table.num_rows:
            asked = which.tolist()
            n = table.num_rows
            why: list[list[str] | None] = [None] * n
            if lists is not None:
                why = [lists[i] if asked[i] else None for i in range(n)]
            on_decided(table, inputs_records(chunk.good), why)
        if table.num_rows:
            on_scored(table)
        counts["scored"] += table.num_rows
        counts["done"] += len(chunk.ok)
        if progress:
            progress(counts["done"])

    # The model scores one chunk (on both cores, without the GIL) while this thread reads, cleans,
    # words and writes its neighbours: at most two chunks are held at once.
    pending = None
    for batch in _read(reader, counts):
        ahead = prepare(batch)
        if pending is not None:
            finish(*pending)
        pending = ahead
    if pending is not None:
        finish(*pending)
    scored, rejected = counts["scored"], counts["rejected"]
    return Outcome(scored, rejected, time.perf_counter() - started)


def register_udfs(con: duckdb.DuckDBPyConnection, scorer: Scorer) -> None:
    """Register the SQL functions: vectorised Arrow UDFs over onnxruntime with the server's rules.

    - `score_default(...)` and `score_decision(...)`: the probability of default and the decision;
    - `score(...)`: one struct with default_probability, decision, risk_band, reasons (a list of
      words, as the API's `text`s), base_log_odds and contributions (a struct with one field per
      feature), so one pass gives everything;
      `score_pt(...)` the same with the reasons in Portuguese;
    - `score_model_version()`: the version that scores, to keep beside the scores an analyst stores.

    Each takes either the 11 contract fields in contract order or a whole row (`score(a)` for
    `from marts.applicants a`). A row the server would reject (missing required field, value out
    of range, unknown category) gives NULL.
    """
    double, varchar = duckdb.sqltypes.DOUBLE, duckdb.sqltypes.VARCHAR
    types: list[Any] = [double if f.kind == "numeric" else varchar for f in contract.FEATURES]
    by_feature = duckdb.struct_type({name: double for name in contract.NAMES})
    everything = duckdb.struct_type(
        {
            "default_probability": double,
            "decision": varchar,
            "risk_band": varchar,
            "reasons": duckdb.list_type(varchar),
            "base_log_odds": double,
            "contributions": by_feature,
        }
    )

    def _scored(*arrays: pa.Array, detail: bool = False) -> tuple[dict[str, np.ndarray], Scores, np.ndarray]:
        arrays = tuple(a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays)
        columns = {f.name: a.to_numpy(zero_copy_only=False) for f, a in zip(contract.FEATURES, arrays, strict=True)}
        cleaned, problems, scores = scorer.clean_and_evaluate(columns, len(arrays[0]), detail=detail)
        return cleaned, scores, problems == None  # noqa: E711

    def score_default(*arrays: pa.Array) -> pa.Array:
        _, scores, ok = _scored(*arrays)
        return pa.array(scores.p, pa.float64(), mask=~ok)

    def score_decision(*arrays: pa.Array) -> pa.Array:
        _, scores, ok = _scored(*arrays)
        return pa.array(scorer.decisions(scores.p).tolist(), pa.string(), mask=~ok)

    def score_all(*arrays: pa.Array, language: str = "en") -> pa.Array:
        cleaned, scores, ok = _scored(*arrays, detail=True)
        words = scorer.reason_list_column(cleaned, scores, ok, language)
        contributions = pa.StructArray.from_arrays(
            [pa.array(scores.contributions[:, k], pa.float64()) for k in range(len(contract.NAMES))],
            names=list(contract.NAMES),
        )
        fields = [
            pa.array(scores.p, pa.float64()),
            pa.array(scorer.decisions(scores.p).tolist(), pa.string()),
            pa.array(bands(np.nan_to_num(scores.p)).tolist(), pa.string()),
            words,
            pa.array(scores.base, pa.float64()),
            contributions,
        ]
        names = ["default_probability", "decision", "risk_band", "reasons", "base_log_odds", "contributions"]
        return pa.StructArray.from_arrays(fields, names=names, mask=pa.array(~ok))

    def score_all_pt(*arrays: pa.Array) -> pa.Array:
        return score_all(*arrays, language="pt")

    # DuckDB counts the Python function's parameters: give each UDF one per contract field.
    signature = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in contract.NAMES]
    )
    fields = ", ".join(contract.NAMES)
    from_row = ", ".join(f"row.{sqlnames.quote(name)}" for name in contract.NAMES)
    for name, fn, result in (
        ("score_default", score_default, double),
        ("score_decision", score_decision, varchar),
        ("score", score_all, everything),
        ("score_pt", score_all_pt, everything),
    ):
        fn.__signature__ = signature  # type: ignore[attr-defined]
        internal = f"cashscore_{name}"
        con.create_function(
            internal, fn, types, result, type=PythonUDFType.ARROW, null_handling=FunctionNullHandling.SPECIAL
        )
        # One name, two forms: the 11 fields, or a whole row (a table alias is a struct of its columns).
        con.execute(
            f"create or replace temp macro {name}(row) as {internal}({from_row}), ({fields}) as {internal}({fields})"
        )
    version = scorer.version
    con.create_function("score_model_version", lambda: version, [], varchar, side_effects=False)


# DuckDB's words when a score function is called the wrong way: its macro with other arguments than
# a row or the 11 fields, or a row without one of the contract's columns.
_WRONG_ARGUMENTS = re.compile(r"Macro (score(?:_default|_decision|_pt)?)\(\) does not support the supplied arguments")
_ROW_WITHOUT = re.compile(r'Could not find key "([a-z_]+)" in struct')


def misuse_hint(message: str) -> str | None:
    """How to call the score functions, when DuckDB's error says one was called the wrong way."""
    wrong = _WRONG_ARGUMENTS.search(message)
    if wrong:
        name = wrong.group(1)
        return (
            f"{name} takes a whole row, as in `select {name}(a) from marts.applicants a`, "
            f"or the {len(contract.NAMES)} contract fields in this order: {', '.join(contract.NAMES)}"
        )
    missing = _ROW_WITHOUT.search(message)
    if missing and missing.group(1) in contract.NAMES:
        return (
            f"a row given to a score function needs the contract's columns by name, and this one has no "
            f"{missing.group(1)}; marts.applicants has all {len(contract.NAMES)}, "
            "pt.applicants names them in Portuguese"
        )
    return None


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal or the run is long)."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.started = time.perf_counter()
        # The bar's line is open: a message printed now needs a line of its own.
        self.open = False

    def __call__(self, done: int) -> None:
        total = self.total
        elapsed = time.perf_counter() - self.started
        if elapsed < 1 and not sys.stderr.isatty():
            return
        if total:
            filled = int(30 * done / total)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\r[{bar}] {done:,}/{total:,} rows, {done / max(elapsed, 1e-9):,.0f} rows/s")
        else:
            sys.stderr.write(f"\r{done:,} rows, {done / max(elapsed, 1e-9):,.0f} rows/s")
        self.open = True
        if total and done >= total:
            sys.stderr.write("\n")
            self.open = False
        sys.stderr.flush()

    def close(self) -> None:
        """End the bar's line, if it is open."""
        if self.open:
            sys.stderr.write("\n")
            self.open = False
