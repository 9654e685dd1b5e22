"""The shape of an exported graph, shared by the export that builds it and the scorer that cuts it down.

One walk over the trees (output `PATHS`) gives, per applicant, a target per input column (the path
contributions), the bias and the model's own log-odds (the margin, the leaf values themselves):
probabilities, contributions and base all come from it. The walk is one TreeEnsembleRegressor, or
several over consecutive groups of trees added up by one `Sum` (passes that fit in a core's cache,
onnx_export.PASS_NODES).
A caller that needs only the probabilities (most batch rows) runs `margin_only`: the same trees in
the same passes with the margin as their single target, which sums the same float32 leaf values in
the same order, so its probabilities are bit-identical at about 0.7 times the cost.
A linear model's walk is one product of its preprocessed columns with a coefficient matrix
(`linear_walk`): already cheap beside the preprocessing, so its margin-only graph is the whole walk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from cashscore.core.errors import CashscoreError

PATHS = "cs_paths"
# Initialisers holding the margin column's [start, end) in PATHS's output.
MARGIN_START = "cs_margin_start"
MARGIN_END = "cs_margin_end"
# The linear walk's initialisers: the coefficients by output column, and the offsets added after.
LINEAR_WEIGHTS = "cs_linear_weights"
LINEAR_OFFSET = "cs_linear_offset"
_TARGET_KEYS = ("target_treeids", "target_nodeids", "target_ids", "target_weights")


def margin_only(model: onnx.ModelProto, output: str) -> onnx.ModelProto:
    """The graph cut down to `output`, its tree pass reduced to the margin target.

    Raises:
        CashscoreError: for a graph that is not shaped as `onnx_export` builds it.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    if _is_linear(graph):
        return onnx.utils.Extractor(model).extract_model([i.name for i in graph.input], [output])
    passes = _ensembles(graph)
    bounds = {i.name: i for i in graph.initializer if i.name in (MARGIN_START, MARGIN_END)}
    if not passes or len(bounds) != 2:
        raise CashscoreError("the model graph has no path-contribution ensemble to score from; retrain the model")
    margin = onnx.numpy_helper.to_array(bounds[MARGIN_START]).item()
    for node in passes:
        attrs = {a.name: a for a in node.attribute}
        keep = [i for i, t in enumerate(attrs["target_ids"].ints) if t == margin]
        columns = {key: helper.get_attribute_value(attrs[key]) for key in _TARGET_KEYS}
        for key in _TARGET_KEYS:
            values = [0 if key == "target_ids" else columns[key][i] for i in keep]
            attrs[key].CopyFrom(helper.make_attribute(key, values))
        attrs["n_targets"].i = 1
    for name, value in ((MARGIN_START, 0), (MARGIN_END, 1)):
        bounds[name].CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(bounds[name]) * 0 + value, name))
    return onnx.utils.Extractor(model).extract_model([i.name for i in graph.input], [output])


def tree_walk(features: str, passes: list[dict[str, Any]]) -> list[onnx.NodeProto]:
    """The nodes that make `PATHS` from the input columns `features`: one TreeEnsembleRegressor per
    pass (its attributes), added up by one `Sum` when there are several."""
    if len(passes) == 1:
        return [helper.make_node("TreeEnsembleRegressor", [features], [PATHS], domain="ai.onnx.ml", **passes[0])]
    names = [f"{PATHS}_{i}" for i in range(len(passes))]
    walk = [
        helper.make_node("TreeEnsembleRegressor", [features], [name], domain="ai.onnx.ml", **attrs)
        for name, attrs in zip(names, passes, strict=True)
    ]
    return [*walk, helper.make_node("Sum", names, [PATHS])]


def linear_walk(graph: onnx.GraphProto, features: str, weights: np.ndarray, offset: np.ndarray) -> list[onnx.NodeProto]:
    """The nodes that make `PATHS` from the preprocessed columns `features` of a linear model:
    `features @ weights + offset` (a row of `weights` per column, a column per output), with the
    two as initialisers of `graph`."""
    graph.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.asarray(weights, dtype=np.float32), LINEAR_WEIGHTS),
            onnx.numpy_helper.from_array(np.asarray(offset, dtype=np.float32), LINEAR_OFFSET),
        ]
    )
    return [
        helper.make_node("MatMul", [features, LINEAR_WEIGHTS], [f"{PATHS}_product"]),
        helper.make_node("Add", [f"{PATHS}_product", LINEAR_OFFSET], [PATHS]),
    ]


def _is_linear(graph: onnx.GraphProto) -> bool:
    """Whether `PATHS` is made by `linear_walk`."""
    node = next((n for n in graph.node if PATHS in n.output), None)
    return node is not None and node.op_type == "Add" and LINEAR_OFFSET in node.input


def _ensembles(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The TreeEnsembleRegressor nodes that make `PATHS` (as `tree_walk` builds them): the one that
    outputs it, or those a `Sum` adds up into it; empty for any other shape."""
    made = {output: node for node in graph.node for output in node.output}
    node = made.get(PATHS)
    if node is None:
        return []
    if node.op_type == "TreeEnsembleRegressor":
        return [node]
    if node.op_type != "Sum" or not node.input or any(name not in made for name in node.input):
        return []
    passes = [made[name] for name in node.input]
    if any(p.op_type != "TreeEnsembleRegressor" for p in passes):
        return []
    return passes
