"""HTTP request and response schemas, derived from the feature contract (bounds and categories in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from cashscore.features import contract
from litestar.enums import ParamType
from litestar.openapi.spec import Parameter, Reference, Schema
from litestar.openapi.spec.enums import OpenAPIType

from cashscore.scoring.reasons import Reason

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


def _fields(
    extra: tuple[tuple[str, Any, Any], ...] = (), absent: bool = False
) -> list[tuple[str, Any] | tuple[str, Any, Any]]:
    """The struct's fields: the required ones first (UNSET when `absent` lets them be left out), then
    the optional ones (None), then `extra`."""
    required = [
        (f.name, _field_type(f) | msgspec.UnsetType, msgspec.UNSET) if absent else (f.name, _field_type(f))
        for f in contract.FEATURES
        if f.name in REQUIRED
    ]
    optional = [(f.name, _field_type(f) | None, None) for f in contract.FEATURES if f.name not in REQUIRED]
    return [*required, *optional, *extra]


# gc=False: none of these structs can hold a reference cycle, so the cyclic collector need not track
# them (a batch makes four per row; tracked, they set off a collection every 700).
Applicant = msgspec.defstruct("Applicant", _fields(), forbid_unknown_fields=True, kw_only=True, gc=False)
_ID = (("id", Annotated[str, msgspec.Meta(max_length=200)] | int | None, None),)
BatchApplicant = msgspec.defstruct("BatchApplicant", _fields(_ID), forbid_unknown_fields=True, kw_only=True, gc=False)
# A batch row that may leave required fields out, and is otherwise checked as strictly: rows read from
# a table with NULLs, the commonest invalid rows, still let the whole array be decoded in one call.
# A required field given as null is still invalid here (msgspec names the first null in the row's own
# key order, which a decoded struct no longer knows).
BatchApplicantPartial = msgspec.defstruct(
    "BatchApplicantPartial", _fields(_ID, absent=True), forbid_unknown_fields=True, kw_only=True, gc=False
)
# The required fields in the structs' order: msgspec names the first one missing in this order.
REQUIRED_IN_ORDER = tuple(name for name in BatchApplicant.__struct_fields__ if name in REQUIRED)


class Probabilities(msgspec.Struct, gc=False):
    default: float
    repay: float


class CounterOffer(msgspec.Struct, gc=False):
    """The largest loan the model would approve for a refused applicant, with its probability."""

    loan_amnt: float
    default_probability: float


class Score(msgspec.Struct, gc=False):
    """sigmoid(base_log_odds + sum(contributions)) = default_probability."""

    default_probability: float
    probabilities: Probabilities
    decision: str
    threshold: float
    risk_band: str
    model_version: str
    reasons: list[Reason]
    # Null only in a batch asked for neither reasons nor contributions: its rows run through the
    # margin-only graph, which gives the probability alone.
    base_log_odds: float | None
    contributions: dict[str, float] | None = None
    # Present only when asked for (?counter_offer=true); null when no smaller loan would be approved.
    counter_offer: CounterOffer | None | msgspec.UnsetType = msgspec.UNSET


class BatchRow(msgspec.Struct, gc=False):
    index: int
    id: str | int | None = None
    ok: bool = True
    score: Score | None = None
    error: str | None = None


class BatchResult(msgspec.Struct, gc=False):
    model_version: str
    scored: int
    rejected: int
    results: list[BatchRow]


def to_record(applicant: msgspec.Struct) -> dict[str, Any]:
    """The contract's fields of a validated applicant as a plain dict."""
    return {name: getattr(applicant, name) for name in contract.NAMES}


def field_schema(f: contract.Feature) -> Schema:
    """One contract field as an OpenAPI schema: the bounds and categories the server enforces."""
    if f.kind == "numeric":
        return Schema(type=OpenAPIType.NUMBER, minimum=f.valid_min, maximum=f.valid_max, description=f.description)
    return Schema(
        type=OpenAPIType.STRING,
        max_length=40,
        description=f"{f.description}: one of {', '.join(f.categories)}, any case, or a synonym",
        examples=list(f.categories),
    )


def query_parameters() -> list[Parameter]:
    """GET /v1/score's query parameters, one per contract field, counter_offer and lang."""
    fields = [
        Parameter(name=f.name, param_in=ParamType.QUERY, schema=field_schema(f), required=f.name in REQUIRED)
        for f in contract.FEATURES
    ]
    offer = Parameter(
        name="counter_offer",
        param_in=ParamType.QUERY,
        schema=Schema(type=OpenAPIType.BOOLEAN),
        required=False,
        description="for a refusal, search the largest loan the model would approve",
    )
    lang = Parameter(
        name="lang",
        param_in=ParamType.QUERY,
        schema=Schema(type=OpenAPIType.STRING, enum=list(contract.LANGUAGES), default="en"),
        required=False,
        description="the reasons' language: en, or pt (Brazilian Portuguese)",
    )
    return [*fields, offer, lang]


def batch_body_schema() -> Schema:
    """POST /v1/score/batch's body: an array of applicants, each with an optional caller id."""
    properties: dict[str, Schema | Reference] = {f.name: field_schema(f) for f in contract.FEATURES}
    properties["id"] = Schema(
        one_of=[Schema(type=OpenAPIType.STRING, max_length=200), Schema(type=OpenAPIType.INTEGER)],
        description="the caller's id for the row, echoed back",
    )
    item = Schema(type=OpenAPIType.OBJECT, properties=properties, required=sorted(REQUIRED))
    return Schema(
        type=OpenAPIType.ARRAY,
        items=item,
        description="at most CASHSCORE_MAX_BATCH applicants (10,000 by default); an invalid one gets its own error",
    )
