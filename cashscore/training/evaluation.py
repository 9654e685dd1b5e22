"""Model metrics, calibration, threshold policies and the model_eval tables, all pure functions."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from cashscore.core import sqlnames
from cashscore.core.errors import CashscoreError
from cashscore.features import contract, inputs
from cashscore.training.onnx_export import EPS
from cashscore.warehouse.export import connect

if TYPE_CHECKING:
    from cashscore.training.options import Candidate, Config

GRID = np.round(np.arange(0.01, 0.99, 0.0025), 4)
LIBRARIES = (
    "scikit-learn", "imbalanced-learn", "lightgbm", "skl2onnx", "onnxmltools", "onnx", "onnxruntime",
    "duckdb", "sqlglot", "numpy", "pandas",
)  # fmt: skip


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC."""
    return float(roc_auc_score(y, p))


def ks(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the classes' score distributions."""
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def profit(y: np.ndarray, p: np.ndarray, amount: np.ndarray, threshold: float, cfg: Config) -> float:
    """Realised profit of approving every applicant whose probability is under the threshold."""
    approved = p < threshold
    return float(np.sum(amount[approved] * np.where(y[approved] == 1, -cfg.lgd, cfg.margin)))


def choose_threshold(y: np.ndarray, p: np.ndarray, cfg: Config, amount: np.ndarray) -> float:
    """The decision threshold by the configured policy (deny when p >= threshold).

    Args:
        y: labels.
        p: calibrated out-of-fold probabilities.
        cfg: the policy and its parameters.
        amount: loan amounts (profit policy).

    Returns:
        profit: the threshold that maximises realised profit given loss-given-default and margin;
        approval: the one that approves the configured share; f1: the one with the best F1.
    """
    if cfg.policy == "approval":
        return float(np.quantile(p, cfg.approval_rate))
    if cfg.policy == "f1":
        scores = [_f1(y, p >= t) for t in GRID]
        return float(GRID[int(np.argmax(scores))])
    amounts = np.nan_to_num(np.asarray(amount, dtype=float), nan=float(np.nanmedian(amount)))
    profits = [profit(y, p, amounts, t, cfg) for t in GRID]
    return float(GRID[int(np.argmax(profits))])


def _f1(y: np.ndarray, predicted: np.ndarray) -> float:
    tp = np.sum(predicted & (y == 1))
    return float(2 * tp / max(np.sum(predicted) + np.sum(y == 1), 1))


def summary(
    y: np.ndarray, p: np.ndarray, cfg: Config, amount: np.ndarray, threshold: float | None = None
) -> dict[str, Any]:
    """Every metric the report shows, with threshold metrics at the policy's threshold.

    Args:
        y: labels.
        p: probabilities of default.
        cfg: the threshold policy.
        amount: loan amounts.
        threshold: a fixed threshold; chosen by the policy on (y, p) when None.

    Returns:
        ROC-AUC, PR-AUC, KS, Gini, Brier, log loss, threshold, accuracy, precision, recall, F1,
        confusion matrix (tn, fp, fn, tp with 1 = default = deny) and approval rate.
    """
    amounts = np.nan_to_num(np.asarray(amount, dtype=float), nan=float(np.nanmedian(amount)))
    t = choose_threshold(y, p, cfg, amounts) if threshold is None else threshold
    denied = p >= t
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, denied.astype(int), labels=[0, 1]).ravel())
    auc = roc_auc(y, p)
    return {
        "roc_auc": auc,
        "pr_auc": float(average_precision_score(y, p)),
        "ks": ks(y, p),
        "gini": 2 * auc - 1,
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])),
        "threshold": float(t),
        "accuracy": (tp + tn) / len(y),
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "f1": 2 * tp / max(2 * tp + fp + fn, 1),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "approval_rate": float(np.mean(~denied)),
        "profit_per_loan": profit(y, p, amounts, t, cfg) / len(y),
    }


def fit_platt(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit sigmoid(a · logit(p) + b) to the labels: monotonic, so it never reorders applicants."""
    clipped = np.clip(p, EPS, 1 - EPS)
    logit = (np.log(clipped) - np.log1p(-clipped)).reshape(-1, 1)
    model = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def _score(session: Any, X: pd.DataFrame) -> np.ndarray:
    return session.run(None, inputs.onnx_feeds(X))[0][:, 1]


# What "more risky" means for the constrained features (the contract's monotonic_step): a step up,
# or the category moved to.
MONOTONIC_STEPS: dict[str, Any] = {f.name: f.monotonic_step for f in contract.FEATURES if f.monotonic}


def monotonic_violations(session: Any, X: pd.DataFrame, rows: int = 1000) -> dict[str, int]:
    """Count applicants whose risk falls when a known constrained value gets worse (must be 0 everywhere).

    Missing values are left out: going from missing to known is not a step along the feature.
    """
    found = {}
    for name, step in MONOTONIC_STEPS.items():
        known = X[(X[name] != step) & (X[name] != "")] if isinstance(step, str) else X[X[name].notna()]
        sample = known.head(rows)
        worse = sample.copy()
        worse[name] = step if isinstance(step, str) else (worse[name] + step).astype(np.float32)
        found[name] = int(np.sum(_score(session, worse) < _score(session, sample) - 1e-6))
    return found


def protected_age_check(session: Any, X: pd.DataFrame, protected_age: float) -> dict[str, Any]:
    """Every applicant of `X` as they are, and again as if aged the protected age, five years
    older and the oldest the contract accepts: count those whose age contribution raises the risk
    (must be 0: the rule holds by construction, this proves the artefact keeps it).
    """
    column = contract.NAMES.index(contract.AGE)
    oldest = contract.BY_NAME[contract.AGE].valid_max or protected_age
    found, checked = 0, 0
    for age in (None, protected_age, min(protected_age + 5, oldest), oldest):
        rows = X[X[contract.AGE] >= protected_age] if age is None else X.assign(**{contract.AGE: np.float32(age)})
        if rows.empty:
            continue
        contributions = session.run(None, inputs.onnx_feeds(rows))[1]
        found += int(np.sum(contributions[:, column] > 0))
        checked += len(rows)
    return {"age": protected_age, "rows_checked": checked, "positive_age_contributions": found}


def permutation_importance(session: Any, X: pd.DataFrame, y: np.ndarray, seed: int, repeats: int = 3) -> pd.DataFrame:
    """Mean drop in ROC-AUC when one feature's values are shuffled, through the ONNX model itself."""
    rng = np.random.default_rng(seed)
    base = roc_auc(y, _score(session, X))
    rows = []
    for name in contract.NAMES:
        drops = []
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[name] = shuffled[name].to_numpy()[rng.permutation(len(X))]
            drops.append(base - roc_auc(y, _score(session, shuffled)))
        rows.append({"feature": name, "importance": float(np.mean(drops)), "std": float(np.std(drops))})
    return pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)


def reference_values(X: pd.DataFrame) -> dict[str, Any]:
    """A typical applicant (medians and most common categories): the baseline that reasons compare with."""
    ref: dict[str, Any] = {}
    for f in contract.FEATURES:
        col = X[f.name]
        if f.kind == "numeric":
            # Rounded: medians of float32 columns print as 0.15000000596.
            ref[f.name] = round(float(np.nanmedian(col.to_numpy(dtype=float))), 4)
        else:
            known = col[col != ""]
            ref[f.name] = str(known.mode().iloc[0]) if len(known) else ""
    return ref


def tables(
    candidates: list[Candidate], y: np.ndarray, p: np.ndarray, importance: pd.DataFrame, metrics: dict[str, Any]
) -> dict[str, pd.DataFrame]:
    """The evaluation as tables, for the report and for schema model_eval."""
    fpr, tpr, thr = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
    precision, recall, _ = precision_recall_curve(y, p)
    keep_pr = np.unique(np.linspace(0, len(precision) - 1, min(len(precision), 400)).astype(int))
    bins = np.clip((p * 10).astype(int), 0, 9)
    calibration = (
        pd.DataFrame({"bin": bins, "p": p, "y": y})
        .groupby("bin")
        .agg(mean_predicted=("p", "mean"), observed_rate=("y", "mean"), rows=("y", "size"))
        .reset_index()
    )
    order = np.argsort(-p, kind="stable")
    deciles = np.arange(len(p)) * 10 // len(p) + 1
    lift = (
        pd.DataFrame({"decile": deciles, "y": y[order], "p": p[order]})
        .groupby("decile")
        .agg(rows=("y", "size"), defaults=("y", "sum"), mean_predicted=("p", "mean"))
        .reset_index()
    )
    lift["default_rate"] = lift["defaults"] / lift["rows"]
    lift["lift"] = lift["default_rate"] / y.mean()
    lift["cumulative_capture"] = lift["defaults"].cumsum() / y.sum()
    rows = []
    for c in candidates:
        row = {"family": c.family, "strategy": c.strategy, "seconds": c.seconds}
        row.update({k: v for k, v in c.metrics.items() if k != "confusion"})
        row.update({f"cm_{k}": v for k, v in c.metrics["confusion"].items()})
        rows.append(row)
    flat = {k: v for k, v in metrics.items() if k != "confusion"} | {
        f"cm_{k}": v for k, v in metrics["confusion"].items()
    }
    return {
        "candidates": pd.DataFrame(rows),
        "metrics": pd.DataFrame([{"metric": k, "value": float(v)} for k, v in flat.items()]),
        "roc_points": pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep], "threshold": np.minimum(thr[keep], 1.0)}),
        "pr_points": pd.DataFrame({"recall": recall[keep_pr], "precision": precision[keep_pr]}),
        "calibration_bins": calibration,
        "decile_lift": lift,
        "feature_importance": importance,
        "test_scores": pd.DataFrame({"default_probability": p, "loan_status": y}),
    }


def write_tables(db: Path, evaluation: dict[str, pd.DataFrame], version: str) -> None:
    """Store this version's rows in schema model_eval's tables, in one transaction, keyed by version.

    Rows of other versions stay: the dashboard and SQL users select the version they describe, so
    rows written for a model that was never switched to describe only that model.

    Args:
        db: the database trained from.
        evaluation: name -> table.
        version: the model version, stored in every row.
    """
    con = connect(db, read_only=False)
    try:
        con.execute("begin transaction")
        con.execute("create schema if not exists model_eval")
        existing = {
            r[0]
            for r in con.execute("select table_name from duckdb_tables() where schema_name = 'model_eval'").fetchall()
        }
        for name, table in evaluation.items():
            target = sqlnames.qualified("model_eval", name)
            con.register("frame_view", table.assign(model_version=version))
            if name in existing:
                con.execute(f"delete from {target} where model_version = ?", [version])
                con.execute(f"insert into {target} by name select * from frame_view")
            else:
                con.execute(f"create table {target} as select * from frame_view")
            con.unregister("frame_view")
        con.execute("commit")
        con.execute("checkpoint")
    except duckdb.Error as exc:
        con.execute("rollback")
        raise CashscoreError(f"{db}: cannot store the evaluation tables: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries the model depends on."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
