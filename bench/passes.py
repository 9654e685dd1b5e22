"""The tree walk in passes of whole trees (onnx_export.PASS_NODES) against one pass over the whole
forest: the served model refit and exported both ways, each graph (with contributions, and cut to
the margin as rows without reasons run it) timed in onnxruntime on the shapes the channels feed it:
one row (an applicant), 20,000 rows on one thread (a Spark worker's Arrow batch), two threads of
500 (an HTTP batch of 1,000) and of 50,000 (a `cashscore score` chunk). Interleaved rounds, medians.

Run: `.venv/bin/python bench/passes.py --models DIR --train-db DB [--pass-nodes 10000,6000] [--rounds 9]`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import refit, whole, wholes  # noqa: E402
from cashscore.features import inputs  # noqa: E402

from cashscore.artefact import store  # noqa: E402
from cashscore.artefact.graph import margin_only  # noqa: E402
from cashscore.artefact.store import OUTPUT  # noqa: E402
from cashscore.training import onnx_export  # noqa: E402

ONE_PASS = 10**9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--train-db", type=Path, default=Path("data/cashscore.duckdb"))
    parser.add_argument("--pass-nodes", type=wholes(1, 10_000_000), default=[onnx_export.PASS_NODES])
    parser.add_argument("--rounds", type=whole(1, 100), default=9)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    card = store.load_verified(args.models).card
    served, _, X = refit(args.train_db, args.models)
    big = pd.concat([X] * (100_000 // len(X) + 1), ignore_index=True).head(100_000)
    feeds = inputs.onnx_feeds(big)

    def rows(lo: int, hi: int) -> dict[str, np.ndarray]:
        return {k: v[lo:hi] for k, v in feeds.items()}

    # shape -> (threads, the parts fed at once, calls per timing)
    shapes = {
        "1 row": (1, [rows(0, 1)], 400),
        "20,000 rows, 1 thread": (1, [rows(0, 20_000)], 1),
        "2 x 500 rows": (2, [rows(0, 500), rows(500, 1_000)], 20),
        "2 x 50,000 rows": (2, [rows(0, 50_000), rows(50_000, 100_000)], 1),
    }
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sessions = {}
    counts = {}
    for nodes in (ONE_PASS, *args.pass_nodes):
        model = onnx_export.to_onnx(served, card.calibration.a, card.calibration.b, card.protected_age.age, nodes)
        counts[nodes] = sum(n.op_type == "TreeEnsembleRegressor" for n in model.graph.node)
        for kind, graph in (("whole", model), ("plain", margin_only(model, OUTPUT))):
            sessions[nodes, kind] = onnxruntime.InferenceSession(
                graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
    pool = ThreadPoolExecutor(2)
    times: dict[tuple, list[float]] = {}
    for _ in range(args.rounds):
        for shape, (threads, parts, calls) in shapes.items():
            for key, session in sessions.items():
                started = time.perf_counter()
                for _ in range(calls):
                    if threads == 1:
                        session.run(None, parts[0])
                    else:
                        list(pool.map(lambda p, s=session: s.run(None, p), parts))
                times.setdefault((shape, *key), []).append((time.perf_counter() - started) / calls)
    print(f"## {card.model.family}, {counts[ONE_PASS]} pass against passes of at most N nodes; median of {args.rounds}")
    for shape in shapes:
        one = {kind: statistics.median(times[shape, ONE_PASS, kind]) for kind in ("whole", "plain")}
        line = f"{shape:>22}: one pass {one['whole'] * 1e3:8.3f} ms whole / {one['plain'] * 1e3:8.3f} plain"
        line += f" ({one['whole'] / one['plain']:.2f}x)"
        for nodes in counts:
            if nodes == ONE_PASS:
                continue
            got = {kind: statistics.median(times[shape, nodes, kind]) for kind in ("whole", "plain")}
            line += (
                f" | N={nodes:,} ({counts[nodes]} passes) whole {got['whole'] / one['whole']:.2f}x,"
                f" plain {got['plain'] / one['plain']:.2f}x ({got['whole'] / got['plain']:.2f}x)"
            )
        print(line)


if __name__ == "__main__":
    main()
