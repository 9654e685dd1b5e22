"""Benchmark `cashscore monitor`: drift and fairness of a synthetic portfolio (default 1,000,000 rows)
in the same run as its baseline, the scoring pass alone (`score_relation --reasons none`) over the
same rows, and its memory limit: peak RSS at 10x the rows within 1.3x.

Run: `.venv/bin/python bench/monitor.py --models DIR`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import STREAM_BOUND, median_seconds, peak_rss, sample_table, whole  # noqa: E402

from cashscore.artefact import store  # noqa: E402
from cashscore.monitoring import drift, fairness  # noqa: E402
from cashscore.scoring import batch  # noqa: E402
from cashscore.scoring.scorer import Scorer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--rows", type=whole(1, 1_000_000_000), default=1_000_000)
    parser.add_argument("--repeat", type=whole(1, 100), default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, con = sample_table(Path(tmp), args.rows, "marts.training_set")
        scorer = Scorer(store.load_verified(args.models))
        query = "select * from portfolio"
        found = {}

        def monitor() -> None:
            found["m"] = drift.measure(con, scorer, query, "bench", fairness.DEFAULT_BANDS)

        def scoring_alone() -> None:
            batch.score_relation(con, scorer, query, on_scored=lambda _: None, reasons="none")

        times: dict[str, list[float]] = {"monitor": [], "score": []}
        for _ in range(args.repeat):  # interleaved, so drift on the machine hits both sides alike
            times["monitor"].append(median_seconds(monitor, 1))
            times["score"].append(median_seconds(scoring_alone, 1))
        con.close()
        rows = found["m"].rows
        t_monitor, t_score = (sorted(v)[len(v) // 2] for v in times.values())
        print(f"## cashscore monitor, {rows:,} scored rows (median of {args.repeat})")
        print(f"monitor (drift + fairness, one pass): {rows / t_monitor:,.0f} rows/s ({t_monitor:.2f} s)")
        print(f"baseline, scoring alone (--reasons none, no output): {rows / t_score:,.0f} rows/s ({t_score:.2f} s)")
        print(f"monitor at {t_score / t_monitor:.0%} of scoring alone's rate")
        con = duckdb.connect(str(db))
        con.execute("create table big as select * from portfolio, range(10)")
        con.close()
        # With DuckDB's own memory limit (its block cache grows with the table read), then bounded.
        for limit in (None, STREAM_BOUND):
            env = {"CASHSCORE_STREAM_MEMORY": limit} if limit else None
            command = ["monitor", "--no-store", "--db", str(db), "--models", str(args.models), "--table"]
            rss_1, rss_10 = (peak_rss([*command, table], env) for table in ("portfolio", "big"))
            print(f"peak RSS, CASHSCORE_STREAM_MEMORY {limit or 'unset'}: {rss_1 / 1024:,.0f} MB for {args.rows:,} "
                  f"rows, {rss_10 / 1024:,.0f} MB for 10x ({rss_10 / rss_1:.2f}x; the limit is 1.3x)")  # fmt: skip


if __name__ == "__main__":
    main()
