"""The sign-constrained logistic regression and its export: exact contributions inside the graph."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from cashscore.features import contract, inputs
from sklearn.linear_model import LogisticRegression

from cashscore.artefact import graph, store
from cashscore.artefact.store import OUTPUT
from cashscore.core.errors import CashscoreError
from cashscore.training import onnx_export, options, preprocess, trainer
from cashscore.training.linear import SignedLogisticRegression


def synthetic(rows=4000, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 6))
    w = np.array([1.5, -2.0, 0.5, 0.0, -0.7, 1.0])
    y = (rng.random(rows) < 1 / (1 + np.exp(-(X @ w - 0.8)))).astype(int)
    return X, y


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_without_a_binding_bound_the_fit_is_sklearns(class_weight):
    X, y = synthetic()
    ours = SignedLogisticRegression(signs=[1, -1, 0, 0, -1, 1], C=0.5, class_weight=class_weight).fit(X, y)
    theirs = LogisticRegression(C=0.5, class_weight=class_weight, tol=1e-10, max_iter=5000).fit(X, y)
    assert np.abs(ours.coef_ - theirs.coef_).max() < 1e-5
    assert np.abs(ours.predict_proba(X) - theirs.predict_proba(X)).max() < 1e-6


def test_a_binding_bound_holds_the_coefficient_at_zero_and_the_rest_is_the_fit_without_it():
    X, y = synthetic()
    # The first column raises the risk; asked never to, its best coefficient is 0, and then the
    # others are the unconstrained fit on the remaining columns.
    ours = SignedLogisticRegression(signs=[-1, 0, 0, 0, 0, 0]).fit(X, y)
    without = LogisticRegression(tol=1e-10, max_iter=5000).fit(X[:, 1:], y)
    assert ours.coef_[0, 0] == 0.0
    assert np.abs(ours.coef_[0, 1:] - without.coef_[0]).max() < 1e-5


def test_signs_must_match_the_columns():
    X, y = synthetic()
    with pytest.raises(ValueError, match="signs has 2 entries for 6 columns"):
        SignedLogisticRegression(signs=[1, 0]).fit(X, y)


@pytest.fixture(scope="module")
def fitted(sample_db):
    df = trainer.load_training(sample_db)
    X, y = inputs.frame(df), df["loan_status"].to_numpy(dtype=int)
    config = options.Config.from_env(quick=True)
    capped = preprocess.protect_age(X, config.protected_age)
    pipeline = trainer.build(config, "logreg", "none", {}).fit(capped, y)
    model = onnx_export.to_onnx(pipeline, 1.1, -0.2, config.protected_age, background=capped)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return pipeline, model, session, X, capped, config.protected_age


def test_the_model_keeps_the_contract_signs(fitted):
    pipeline, *_ = fitted
    coef = dict(zip(preprocess.output_columns("linear"), pipeline.steps[-1][1].coef_[0], strict=True))
    for feature in contract.FEATURES:
        if feature.monotonic:
            assert coef[feature.name] * feature.monotonic >= 0, feature.name


def test_contributions_are_coefficient_times_distance_from_the_mean_and_add_up(fitted):
    pipeline, _, session, X, capped, _ = fitted
    p, contributions, base = session.run(None, inputs.onnx_feeds(X))
    prep, coef = pipeline[:-1], pipeline.steps[-1][1].coef_[0]
    columns = prep.transform(capped)
    terms = coef * (columns - prep.transform(capped).mean(axis=0))
    owners = [c.split("=")[0] for c in preprocess.output_columns("linear")]
    expected = np.column_stack(
        [terms[:, [o == n for o in owners]].sum(axis=1) for n in contract.NAMES]
    )  # by hand, in float64
    assert np.abs(contributions - 1.1 * expected).max() < 1e-4
    z = base[:, 0].astype(np.float64) + contributions.astype(np.float64).sum(axis=1)
    assert np.abs(1 / (1 + np.exp(-z)) - p[:, 1]).max() <= 1e-6
    margin = pipeline.decision_function(capped)
    assert np.abs(p[:, 1] - 1 / (1 + np.exp(-(1.1 * margin - 0.2)))).max() < 1e-5


def test_no_applicant_at_or_above_the_protected_age_gets_a_risk_raising_age_term(fitted):
    _, _, session, X, _, age = fitted
    older = X.assign(**{contract.AGE: np.float32(contract.BY_NAME[contract.AGE].valid_max)})
    contributions = session.run(None, inputs.onnx_feeds(older))[1]
    assert (contributions[:, contract.NAMES.index(contract.AGE)] <= 0).all()


def test_the_margin_only_graph_of_a_linear_model_gives_the_same_probabilities(fitted):
    _, model, session, X, _, _ = fitted
    plain = graph.margin_only(model, OUTPUT)
    cut = onnxruntime.InferenceSession(plain.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = inputs.onnx_feeds(X)
    assert [o.name for o in cut.get_outputs()] == [OUTPUT]
    assert np.array_equal(cut.run(None, feeds)[0], session.run(None, feeds)[0])


def test_a_linear_model_without_its_background_or_another_family_is_not_exported(fitted, sample_db):
    pipeline, *_, age = fitted
    with pytest.raises(CashscoreError, match="background"):
        onnx_export.to_onnx(pipeline, 1.0, 0.0, age)
    df = trainer.load_training(sample_db)
    knn = trainer.build(options.Config.from_env(quick=True), "knn", "none", {})
    knn.fit(inputs.frame(df), df["loan_status"].to_numpy(dtype=int))
    with pytest.raises(CashscoreError, match="KNeighborsClassifier: its per-feature contributions cannot be built"):
        onnx_export.to_onnx(knn, 1.0, 0.0, age)


def test_training_serves_logistic_regression_and_only_compares_knn(trained_linear):
    _, models, card = trained_linear
    assert {c.family for c in card.candidates} == {"logreg", "knn"}
    assert card.model.family == "logreg"
    assert card.explanation.additivity_max_error <= 1e-6
    assert card.explanation.top1_agreement_treeshap is None and "exact Shapley values" in card.explanation.method
    assert card.protected_age.positive_age_contributions == 0 and not any(card.monotonic_violations.values())
    report = (store.current_folder(models) / store.REPORT_FILE).read_text()
    assert "coefficient x (x - training mean) of the sign-constrained logistic regression" in report
    # The coefficients, each with the sign the contract holds it to.
    coefficients = card.explanation.coefficients
    assert list(coefficients) == preprocess.output_columns("linear") and coefficients["person_age"] <= 0
    age = "≤ 0, at its bound" if coefficients["person_age"] == 0 else "≤ 0<"
    assert f"<tr><td>person_age</td><td>{coefficients['person_age']:+.4f}</td><td>{age}" in report


def test_the_report_gives_a_tree_models_agreement_with_treeshap(trained):
    _, models, card = trained
    report = (store.current_folder(models) / store.REPORT_FILE).read_text()
    assert f"<b>{card.explanation.top1_agreement_treeshap:.1%}</b> of test applicants" in report
    assert f"<b>{card.explanation.top4_agreement_treeshap:.1%}</b>" in report
