"""The contract's rules give one answer however many rows they clean at once."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from cashscore.features import contract, rules


def applicants(n: int, spellings: bool, seed: int = 5) -> list[dict]:
    """Applicants with canonical categories, blanks, and (with `spellings`) other spellings too."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = {}
        for f in contract.FEATURES:
            if f.kind == "categorical":
                choices = [*f.categories, None]
                if spellings:
                    choices += [c.lower() for c in f.categories] + [" " + f.categories[0].upper(), "unheard of", ""]
                row[f.name] = rng.choice(choices)
            else:
                low, high = f.valid_min or 0, min(f.valid_max or 100, 200_000)
                row[f.name] = rng.choice([None, round(rng.uniform(low, high), 2)])
        rows.append(row)
    return rows


def same(a, b) -> bool:
    return (a is None and b is None) or (isinstance(a, float) and math.isnan(a) and b is None) or a == b


@pytest.mark.parametrize("spellings", [False, True])
def test_a_column_cleans_as_its_rows_do_one_by_one(spellings):
    # One row takes the few-values path; 300 take the columns' (with every category already canonical,
    # its shortcut); the answers must not differ.
    rows = applicants(300, spellings)
    cleaned, problems = rules.clean_columns({n: [r[n] for r in rows] for n in contract.NAMES}, len(rows))
    for i, row in enumerate(rows):
        one, why = rules.clean_columns({n: [row[n]] for n in contract.NAMES}, 1)
        assert problems[i] == why[0], i
        for name in contract.NAMES:
            assert same(cleaned[name][i], rules.as_python(one[name])[0]), (i, name)
    categorical = [f.name for f in contract.FEATURES if f.kind == "categorical"]
    kinds = {type(v) for name in categorical for v in cleaned[name]}
    assert kinds <= {str, type(None)}
    if spellings:  # the other spellings were read, and the unknown ones refused
        assert any(p and "unknown category" in p for p in problems)
        assert all(v is None or v in contract.BY_NAME[n].categories for n in categorical for v in cleaned[n])
    else:
        assert not any(p and "unknown category" in p for p in problems)


def test_numbers_where_a_category_belongs_are_read_as_missing():
    values = [1.5, float("nan"), "Rent"] * 30
    canonical, unknown = rules._category_column("person_home_ownership", values, len(values))
    assert list(canonical[:3]) == [None, None, "Rent"] and not unknown.any()
    assert np.equal(canonical, None).sum() == 60
