"""The ONNX export: the pipeline's preprocessing, one walk giving score and contributions (over the
trees in cache-sized passes, or one product with a linear model's coefficients), Platt calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from cashscore.artefact import graph as graph_shape
from cashscore.artefact.store import BASE, CONTRIBUTIONS, OUTPUT, OUTPUTS
from cashscore.core.errors import CashscoreError
from cashscore.features import contract
from cashscore.training import contributions, preprocess
from cashscore.training.linear import SignedLogisticRegression

# Probabilities are clipped before the log-odds so that 0 and 1 stay finite.
EPS = 1e-7
# Tree nodes per pass at most. onnxruntime's multi-target ensemble (the contributions) walks every
# tree for one row before it takes the next row, so a forest larger than a core's 1 MB L2 cache is
# fetched again for every row. Cut into passes of whole trees, summed, each pass (about 40 bytes a
# node, plus the leaves' weights) stays in cache while it walks all the rows. On the real model
# (300 trees, 37,478 nodes; bench/passes.py, median of 9), 8 passes took the contributions to 0.68x
# the time on one thread (20,000 rows) and 0.84x on two (2 x 50,000), the margin alone to 0.98x and
# 0.89x; one row costs 1.01x with contributions, 1.15x (12 µs) for the margin alone. Passes of
# 10,000 nodes gained less (0.87x and 0.85x with contributions).
PASS_NODES = 5_000


def _register_lightgbm() -> None:
    import lightgbm
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    update_registered_converter(
        lightgbm.LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def platt(p: np.ndarray, a: float, b: float) -> np.ndarray:
    """Calibrated probability of default: sigmoid(a * logit(p) + b), as the ONNX graph computes it."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return 1.0 / (1.0 + np.exp(-(a * (np.log(p) - np.log1p(-p)) + b)))


def _cap_age(graph: onnx.GraphProto, protected_age: float) -> None:
    """Cap the age input at the protected age before anything reads it (NaN stays NaN: NaN > age is false)."""
    capped = "cs_age_capped"
    for node in graph.node:
        node.input[:] = [capped if name == contract.AGE else name for name in node.input]
    graph.initializer.append(helper.make_tensor("cs_protected_age", TensorProto.FLOAT, [], [protected_age]))
    cap = [
        helper.make_node("Greater", [contract.AGE, "cs_protected_age"], ["cs_age_above"]),
        helper.make_node("Where", ["cs_age_above", "cs_protected_age", contract.AGE], [capped]),
    ]
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(cap + rest)


def _passes(attrs: dict[str, Any], pass_nodes: int) -> list[dict[str, Any]]:
    """The ensemble's attributes cut into passes of consecutive whole trees, about `pass_nodes`
    nodes each (renumbered from tree 0); one pass when the whole ensemble is that small."""
    trees = np.asarray(attrs["nodes_treeids"])
    sizes = np.bincount(trees)
    count = max(1, -(-int(sizes.sum()) // max(int(pass_nodes), 1)))
    # A tree joins the pass its first node falls in: passes of nearly equal node counts.
    group = (np.cumsum(sizes) - sizes) * count // sizes.sum()
    first = {g: int(np.argmax(group == g)) for g in np.unique(group)}
    out = []
    for g, start in first.items():
        part = {key: value for key, value in attrs.items() if not key.startswith(("nodes_", "target_"))}
        for prefix, ids in (("nodes_", trees), ("target_", np.asarray(attrs["target_treeids"]))):
            keep = np.flatnonzero(group[ids] == g)
            for key in (k for k in attrs if k.startswith(prefix)):
                part[key] = [attrs[key][i] for i in keep]
            part[f"{prefix}treeids"] = [int(ids[i]) - start for i in keep]
        out.append(part)
    return out


def to_onnx(
    pipeline: Any,
    a: float,
    b: float,
    protected_age: float,
    pass_nodes: int = PASS_NODES,
    background: Any = None,
) -> onnx.ModelProto:
    """Convert a fitted sklearn pipeline to one graph: the age cap, its preprocessing, then one walk
    giving per applicant the contributions, the bias and the log-odds (output `graph.PATHS`), then
    Platt calibration.

    The walk of a LightGBM model is its trees, carrying their path contributions (in passes of about
    `pass_nodes` nodes, summed); that of a sign-constrained logistic regression is one product with
    its coefficients, giving the exact `coefficient x (x - mean of background)`.

    Args:
        pipeline: preprocessing and classifier, without any sampler, fitted on ages capped at
            `protected_age` (preprocess.protect_age).
        a: calibration slope on the log-odds.
        b: calibration intercept.
        protected_age: the graph caps its age input here, as the pipeline's training data was.
        pass_nodes: tree nodes per pass at most (trees only).
        background: the rows a linear model's contributions are measured from, as the pipeline
            learnt from them (their preprocessed mean is the reference; linear models only).

    Returns:
        A model with one input per contract feature and three outputs: `probabilities` [N, 2],
        `contributions` [N, features] and `base_log_odds` [N, 1] (see `contributions.py`).

    Raises:
        CashscoreError: for a model whose contributions cannot be built into the graph.
    """
    estimator = pipeline.steps[-1][1]
    if getattr(estimator, "booster_", None) is not None:
        return _finish(*_trees(pipeline, pass_nodes), a, b, protected_age)
    if isinstance(estimator, SignedLogisticRegression):
        if background is None:
            raise CashscoreError("a linear model's contributions need the background rows their mean is taken over")
        return _finish(*_linear(pipeline, background), a, b, protected_age)
    raise CashscoreError(
        f"{type(estimator).__name__}: its per-feature contributions cannot be built into the ONNX graph; "
        "only LightGBM and sign-constrained logistic regression models are exported"
    )


def _convert(pipeline: Any) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn

    from cashscore.training.preprocess import onnx_input_types

    _register_lightgbm()
    return convert_sklearn(
        pipeline,
        initial_types=onnx_input_types(),
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )


def _trees(pipeline: Any, pass_nodes: int) -> tuple[onnx.ModelProto, list[str]]:
    """The converted pipeline with its classifier replaced by the walk over its trees."""
    model = _convert(pipeline)
    graph = model.graph
    classifier = next((n for n in graph.node if n.op_type == "TreeEnsembleClassifier"), None)
    if classifier is None:
        raise CashscoreError("the converted LightGBM pipeline has no tree ensemble to explain")
    # The converted classifier only shows where the preprocessed columns are: the pass below
    # replaces it and everything computed from it.
    features = classifier.input[0]
    dropped = {classifier.name}
    produced = set(classifier.output)
    for node in graph.node:
        if produced & set(node.input):
            dropped.add(node.name)
            produced |= set(node.output)
    kept = [node for node in graph.node if node.name not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.output[:]
    columns = preprocess.output_columns("tree")
    attrs = contributions.regressor_attributes(pipeline.steps[-1][1].booster_.dump_model(), len(columns))
    graph.node.extend(graph_shape.tree_walk(features, _passes(attrs, pass_nodes)))
    return model, columns


def _linear(pipeline: Any, background: Any) -> tuple[onnx.ModelProto, list[str]]:
    """The converted preprocessing, then its columns times the coefficients (`graph.linear_walk`):
    per contract feature the sum over its columns of `coefficient x (x - mean)`, then the bias (the
    intercept plus the coefficients times the means) and the log-odds."""
    prep = pipeline[:-1]
    model = _convert(prep)
    graph = model.graph
    features = graph.output[0].name
    del graph.output[:]
    coef = np.asarray(pipeline.steps[-1][1].coef_[0], dtype=np.float64)
    intercept = float(pipeline.steps[-1][1].intercept_[0])
    mean = np.asarray(prep.transform(background), dtype=np.float64).mean(axis=0)
    owners = [c.split("=")[0] for c in preprocess.output_columns("linear")]
    n = len(contract.NAMES)
    weights = np.zeros((len(coef), n + 2))
    offset = np.zeros(n + 2)
    for j, owner in enumerate(owners):
        k = contract.NAMES.index(owner)
        weights[j, k] = weights[j, n + 1] = coef[j]
        offset[k] -= coef[j] * mean[j]
    offset[n] = intercept + float(coef @ mean)
    offset[n + 1] = intercept
    graph.node.extend(graph_shape.linear_walk(graph, features, weights, offset))
    return model, list(contract.NAMES)


def _finish(model: onnx.ModelProto, columns: list[str], a: float, b: float, protected_age: float) -> onnx.ModelProto:
    """From `graph.PATHS` (a column per entry of `columns`, the bias, the margin) to the three
    calibrated outputs, with the age input capped first."""
    graph = model.graph
    _cap_age(graph, protected_age)
    n = len(columns)
    lo, hi = float(np.log(EPS) - np.log1p(-EPS)), float(np.log1p(-EPS) - np.log(EPS))
    graph.initializer.extend(
        [
            helper.make_tensor("cal_one", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("cal_logit_lo", TensorProto.FLOAT, [], [lo]),
            helper.make_tensor("cal_logit_hi", TensorProto.FLOAT, [], [hi]),
            helper.make_tensor("cal_a", TensorProto.FLOAT, [], [a]),
            helper.make_tensor("cal_b", TensorProto.FLOAT, [], [b]),
            helper.make_tensor("cs_axis", TensorProto.INT64, [1], [1]),
            helper.make_tensor("cs_zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("cs_n", TensorProto.INT64, [1], [n]),
            helper.make_tensor("cs_n1", TensorProto.INT64, [1], [n + 1]),
            helper.make_tensor(graph_shape.MARGIN_START, TensorProto.INT64, [1], [n + 1]),
            helper.make_tensor(graph_shape.MARGIN_END, TensorProto.INT64, [1], [n + 2]),
            # The walk's columns back to contract order.
            helper.make_tensor("cs_order", TensorProto.INT64, [n], [columns.index(c) for c in contract.NAMES]),
        ]
    )
    paths = graph_shape.PATHS
    graph.node.extend(
        [
            helper.make_node("Slice", [paths, graph_shape.MARGIN_START, graph_shape.MARGIN_END, "cs_axis"], ["cal_m"]),
            # The summed log-odds, clipped as probabilities in [EPS, 1 - EPS] would be, calibrated.
            # Computed from the margin itself rather than through LightGBM's logistic, so every score
            # is independent of the batch it arrives in (onnxruntime's logistic differs in the last
            # bit between its single-row and batched code paths).
            helper.make_node("Clip", ["cal_m", "cal_logit_lo", "cal_logit_hi"], ["cal_logit"]),
            helper.make_node("Mul", ["cal_logit", "cal_a"], ["cal_scaled"]),
            helper.make_node("Add", ["cal_scaled", "cal_b"], ["cal_z"]),
            helper.make_node("Sigmoid", ["cal_z"], ["cal_pd"]),
            helper.make_node("Sub", ["cal_one", "cal_pd"], ["cal_repay"]),
            helper.make_node("Concat", ["cal_repay", "cal_pd"], [OUTPUT], axis=1),
            helper.make_node("Slice", [paths, "cs_zero", "cs_n", "cs_axis"], ["cs_by_column"]),
            helper.make_node("Slice", [paths, "cs_n", "cs_n1", "cs_axis"], ["cs_bias"]),
            helper.make_node("Gather", ["cs_by_column", "cs_order"], ["cs_by_feature"], axis=1),
            # Calibration is affine in the log-odds, so it scales every term and shifts the base.
            helper.make_node("Mul", ["cs_by_feature", "cal_a"], [CONTRIBUTIONS]),
            helper.make_node("Mul", ["cs_bias", "cal_a"], ["cs_bias_scaled"]),
            helper.make_node("Add", ["cs_bias_scaled", "cal_b"], [BASE]),
        ]
    )
    graph.output.extend(
        [
            helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info(CONTRIBUTIONS, TensorProto.FLOAT, [None, len(contract.NAMES)]),
            helper.make_tensor_value_info(BASE, TensorProto.FLOAT, [None, 1]),
        ]
    )
    model = onnx.utils.Extractor(model).extract_model([i.name for i in graph.input], list(OUTPUTS))
    onnx.checker.check_model(model)
    return model
