"""Benchmark `cashscore score --engine spark` on a 10,000,000-row Parquet file with local[1] and
local[2], beside `cashscore score` (DuckDB) on the same file, all with the default `--reasons deny`.

Prints each side's rate over the rows it scored, and local[2] against local[1] (the target is at
least 1.6x on 2 cores). Spark's figures are the job's own time, without the JVM's start, which is
printed apart.

Run: `.venv/bin/python bench/spark.py --models DIR [--rows 10000000]`
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import sample_table  # noqa: E402


def run(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--rows", type=int, default=10_000_000)
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
        rates = {}
        for cores in (1, 2):
            target = str(work / f"spark{cores}")
            wall, out = run([*cli, "score", "--engine", "spark", "--master", f"local[{cores}]", "--input",
                             str(source), "--out", target, "--models", str(args.models)])  # fmt: skip
            job = float(re.search(r"on Spark in ([\d.]+) s", out).group(1))
            rates[cores] = scored / job
            start = wall - job
            print(f"Spark local[{cores}]: {rates[cores]:,.0f} rows/s ({job:.1f} s job, {start:.1f} s JVM and session)")
        print(f"local[2] vs local[1]: {rates[2] / rates[1]:.2f}x (target 1.6x); "
              f"local[2] vs DuckDB: {rates[2] / (scored / seconds):.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
