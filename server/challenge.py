# ruff: noqa: E501 - the markup reads better unwrapped
"""The challenge's dashboard on the built-in page: good and bad payers, default rates, amount x rate.

It reads the applicants mart (the bank's history, labelled), filtered by grade, intent and home
ownership. A filter's value comes from the query string: it is read through the contract's spellings
(Portuguese too) and reaches SQL only as a parameter.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
from cashscore.features import contract, rules
from cashscore.server import charts
from cashscore.server.reading import Reading, Unreadable

# Query parameter -> contract feature.
FILTERS = {"grade": "loan_grade", "intent": "loan_intent", "home": "person_home_ownership"}
# How each filtered feature is named in a title, in English and Portuguese.
NAMES = {
    "loan_grade": ("grade", "pontuação"),
    "loan_intent": ("loan intent", "motivo do empréstimo"),
    "person_home_ownership": ("home ownership", "situação da propriedade"),
}
# Points drawn in the scatter: a fixed sample (by a hash of the loan id), the same on every reload.
SCATTER_POINTS = 800


@dataclass(frozen=True)
class Filters:
    """The chosen category per feature, and the query-string values that could not be read."""

    chosen: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_filters(pairs: Iterable[tuple[str, str]]) -> Filters:
    """The filters in a query string's (name, value) pairs: any accepted spelling of a category; blank is 'all'.

    A filter given twice is refused, as GET /v1/score refuses a repeated field: which one was meant?
    """
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if name in FILTERS:
            values.setdefault(name, []).append(value)
    chosen, problems = {}, []
    for param, feature in FILTERS.items():
        all_given = values.get(param, [""])
        if len(all_given) > 1:
            problems.append(f"filter {param} is given {len(all_given)} times; give it once")
            continue
        (given,) = all_given
        if not given.strip(contract.BLANKS):
            continue
        category = rules.normalise_category(feature, given)
        if category in contract.BY_NAME[feature].categories:
            chosen[feature] = category
        else:
            allowed = ", ".join(contract.BY_NAME[feature].categories)
            problems.append(f"filter {param}: {given[:40]!r} is not one of {allowed} (or their Portuguese names)")
    return Filters(chosen, problems)


def label(feature: str, category: str | None) -> str:
    """'Rent (Alugada)', 'Debt consolidation (Pagamento de débitos)': the category in English words,
    with its Portuguese value when it differs."""
    if category is None:
        return "missing"
    f = contract.BY_NAME[feature]
    if category not in f.categories:
        return category
    at = f.categories.index(category)
    words, pt = f.english_categories[at], f.categories_pt[at]
    return words if pt == words else f"{words} ({pt})"


def _where(filters: Filters) -> tuple[str, list[Any]]:
    # Column names come from the FILTERS table, never from the request; values are parameters.
    clauses = [f"{feature} = ?" for feature in filters.chosen]
    return (" where " + " and ".join(clauses)) if clauses else "", list(filters.chosen.values())


def _read(con: duckdb.DuckDBPyConnection, filters: Filters) -> dict[str, Any]:
    where, params = _where(filters)
    source = f"(select * from marts.applicants{where})"
    found: dict[str, Any] = {
        "payers": dict(con.execute(f"select loan_status, count(*) from {source} group by 1", params).fetchall())
    }
    for feature in FILTERS.values():
        rows = con.execute(
            f"select {feature}, avg(loan_status), count(loan_status) from {source} group by 1", params
        ).fetchall()
        order = {c: i for i, c in enumerate(contract.BY_NAME[feature].categories)}
        found[feature] = sorted(rows, key=lambda r: order.get(r[0], len(order)))
    found["scatter"] = con.execute(
        f"select loan_amnt, loan_int_rate, loan_status from {source} "
        "where loan_amnt is not null and loan_int_rate is not null order by hash(loan_id), loan_id limit ?",
        [*params, SCATTER_POINTS],
    ).fetchall()
    # Axes fixed by the whole mart, so a filter never rescales them.
    found["max"] = con.execute("select max(loan_amnt), max(loan_int_rate) from marts.applicants").fetchall()[0]
    return found


def _select(param: str, feature: str, filters: Filters) -> str:
    chosen = filters.chosen.get(feature)
    options = "".join(
        f'<option value="{html.escape(c)}"{" selected" if c == chosen else ""}>{html.escape(label(feature, c))}</option>'
        for c in contract.BY_NAME[feature].categories
    )
    f = contract.BY_NAME[feature]
    return (
        f"<label>{html.escape(f.description)} <span class='muted'>{html.escape(f.label_pt)}</span>"
        f'<select name="{param}"><option value="">all · todos</option>{options}</select></label>'
    )


def _payers(payers: dict[int | None, int]) -> str:
    good, bad, unknown = payers.get(0, 0), payers.get(1, 0), payers.get(None, 0)
    known = max(good + bad, 1)
    rows = [
        ("Good payers · Bons pagadores", good / known, good),
        ("Bad payers (default) · Inadimplentes", bad / known, bad),
    ]
    chart = charts.rate_bars(
        rows, "Good and bad payers", "share of the labelled loans · parcela dos empréstimos rotulados"
    )
    return (
        f'<figure id="payers">{chart}<figcaption>Good and bad payers among the labelled loans · bons e maus '
        f"pagadores; {unknown:,} loans without a known outcome are left out · sem desfecho conhecido</figcaption></figure>"
    )


def panel(page: Reading, filters: Filters) -> str:
    """The challenge panel's HTML: filters, payers, default rates by grade, home and intent, scatter."""
    form = (
        '<form id="filters" method="get" action="/" class="filters">'
        + "".join(_select(param, feature, filters) for param, feature in FILTERS.items())
        + '<button type="submit">Filter · Filtrar</button></form>'
    )
    problems = "".join(f'<p class="deny">{html.escape(p)}</p>' for p in filters.problems)
    try:
        data, stale = page.read(("challenge", tuple(sorted(filters.chosen.items()))), lambda con: _read(con, filters))
    except Unreadable as exc:
        return form + problems + f'<p class="muted">cannot read marts.applicants: {html.escape(str(exc))}</p>'
    note = '<p class="muted">shown as last read: the database is being written</p>' if stale else ""
    total = sum(data["payers"].values())
    shown = ", ".join(label(f, c) for f, c in filters.chosen.items()) or "all applicants · todos"
    rates = "".join(
        f'<figure id="rate-{param}">'
        + charts.rate_bars(
            [(label(feature, c), rate, n) for c, rate, n in data[feature]],
            f"Default rate by {NAMES[feature][0]}",
            "default rate · taxa de inadimplência (%)",
        )
        + f"<figcaption>Default rate by {NAMES[feature][0]} · taxa de inadimplência por {NAMES[feature][1]}</figcaption>"
        "</figure>"
        for param, feature in FILTERS.items()
    )
    amount_max, rate_max = data["max"]
    scatter = charts.scatter(
        data["scatter"],
        float(amount_max or 1),
        float(rate_max or 1),
        "Loan amount against interest rate",
        "loan amount · valor do empréstimo",
        "interest rate · taxa de juros (% a year)",
        lambda v: f"{v:,.0f}",
        lambda v: f"{v:.0f} %",
    )
    return (
        f"{form}{problems}{note}<p>{total:,} loans · empréstimos: {html.escape(shown)}</p>"
        f'<div class="charts">{_payers(data["payers"])}{rates}'
        f'<figure id="scatter">{scatter}<figcaption>Loan amount against interest rate, {len(data["scatter"]):,} loans '
        f"sampled; red defaulted, blue repaid · valor contra taxa de juros; vermelho inadimplente, azul pago"
        "</figcaption></figure></div>"
    )
