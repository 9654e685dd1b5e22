"""Helpers the benchmarks share: the model's own split, its sklearn twin, a synthetic table, peak memory."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from cashscore.features import inputs  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from cashscore.artefact import store  # noqa: E402
from cashscore.core import config  # noqa: E402
from cashscore.training import preprocess, trainer  # noqa: E402
from cashscore.warehouse.restore import restore  # noqa: E402
from cashscore.warehouse.sample import write_sample  # noqa: E402


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, refused with the value given."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low:,} to {high:,}, got {value:,}")
        return value

    return parse


def wholes(low: int, high: int) -> Callable[[str], list[int]]:
    """An argparse type: distinct whole numbers from `low` to `high`, comma-separated."""
    one = whole(low, high)

    def parse(text: str) -> list[int]:
        values = [one(part.strip()) for part in text.split(",")]
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"expected distinct numbers, got {text[:40]!r}")
        return values

    return parse


def median_seconds(fn: Any, repeat: int) -> float:
    """Median wall time of `repeat` calls of fn."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved(sides: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Wall times of each side's call, once per round, the sides in turn: this machine's speed
    drifts by a quarter within minutes (raw onnxruntime on the same rows: 148,800 rows/s before a
    4-minute load test, 111,000 right after), so sides measured one after the other would compare
    different machines. Ratios are taken round by round (`round_ratios`)."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            times[name].append(median_seconds(fn, 1))
    return times


def round_ratios(numerator: list[float], denominator: list[float]) -> tuple[float, list[float]]:
    """The ratio of two sides' figures in each round, and their median."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return statistics.median(ratios), ratios


@dataclass
class Split:
    """The labelled rows split exactly as `cashscore train` split them for a model."""

    card: Any
    X: pd.DataFrame
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray


def split(db: Path, models: Path) -> Split:
    """The model's own training part and held-out split (same data, seed and test size)."""
    card = store.load_verified(models).card
    df = trainer.load_training(db)
    X, y = inputs.frame(df), df["loan_status"].to_numpy(dtype=int)
    cfg = trainer.Config.from_env(seed=card.config.seed)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=cfg.test_size, stratify=y, random_state=cfg.seed
    )
    return Split(card, X, X_train, X_test, y_train, y_test)


def refit(db: Path, models: Path) -> tuple[Any, dict[str, Any], Any]:
    """Fit the metadata's chosen family, strategy and parameters on the same training split `train` used,
    with ages capped at the model's protected age as training capped them, so the sklearn pipeline
    is the ONNX model's twin (same data, same seed).

    Returns:
        (the plain sklearn pipeline without sampler, the metadata, the whole labelled frame).
    """
    part = split(db, models)
    card = part.card
    cfg = trainer.Config.from_env(seed=card.config.seed)
    est = trainer.build(cfg, card.model.family, card.model.strategy, card.model.params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(preprocess.protect_age(part.X_train, card.protected_age.age), part.y_train)
    return trainer.without_sampler(est), card, part.X


def sample_table(work: Path, rows: int, source: str = "marts.applicants") -> tuple[Path, duckdb.DuckDBPyConnection]:
    """A synthetic dump of `rows` applications restored in `work`, with `source` copied to table `portfolio`.

    Returns:
        (the database, an open connection to it).
    """
    dump = work / "sample.sql"
    write_sample(dump, rows=rows, seed=7)
    db = work / "sample.duckdb"
    restore([dump], db, config.load().paths.sql_dir, say=lambda _: None, audit=False)
    con = duckdb.connect(str(db))
    con.execute(f"create table portfolio as select * from {source}")
    return db, con


# The bound on DuckDB's block cache (CASHSCORE_STREAM_MEMORY) the memory benchmarks also measure with.
STREAM_BOUND = "64MB"


def peak_rss(command: list[str], env: dict[str, str] | None = None) -> int:
    """Peak resident memory (KiB) of one run of a `cashscore` command (`env` added to the environment)."""
    probe = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    cli = [sys.executable, "-m", "cashscore.cli", *command]
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", probe, *cli], check=True, capture_output=True, text=True, env=environment
    )
    return int(done.stdout.strip())
