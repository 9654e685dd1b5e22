"""Helpers the benchmarks share: refit the served sklearn pipeline from a model's metadata."""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path
from typing import Any

from cashscore.features import inputs  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from cashscore.artefact import store  # noqa: E402
from cashscore.training import trainer  # noqa: E402


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
    card = store.load_verified(models).card
    df = trainer.load_training(db)
    X = inputs.frame(df)
    y = df["loan_status"].to_numpy(dtype=int)
    cfg = trainer.Config.from_env(seed=card.config.seed)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=cfg.test_size, stratify=y, random_state=cfg.seed)
    est = trainer.build(cfg, card.model.family, card.model.strategy, card.model.params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_train, y_train)
    return trainer.without_sampler(est), card, X
