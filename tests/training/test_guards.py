"""Training's guards and policies, each checked against a sabotage or a hand-computed answer."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pandas as pd
import pytest
from cashscore.features import contract, inputs
from onnx import TensorProto, helper
from sklearn.model_selection import train_test_split

from cashscore.artefact import store
from cashscore.core.errors import CashscoreError
from cashscore.scoring.scorer import Scorer
from cashscore.training import evaluation, onnx_export, options, trainer


def snapshot(models):
    return {str(p.relative_to(models)): p.read_bytes() for p in models.rglob("*") if p.is_file()}


def test_a_graph_that_disagrees_with_sklearn_is_never_saved(trained, monkeypatch):
    db, models, _ = trained
    before = snapshot(models)
    real = onnx_export.to_onnx
    # The sabotage: the exported graph's calibration intercept is off by 0.05.
    monkeypatch.setattr(
        onnx_export, "to_onnx", lambda pipeline, a, b, age, **kw: real(pipeline, a, b + 0.05, age, **kw)
    )
    with pytest.raises(CashscoreError, match="ONNX parity failed"):
        trainer.run(db, models, quick=True, say=lambda _: None, families=("lightgbm",))
    assert snapshot(models) == before


def test_a_model_that_breaks_monotonicity_is_never_saved(trained, monkeypatch):
    db, models, _ = trained
    before = snapshot(models)
    monkeypatch.setattr(evaluation, "monotonic_violations", lambda session, X: {"loan_percent_income": 3})
    with pytest.raises(CashscoreError, match="breaks monotonicity"):
        trainer.run(db, models, quick=True, say=lambda _: None, families=("lightgbm",))
    assert snapshot(models) == before


def tiny_graph(sign: float) -> onnxruntime.InferenceSession:
    """P(default) = sigmoid(sign * loan_percent_income), every other input ignored."""
    graph_inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT if n in contract.NUMERIC else TensorProto.STRING, [None, 1])
        for n in contract.NAMES
    ]
    nodes = [
        helper.make_node("Mul", ["loan_percent_income", "sign"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
    ]
    init = [
        helper.make_tensor("sign", TensorProto.FLOAT, [], [sign]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    out = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])]
    model = helper.make_model(
        helper.make_graph(nodes, "tiny", graph_inputs, out, init), opset_imports=[helper.make_opsetid("", 17)]
    )
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_monotonicity_check_sees_a_falling_risk(trained):
    db, _, _ = trained
    from cashscore.training.trainer import load_training

    X = inputs.frame(load_training(db)).head(300)
    assert evaluation.monotonic_violations(tiny_graph(+1.0), X)["loan_percent_income"] == 0
    assert evaluation.monotonic_violations(tiny_graph(-1.0), X)["loan_percent_income"] > 250


def cfg(**kw):
    return options.Config.from_env(**kw)


def test_threshold_policies_give_the_hand_computed_thresholds():
    # profit: approving p < t; margin 0.15, loss 0.75 of the amount. Approving all three earns
    # 15 - 75 + 150 = 90, the best; so the threshold is the first grid value above 0.9.
    y, p, amount = np.array([0, 1, 0]), np.array([0.1, 0.5, 0.9]), np.array([100.0, 100.0, 1000.0])
    assert evaluation.choose_threshold(y, p, cfg(policy="profit", margin=0.15, lgd=0.75), amount) == 0.9025
    # With a thin margin (1 %), the defaulter costs more than the large loan earns: approve only the
    # first (+1; all three give 1 - 75 + 10 = -64), so the first grid value above 0.1.
    assert evaluation.choose_threshold(y, p, cfg(policy="profit", margin=0.01, lgd=0.75), amount) == 0.1025
    # f1: perfect separation between 0.2 and 0.8; the first grid value above 0.2.
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])
    assert evaluation.choose_threshold(y, p, cfg(policy="f1"), np.ones(4)) == 0.2025
    # approval: 70 % approved.
    p = np.linspace(0.0, 1.0, 1001)
    threshold = evaluation.choose_threshold(np.zeros(1001, int), p, cfg(policy="approval", approval_rate=0.7), p)
    assert np.mean(p < threshold) == pytest.approx(0.7, abs=0.002)


def test_real_model_is_calibrated_bin_by_bin_on_held_out_rows(real_db, real_model):
    """Scored by the served graph on the test split training held out, each tenth of the
    probabilities agrees with the realised default rate within three standard errors (+1 point)."""
    card = store.load_verified(real_model).card
    df = trainer.load_training(real_db)
    X, y = inputs.frame(df), df["loan_status"].to_numpy(dtype=int)
    config = options.Config.from_env(seed=card.config.seed)
    _, X_test, _, y_test = train_test_split(X, y, test_size=config.test_size, stratify=y, random_state=config.seed)
    scorer = Scorer(store.load_verified(real_model))
    p = scorer.run(inputs.onnx_feeds(X_test))
    bins = pd.qcut(p, 10, labels=False, duplicates="drop")
    for b in np.unique(bins):
        mine = bins == b
        predicted, realised, n = p[mine].mean(), y_test[mine].mean(), mine.sum()
        se = np.sqrt(max(predicted * (1 - predicted), 1e-4) / n)
        assert abs(predicted - realised) <= 3 * se + 0.01, (b, predicted, realised, n)


def test_the_served_real_model_is_monotonic_for_every_real_applicant(real_db, real_model):
    """Checked from outside training, over every labelled real applicant (not the 1,000 rows
    training checks itself): a higher share of income or rate, a prior default, or a year younger
    never lowers the served model's probability of default."""
    session = Scorer(store.load_verified(real_model)).session
    X = inputs.frame(trainer.load_training(real_db))
    found = evaluation.monotonic_violations(session, X, rows=len(X))
    assert set(found) == {"person_age", "loan_int_rate", "loan_percent_income", "cb_person_default_on_file"}
    assert found == dict.fromkeys(found, 0)


def test_a_spy_sampler_inside_cross_validation_sees_only_each_training_fold(trained):
    from imblearn.under_sampling import RandomUnderSampler
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    seen: list[np.ndarray] = []

    class Spy(RandomUnderSampler):
        def fit_resample(self, X, y, **params):
            seen.append(np.asarray(X, dtype=float).copy())
            return super().fit_resample(X, y, **params)

    db, _, _ = trained
    df = trainer.load_training(db)
    X, y = inputs.frame(df), df["loan_status"].to_numpy(dtype=int)
    config = options.Config.from_env(quick=True)
    estimator = trainer.build(config, "lightgbm", "undersample", {})
    estimator.steps[1] = ("sampler", Spy(random_state=config.seed))
    folds = StratifiedKFold(3, shuffle=True, random_state=config.seed)
    part = trainer.TrainingPart(X, y, df["loan_amnt"].to_numpy(dtype=float), folds)
    p = part.oof(estimator)
    assert len(p) == len(X)
    splits = list(folds.split(X, y))
    assert len(seen) == len(splits)
    for (train, _), got in zip(splits, seen, strict=True):
        # Exactly the fold's training rows, preprocessed by a prep fitted on them alone.
        prep = clone(estimator.named_steps["prep"]).fit(X.iloc[train], y[train])
        expected = np.asarray(prep.transform(X.iloc[train]), dtype=float)
        assert got.shape == expected.shape and np.array_equal(got, expected, equal_nan=True)
