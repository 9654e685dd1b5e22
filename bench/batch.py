"""Benchmark batch scoring: `cashscore score` to Parquet on a 1,000,000-row sample table, in the same run as
pandas + the sklearn pipeline and raw onnxruntime on the same rows.

Run: `.venv/bin/python bench/batch.py --models models --train-db data/cashscore.duckdb`
(the sklearn baseline is refit from the model's metadata on --train-db's training rows).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import STREAM_BOUND, interleaved, peak_rss, refit, round_ratios, sample_table, whole  # noqa: E402
from cashscore.features import contract, inputs  # noqa: E402

from cashscore.artefact import store  # noqa: E402
from cashscore.scoring import batch  # noqa: E402
from cashscore.scoring.scorer import Scorer  # noqa: E402
from cashscore.scoring.sinks import FileSink  # noqa: E402
from cashscore.training import onnx_export  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--train-db", type=Path, default=Path("data/cashscore.duckdb"))
    parser.add_argument("--rows", type=whole(1, 1_000_000_000), default=1_000_000)
    parser.add_argument("--repeat", type=whole(1, 100), default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db, con = sample_table(work, args.rows)
        scorer = Scorer(store.load_verified(args.models))
        n = con.execute("select count(*) from portfolio").fetchall()[0][0]

        outcomes = {}

        def ours(reasons: str) -> None:
            with FileSink(work / "scores.parquet") as sink:
                outcomes[reasons] = batch.score_relation(
                    con, scorer, "select * from portfolio", on_scored=sink.write, reasons=reasons
                )

        accepted = "select p.* from portfolio p where " + " and ".join(
            f"{name} is not null" for name in contract.REQUIRED
        )

        def raw_feeds() -> dict:
            frame = inputs.frame(con.execute(accepted).df())
            return inputs.onnx_feeds(frame)

        rows_ort = len(next(iter(raw_feeds().values())))
        sk, card, _ = refit(args.train_db, args.models)
        a, b = card.calibration.a, card.calibration.b

        def baseline() -> None:
            df = con.execute(accepted).df()
            df["default_probability"] = onnx_export.platt(sk.predict_proba(inputs.frame(df))[:, 1], a, b)
            df.to_parquet(work / "baseline.parquet")

        # Every side once a round, in turn; medians, and ratios round by round. Rates are over the rows
        # cashscore scores (the ones the contract accepts), each side reading them from the same table.
        # The raw sides: the model alone on both cores, as cashscore runs it (two single-threaded
        # halves), its inputs read from DuckDB and built, without and with the contributions.
        times = interleaved(
            {
                "none": lambda: ours("none"),
                "deny": lambda: ours("deny"),
                "ort": lambda: scorer.run(raw_feeds()),
                "ort_all": lambda: scorer.run_all(raw_feeds()),
                "baseline": baseline,
            },
            args.repeat,
        )
        t_none, t_deny, t_ort, t_ort_all, t_base = (statistics.median(times[k]) for k in times)
        scored = outcomes["none"].scored
        # Rates per row: a ratio of rates is the inverse ratio of times, scaled by the rows each side read.
        deny_vs_none, deny_rounds = round_ratios(times["none"], times["deny"])
        none_vs_raw, raw_rounds = round_ratios([t * scored / rows_ort for t in times["ort"]], times["none"])
        # A stored table ten times as long: a cross join in the scored query would measure DuckDB
        # holding one side of it, not the scorer.
        con.execute("create table big as select portfolio.* from portfolio, range(10)")
        con.close()
        # Peak memory of the whole command, streaming: the same rows once, then a stored table ten
        # times as long; with DuckDB's own memory limit (80% of RAM: its block cache grows with the
        # table read) and with CASHSCORE_STREAM_MEMORY bounding that cache.
        rss = {}
        for limit in (None, STREAM_BOUND):
            for table, out in (("portfolio", "one.parquet"), ("big", "ten.parquet")):
                command = ["score", "--table", table, "--out", str(work / out), "--reasons", "none"]
                command += ["--db", str(db), "--models", str(args.models)]
                rss[(limit, table)] = peak_rss(command, {"CASHSCORE_STREAM_MEMORY": limit} if limit else None)
        # Stored in the database instead (one transaction), with DuckDB's default limit.
        for table, into in (("portfolio", "one"), ("big", "ten")):
            command = ["score", "--table", table, "--into", into, "--reasons", "none"]
            rss[("into", table)] = peak_rss([*command, "--db", str(db), "--models", str(args.models)])
    print(
        f"## batch scoring, {n:,} rows of marts.applicants (synthetic sample), {scored:,} scored "
        f"(raw sides: {rows_ort:,}), median of {args.repeat} interleaved rounds"
    )
    print(f"cashscore score -> Parquet, --reasons none   {t_none:7.2f} s   {scored / t_none:>11,.0f} rows/s")
    print(f"cashscore score -> Parquet, --reasons deny   {t_deny:7.2f} s   {scored / t_deny:>11,.0f} rows/s")
    print(f"raw onnxruntime, both cores, scores only     {t_ort:7.2f} s   {rows_ort / t_ort:>11,.0f} rows/s")
    print(f"raw onnxruntime, both cores, + contributions {t_ort_all:7.2f} s   {rows_ort / t_ort_all:>11,.0f} rows/s")
    print(f"pandas + sklearn pipeline -> Parquet         {t_base:7.2f} s   {rows_ort / t_base:>11,.0f} rows/s")
    print(f"cashscore (no reasons) vs pandas + sklearn: {(scored / t_none) / (rows_ort / t_base):.1f}x")
    each = ", ".join(f"{r:.0%}" for r in deny_rounds)
    print(f"--reasons deny vs none: {deny_vs_none:.0%} of the rate, median of the rounds' ratios ({each}; goal 80%)")
    each = ", ".join(f"{r:.0%}" for r in raw_rounds)
    print(f"--reasons none vs raw onnxruntime: {none_vs_raw:.0%}, median of the rounds' ratios ({each}; goal 80%)")
    for limit in (None, STREAM_BOUND):
        one, ten = rss[(limit, "portfolio")], rss[(limit, "big")]
        print(f"peak RSS of `cashscore score`, CASHSCORE_STREAM_MEMORY {limit or 'unset'}: {one / 1024:,.0f} MB for "
              f"{n:,} rows, {ten / 1024:,.0f} MB for {10 * n:,} ({ten / one:.2f}x; the limit is 1.3x)")  # fmt: skip
    one, ten = rss[("into", "portfolio")], rss[("into", "big")]
    print(f"peak RSS of `cashscore score --into`, CASHSCORE_STREAM_MEMORY unset: {one / 1024:,.0f} MB for {n:,} rows, "
          f"{ten / 1024:,.0f} MB for {10 * n:,} ({ten / one:.2f}x; the limit is 1.3x)")  # fmt: skip


if __name__ == "__main__":
    main()
