"""sklearn preprocessing and ONNX input types derived from the feature contract (training only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cashscore.features.contract import AGE, BY_NAME, CATEGORICAL, FEATURES, NUMERIC

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

# Categories the contract declares ordered (grade A..G, flag N<Y) are encoded as ranks; the others
# are one-hot encoded for models that need it.
ORDERED = tuple(n for n in CATEGORICAL if BY_NAME[n].ordered)
NOMINAL = tuple(n for n in CATEGORICAL if n not in ORDERED)


def _categories(names: tuple[str, ...]) -> list[list[str]]:
    return [list(BY_NAME[n].categories) for n in names]


def tree_preprocessor(impute: bool = True) -> ColumnTransformer:
    """Every category as its rank; numbers as they are. No scaling: float32 scaling moves values that
    sit on split points and breaks ONNX parity.

    Args:
        impute: fill missing values (median, most frequent) for models and samplers that cannot take
            NaN. Gradient boosting keeps NaN instead: on the real dump, whether the rate or the
            employment length is missing carries signal (median imputation cost 0.01 ROC-AUC).
    """
    # sklearn is imported here, not at the top: scoring and serving only need the feeds above, and
    # importing sklearn adds about 0.5 s to every `cashscore score`, `sql` and `serve` start.
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    rank = OrdinalEncoder(categories=_categories(CATEGORICAL), handle_unknown="use_encoded_value", unknown_value=np.nan)
    if not impute:
        return ColumnTransformer([("num", "passthrough", list(NUMERIC)), ("cat", rank, list(CATEGORICAL))])
    return ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), list(NUMERIC)),
            ("cat", Pipeline([("rank", rank), ("impute", SimpleImputer(strategy="most_frequent"))]), list(CATEGORICAL)),
        ]
    )


def linear_preprocessor() -> ColumnTransformer:
    """Scaled numbers and ranks, one-hot nominal categories: for logistic regression and k-NN."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    return ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                list(NUMERIC),
            ),
            (
                "rank",
                Pipeline(
                    [
                        (
                            "rank",
                            OrdinalEncoder(
                                categories=_categories(ORDERED),
                                handle_unknown="use_encoded_value",
                                unknown_value=np.nan,
                            ),
                        ),
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("scale", StandardScaler()),
                    ]
                ),
                list(ORDERED),
            ),
            (
                "onehot",
                OneHotEncoder(categories=_categories(NOMINAL), handle_unknown="ignore", sparse_output=False),
                list(NOMINAL),
            ),
        ]
    )


def protect_age(X: Any, protected_age: float) -> Any:
    """The frame the model learns from: age capped at the protected age (missing stays missing).

    The exported graph applies the same cap to its input (onnx_export.to_onnx), so every applicant
    at or above it is one and the same age to the model.
    """
    return X.assign(**{AGE: X[AGE].clip(upper=protected_age)})


def output_columns(kind: str) -> list[str]:
    """Names of the columns a preprocessor emits, in order ("tree" or "linear")."""
    if kind == "tree":
        return [*NUMERIC, *CATEGORICAL]
    onehot = [f"{n}={c}" for n in NOMINAL for c in BY_NAME[n].categories]
    return [*NUMERIC, *ORDERED, *onehot]


def monotonic_constraints(kind: str) -> list[int]:
    """Per output column: +1 where a higher value must never lower the risk."""
    return [BY_NAME[c].monotonic if c in BY_NAME else 0 for c in output_columns(kind)]


def categorical_positions(kind: str) -> list[int]:
    """Output columns SMOTE-NC must treat as categories (copied from neighbours, never interpolated)."""
    cols = output_columns(kind)
    if kind == "tree":
        return [cols.index(c) for c in CATEGORICAL]
    return [i for i, c in enumerate(cols) if "=" in c]


def onnx_input_types() -> list[tuple[str, Any]]:
    """One ONNX input per contract feature, [N, 1], float32 for numbers and string for categories."""
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [
        (f.name, FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1])) for f in FEATURES
    ]
