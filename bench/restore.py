"""Benchmark `cashscore restore` (bulk path) against the naive path, in the same run.

The naive path transpiles each statement with sqlglot (MySQL -> DuckDB) and executes it in DuckDB,
which is what one gets without a bulk loader. Run: `.venv/bin/python bench/restore.py`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import sqlglot
from _shared import whole  # noqa: E402

from cashscore.core import config  # noqa: E402
from cashscore.warehouse.dump import statements  # noqa: E402
from cashscore.warehouse.restore import SKIPPED, dump_files, restore  # noqa: E402
from cashscore.warehouse.sample import write_sample  # noqa: E402


def bulk(paths: list[Path], work: Path, repeat: int, audit: bool) -> tuple[float, int]:
    times, rows = [], 0
    for i in range(repeat):
        db = work / f"bulk{i}.duckdb"
        started = time.perf_counter()
        result = restore(paths, db, config.load().paths.sql_dir, say=lambda _: None, audit=audit)
        times.append(time.perf_counter() - started)
        rows = sum(result.rows.values())
        db.unlink()
    return statistics.median(times), rows


def naive(paths: list[Path], work: Path, max_rows: int) -> tuple[float, int]:
    """Transpile and execute statement by statement; stop after max_rows to bound the time."""
    con = duckdb.connect(str(work / "naive.duckdb"))
    rows = 0
    started = time.perf_counter()
    for path in dump_files(paths):
        for stmt in statements(path):
            if SKIPPED.match(stmt.text):
                continue
            for sql in sqlglot.transpile(stmt.text, read="mysql", write="duckdb", unsupported_level="IGNORE"):
                con.execute(sql)
            if stmt.text.upper().startswith("INSERT"):
                rows += stmt.text.count("),(") + 1
            if rows >= max_rows:
                break
        if rows >= max_rows:
            break
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed, rows


def report(name: str, paths: list[Path], work: Path, repeat: int, naive_rows: int) -> None:
    size = sum(p.stat().st_size for p in dump_files(paths)) / 1e6
    t_bulk, rows = bulk(paths, work, repeat, audit=True)
    t_load, _ = bulk(paths, work, repeat, audit=False)
    t_naive, n_naive = naive(paths, work, naive_rows)
    bulk_rate, naive_rate = rows / t_load, n_naive / t_naive
    print(f"\n## {name}: {size:.1f} MB, {rows:,} rows in all tables")
    print(f"bulk restore, with audits     median {t_bulk:7.3f} s   {size / t_bulk:7.1f} MB/s")
    rate = f"{bulk_rate:>11,.0f} rows/s"
    print(f"bulk restore, --no-audits     median {t_load:7.3f} s   {size / t_load:7.1f} MB/s   {rate}")
    print(f"naive sqlglot + execute       {t_naive:7.3f} s for {n_naive:,} rows      {naive_rate:>11,.0f} rows/s")
    print(f"speed-up (rows/s, --no-audits vs naive): {bulk_rate / naive_rate:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    rows = whole(1, 1_000_000_000)
    parser.add_argument("--rows", type=rows, default=1_000_000, help="applications in the synthetic sample")
    parser.add_argument("--repeat", type=whole(1, 100), default=3, help="bulk runs per case (median reported)")
    args = parser.parse_args()
    real = config.load().paths.data_dir
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if (real / "analise_risco_ids.sql").is_file():
            report("real Alura Cash dump", [real], work, args.repeat, naive_rows=10**9)
        else:
            print(f"(real dump not found at {real}; skipped)")
        sample = work / "sample.sql"
        write_sample(sample, rows=args.rows, seed=42)
        report(f"synthetic sample, {args.rows:,} applications", [sample], work, args.repeat, naive_rows=40_000)


if __name__ == "__main__":
    main()
