"""Where scored chunks go as they are made: files written atomically, or a table stored in one transaction.

Each chunk is written and dropped, so scoring any number of rows holds one chunk in memory.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cashscore.core import sqlnames
from cashscore.core.atomic import build_dir, sweep_stale
from cashscore.core.errors import CashscoreError
from cashscore.warehouse.export import format_clause

# Columns of free text, written to Parquet without a dictionary.
FREE_TEXT = ("reasons",)
# A column with more distinct values than this share of the first chunk's first SAMPLE_ROWS rows gets
# no dictionary (counting them over 10,000 rows takes 4 ms, over a whole chunk 60).
DISTINCT_SHARE = 0.5
SAMPLE_ROWS = 10_000


class FileSink:
    """CSV, Parquet or JSON (by extension), written into a private folder and renamed over the target
    only when complete; nothing is left behind when scoring fails."""

    def __init__(self, target: Path) -> None:
        format_clause(target)  # an unknown extension is refused before any scoring
        self.target = target
        self.rows = 0
        self._work: Path | None = None
        self._folder = contextlib.ExitStack()
        self._writer: Any = None
        self._handle: IO[str] | None = None

    def __enter__(self) -> FileSink:
        sweep_stale(self.target)
        self._work = self._folder.enter_context(build_dir(self.target, "write"))
        return self

    @property
    def _tmp(self) -> Path:
        assert self._work is not None
        return self._work / self.target.name

    def write(self, table: pa.Table) -> None:
        """Append one chunk."""
        suffix = self.target.suffix.lower()
        if suffix == ".parquet":
            if self._writer is None:
                encoded = dictionary_columns(table)
                self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd", use_dictionary=encoded)
            self._writer.write_table(table)
        elif suffix == ".csv":
            if self._writer is None:
                self._writer = pacsv.CSVWriter(self._tmp, table.schema)
            self._writer.write_table(table)
        else:
            if self._handle is None:
                self._handle = self._tmp.open("w", encoding="utf-8")
                self._handle.write("[")
            for row in table.to_pylist():
                self._handle.write(("," if self.rows else "") + "\n" + json.dumps(_json_ready(row), default=str))
                self.rows += 1
            return
        self.rows += table.num_rows

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        assert self._work is not None
        try:
            if kind is None:
                if self._writer is not None:
                    self._writer.close()
                elif self._handle is None:
                    self._tmp.touch()
                if self._handle is not None:
                    self._handle.write("\n]\n")
                    self._handle.close()
                with self._tmp.open("rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(self._tmp, self.target)
        finally:
            if self._handle is not None and not self._handle.closed:
                self._handle.close()
            self._folder.close()


def dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth a Parquet dictionary, judged on the first rows: not the free text, nor those
    of near-unique values (ids, probabilities).

    Arrow's writer tries a dictionary for every column of each chunk and falls back to plain once it
    passes 1 MB: each row's reasons are a sentence of their own (that cost `--reasons deny` 5 % of its
    time), and a column of ids left a wasted dictionary page in every chunk (the 1M-row sample's
    scores took 49.7 MB with them, 44.5 MB without, and writing them was slower).
    """
    sample = table.slice(0, SAMPLE_ROWS)
    most = int(sample.num_rows * DISTINCT_SHARE)

    def repeats(column: pa.ChunkedArray) -> bool:
        try:
            return bool(pc.count_distinct(column, mode="all").as_py() <= most)
        except pa.ArrowNotImplementedError:  # lists, structs, nulls: left to Arrow's writer, as before
            return True

    return [name for name in sample.schema.names if name not in FREE_TEXT and repeats(sample.column(name))]


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


class TableSink:
    """Rows stored as `scores.NAME` with their scoring time, all in one transaction on its own cursor
    (the reading connection keeps streaming): readers see the old table or the complete new one."""

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        self.name = sqlnames.plain_name(name, "--into")
        self.target = sqlnames.qualified("scores", self.name)
        self.cursor = con.cursor()
        self.rows = 0
        self.scored_at = datetime.now(UTC)
        self._stamp = pa.scalar(self.scored_at, pa.timestamp("us", tz="UTC"))  # every row's scored_at

    def __enter__(self) -> TableSink:
        self.cursor.execute("begin transaction")
        self.cursor.execute("create schema if not exists scores")
        return self

    def write(self, table: pa.Table) -> None:
        """Append one chunk (the first one replaces any older table of that name)."""
        stamped = table.append_column("scored_at", pa.repeat(self._stamp, table.num_rows))
        # A relation over the chunk, not a registered view: inside a transaction the view dropped by
        # unregister() kept its chunk alive until the commit, and memory grew with every row stored
        # (2.8 GB for 10M rows; DuckDB's own share of the new rows is evictable and bounded).
        try:
            relation = self.cursor.from_arrow(stamped)
            if not self.rows:
                self.cursor.execute(f"drop table if exists {self.target}")
                relation.create(self.target)
            else:
                relation.insert_into(self.target)
        except duckdb.Error as exc:
            raise CashscoreError(f"--into {self.name}: {str(exc).splitlines()[0]}") from None
        self.rows += table.num_rows

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.cursor.execute("commit" if kind is None else "rollback")
        finally:
            self.cursor.close()
