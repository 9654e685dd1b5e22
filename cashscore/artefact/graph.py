"""The shape of an exported graph, shared by the export that builds it and the scorer that cuts it down.

One TreeEnsembleRegressor pass (node `PATHS`) gives, per applicant, a target per input column (the
path contributions), the bias and the model's own log-odds (`MARGIN_TARGET`, the leaf values
themselves): probabilities, contributions and base all come from one walk over the trees.
A caller that needs only the probabilities (most batch rows) runs `margin_only`: the same trees
with the margin as their single target, which sums the same float32 leaf values in the same order,
so its probabilities are bit-identical at about 0.6 times the cost.
"""

from __future__ import annotations

import onnx
from onnx import helper

from cashscore.core.errors import CashscoreError

PATHS = "cs_paths"
# Initialisers holding the margin column's [start, end) in PATHS's output.
MARGIN_START = "cs_margin_start"
MARGIN_END = "cs_margin_end"
_TARGET_KEYS = ("target_treeids", "target_nodeids", "target_ids", "target_weights")


def margin_only(model: onnx.ModelProto, output: str) -> onnx.ModelProto:
    """The graph cut down to `output`, its tree pass reduced to the margin target.

    Raises:
        CashscoreError: for a graph that is not shaped as `onnx_export` builds it.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    node = next((n for n in graph.node if n.op_type == "TreeEnsembleRegressor" and list(n.output) == [PATHS]), None)
    bounds = {i.name: i for i in graph.initializer if i.name in (MARGIN_START, MARGIN_END)}
    if node is None or len(bounds) != 2:
        raise CashscoreError("the model graph has no path-contribution ensemble to score from; retrain the model")
    attrs = {a.name: a for a in node.attribute}
    margin = onnx.numpy_helper.to_array(bounds[MARGIN_START]).item()
    keep = [i for i, t in enumerate(attrs["target_ids"].ints) if t == margin]
    columns = {key: helper.get_attribute_value(attrs[key]) for key in _TARGET_KEYS}
    for key in _TARGET_KEYS:
        values = [0 if key == "target_ids" else columns[key][i] for i in keep]
        attrs[key].CopyFrom(helper.make_attribute(key, values))
    attrs["n_targets"].i = 1
    for name, value in ((MARGIN_START, 0), (MARGIN_END, 1)):
        bounds[name].CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(bounds[name]) * 0 + value, name))
    return onnx.utils.Extractor(model).extract_model([i.name for i in graph.input], [output])
