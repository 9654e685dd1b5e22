"""What a training run does (its plan) and what it produces per candidate: shared by the trainer and evaluation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cashscore.core import config
from cashscore.core.config import TrainingSettings
from cashscore.core.errors import CashscoreError

STRATEGIES = ("none", "class_weight", "undersample", "smotenc")
POLICIES = ("profit", "approval", "f1")
# Families held monotonic in the constrained features and explained exactly inside their ONNX graph:
# LightGBM (monotone constraints, path contributions: training/contributions.py) and logistic
# regression (sign-bounded coefficients, coefficient x (x - mean): training/linear.py). The others
# are compared, for the report, but cannot become the served model.
SERVABLE_FAMILIES = ("lightgbm", "logreg")
NATIVE_NAN = ("lightgbm", "hist_gb")


@dataclass(frozen=True)
class Config:
    """What a training run does: the policy and seed from `TrainingSettings`, the rest fixed or by --quick."""

    policy: str
    lgd: float
    margin: float
    approval_rate: float
    seed: int
    tuning_tolerance: float
    protected_age: float
    test_size: float = 0.2
    folds: int = 5
    calibration_folds: int = 5
    tuning_iterations: int = 6
    quick: bool = False
    families: tuple[str, ...] = ("logreg", "random_forest", "hist_gb", "knn", "lightgbm")
    strategies: tuple[str, ...] = STRATEGIES

    @staticmethod
    def from_env(settings: TrainingSettings | None = None, **overrides: Any) -> Config:
        """The training settings (CASHSCORE_POLICY, ... or `settings`), then explicit overrides (CLI flags)."""
        base = settings or config.load().training
        values: dict[str, Any] = dataclasses.asdict(base)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("quick"):
            values.update(folds=2, calibration_folds=3, tuning_iterations=2)
        cfg = Config(**values)
        if cfg.policy not in POLICIES:
            raise CashscoreError(f"--policy: {cfg.policy!r} is not one of {', '.join(POLICIES)}")
        if not 0 < cfg.lgd <= 1:
            raise CashscoreError(f"--lgd: {cfg.lgd} must lie in (0, 1]")
        if not 0 < cfg.margin <= 1:
            raise CashscoreError(f"--margin: {cfg.margin} must lie in (0, 1]")
        if not 0 < cfg.approval_rate < 1:
            raise CashscoreError(f"--approval-rate: {cfg.approval_rate} must lie in (0, 1)")
        if not set(cfg.families) & set(SERVABLE_FAMILIES):
            # Refused before minutes of comparison, not after them at the export.
            raise CashscoreError(
                f"--families: {', '.join(cfg.families)} can be compared but none can be served; include "
                f"{' or '.join(SERVABLE_FAMILIES)}, the families held monotonic and explained inside their ONNX graph"
            )
        if not 18 <= cfg.protected_age <= 100:
            raise CashscoreError(
                f"CASHSCORE_PROTECTED_AGE: {cfg.protected_age:g} must lie within the ages the contract "
                "accepts, 18 to 100"
            )
        return cfg


@dataclass
class Candidate:
    family: str
    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
