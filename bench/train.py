"""Benchmark training and inference: the full comparison, the final fit, and ONNX vs sklearn scoring.

Run: `.venv/bin/python bench/train.py [--db FILE]` (default: the real dump, restored to a temp file).
Inference: single-row latency (median of 2,000 calls) and 100,000-row batch time (median of 5) for
onnxruntime beside the sklearn pipeline (plus the same calibration in numpy), in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import median_seconds, refit  # noqa: E402
from cashscore.features import inputs  # noqa: E402

from cashscore.artefact import store  # noqa: E402
from cashscore.core import config  # noqa: E402
from cashscore.training import (
    onnx_export,  # noqa: E402
    trainer,  # noqa: E402
)
from cashscore.warehouse.restore import restore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, help="a restored database (default: restore the real dump)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = args.db
        if db is None:
            db = work / "real.duckdb"
            restore([config.load().paths.data_dir], db, config.load().paths.sql_dir, say=lambda _: None)
        models = work / "models"
        started = time.perf_counter()
        card = trainer.run(db, models, say=lambda _: None)
        total = time.perf_counter() - started
        comparison = sum(c.seconds for c in card.candidates)
        print("## training (cashscore train, same run)")
        print(f"candidates compared       {len(card.candidates)} in {comparison:.1f} s")
        print(f"final fit                 {card.timings.final_fit_seconds:.1f} s")
        print(f"whole train command       {total:.1f} s")
        print(f"chosen                    {card.model.family} + {card.model.strategy}")
        test = card.metrics.test
        print(f"held-out test             ROC-AUC {test.roc_auc:.4f}  KS {test.ks:.3f}  Brier {test.brier:.4f}")

        sk, card, X = refit(db, models)
        a, b = card.calibration.a, card.calibration.b
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        sess = onnxruntime.InferenceSession(str(store.current_folder(models) / store.MODEL_FILE), options)
        big = pd.concat([X] * (100_000 // len(X) + 1), ignore_index=True).head(100_000)
        one = X.head(1)
        feeds_one = inputs.onnx_feeds(one)
        onnx_one = median_seconds(lambda: sess.run(None, feeds_one), 2000)
        sk_one = median_seconds(lambda: onnx_export.platt(sk.predict_proba(one)[:, 1], a, b), 300)
        onnx_big = median_seconds(lambda: sess.run(None, inputs.onnx_feeds(big)), 5)
        sk_big = median_seconds(lambda: onnx_export.platt(sk.predict_proba(big)[:, 1], a, b), 5)
        diff = np.max(
            np.abs(
                sess.run(None, inputs.onnx_feeds(big.head(20000)))[0][:, 1]
                - onnx_export.platt(sk.predict_proba(big.head(20000))[:, 1], a, b)
            )
        )
        print("\n## inference (median; onnxruntime with 1 thread)")
        print(
            f"single row    onnxruntime {onnx_one * 1e6:8.0f} µs   sklearn {sk_one * 1e6:8.0f} µs   "
            f"({sk_one / onnx_one:.0f}x)"
        )
        print(
            f"100,000 rows  onnxruntime {onnx_big:8.3f} s    sklearn {sk_big:8.3f} s    ({sk_big / onnx_big:.1f}x)"
            f"   = {100_000 / onnx_big:,.0f} vs {100_000 / sk_big:,.0f} rows/s"
        )
        print(f"max |Δp| between them on 20,000 rows: {diff:.2e}")


if __name__ == "__main__":
    main()
