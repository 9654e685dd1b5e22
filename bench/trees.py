"""What the number of trees buys and costs: the served model refit with fewer trees (the rest of its
parameters, its data split and its protected age unchanged), each scored on the held-out split
(ROC-AUC), timed in onnxruntime (µs a row, one thread, 100,000 rows, median of 3), and streamed
through `score_relation --reasons none` over a synthetic table (rows/s, median of 3).

Run: `.venv/bin/python bench/trees.py --models DIR --train-db DB [--rows 1000000]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import onnxruntime
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import median_seconds, refit, sample_table, split, whole, wholes  # noqa: E402
from cashscore.features import inputs  # noqa: E402

from cashscore.artefact import store  # noqa: E402
from cashscore.artefact.graph import margin_only  # noqa: E402
from cashscore.artefact.store import OUTPUT  # noqa: E402
from cashscore.scoring import batch  # noqa: E402
from cashscore.scoring.scorer import Scorer  # noqa: E402
from cashscore.training import onnx_export, preprocess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--train-db", type=Path, default=Path("data/cashscore.duckdb"))
    parser.add_argument("--rows", type=whole(1, 1_000_000_000), default=1_000_000)
    parser.add_argument("--trees", type=wholes(1, 10_000), default=[60, 100, 200, 300, 600])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    loaded = store.load_verified(args.models)
    card = loaded.card
    age = card.protected_age.age
    part = split(args.train_db, args.models)
    X, X_train, X_test, y_train, y_test = part.X, part.X_train, part.X_test, part.y_train, part.y_test
    served, _, _ = refit(args.train_db, args.models)
    a, b = card.calibration.a, card.calibration.b
    big = pd.concat([X] * (100_000 // len(X) + 1), ignore_index=True).head(100_000)
    with tempfile.TemporaryDirectory() as tmp:
        _, con = sample_table(Path(tmp), args.rows)
        print(f"## trees: held-out ROC-AUC, µs a row (onnxruntime, 1 thread), --reasons none on {args.rows:,} rows")
        for trees in args.trees:
            model = clone(served)
            model.steps[-1][1].set_params(n_estimators=trees)
            model.fit(preprocess.protect_age(X_train, age), y_train)
            auc = roc_auc_score(y_test, model.predict_proba(preprocess.protect_age(X_test, age))[:, 1])
            exported = onnx_export.to_onnx(model, a, b, age)
            graph = exported.SerializeToString()
            single = onnxruntime.SessionOptions()
            single.intra_op_num_threads = 1
            feeds = inputs.onnx_feeds(big)
            per_row = {}
            # The plain graph (what rows without reasons run) and the whole one (with contributions).
            for kind, model_bytes in (("plain", margin_only(exported, OUTPUT).SerializeToString()), ("whole", graph)):
                session = onnxruntime.InferenceSession(model_bytes, single, providers=["CPUExecutionProvider"])
                per_row[kind] = median_seconds(lambda s=session, f=feeds: s.run(None, f), 3) / len(big)
            scorer = Scorer(replace(loaded, onnx_bytes=graph))
            done = {}

            def stream(s: Scorer = scorer, d: dict = done) -> None:
                d["o"] = batch.score_relation(
                    con, s, "select * from portfolio", on_scored=lambda _: None, reasons="none"
                )

            seconds = median_seconds(stream, 3)
            rate = done["o"].scored / seconds
            print(
                f"{trees:>4} trees  ROC-AUC {auc:.4f}  {per_row['plain'] * 1e6:5.1f} µs a row "
                f"({per_row['whole'] * 1e6:5.1f} with contributions)  {rate:>9,.0f} rows/s"
            )
        con.close()


if __name__ == "__main__":
    main()
