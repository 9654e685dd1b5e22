"""Applicants scored together who do not stand or fall together: each gets its own answer or refusal."""

from __future__ import annotations

import pytest
from cashscore.features import contract
from helpers.applicants import GOOD

from cashscore.artefact.store import load_verified
from cashscore.scoring.scorer import InvalidApplicant, Scorer


@pytest.mark.parametrize("counter_offer", [False, True])
def test_refused_applicants_among_others_leave_the_others_answers_as_they_are_alone(trained, counter_offer):
    scorer = Scorer(load_verified(trained[1]))
    records = [
        GOOD,
        {**GOOD, "person_age": None},  # the contract's rules refuse it (a required value missing)
        {**GOOD, "loan_grade": "Z"},  # refused before the rules: no such category
        {**GOOD, "loan_amnt": 1000, "person_income": 90000},
        {**GOOD, "person_income": -5},  # outside the contract's range
        {**GOOD, "loan_grade": "F", "person_income": 20000},
    ]
    income = contract.BY_NAME["person_income"]
    results = scorer.score_each(records, counter_offer=counter_offer, inputs=True)
    refused = {i: r for i, r in enumerate(results) if isinstance(r, InvalidApplicant)}
    assert {i: (r.field, r.message) for i, r in refused.items()} == {
        1: ("person_age", "required"),
        2: ("loan_grade", refused[2].message),
        4: ("person_income", f"outside {income.valid_min}..{income.valid_max}"),
    } and "unknown category 'Z'" in refused[2].message
    for i in (0, 3, 5):
        assert results[i] == scorer.score([records[i]], counter_offer=counter_offer, inputs=True)[0]
    with pytest.raises(InvalidApplicant) as first:
        scorer.score(records)
    assert first.value.field == "person_age"
    # Nobody left to score: every answer is a refusal, in order.
    nobody = scorer.score_each([records[1], records[2], records[4]])
    assert [(r.field, r.message) for r in nobody] == [(refused[i].field, refused[i].message) for i in (1, 2, 4)]
