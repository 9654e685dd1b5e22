"""Benchmark batch scoring: `cashscore score` to Parquet on a 1,000,000-row sample table, in the same run as
pandas + the sklearn pipeline and raw onnxruntime on the same rows.

Run: `.venv/bin/python bench/batch.py --models models --train-db data/cashscore.duckdb`
(the sklearn baseline is refit from the model's metadata on --train-db's training rows).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import STREAM_BOUND, median_seconds, peak_rss, refit, sample_table  # noqa: E402
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
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
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

        # Every side the same number of times, medians; rates over the rows cashscore scores
        # (the ones the contract accepts), each side reading them from the same table.
        t_none = median_seconds(lambda: ours("none"), args.repeat)
        t_deny = median_seconds(lambda: ours("deny"), args.repeat)
        scored = outcomes["none"].scored
        accepted = "select p.* from portfolio p where " + " and ".join(
            f"{name} is not null" for name in contract.REQUIRED
        )

        def raw_feeds() -> dict:
            frame = inputs.frame(con.execute(accepted).df())
            return inputs.onnx_feeds(frame)

        # The model alone on both cores, as cashscore runs it (two single-threaded halves), with
        # its inputs read from DuckDB and built: without and with the contributions.
        t_ort = median_seconds(lambda: scorer.run(raw_feeds()), args.repeat)
        t_ort_all = median_seconds(lambda: scorer.run_all(raw_feeds()), args.repeat)
        rows_ort = len(next(iter(raw_feeds().values())))
        sk, card, _ = refit(args.train_db, args.models)
        a, b = card.calibration.a, card.calibration.b

        def baseline() -> None:
            df = con.execute(accepted).df()
            df["default_probability"] = onnx_export.platt(sk.predict_proba(inputs.frame(df))[:, 1], a, b)
            df.to_parquet(work / "baseline.parquet")

        t_base = median_seconds(baseline, args.repeat)
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
    print(
        f"## batch scoring, {n:,} rows of marts.applicants (synthetic sample), {scored:,} scored "
        f"(raw sides: {rows_ort:,}), median of {args.repeat}"
    )
    print(f"cashscore score -> Parquet, --reasons none   {t_none:7.2f} s   {scored / t_none:>11,.0f} rows/s")
    print(f"cashscore score -> Parquet, --reasons deny   {t_deny:7.2f} s   {scored / t_deny:>11,.0f} rows/s")
    print(f"raw onnxruntime, both cores, scores only     {t_ort:7.2f} s   {rows_ort / t_ort:>11,.0f} rows/s")
    print(f"raw onnxruntime, both cores, + contributions {t_ort_all:7.2f} s   {rows_ort / t_ort_all:>11,.0f} rows/s")
    print(f"pandas + sklearn pipeline -> Parquet         {t_base:7.2f} s   {rows_ort / t_base:>11,.0f} rows/s")
    print(f"cashscore (no reasons) vs pandas + sklearn: {(scored / t_none) / (rows_ort / t_base):.1f}x")
    none_vs_raw = (scored / t_none) / (rows_ort / t_ort)
    print(f"--reasons deny vs none: {t_none / t_deny:.0%} of the rate; none vs raw onnxruntime: {none_vs_raw:.0%}")
    for limit in (None, STREAM_BOUND):
        one, ten = rss[(limit, "portfolio")], rss[(limit, "big")]
        print(f"peak RSS of `cashscore score`, CASHSCORE_STREAM_MEMORY {limit or 'unset'}: {one / 1024:,.0f} MB for "
              f"{n:,} rows, {ten / 1024:,.0f} MB for {10 * n:,} ({ten / one:.2f}x; the limit is 1.3x)")  # fmt: skip


if __name__ == "__main__":
    main()
