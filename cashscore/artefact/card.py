"""The model card: a typed record of everything a model version is and was measured to do.

Training writes it, and the server, dashboard, report, batch scorer and benchmarks read its fields
by name; JSON on disk is decoded into these types and refused, naming the file, when it does not fit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from cashscore.core.errors import CashscoreError
from cashscore.features import contract

# Raised whenever a field is added, removed or changes meaning: an older card is refused, not misread.
SCHEMA_VERSION = 6


class Feature(msgspec.Struct, frozen=True, kw_only=True):
    """One input of the contract the model was trained with."""

    name: str
    kind: str
    table: str
    description: str
    label_pt: str
    valid_min: float | None
    valid_max: float | None
    cap: float | None
    categories: list[str]
    synonyms: dict[str, str]
    monotonic: int


class Data(msgspec.Struct, frozen=True, kw_only=True):
    """The training data: where it came from and its shape."""

    database: str
    fingerprint: str
    rows: int
    train_rows: int
    test_rows: int
    default_rate: float


class Confusion(msgspec.Struct, frozen=True, kw_only=True):
    """Counts at the threshold, 1 = default = deny."""

    tn: int
    fp: int
    fn: int
    tp: int


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    """Ranking, calibration and threshold metrics of one set of scores."""

    roc_auc: float
    pr_auc: float
    ks: float
    gini: float
    brier: float
    log_loss: float
    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    confusion: Confusion
    approval_rate: float
    profit_per_loan: float


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    """The held-out test split (scored once) and the chosen candidate's cross-validation."""

    test: Metrics
    cv: Metrics


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """One family and balancing strategy compared in cross-validation."""

    family: str
    strategy: str
    params: dict[str, Any]
    metrics: Metrics
    seconds: float


class Model(msgspec.Struct, frozen=True, kw_only=True):
    """The chosen estimator."""

    family: str
    strategy: str
    params: dict[str, Any]
    cv_roc_auc: float


class Calibration(msgspec.Struct, frozen=True, kw_only=True):
    """Platt scaling on the log-odds: sigmoid(a * logit(p) + b)."""

    method: str
    a: float
    b: float


class Threshold(msgspec.Struct, frozen=True, kw_only=True):
    """The decision rule and the policy that chose it."""

    value: float
    policy: str
    lgd: float
    margin: float
    approval_rate: float
    rule: str


class Parity(msgspec.Struct, frozen=True, kw_only=True):
    """sklearn against onnxruntime on the test split."""

    max_abs_diff: float
    decision_flips: int
    rows: int


class RunConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How the training run was set up (cashscore.training.options.Config, recorded)."""

    policy: str
    lgd: float
    margin: float
    approval_rate: float
    seed: int
    tuning_tolerance: float
    protected_age: float
    test_size: float
    folds: int
    calibration_folds: int
    tuning_iterations: int
    quick: bool
    families: list[str]
    strategies: list[str]


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    """How reasons are computed, proven additive and (for trees) compared with TreeSHAP on the test split."""

    method: str
    additivity_max_error: float
    rows: int
    # Only for trees: a linear model's contributions are its exact Shapley values.
    top1_agreement_treeshap: float | None = None
    top4_agreement_treeshap: float | None = None
    # Only for linear models: each preprocessed column's coefficient, in log-odds per standard
    # deviation (numbers, grades) or for the category against none of its own (one-hot columns).
    coefficients: dict[str, float] | None = None


class ProtectedAge(msgspec.Struct, frozen=True, kw_only=True):
    """From `age` on, age never raises the risk: the graph caps age there, and training checked
    `rows_checked` test applicants (as they are and as if older) for a risk-raising age contribution."""

    age: float
    rows_checked: int
    positive_age_contributions: int


class Bins(msgspec.Struct, frozen=True, kw_only=True):
    """How one column of the training population spreads over bins: the reference drift is measured against.

    Numbers: bin i holds edges[i-1] < x <= edges[i] (the first from -inf, the last to +inf), then a
    bin for missing values. Categories: one bin per label, then missing.
    """

    name: str
    kind: str
    edges: list[float]
    labels: list[str]
    shares: list[float]


class Population(msgspec.Struct, frozen=True, kw_only=True):
    """The training part's inputs and out-of-fold probabilities of default, binned."""

    rows: int
    features: list[Bins]
    score: Bins


class AgeBand(msgspec.Struct, frozen=True, kw_only=True):
    """Decisions and outcomes of one age band (monitoring/fairness.py)."""

    band: str
    rows: int
    approval_rate: float | None
    adverse_impact_ratio: float | None
    flagged: bool
    mean_predicted: float | None
    realised_rate: float | None
    true_positive_rate: float | None
    false_positive_rate: float | None
    tpr_gap: float | None
    fpr_gap: float | None


class Timings(msgspec.Struct, frozen=True, kw_only=True):
    total_seconds: float
    final_fit_seconds: float


class OnnxInput(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: str
    shape: list[int | None]


class Onnx(msgspec.Struct, frozen=True, kw_only=True):
    """The graph file: its inputs, its output and its digest."""

    file: str
    sha256: str
    inputs: list[OnnxInput]
    output: dict[str, Any]


class ModelCard(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a model version is; `model_version` is derived from the rest and the ONNX bytes."""

    schema_version: int = SCHEMA_VERSION
    model_version: str = ""
    created_at: str
    data: Data
    contract: list[Feature]
    rules: dict[str, Any]
    reference: dict[str, float | str | None]
    model: Model
    calibration: Calibration
    threshold: Threshold
    metrics: Evaluation
    candidates: list[Candidate]
    parity: Parity
    monotonic_violations: dict[str, int]
    explanation: Explanation
    protected_age: ProtectedAge
    population: Population
    fairness: list[AgeBand]
    config: RunConfig
    timings: Timings
    libraries: dict[str, str]
    onnx: Onnx


def contract_features() -> list[Feature]:
    """This cashscore's feature contract, as a card records it."""
    return [
        Feature(
            name=f.name,
            kind=f.kind,
            table=f.table,
            description=f.description,
            label_pt=f.label_pt,
            valid_min=f.valid_min,
            valid_max=f.valid_max,
            cap=f.cap,
            categories=list(f.categories),
            synonyms=dict(sorted(f.synonyms.items())),
            monotonic=f.monotonic,
        )
        for f in contract.FEATURES
    ]


def canonical(card: ModelCard) -> bytes:
    """The card's content as its version hashes it: sorted compact JSON without the version itself."""
    content = msgspec.to_builtins(card)
    content.pop("model_version", None)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def encode(card: ModelCard) -> bytes:
    """The card as the indented JSON file written beside the model."""
    return json.dumps(msgspec.to_builtins(card), indent=2, ensure_ascii=True).encode()


def decode(data: bytes, where: Path) -> ModelCard:
    """Read a card, refusing one of another schema version or one whose fields do not fit.

    Raises:
        CashscoreError: naming the file and the field.
    """
    try:
        head = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise CashscoreError(f"{where}: not valid JSON: {exc}") from None
    found = head.get("schema_version") if isinstance(head, dict) else None
    if found != SCHEMA_VERSION:
        raise CashscoreError(f"{where}: model card schema {found!r} is not {SCHEMA_VERSION}; retrain the model")
    try:
        return msgspec.convert(head, ModelCard)
    except msgspec.ValidationError as exc:
        raise CashscoreError(f"{where}: not a model card: {exc}") from None
