"""Export the applicants mart as CSV or Parquet, written atomically."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb

from cashscore.core import config
from cashscore.core.atomic import write_atomic
from cashscore.core.errors import CashscoreError
from cashscore.warehouse import views

# Every file cashscore writes from DuckDB, by extension; `export` writes the first two.
FORMATS = {
    ".csv": "(format csv, header true)",
    ".parquet": "(format parquet, compression zstd)",
    ".json": "(format json, array true)",
}
EXPORT_FORMATS = (".csv", ".parquet")


def format_clause(out: Path, allowed: tuple[str, ...] = tuple(FORMATS)) -> str:
    """DuckDB's COPY options for the format `out`'s extension names.

    Raises:
        CashscoreError: on an extension outside `allowed`.
    """
    if out.suffix.lower() not in allowed:
        raise CashscoreError(f"{out}: unknown output format; use one of {', '.join(allowed)}")
    return FORMATS[out.suffix.lower()]


def copy_to(con: duckdb.DuckDBPyConnection, query: str, out: Path, allowed: tuple[str, ...] = tuple(FORMATS)) -> None:
    """Write a query's rows to `out` (format by extension), atomically.

    Args:
        con: the database connection.
        query: the SELECT to write.
        out: the file, replaced only once complete.
        allowed: the extensions accepted.

    Raises:
        CashscoreError: on an unknown extension, or when DuckDB fails while writing.
    """
    fmt = format_clause(out, allowed)

    def write(tmp: Path) -> None:
        quoted = str(tmp).replace("'", "''")
        con.execute(f"copy ({query}) to '{quoted}' {fmt}")

    try:
        write_atomic(out, write)
    except duckdb.Error as exc:
        # A failure while rows are written (a full disk, a row the query cannot compute): a message, not a
        # traceback, and the old file as it was (write_atomic renames only a complete file).
        raise CashscoreError(f"{out}: writing failed, the old file is kept: {str(exc).splitlines()[0]}") from None


# What a restore builds from the dump. Every table elsewhere is carried into the restored database,
# since no dump holds it: drift and fairness over time (monitoring), each model version's held-out
# evaluation the dashboard draws (model_eval: written by training, which the nightly job never
# reruns), stored scores, and an analyst's own tables and views (warehouse/carry.py).
REBUILT_SCHEMAS = ("raw", "ref", *views.LAYERS)
# The schemas a cashscore database holds; a database file may not be named after one.
SCHEMAS = (*REBUILT_SCHEMAS, "scores", "monitoring", "model_eval")


def _named_after_a_schema(db: Path) -> str:
    return (
        f"{db}: a database named after one of its schemas ({', '.join(SCHEMAS)}) makes DuckDB's names "
        "ambiguous; choose (or rename the file to) another name"
    )


def schema_named(db: Path) -> str | None:
    """Why `db` cannot become a cashscore database: its file is named after one of the schemas it will hold.

    DuckDB names a database after its file: in raw.duckdb or marts.duckdb, `raw.loans` or
    `marts.applicants` is ambiguous and every query fails with a Binder Error.
    """
    return _named_after_a_schema(db) if db.name.split(".")[0].lower() in SCHEMAS else None


def schema_clash(con: duckdb.DuckDBPyConnection, db: Path) -> str | None:
    """`schema_named` for an open database: only when it does hold a schema named like its file."""
    clash = con.execute(
        "select 1 from duckdb_schemas() where database_name = current_database() "
        "and lower(schema_name) = lower(current_database())"
    ).fetchall()
    return _named_after_a_schema(db) if clash else None


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether DuckDB refused to open a file because another process holds its lock."""
    return "Could not set lock" in str(exc) or "Conflicting lock" in str(exc)


def locked(db: Path, wait: float) -> str:
    """Who may hold a database another process kept locked for `wait` seconds."""
    return (
        f"{db}: another process kept the database locked for {wait:.0f} s (training, `score --into`, "
        "or a `cashscore sql --write` shell left open)"
    )


def open_waiting(
    db: Path, read_only: bool, wait: float, options: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, retrying while another process holds it (up to `wait` seconds).

    DuckDB lets one process write a file or several read it, never both. cashscore's readers (the
    dashboard, the server) open it for milliseconds at a time, so a writer that waits a moment gets in.

    Raises:
        duckdb.Error: when the file stays locked for `wait` seconds, or on any other error.
    """
    deadline = time.monotonic() + wait
    pause = 0.01
    while True:
        try:
            return duckdb.connect(str(db), read_only=read_only, config=options or {})
        except duckdb.Error as exc:
            if not is_lock_conflict(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def connect(
    db: Path, read_only: bool = True, wait: float | None = None, memory: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a restored database, with a clear message when there is none.

    Args:
        db: the DuckDB file.
        read_only: open without write access (the default).
        wait: how long to wait for another process's lock on the file (CASHSCORE_LOCK_WAIT by default).
        memory: DuckDB's memory_limit (CASHSCORE_STREAM_MEMORY for a streaming pass). DuckDB keeps
            every block it reads cached up to its limit, 80% of RAM by default, so without one a
            pass over a table grows with the table.

    Returns:
        The connection.

    Raises:
        CashscoreError: when the file is missing, stays locked, or is not a DuckDB database.
    """
    if not db.is_file():
        raise CashscoreError(f"{db}: no database here; run `cashscore restore DUMP --db {db}` first")
    if wait is None:
        wait = config.load().restore.lock_wait
    options = {"memory_limit": memory} if memory is not None else None
    try:
        con = open_waiting(db, read_only, wait, options)
        problem = schema_clash(con, db)
        if problem:
            con.close()
            raise CashscoreError(problem)
        return con
    except duckdb.Error as exc:
        if is_lock_conflict(exc):
            raise CashscoreError(f"{locked(db, wait)}; try again when it has finished") from None
        raise CashscoreError(f"{db}: cannot open as a DuckDB database: {str(exc).splitlines()[0]}") from None


def export(db: Path, out: Path, relation: str = "marts.applicants") -> int:
    """Write `relation` to `out`, in the format its extension names.

    Args:
        db: the restored database.
        out: a `.csv` or `.parquet` path; replaced only once complete.
        relation: the view or table to export.

    Returns:
        The number of rows written.

    Raises:
        CashscoreError: on an unknown extension or a database without the mart.
    """
    format_clause(out, EXPORT_FORMATS)
    con = connect(db)
    try:
        try:
            (rows,) = con.execute(f"select count(*) from {relation}").fetchall()[0]
        except duckdb.CatalogException:
            raise CashscoreError(f"{db}: has no {relation}; restore a dump into it first") from None
        copy_to(con, f"select * from {relation} order by loan_id", out, EXPORT_FORMATS)
    finally:
        con.close()
    return int(rows)
