"""Helpers the benchmarks share: refit the served sklearn pipeline from a model's metadata."""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.model_selection import train_test_split  # noqa: E402

import train  # noqa: E402
from cashscore import modelfile  # noqa: E402
from features import pipeline  # noqa: E402


def median_seconds(fn: Any, repeat: int) -> float:
    """Median wall time of `repeat` calls of fn."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def refit(db: Path, models: Path) -> tuple[Any, dict[str, Any], Any]:
    """Fit the metadata's chosen family, strategy and parameters on the same training split `train` used,
    so the sklearn pipeline is the ONNX model's twin (same data, same seed).

    Returns:
        (the plain sklearn pipeline without sampler, the metadata, the whole labelled frame).
    """
    meta = json.loads((modelfile.current_folder(models) / modelfile.META_FILE).read_text())
    df = train.load_training(db)
    X = pipeline.frame(df)
    y = df["loan_status"].to_numpy(dtype=int)
    cfg = train.Config.from_env(seed=meta["config"]["seed"])
    X_train, _, y_train, _ = train_test_split(X, y, test_size=cfg.test_size, stratify=y, random_state=cfg.seed)
    est = train.build(cfg, meta["model"]["family"], meta["model"]["strategy"], meta["model"]["params"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_train, y_train)
    return train.without_sampler(est), meta, X
