"""A batch whose invalid rows only leave required fields out is decoded in one call, and answers
exactly as when each row is decoded alone."""

from __future__ import annotations

import itertools
import json

import msgspec
import pytest
from cashscore.features import contract
from cashscore.server import app as server_app
from cashscore.server.schemas import REQUIRED_IN_ORDER, BatchApplicantPartial
from helpers.applicants import GOOD


def _without(*names: str) -> dict:
    return {k: v for k, v in GOOD.items() if k not in names}


# Every required field left out alone, and every pair (msgspec names the first in the struct's order).
PARTIAL = [_without(name) for name in REQUIRED_IN_ORDER] + [
    _without(a, b) for a, b in itertools.combinations(REQUIRED_IN_ORDER, 2)
]


def _alone_error(row: dict) -> str:
    """msgspec's own words for a row decoded alone (the path every invalid row took before)."""
    with pytest.raises(msgspec.ValidationError) as caught:
        server_app._BATCH_ROW.decode(json.dumps(row).encode())
    return str(caught.value)


def test_rows_that_leave_required_fields_out_are_decoded_in_one_call():
    body = json.dumps([GOOD, *PARTIAL, {**GOOD, "id": 7}]).encode()
    items = server_app._batch_items(body, 10_000)
    assert all(isinstance(item, BatchApplicantPartial) for item in items)
    rows, applicants = server_app._decode_rows(items)
    assert [row.ok for row in rows] == [True] + [False] * len(PARTIAL) + [True]
    assert [row.error for row in rows[1:-1]] == [_alone_error(row) for row in PARTIAL]
    assert rows[-1].id == 7 and len(applicants) == 2


@pytest.mark.parametrize(
    "other",
    [
        {**GOOD, "loan_amnt": None},  # a required field given as null: msgspec names the first null
        {**GOOD, "person_age": -3},
        {**GOOD, "surprise": 1},
        [1, 2],
    ],
)
def test_any_other_invalid_row_still_splits_the_array_into_rows_decoded_alone(other):
    items = server_app._batch_items(json.dumps([GOOD, _without("loan_grade"), other]).encode(), 10_000)
    assert all(isinstance(item, msgspec.Raw) for item in items)


def test_the_endpoint_answers_a_partial_batch_as_it_answers_each_row(client):
    batch = [GOOD, *PARTIAL, {**GOOD, "person_age": 41, "id": "b"}]
    together = client.post("/v1/score/batch", json=batch).json()
    # The same rows beside one that forces every row to be decoded alone.
    alone = client.post("/v1/score/batch", json=[*batch, {**GOOD, "person_age": -3}]).json()
    assert together["results"] == alone["results"][:-1]
    assert together["scored"] == 2 and together["rejected"] == len(PARTIAL)
    assert together["results"][1]["error"] == "Object missing required field `person_age`"


def test_both_batch_structs_list_their_fields_in_one_order():
    # server_app._columns reads either kind of row as a tuple in BatchApplicant's field order.
    assert BatchApplicantPartial.__struct_fields__ == server_app.BatchApplicant.__struct_fields__


@pytest.mark.parametrize("kind", ["valid", "partial"])
def test_the_columns_are_each_rows_fields(kind):
    rows = [{**GOOD, "id": 1}, {**GOOD, "person_age": 41, "loan_grade": "b"}]
    if kind == "partial":
        rows.append(_without("loan_grade"))
    items = server_app._batch_items(json.dumps(rows).encode(), 10_000)
    decoded, applicants = server_app._decode_rows(items)
    assert [(row.index, row.id, row.ok) for row in decoded][:2] == [(0, 1, True), (1, None, True)]
    columns = server_app._columns(applicants)
    assert list(columns) == list(contract.NAMES)
    for name in contract.NAMES:
        assert columns[name] == [getattr(a, name) for a in applicants]
    assert columns["person_age"][:2] == [GOOD["person_age"], 41]
