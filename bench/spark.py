"""Benchmark `cashscore score --engine spark` on a 10,000,000-row Parquet file with local[1] and
local[2], beside `cashscore score` (DuckDB) on the same file, all with the default `--reasons deny`.

Prints each side's rate over the rows it scored, and local[2] against local[1], the median of
interleaved rounds (the target is at least 1.6x on 2 cores). Spark's figures are the job's own
time, without the JVM's start, which is printed apart.

Run: `.venv/bin/python bench/spark.py --models DIR [--rows 10000000] [--rounds 3]`
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import sample_table, whole  # noqa: E402


def run(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--rows", type=whole(1, 1_000_000_000), default=10_000_000)
    parser.add_argument("--rounds", type=whole(1, 100), default=3, help="Spark runs of each size, interleaved")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "cashscore.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = min(args.rows, 1_000_000)
        db, con = sample_table(work, base)
        source = work / "portfolio.parquet"
        copies = -(-args.rows // base)
        rows = f"select p.* from portfolio p, range({copies}) limit {args.rows}"
        con.execute(f"copy ({rows}) to '{source}' (format parquet)")
        con.close()
        print(f"## {args.rows:,} rows, {source.stat().st_size / 1e6:,.0f} MB of Parquet; --reasons deny everywhere")
        seconds, out = run([*cli, "score", "--sql", f"select * from read_parquet('{source}')", "--out",
                            str(work / "duck.parquet"), "--db", str(db), "--models", str(args.models)])  # fmt: skip
        scored = int(re.search(r"scored ([\d,]+) rows", out).group(1).replace(",", ""))
        print(f"cashscore score (DuckDB, both cores): {scored / seconds:,.0f} rows/s ({seconds:.1f} s with start-up)")
        rounds: dict[int, list[float]] = {1: [], 2: []}
        for n in range(args.rounds):  # interleaved, so that the machine's noise falls on both
            for cores in (1, 2):
                target = str(work / f"spark{cores}")
                wall, out = run([*cli, "score", "--engine", "spark", "--master", f"local[{cores}]", "--input",
                                 str(source), "--out", target, "--models", str(args.models)])  # fmt: skip
                job = float(re.search(r"on Spark in ([\d.]+) s", out).group(1))
                rounds[cores].append(scored / job)
                print(f"round {n + 1}: Spark local[{cores}]: {scored / job:,.0f} rows/s "
                      f"({job:.1f} s job, {wall - job:.1f} s JVM and session)")  # fmt: skip
        ratios = [two / one for one, two in zip(rounds[1], rounds[2], strict=True)]
        rates = {cores: statistics.median(r) for cores, r in rounds.items()}
        print(f"median of {args.rounds}: local[1] {rates[1]:,.0f} rows/s, local[2] {rates[2]:,.0f} rows/s")
        print(f"local[2] vs local[1]: {statistics.median(ratios):.2f}x, median of rounds "
              f"({', '.join(f'{r:.2f}' for r in ratios)}; target 1.6x); "
              f"local[2] vs DuckDB: {rates[2] / (scored / seconds):.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
