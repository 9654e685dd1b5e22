"""Path (Saabas) contributions of a LightGBM model, built into the same ONNX graph as its score.

A second tree ensemble with the model's own trees, one target per input column plus a bias: each
leaf's weights are what the splits on the way to it added, `value(child) - value(parent)` credited
to the parent's split feature, and the bias is the roots' values summed. A node's value is the mean
of its leaves weighted by the training rows that reached them (Saabas' own definition, as
treeinterpreter and SHAP's approximation use): every node is then a weighted mean of its two
children, so where the trees are monotone in a feature with bounds on whole subtrees (LightGBM's
"basic" method), a step towards the lower-risk side is never credited as raising the risk. That is
what makes the protected-age rule hold by construction (training/trainer.py). Over a tree they sum
to the leaf's value, over the ensemble to the model's log-odds, so the explanation is exactly
additive. A last target holds the leaf values themselves (the model's log-odds, summed as LightGBM's
own converter sums them), so the one walk gives the score too: about 1.4 times the cost of the
margin alone, instead of one model row per feature.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

# LightGBM's decision types as ONNX node modes (the left child is the true branch).
MODES = {
    "<=": "BRANCH_LEQ",
    "<": "BRANCH_LT",
    ">=": "BRANCH_GTE",
    ">": "BRANCH_GT",
    "==": "BRANCH_EQ",
    "!=": "BRANCH_NEQ",
}


def _expected_values(node: dict[str, Any]) -> tuple[float, float]:
    """Annotate every split node with its row-weighted mean leaf value ("cs_value"); return (value, rows)."""
    # Iterative post-order: trees of a few hundred leaves would still be fine recursively, but a
    # hostile dump is not bounded.
    order: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        current = stack.pop()
        order.append(current)
        if "split_feature" in current:
            stack += [current["left_child"], current["right_child"]]
    for current in reversed(order):
        if "split_feature" not in current:
            current["cs_value"], current["cs_rows"] = float(current["leaf_value"]), float(current.get("leaf_count", 1))
            continue
        left, right = current["left_child"], current["right_child"]
        rows = left["cs_rows"] + right["cs_rows"]
        current["cs_rows"] = rows
        current["cs_value"] = (
            (left["cs_value"] * left["cs_rows"] + right["cs_value"] * right["cs_rows"]) / rows
            if rows > 0
            else (left["cs_value"] + right["cs_value"]) / 2
        )
    return node["cs_value"], node["cs_rows"]


def _value(node: dict[str, Any]) -> float:
    return float(node["cs_value"])


def regressor_attributes(dump: dict[str, Any], n_columns: int) -> dict[str, Any]:
    """TreeEnsembleRegressor attributes whose targets are the contributions of `n_columns` inputs, a
    bias and the model's log-odds.

    Args:
        dump: `booster.dump_model()` of a binary LightGBM model.
        n_columns: the number of input columns the trees split on.

    Returns:
        Attributes for an ai.onnx.ml TreeEnsembleRegressor with `n_columns + 2` targets: the
        columns' contributions, the bias (target `n_columns`) and the margin (`n_columns + 1`).
    """
    attrs: dict[str, list[Any]] = {
        key: []
        for key in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_modes",
            "nodes_values",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "nodes_hitrates",
            "target_treeids",
            "target_nodeids",
            "target_ids",
            "target_weights",
        )
    }
    # The bias is the same for every row: the roots' values summed, weighted on the first tree's
    # leaves only, instead of each root's value on every leaf of every tree (a weight less per leaf,
    # of about 6.5 on the real model: 0.9 times the walk's time). onnxruntime ignores a base value
    # for a target no leaf weighs.
    bias = sum(_expected_values(info["tree_structure"])[0] for info in dump["tree_info"])
    for tree_id, info in enumerate(dump["tree_info"]):
        root = info["tree_structure"]
        ids = itertools.count(1)
        # Depth-first with an explicit stack: (node, its id, contributions so far).
        stack: list[tuple[dict[str, Any], int, dict[int, float]]] = [(root, 0, {})]
        while stack:
            node, node_id, credit = stack.pop()
            attrs["nodes_treeids"].append(tree_id)
            attrs["nodes_nodeids"].append(node_id)
            attrs["nodes_hitrates"].append(1.0)
            if "split_feature" not in node:
                attrs["nodes_featureids"].append(0)
                attrs["nodes_modes"].append("LEAF")
                attrs["nodes_values"].append(0.0)
                attrs["nodes_truenodeids"].append(0)
                attrs["nodes_falsenodeids"].append(0)
                attrs["nodes_missing_value_tracks_true"].append(0)
                weights = {**credit, n_columns + 1: _value(node)}
                if tree_id == 0:
                    weights[n_columns] = bias
                for column, weight in sorted(weights.items()):
                    if weight != 0.0:
                        attrs["target_treeids"].append(tree_id)
                        attrs["target_nodeids"].append(node_id)
                        attrs["target_ids"].append(column)
                        attrs["target_weights"].append(weight)
                continue
            feature, threshold = int(node["split_feature"]), float(node["threshold"])
            left, right = node["left_child"], node["right_child"]
            left_id, right_id = next(ids), next(ids)
            attrs["nodes_featureids"].append(feature)
            attrs["nodes_modes"].append(MODES[node["decision_type"]])
            attrs["nodes_values"].append(threshold)
            attrs["nodes_truenodeids"].append(left_id)
            attrs["nodes_falsenodeids"].append(right_id)
            # As onnxmltools' converter reads LightGBM's missing-value rule, so both trees agree.
            tracks = node["default_left"] and not (node["missing_type"] == "None" and threshold < 0.0)
            attrs["nodes_missing_value_tracks_true"].append(int(tracks))
            here = _value(node)
            for child, child_id in ((right, right_id), (left, left_id)):
                gained = {**credit, feature: credit.get(feature, 0.0) + _value(child) - here}
                stack.append((child, child_id, gained))
    return {**attrs, "n_targets": n_columns + 2, "aggregate_function": "SUM", "post_transform": "NONE"}


def top_agreement(ours: np.ndarray, reference: np.ndarray, k: int) -> float:
    """Share of rows whose largest positive contribution in `reference` is among our top `k`."""
    top_ref = np.argmax(reference, axis=1)
    ours_top = np.argsort(-ours, axis=1, kind="stable")[:, :k]
    return float(np.mean([top_ref[i] in ours_top[i] for i in range(len(ours))]))
