"""Applicants scored together who do not stand or fall together: each gets its own answer or refusal."""

from __future__ import annotations

import asyncio

import numpy as np
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


@pytest.mark.parametrize("rows", [1, 40, 300])
def test_deciding_from_an_event_loop_takes_the_same_steps_to_the_same_answers(trained, rows):
    # 300 rows: the model runs in two halves at once; refusals, counter-offers and reasons included.
    scorer = Scorer(load_verified(trained[1]))
    rng = np.random.default_rng(rows)
    records = [
        {
            **GOOD,
            "person_income": float(rng.choice([12_000, 30_000, 59_000, 120_000])),
            "loan_amnt": float(rng.choice([1_000, 9_000, 25_000, 35_000])),
            "loan_grade": str(rng.choice(["A", "C", "E", "G"])),
            "person_age": None if i % 17 == 5 else float(rng.integers(20, 70)),
        }
        for i in range(rows)
    ]
    columns = {name: [r.get(name) for r in records] for name in contract.NAMES}
    for explain, offers in ((True, True), (False, False)):
        alone = scorer.decide(columns, rows, explain, explain, offers, "pt")
        awaited = asyncio.run(scorer.decide_awaiting(columns, rows, explain, explain, offers, "pt"))
        assert list(awaited.problems) == list(alone.problems)
        for got, want in zip(awaited.scores, alone.scores, strict=True):
            assert np.array_equal(got, want, equal_nan=True)
        assert all(np.array_equal(awaited.cleaned[k], alone.cleaned[k], equal_nan=k not in contract.CATEGORICAL)
                   for k in contract.NAMES)  # fmt: skip
        assert awaited.why == alone.why and awaited.offers == alone.offers
        # Refusals with a counter-offer to search, and rows the rules refuse, are among them.
        assert not offers or rows == 1 or any(o is not None for o in alone.offers)
    assert rows == 1 or any(p is not None for p in alone.problems)


class _Recording:
    """A session that records the rows of each run it is given."""

    def __init__(self, session, sizes):
        self.session, self.sizes = session, sizes

    def run(self, names, feeds):
        self.sizes.append(len(next(iter(feeds.values()))))
        return self.session.run(names, feeds)


def test_a_request_splits_its_rows_over_both_cores_only_while_no_other_run_is_under_way(trained):
    scorer = Scorer(load_verified(trained[1]))
    columns = {name: [GOOD.get(name)] * 300 for name in contract.NAMES}
    alone = scorer.decide(columns, 300, False, False)
    sizes: list[int] = []
    scorer.plain_session = _Recording(scorer.plain_session, sizes)

    async def two_requests():
        return await asyncio.gather(*(scorer.decide_awaiting(columns, 300, False, False) for _ in range(2)))

    first, second = asyncio.run(two_requests())
    # The first request found both cores free and split; the second found its runs under way.
    assert sorted(sizes) == [150, 150, 300]
    for decided in (first, second):
        assert np.array_equal(decided.scores.p, alone.scores.p)
    sizes.clear()
    asyncio.run(scorer.decide_awaiting(columns, 300, False, False))
    assert sizes == [150, 150]  # nothing left under way: both cores again
