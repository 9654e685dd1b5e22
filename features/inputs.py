"""The model's inputs derived from the contract: frames and onnxruntime feeds (no sklearn here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from cashscore.features.contract import FEATURES


def frame(df: pd.DataFrame) -> pd.DataFrame:
    """Shape a mart extract as the model's inputs: float32 numbers (NaN = missing), strings ("" = missing).

    Args:
        df: rows with at least the contract's columns.

    Returns:
        A new frame with exactly the contract's columns, in contract order.
    """
    out = pd.DataFrame(index=df.index)
    for f in FEATURES:
        if f.kind == "numeric":
            out[f.name] = pd.to_numeric(df[f.name], errors="coerce").astype(np.float32)
        else:
            out[f.name] = df[f.name].astype(object).where(df[f.name].notna(), "").astype(str).to_numpy(dtype=object)
    return out


def onnx_feeds(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The onnxruntime inputs for a frame built by `frame`: one [N, 1] array per feature."""
    return column_feeds({f.name: df[f.name].to_numpy() for f in FEATURES})


def column_feeds(cleaned: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime inputs from columns cleaned by `cashscore.features.rules.clean_columns`."""
    out = {}
    for f in FEATURES:
        col = cleaned[f.name]
        if f.kind == "numeric":
            # A value beyond float32 (a loan share over an income of 1e-300) is infinite to the trees.
            with np.errstate(over="ignore"):
                out[f.name] = col.astype(np.float32).reshape(-1, 1)
        else:
            # object arrays: onnxruntime converts numpy unicode string arrays three times slower.
            # Cleaned categories are a canonical string or None.
            out[f.name] = np.where(col == None, "", col).astype(object).reshape(-1, 1)  # noqa: E711 (elementwise)
    return out
