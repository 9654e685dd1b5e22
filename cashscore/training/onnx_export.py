"""The ONNX export: the fitted sklearn pipeline converted, with Platt calibration appended to the graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from cashscore.artefact.store import BASE, CONTRIBUTIONS, OUTPUT, OUTPUTS
from cashscore.core.errors import CashscoreError
from cashscore.features import contract
from cashscore.training import contributions, preprocess

# Probabilities are clipped before the log-odds so that 0 and 1 stay finite.
EPS = 1e-7


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


def to_onnx(pipeline: Any, a: float, b: float) -> onnx.ModelProto:
    """Convert a fitted sklearn pipeline and append Platt calibration.

    Args:
        pipeline: preprocessing and classifier, without any sampler.
        a: calibration slope on the log-odds.
        b: calibration intercept.

    Returns:
        A model with one input per contract feature and three outputs: `probabilities` [N, 2],
        `contributions` [N, features] and `base_log_odds` [N, 1] (see `contributions.py`).

    Raises:
        CashscoreError: for a model whose contributions cannot be built into the graph.
    """
    from skl2onnx import convert_sklearn

    from cashscore.training.preprocess import onnx_input_types

    _register_lightgbm()
    model = convert_sklearn(
        pipeline,
        initial_types=onnx_input_types(),
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    graph = model.graph
    raw = "uncalibrated_probabilities"
    for node in graph.node:
        node.output[:] = [raw if o == OUTPUT else o for o in node.output]
        node.input[:] = [raw if i == OUTPUT else i for i in node.input]
    del graph.output[:]
    lo, hi = float(np.log(EPS) - np.log1p(-EPS)), float(np.log1p(-EPS) - np.log(EPS))
    graph.initializer.extend(
        [
            helper.make_tensor("cal_one", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("cal_lo", TensorProto.FLOAT, [], [EPS]),
            helper.make_tensor("cal_hi", TensorProto.FLOAT, [], [1 - EPS]),
            helper.make_tensor("cal_logit_lo", TensorProto.FLOAT, [], [lo]),
            helper.make_tensor("cal_logit_hi", TensorProto.FLOAT, [], [hi]),
            helper.make_tensor("cal_a", TensorProto.FLOAT, [], [a]),
            helper.make_tensor("cal_b", TensorProto.FLOAT, [], [b]),
            helper.make_tensor("cal_start", TensorProto.INT64, [1], [1]),
            helper.make_tensor("cal_end", TensorProto.INT64, [1], [2]),
            helper.make_tensor("cal_axis", TensorProto.INT64, [1], [1]),
        ]
    )
    if _margin_output(graph, raw):
        # Boosting: calibrate the summed log-odds itself (logit(sigmoid(m)) = m), clipped as the
        # probabilities would be. Besides two fewer Log nodes, this keeps every score independent
        # of the batch it arrives in: onnxruntime's own logistic differs in the last bit between
        # its single-row and batched code paths.
        logit = [helper.make_node("Clip", ["cal_m", "cal_logit_lo", "cal_logit_hi"], ["cal_logit"])]
        source = "cal_m"
    else:
        logit = [
            helper.make_node("Clip", ["cal_p", "cal_lo", "cal_hi"], ["cal_pc"]),
            helper.make_node("Sub", ["cal_one", "cal_pc"], ["cal_q"]),
            helper.make_node("Log", ["cal_pc"], ["cal_logp"]),
            helper.make_node("Log", ["cal_q"], ["cal_logq"]),
            helper.make_node("Sub", ["cal_logp", "cal_logq"], ["cal_logit"]),
        ]
        source = "cal_p"
    graph.node.extend(
        [
            helper.make_node("Slice", [raw, "cal_start", "cal_end", "cal_axis"], [source]),
            *logit,
            helper.make_node("Mul", ["cal_logit", "cal_a"], ["cal_scaled"]),
            helper.make_node("Add", ["cal_scaled", "cal_b"], ["cal_z"]),
            helper.make_node("Sigmoid", ["cal_z"], ["cal_pd"]),
            helper.make_node("Sub", ["cal_one", "cal_pd"], ["cal_repay"]),
            helper.make_node("Concat", ["cal_repay", "cal_pd"], [OUTPUT], axis=1),
        ]
    )
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [None, 2]))
    _append_contributions(graph, pipeline)
    model = onnx.utils.Extractor(model).extract_model([i.name for i in graph.input], list(OUTPUTS))
    onnx.checker.check_model(model)
    return model


def _append_contributions(graph: onnx.GraphProto, pipeline: Any) -> None:
    """Add the path contributions of a LightGBM model, calibrated, as outputs `contributions` and `base_log_odds`."""
    estimator = pipeline.steps[-1][1]
    booster = getattr(estimator, "booster_", None)
    classifier = next((n for n in graph.node if n.op_type == "TreeEnsembleClassifier"), None)
    if booster is None or classifier is None:
        raise CashscoreError(
            f"{type(estimator).__name__}: its per-feature contributions cannot be built into the ONNX graph; "
            "only LightGBM models are exported"
        )
    columns = preprocess.output_columns("tree")
    attrs = contributions.regressor_attributes(booster.dump_model(), len(columns))
    n = len(columns)
    graph.initializer.extend(
        [
            helper.make_tensor("cs_zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("cs_n", TensorProto.INT64, [1], [n]),
            helper.make_tensor("cs_n1", TensorProto.INT64, [1], [n + 1]),
            # Input columns (numbers, then categories) back to contract order.
            helper.make_tensor("cs_order", TensorProto.INT64, [n], [columns.index(c) for c in contract.NAMES]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node(
                "TreeEnsembleRegressor", [classifier.input[0]], ["cs_paths"], domain="ai.onnx.ml", **attrs
            ),
            helper.make_node("Slice", ["cs_paths", "cs_zero", "cs_n", "cal_axis"], ["cs_by_column"]),
            helper.make_node("Slice", ["cs_paths", "cs_n", "cs_n1", "cal_axis"], ["cs_bias"]),
            helper.make_node("Gather", ["cs_by_column", "cs_order"], ["cs_by_feature"], axis=1),
            # Calibration is affine in the log-odds, so it scales every term and shifts the base.
            helper.make_node("Mul", ["cs_by_feature", "cal_a"], [CONTRIBUTIONS]),
            helper.make_node("Mul", ["cs_bias", "cal_a"], ["cs_bias_scaled"]),
            helper.make_node("Add", ["cs_bias_scaled", "cal_b"], [BASE]),
        ]
    )
    graph.output.extend(
        [
            helper.make_tensor_value_info(CONTRIBUTIONS, TensorProto.FLOAT, [None, len(contract.NAMES)]),
            helper.make_tensor_value_info(BASE, TensorProto.FLOAT, [None, 1]),
        ]
    )


def _margin_output(graph: onnx.GraphProto, raw: str) -> bool:
    """Make a binary tree ensemble ending in a logistic output its log-odds instead.

    Returns:
        True when `raw`'s column 1 now holds the log-odds of default.
    """
    producers = {o: n for n in graph.node for o in n.output}
    node = producers.get(raw)
    while node is not None and node.op_type == "Identity":
        node = producers.get(node.input[0])
    if node is None or node.op_type != "TreeEnsembleClassifier":
        return False
    attrs = {a.name: a for a in node.attribute}
    classes = attrs.get("classlabels_int64s")
    if classes is None or len(classes.ints) != 2 or attrs["post_transform"].s != b"LOGISTIC":
        return False
    attrs["post_transform"].s = b"NONE"
    return True
