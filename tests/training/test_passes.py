"""The tree walk cut into passes of whole trees: the same model, and the margin-only graph still
bit-identical to the whole one."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from cashscore.features import inputs

from cashscore.artefact import graph
from cashscore.artefact.store import OUTPUT
from cashscore.core.errors import CashscoreError
from cashscore.training import onnx_export, options, preprocess, trainer


def run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def ensembles(model: onnx.ModelProto) -> list[dict]:
    return [
        {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        for n in model.graph.node
        if n.op_type == "TreeEnsembleRegressor"
    ]


@pytest.fixture(scope="module")
def fitted(trained):
    db, _, _ = trained
    df = trainer.load_training(db)
    X, y = inputs.frame(df), df["loan_status"].to_numpy(dtype=int)
    config = options.Config.from_env(quick=True)
    pipeline = trainer.build(config, "lightgbm", "none", {"n_estimators": 40})
    pipeline.fit(preprocess.protect_age(X, config.protected_age), y)
    return pipeline, config.protected_age, inputs.onnx_feeds(X), X


def test_passes_hold_every_tree_once_and_score_as_one_pass(fitted):
    pipeline, age, feeds, _ = fitted
    one = onnx_export.to_onnx(pipeline, 1.1, -0.2, age, pass_nodes=10**9)
    cut = onnx_export.to_onnx(pipeline, 1.1, -0.2, age, pass_nodes=500)
    (whole,) = ensembles(one)
    parts = ensembles(cut)
    nodes = len(whole["nodes_treeids"])
    assert len(parts) == -(-nodes // 500) > 1
    # Consecutive whole trees, renumbered from 0 in each pass, every node and weight kept once.
    trees = [max(p["nodes_treeids"]) + 1 for p in parts]
    assert sum(trees) == max(whole["nodes_treeids"]) + 1
    for key in ("nodes_nodeids", "nodes_values", "nodes_featureids", "target_weights", "target_ids"):
        assert [v for p in parts for v in p[key]] == whole[key]
    shifts = np.repeat(np.cumsum([0, *trees[:-1]]), [len(p["nodes_treeids"]) for p in parts])
    assert list(np.concatenate([p["nodes_treeids"] for p in parts]) + shifts) == whole["nodes_treeids"]
    p1, c1, b1 = run(one, feeds)
    p2, c2, b2 = run(cut, feeds)
    # Only the grouping of the float32 sums differs.
    assert np.abs(p1 - p2).max() <= 1e-6 and np.abs(c1 - c2).max() <= 1e-5 and np.abs(b1 - b2).max() <= 1e-5
    z = b2[:, 0].astype(np.float64) + c2.astype(np.float64).sum(axis=1)
    assert np.abs(1 / (1 + np.exp(-z)) - p2[:, 1]).max() <= 1e-6


@pytest.mark.parametrize("pass_nodes", [10**9, 500])
def test_the_margin_only_graph_of_passes_is_bit_identical(fitted, pass_nodes):
    pipeline, age, feeds, _ = fitted
    model = onnx_export.to_onnx(pipeline, 1.1, -0.2, age, pass_nodes=pass_nodes)
    plain = graph.margin_only(model, OUTPUT)
    parts = ensembles(plain)
    assert len(parts) == len(ensembles(model))
    assert all(p["n_targets"] == 1 and set(p["target_ids"]) == {0} for p in parts)
    assert np.array_equal(run(plain, feeds)[0], run(model, feeds)[0])


def test_a_sum_of_anything_but_ensembles_is_refused(fitted):
    pipeline, age, _, _ = fitted
    model = onnx_export.to_onnx(pipeline, 1.1, -0.2, age, pass_nodes=500)
    total = next(n for n in model.graph.node if n.op_type == "Sum")
    total.input.append(model.graph.input[0].name)
    with pytest.raises(CashscoreError, match="no path-contribution ensemble"):
        graph.margin_only(model, OUTPUT)


def test_the_bias_is_weighted_once_on_the_first_tree_and_is_lightgbms_expected_value(fitted):
    pipeline, age, feeds, X = fitted
    model = onnx_export.to_onnx(pipeline, 1.1, -0.2, age, pass_nodes=500)
    parts = ensembles(model)
    bias = parts[0]["n_targets"] - 2
    # Every leaf of every tree weighs the margin; only the first tree's leaves weigh the bias.
    margins = sum(t == bias + 1 for p in parts for t in p["target_ids"])
    leaves = sum(m == b"LEAF" for p in parts for m in p["nodes_modes"])
    assert margins == leaves
    weighing = [
        {tree for tree, t in zip(p["target_treeids"], p["target_ids"], strict=True) if t == bias} for p in parts
    ]
    assert weighing == [{0}] + [set()] * (len(parts) - 1)
    # The bias is LightGBM's own expected value (TreeSHAP's, from the same leaf counts), calibrated.
    protected = preprocess.protect_age(X, age)
    expected = pipeline.steps[-1][1].booster_.predict(pipeline[:-1].transform(protected), pred_contrib=True)[:, -1]
    _, _, base = run(model, feeds)
    assert np.allclose(base[:, 0], 1.1 * expected - 0.2, atol=1e-5) and np.ptp(base) == 0
