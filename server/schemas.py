"""HTTP request and response schemas, derived from the feature contract (bounds and categories in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from features import contract

REQUIRED = contract.REQUIRED


def _field_type(f: contract.Feature) -> Any:
    if f.kind == "numeric":
        # JSON integers are accepted as floats; the bounds are the contract's valid range.
        meta = msgspec.Meta(
            ge=f.valid_min,
            le=f.valid_max,
            description=f"{f.description} ({f.label_pt})"
            + (f"; values above {f.cap:,.0f} are capped" if f.cap else ""),
        )
        return Annotated[float, meta]
    synonyms = sorted(f.synonyms)
    return Annotated[
        str,
        msgspec.Meta(
            max_length=40,
            description=f"{f.description} ({f.label_pt}): one of {', '.join(f.categories)}, any case"
            + (f"; also {', '.join(synonyms)}" if synonyms else ""),
            examples=list(f.categories),
        ),
    ]


def _fields(extra: tuple[tuple[str, Any, Any], ...] = ()) -> list[tuple[str, Any] | tuple[str, Any, Any]]:
    required = [(f.name, _field_type(f)) for f in contract.FEATURES if f.name in REQUIRED]
    optional = [(f.name, _field_type(f) | None, None) for f in contract.FEATURES if f.name not in REQUIRED]
    return [*required, *optional, *extra]


Applicant = msgspec.defstruct("Applicant", _fields(), forbid_unknown_fields=True, kw_only=True)
BatchApplicant = msgspec.defstruct(
    "BatchApplicant",
    _fields((("id", Annotated[str, msgspec.Meta(max_length=200)] | int | None, None),)),
    forbid_unknown_fields=True,
    kw_only=True,
)


class Reason(msgspec.Struct):
    feature: str
    label_pt: str
    value: float | str | None
    typical: float | str | None
    impact: float
    text: str


class Score(msgspec.Struct):
    default_probability: float
    decision: str
    threshold: float
    risk_band: str
    model_version: str
    reasons: list[Reason]


class BatchRow(msgspec.Struct):
    index: int
    id: str | int | None = None
    ok: bool = True
    score: Score | None = None
    error: str | None = None


class BatchResult(msgspec.Struct):
    model_version: str
    scored: int
    rejected: int
    results: list[BatchRow]


def to_record(applicant: msgspec.Struct) -> dict[str, Any]:
    """The contract's fields of a validated applicant as a plain dict."""
    return {name: getattr(applicant, name) for name in contract.NAMES}
