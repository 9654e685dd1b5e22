"""Benchmark batch scoring: `cashscore score` to Parquet on a 1,000,000-row sample table, in the same run as
pandas + the sklearn pipeline and raw onnxruntime on the same rows.

Run: `.venv/bin/python bench/batch.py --models models --train-db data/cashscore.duckdb`
(the sklearn baseline is refit from the model's metadata on --train-db's training rows).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import median_seconds, refit  # noqa: E402
from cashscore.features import inputs  # noqa: E402

from cashscore.artefact import store  # noqa: E402
from cashscore.core import config  # noqa: E402
from cashscore.scoring import batch  # noqa: E402
from cashscore.scoring.scorer import Scorer  # noqa: E402
from cashscore.scoring.sinks import FileSink  # noqa: E402
from cashscore.training import onnx_export  # noqa: E402
from cashscore.warehouse.restore import restore  # noqa: E402
from cashscore.warehouse.sample import write_sample  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--train-db", type=Path, default=Path("data/cashscore.duckdb"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dump = work / "sample.sql"
        write_sample(dump, rows=args.rows, seed=7)
        db = work / "sample.duckdb"
        restore([dump], db, config.load().paths.sql_dir, say=lambda _: None, audit=False)
        con = duckdb.connect(str(db))
        con.execute("create table portfolio as select * from marts.applicants")
        scorer = Scorer(store.load_verified(args.models))
        n = con.execute("select count(*) from portfolio").fetchall()[0][0]

        def ours(reasons: str) -> None:
            with FileSink(work / "scores.parquet") as sink:
                batch.score_relation(con, scorer, "select * from portfolio", on_scored=sink.write, reasons=reasons)

        t_none = median_seconds(lambda: ours("none"), args.repeat)
        t_deny = median_seconds(lambda: ours("deny"), 1)
        frame = inputs.frame(con.execute("select * from portfolio").df())
        feeds = inputs.onnx_feeds(frame)
        # The model alone on both cores, as cashscore runs it (two single-threaded halves), without
        # and with the contributions' tree pass.
        t_ort = median_seconds(lambda: scorer.run(feeds), args.repeat)
        t_ort_all = median_seconds(lambda: scorer.run_all(feeds), 1)
        sk, card, _ = refit(args.train_db, args.models)
        a, b = card.calibration.a, card.calibration.b

        def baseline() -> None:
            df = con.execute("select * from portfolio").df()
            df["default_probability"] = onnx_export.platt(sk.predict_proba(inputs.frame(df))[:, 1], a, b)
            df.to_parquet(work / "baseline.parquet")

        t_base = median_seconds(baseline, 1)
        con.close()
        # Peak memory of the whole command, streaming: the same rows once, then ten times over.
        rss_1 = peak_rss(db, args.models, "select * from portfolio", work / "one.parquet")
        rss_10 = peak_rss(db, args.models, "select p.* from portfolio p, range(10)", work / "ten.parquet")
    print(f"## batch scoring, {n:,} rows of marts.applicants (synthetic sample), median")
    print(f"cashscore score -> Parquet, --reasons none   {t_none:7.2f} s   {n / t_none:>11,.0f} rows/s")
    print(f"cashscore score -> Parquet, --reasons deny   {t_deny:7.2f} s   {n / t_deny:>11,.0f} rows/s")
    print(f"raw onnxruntime, both cores, scores only     {t_ort:7.2f} s   {n / t_ort:>11,.0f} rows/s")
    print(f"raw onnxruntime, both cores, + contributions {t_ort_all:7.2f} s   {n / t_ort_all:>11,.0f} rows/s")
    print(f"pandas + sklearn pipeline -> Parquet         {t_base:7.2f} s   {n / t_base:>11,.0f} rows/s")
    print(f"cashscore (no reasons) vs pandas + sklearn: {t_base / t_none:.1f}x")
    print(f"--reasons deny vs none: {t_none / t_deny:.0%} of the rate; none vs raw onnxruntime: {t_ort / t_none:.0%}")
    print(f"peak RSS of `cashscore score`: {rss_1 / 1024:,.0f} MB for {n:,} rows, {rss_10 / 1024:,.0f} MB for "
          f"{10 * n:,} rows ({rss_10 / rss_1:.2f}x; the limit is 1.3x)")  # fmt: skip


def peak_rss(db: Path, models: Path, query: str, out: Path) -> int:
    """Peak resident memory (KiB) of one `cashscore score --reasons none` process."""
    probe = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [sys.executable, "-m", "cashscore.cli", "score", "--sql", query, "--out", str(out)]
    command += ["--reasons", "none", "--db", str(db), "--models", str(models)]
    done = subprocess.run([sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True)
    return int(done.stdout.strip())


if __name__ == "__main__":
    main()
