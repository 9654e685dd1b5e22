"""Reasons and the margin-only graph: checked against a plain row-by-row reading, not against themselves."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import onnx
import pytest
from cashscore.features import contract, inputs, rules

from cashscore.artefact import graph, store
from cashscore.scoring import reasons
from cashscore.scoring.scorer import Scorer


def mart(db):
    with duckdb.connect(str(db), read_only=True) as con:
        df = con.execute("select * from marts.applicants order by loan_id").df()
    columns = {name: df[name].tolist() for name in contract.NAMES}
    cleaned, problems = rules.clean_columns(columns, len(df))
    ok = problems == None  # noqa: E711
    return {k: v[ok] for k, v in cleaned.items()}


def fmt(value, feature=None):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, str) and feature is not None and feature.categories_en:
        return feature.categories_en[feature.categories.index(value)]
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if not value.is_integer() else f"{value:,.0f}"
    return str(value)


def fmt_pt(value, feature):
    """A value as a Brazilian reads it: categories in the contract's Portuguese, 1.234,5 for 1,234.5."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "ausente"
    if isinstance(value, str):
        return feature.categories_pt[feature.categories.index(value)]
    return fmt(value).replace(",", "_").replace(".", ",").replace("_", ".")


def by_hand(p, contributions, row, typical, language="en"):
    """One applicant's reasons as the method states them, one feature at a time."""
    z = math.log(p) - math.log1p(-p)
    found = []
    for k in sorted(range(len(contract.FEATURES)), key=lambda k: (-contributions[k], k)):
        c = float(contributions[k])
        if c <= 0 or len(found) == 4:
            break
        impact = p - 1.0 / (1.0 + math.exp(min(c - z, 700.0)))
        if impact < reasons.MIN_IMPACT:
            continue
        f = contract.FEATURES[k]
        value = row[f.name]
        value = None if isinstance(value, float) and math.isnan(value) else value
        factor = math.exp(min(c, 30.0))  # past e^27.6, a trillion, only "more than" it is said
        odds = f"{round(factor * 100) / 100:.2f}" if factor < 9.995 else f"{round(factor):,}"
        if factor > 1e12:
            odds = f"{'mais de' if language == 'pt' else 'more than'} 1,000,000,000,000"
        if language == "pt":
            beside = f" (cliente típico: {fmt_pt(typical[f.name], f)})" if value != typical[f.name] else ""
            odds = odds.replace(",", "_").replace(".", ",").replace("_", ".")
            text = f"{f.label_pt} é {fmt_pt(value, f)}{beside}, o que multiplica a chance de inadimplência por {odds}"
        else:
            beside = f" (typical applicant: {fmt(typical[f.name], f)})" if value != typical[f.name] else ""
            text = f"{f.english_label} is {fmt(value, f)}{beside}, which multiplies the odds of default by {odds}"
        found.append((f.name, c, impact, text))
    return found


def test_margin_only_graph_gives_the_same_probabilities_from_one_target(trained):
    db, models, _ = trained
    loaded = store.load_verified(models)
    scorer = Scorer(loaded)
    cleaned = mart(db)
    feeds = inputs.column_feeds(cleaned)
    p_plain = scorer.run(feeds)
    p_all, contributions, base = scorer.run_all(feeds)
    assert np.array_equal(p_plain, p_all)
    # Row by row as the API calls it, too.
    for i in range(0, len(p_all), 97):
        assert scorer.run({k: v[i : i + 1] for k, v in feeds.items()})[0] == p_all[i]
    cut = graph.margin_only(onnx.load_from_string(loaded.onnx_bytes), store.OUTPUT)
    (paths,) = [n for n in cut.graph.node if n.op_type == "TreeEnsembleRegressor"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in paths.attribute}
    assert attrs["n_targets"] == 1 and set(attrs["target_ids"]) == {0}
    assert [o.name for o in cut.graph.output] == [store.OUTPUT]


@pytest.mark.parametrize("model", ["trained", "trained_linear"])
@pytest.mark.parametrize("language", reasons.LANGUAGES)
def test_reasons_equal_a_row_by_row_reading_for_every_applicant(request, model, language):
    db, models, _ = request.getfixturevalue(model)
    scorer = Scorer(store.load_verified(models))
    cleaned = mart(db)
    scores = scorer.evaluate(cleaned)
    which = np.ones(len(scores.p), bool)
    which[::5] = False
    got = scorer.explain(cleaned, scores, which, language)
    joined = scorer.reason_texts(cleaned, scores, which, language).to_pylist()
    named = 0
    for i in range(len(scores.p)):
        if not which[i]:
            assert got[i] == [] and joined[i] == ""
            continue
        row = {name: cleaned[name][i] for name in contract.NAMES}
        want = by_hand(float(scores.p[i]), scores.contributions[i], row, scorer.reference, language)
        assert [r.feature for r in got[i]] == [w[0] for w in want], i
        assert [r.text for r in got[i]] == [w[3] for w in want], i
        assert np.allclose([r.impact for r in got[i]], [w[2] for w in want], atol=1e-6)
        assert np.allclose([r.contribution for r in got[i]], [w[1] for w in want], atol=1e-6)
        assert joined[i] == " | ".join(w[3] for w in want)
        named += len(want)
    assert named > len(scores.p)  # most rows have several reasons: the comparison is not vacuous


def test_portuguese_words_separators_and_categories():
    reference = {n: None for n in contract.NAMES} | {"person_income": 55_000.0, "loan_intent": "Education"}
    n = len(contract.NAMES)
    k = {name: contract.NAMES.index(name) for name in ("person_income", "loan_intent", "cb_person_default_on_file")}
    contributions = np.zeros((1, n))
    contributions[0, [k["person_income"], k["loan_intent"], k["cb_person_default_on_file"]]] = [0.96, 0.5, 7.2]
    picked = reasons.pick(np.array([0.9]), contributions, np.array([True]))
    cleaned = {name: np.array([np.nan]) for name in contract.NAMES} | {
        "person_income": np.array([24_000.5]),
        "loan_intent": np.array(["Debtconsolidation"], dtype=object),
        "cb_person_default_on_file": np.array(["Y"], dtype=object),
    }
    assert reasons.Wording(reference, "pt").texts(picked, cleaned) == [
        [
            "Inadimplência no histórico é S (cliente típico: ausente), o que multiplica a chance de inadimplência"
            " por 1.339",
            "Salário anual é 24.000,5 (cliente típico: 55.000), o que multiplica a chance de inadimplência por 2,61",
            "Motivo do empréstimo é Pagamento de débitos (cliente típico: Educativo), o que multiplica a chance de"
            " inadimplência por 1,65",
        ]
    ]
    assert reasons.Wording(reference).texts(picked, cleaned)[0] == [
        "Past default on file is Yes (typical applicant: missing), which multiplies the odds of default by 1,339",
        "Yearly income is 24,000.5 (typical applicant: 55,000), which multiplies the odds of default by 2.61",
        "Purpose of the loan is Debt consolidation (typical applicant: Education), which multiplies the odds of"
        " default by 1.65",
    ]
    with pytest.raises(ValueError, match="reasons are worded in en, pt, not 'fr'"):
        reasons.Wording(reference, "fr")


def test_rows_without_reasons_join_to_empty_text():
    none = reasons.pick(np.array([0.3, 0.9]), np.array([[-1.0] * 11, [0.0] * 11]), np.array([True, True]))
    assert (none.features == -1).all()
    cleaned = {name: np.array([np.nan, np.nan]) for name in contract.NAMES}
    wording = reasons.Wording({n: None for n in contract.NAMES})
    assert reasons.joined(wording.texts(none, cleaned)).to_pylist() == ["", ""]


@pytest.mark.parametrize("language", reasons.LANGUAGES)
def test_every_shape_of_the_reasons_reads_as_the_method_states_them(language):
    # The API's records, the decision log's lists and the column of batch scoring and the SQL
    # functions, against a reading one feature at a time: missing values, categories, repeated
    # values (the heads are looked up once per distinct value) and rows without reasons included.
    rng = np.random.default_rng(7)
    n = 3_000
    cleaned = {}
    for f in contract.FEATURES:
        if f.kind == "numeric":
            column = rng.choice([0.0, 1.5, 7.0, 2_500.0, 61_000.25, np.nan], n)
        else:
            column = rng.choice(np.array([*f.categories, None], dtype=object), n)
        cleaned[f.name] = column
    contributions = rng.normal(0, 1.5, (n, len(contract.NAMES))) * rng.choice([0.001, 1.0, 4.0], (n, 1))
    # Kept off 0 and 1, where the reading by hand cannot take the log-odds of p.
    p = np.clip(1 / (1 + np.exp(-(contributions.sum(axis=1) - 1))), 1e-12, 1 - 1e-12)
    which = rng.random(n) < 0.7
    picked = reasons.pick(p, contributions, which)
    reference = rules.clean_record(
        {f.name: (cleaned[f.name][0] if f.kind == "categorical" else 7.0) for f in contract.FEATURES}
    )
    wording = reasons.Wording(reference, language)
    records, texts = wording.records(picked, cleaned), wording.texts(picked, cleaned)
    column = wording.column(picked, cleaned).to_pylist()
    for i in range(n):
        row = {name: cleaned[name][i] for name in contract.NAMES}
        want = by_hand(float(p[i]), contributions[i], row, reference, language) if which[i] else []
        assert [r.text for r in records[i]] == [w[3] for w in want] == list(texts[i]), i
        assert [r.feature for r in records[i]] == [w[0] for w in want], i
        shown = [None if isinstance(v, float) and math.isnan(v) else v for v in (row[w[0]] for w in want)]
        assert [r.value for r in records[i]] == shown, i
        assert [r.typical for r in records[i]] == [reference[w[0]] for w in want], i
        assert [r.contribution for r in records[i]] == [round(w[1], 6) for w in want], i
        assert np.allclose([r.impact for r in records[i]], [w[2] for w in want], atol=1e-6)
        assert column[i] == reasons.SEPARATOR.join(w[3] for w in want), i
    assert sum(bool(w) for w in column) > n / 4 and any(" 1,5 " in w or " 1.5 " in w for w in column)
    # One applicant's few reasons are worded one by one, without pandas and Arrow: the same answers.
    for i in range(0, n, 37):
        one = reasons.Picked(*(a[i : i + 1] for a in picked))
        alone = {name: cleaned[name][i : i + 1] for name in contract.NAMES}
        assert wording.records(one, alone) == [records[i]], i
        assert wording.texts(one, alone) == [texts[i]] and wording.column(one, alone).to_pylist() == [column[i]], i
    # Some applicants together (the single requests a server gathers in one turn) are worded in
    # Python too, below the size where Arrow pays off: the same answers.
    for start in range(0, 600, 150):
        some = reasons.Picked(*(a[start : start + 150] for a in picked))
        part = {name: cleaned[name][start : start + 150] for name in contract.NAMES}
        assert 16 < (some.features >= 0).sum() <= reasons._FEW < (picked.features >= 0).sum()
        assert wording.records(some, part) == records[start : start + 150]
        assert [list(t) for t in wording.texts(some, part)] == [list(t) for t in texts[start : start + 150]]
        assert wording.column(some, part).to_pylist() == column[start : start + 150]
    nobody = reasons.pick(p, contributions, np.zeros(n, bool))
    assert wording.column(nobody, cleaned).to_pylist() == [""] * n
    assert wording.records(nobody, cleaned) == [[]] * n and wording.texts(nobody, cleaned) == [()] * n


@pytest.mark.parametrize("language", reasons.LANGUAGES)
def test_a_linear_models_unbounded_terms_read_more_than_a_trillion(trained_linear, language):
    # A stated share of income of 95 lies hundreds of standard deviations out: its term's exp()
    # overflows float64, and its odds factor reads as a bound, not as a number that means nothing.
    db, models, _ = trained_linear
    scorer = Scorer(store.load_verified(models))
    cleaned = {k: v[:3] for k, v in mart(db).items()}
    raw = {k: v.tolist() for k, v in cleaned.items()}
    raw["loan_percent_income"] = [95.0, 0.5, 2.0]
    decided = scorer.decide(raw, 3, language=language)
    assert decided.scores.contributions[0, contract.NAMES.index("loan_percent_income")] > np.log(1e12)
    (first, *_), *_ = decided.why
    more = "more than 1,000,000,000,000" if language == "en" else "mais de 1.000.000.000.000"
    assert first.feature == "loan_percent_income" and first.text.endswith(more)
    assert decided.scores.p[0] > 0.999 and all(decided.why[1:])
