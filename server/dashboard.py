# ruff: noqa: E501 - the CSS, script and markup read better unwrapped
"""The built-in dashboard at GET /: model card, portfolio of the latest stored scores, what-if form.

Plain server-rendered HTML with inline SVG charts and a small script; nothing is fetched from a
CDN, so it works offline.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path
from typing import Any

import duckdb
import msgspec
from cashscore.features import contract
from cashscore.server import challenge, charts
from cashscore.server.reading import Reading, Unreadable, reading

from cashscore.artefact.card import ModelCard
from cashscore.core import sqlnames
from cashscore.monitoring import live as live_module

CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
header{background:#14325c;color:#fff;padding:1rem 2rem} header h1{margin:0;font-size:1.4rem}
main{display:grid;grid-template-columns:1fr 1fr;gap:1rem;padding:1rem 2rem}
section{background:#fff;border-radius:8px;padding:1rem;box-shadow:0 1px 3px #0002}
section.wide{grid-column:1/3} h2{margin-top:0;font-size:1.1rem}
table{border-collapse:collapse;width:100%;font-size:.9rem} td,th{padding:.25rem .5rem;border-bottom:1px solid #eee;text-align:left}
form{display:grid;grid-template-columns:repeat(3,1fr);gap:.5rem} label{font-size:.8rem;display:flex;flex-direction:column}
input,select{padding:.3rem;font-size:.9rem} button{grid-column:1/4;padding:.5rem;background:#14325c;color:#fff;border:0;border-radius:4px;font-size:1rem}
#result{margin-top:1rem;font-size:1rem} .approve{color:#1b7a3a;font-weight:700} .deny{color:#b3261e;font-weight:700}
.muted{color:#777}
/* The challenge's charts in columns of equal width, each caption right under its chart. */
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,34rem),1fr));gap:1.5rem 2rem;align-items:start}
.charts figcaption{max-width:34rem}
/* A chart wider than its column shrinks with its text rather than overflow the page. */
svg{max-width:100%;height:auto}
.login{max-width:24rem;margin:4rem auto;display:flex;flex-direction:column;gap:.75rem}
figure{margin:0} figcaption{font-size:.8rem;color:#555;max-width:420px}
form.filters{grid-template-columns:repeat(3,1fr) auto;align-items:end} form.filters button{grid-column:auto}
.pt{color:#777;font-weight:400} .evaluated{display:grid;grid-template-columns:minmax(16rem,1fr) 2fr;gap:1.5rem}
/* A phone or a narrow window: one column of sections and of fields; wide tables scroll inside their section. */
@media (max-width:60rem){
main{grid-template-columns:minmax(0,1fr);padding:.5rem} section.wide{grid-column:auto} header{padding:.75rem 1rem}
form,form.filters,.evaluated{grid-template-columns:minmax(0,1fr)} button,form.filters button{grid-column:auto}
table{display:block;overflow-x:auto}
}
"""

SCRIPT = """
const form = document.getElementById('whatif');
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]);
const pct = (p) => (100 * p).toFixed(1) + ' %';
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = {};
  const inputs = [];
  for (const [key, value] of new FormData(form).entries()) {
    if (key === 'lang') continue;
    const label = form.elements[key].closest('label').firstChild.textContent.trim();
    // A category as its option shows it ("Debt consolidation"); the value sent is the canonical one.
    const element = form.elements[key];
    const shown = element.tagName === 'SELECT' ? element.selectedOptions[0].text :
      Number(value).toLocaleString('en-US', {maximumFractionDigits: 6});
    // A blank value the model derives (share of income) says how, not "missing".
    const blank = element.dataset.derived || 'missing';
    inputs.push('<tr><td>' + esc(label) + '</td><td>' + (value === '' ? '<span class="muted">' + esc(blank) + '</span>' : esc(shown)) + '</td></tr>');
    if (value === '') continue;
    body[key] = form.elements[key].type === 'number' ? Number(value) : value;
  }
  const out = document.getElementById('result');
  out.textContent = 'scoring...';
  const lang = encodeURIComponent(form.elements.lang.value);
  const response = await fetch('/v1/score?counter_offer=true&lang=' + lang, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                             body: JSON.stringify(body)});
  const data = await response.json();
  if (!response.ok) {
    out.innerHTML = '<span class="deny">' + esc(data.detail || 'error') + '</span> ' +
      (data.extra || []).map(e => esc(e.key + ': ' + e.message)).join('; ');
    return;
  }
  const reasons = data.reasons.map(r => '<li>' + esc(r.text) + '</li>').join('');
  const offer = data.counter_offer ? '<p id="counter-offer">Counter-offer · contraproposta: a loan of ' +
      data.counter_offer.loan_amnt.toLocaleString() + ' would be approved (probability of default ' +
      pct(data.counter_offer.default_probability) + ').</p>' :
      (data.decision === 'deny' ? '<p id="counter-offer">No smaller loan would be approved · nenhum valor menor seria aprovado.</p>' : '');
  out.innerHTML = '<div class="evaluated"><div><h3>The client · o cliente</h3><table id="evaluated-inputs">' + inputs.join('') +
    '</table></div><div><h3>The decision · a decisão</h3><p>Decision · decisão: <span id="decision" class="' + esc(data.decision) + '">' +
    esc(data.decision) + '</span> · risk band · faixa de risco ' + esc(data.risk_band) + '</p>' +
    '<table id="probabilities"><tr><td>Probability of default · probabilidade de inadimplência</td><td id="probability">' +
    pct(data.probabilities.default) + '</td></tr><tr><td>Probability of repaying · probabilidade de pagar</td><td>' +
    pct(data.probabilities.repay) + '</td></tr><tr><td>Threshold · limiar</td><td>' + pct(data.threshold) + '</td></tr></table>' +
    (reasons ? '<h3>Reasons · motivos</h3><ol id="reasons">' + reasons + '</ol>' :
      '<p>No feature raises the risk above the typical applicant.</p>') + offer + '</div></div>';
});
"""


def _mean_pd(rows: list[tuple[str, float, int]], feature: str) -> str:
    if not rows:
        return '<p class="muted">no stored scores</p>'
    en, pt = challenge.NAMES[feature]
    return f"<h3>By {en} <span class='pt'>· por {pt}</span></h3>" + charts.rate_bars(
        [(challenge.label(feature, None if name == "missing" else name), mean, n) for name, mean, n in rows],
        f"Mean probability of default by {en}",
        "mean probability of default · probabilidade média de inadimplência",
    )


def _read_portfolio(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    tables = con.execute("select table_name from duckdb_tables() where schema_name = 'scores'").fetchall()
    latest, when = None, None
    for (name,) in tables:
        try:
            stamp = con.execute(f"select max(scored_at) from {sqlnames.qualified('scores', name)}").fetchall()[0][0]
        except duckdb.Error:
            continue  # a table someone else stored without cashscore's columns
        if stamp is not None and (when is None or stamp > when):
            latest, when = name, stamp
    if latest is None:
        return "no stored scores yet: run `cashscore score --table marts.applicants --into portfolio`", ""
    table = sqlnames.qualified("scores", latest)
    by = {}
    for column in ("loan_grade", "loan_intent"):
        by[column] = con.execute(
            f"select coalesce({sqlnames.quote(column)}::varchar, 'missing'), avg(default_probability), count(*) "
            f"from {table} group by 1 order by 1"
        ).fetchall()
    hist = con.execute(
        f"select least(floor(default_probability * 10), 9)::int as bin, count(*) from {table} group by 1 order by 1"
    ).fetchall()
    summary = con.execute(
        f"select count(*), avg(default_probability), avg((decision = 'deny')::int), any_value(model_version) "
        f"from {table}"
    ).fetchall()[0]
    counts = [0] * 10
    for b, c in hist:
        if b is not None:
            counts[int(b)] = c
    text = (
        f"scores.{latest}: {summary[0]:,} applicants scored {when} by model {summary[3]}; "
        f"mean PD {summary[1] or 0:.1%}, {summary[2] or 0:.1%} denied"
    )
    body = (
        '<figure id="pd-histogram">'
        + charts.histogram(
            counts,
            "PD distribution",
            "probability of default · probabilidade de inadimplência",
            "applicants · clientes",
        )
        + "<figcaption>Applicants by probability of default, in tenths</figcaption></figure>"
        + _mean_pd(by["loan_grade"], "loan_grade")
        + _mean_pd(by["loan_intent"], "loan_intent")
    )
    return text, body


def _portfolio(page: Reading) -> tuple[str, str]:
    """(description, HTML) of the latest stored batch scores, by grade and by intent."""
    try:
        (text, body), stale = page.read("portfolio", _read_portfolio)
    except Unreadable as exc:
        return f"cannot read the stored scores: {exc}", ""
    return (f"{text} (shown as last read: the database is being written)" if stale else text), body


# The metrics and the model in words, English and Portuguese: what an analyst reads on the card.
METRICS = {
    "roc_auc": ("ROC-AUC: area under the ROC curve (1 ranks perfectly, 0.5 at random)", "área sob a curva ROC"),
    "pr_auc": ("PR-AUC: area under the precision-recall curve", "área sob a curva precisão-revocação"),
    "ks": (
        "KS: largest gap between defaulters' and good payers' score distributions",
        "estatística de Kolmogorov-Smirnov",
    ),
    "gini": ("Gini: 2 x ROC-AUC - 1", "coeficiente de Gini"),
    "brier": (
        "Brier score: mean squared error of the probabilities (lower is better)",
        "erro quadrático médio das probabilidades",
    ),
    "accuracy": ("Accuracy at the threshold", "acurácia no limiar"),
}
FAMILIES = {
    "lightgbm": ("LightGBM gradient-boosted trees", "árvores com gradient boosting (LightGBM)"),
    "hist_gb": ("histogram gradient boosting (scikit-learn)", "gradient boosting por histogramas"),
    "random_forest": ("random forest", "floresta aleatória"),
    "logreg": ("logistic regression", "regressão logística"),
    "knn": ("k nearest neighbours", "k vizinhos mais próximos"),
}
STRATEGIES = {
    "none": ("no resampling", "sem reamostragem"),
    "class_weight": ("classes weighted", "classes ponderadas"),
    "undersample": ("good payers undersampled", "subamostragem dos bons pagadores"),
    "smotenc": ("defaulters oversampled by SMOTE-NC", "sobreamostragem dos inadimplentes (SMOTE-NC)"),
}


def model_words(family: str, strategy: str) -> tuple[str, str]:
    """'LightGBM gradient-boosted trees, no resampling' and its Portuguese."""
    fam = FAMILIES.get(family, (family, family))
    how = STRATEGIES.get(strategy, (strategy, strategy))
    return f"{fam[0]}, {how[0]}", f"{fam[1]}, {how[1]}"


def _model_card(card: ModelCard, page: Reading) -> str:
    test = card.metrics.test
    policy = card.threshold
    rows = "".join(
        f"<tr><td>{html.escape(en)} <span class='pt'>· {html.escape(pt)}</span></td><td>{getattr(test, k):.4f}</td></tr>"
        for k, (en, pt) in METRICS.items()
    )
    model_en, model_pt = model_words(card.model.family, card.model.strategy)
    curves = ""
    if page.con is not None:
        try:
            roc = page.con.execute(
                "select fpr, tpr from model_eval.roc_points where model_version = ? order by fpr, tpr",
                [card.model_version],
            ).fetchall()
            cal = page.con.execute(
                "select mean_predicted, observed_rate from model_eval.calibration_bins "
                "where model_version = ? order by bin",
                [card.model_version],
            ).fetchall()
            if roc:
                curves = (
                    '<div class="charts"><figure id="roc">'
                    + charts.line(
                        roc,
                        "ROC curve",
                        "false positive rate · taxa de falsos positivos",
                        "true positive rate · taxa de verdadeiros positivos",
                    )
                    + "<figcaption>ROC curve on the held-out test split · curva ROC no conjunto de teste</figcaption></figure>"
                    + '<figure id="calibration">'
                    + charts.line(
                        cal,
                        "calibration",
                        "predicted probability of default · probabilidade prevista",
                        "observed default rate · taxa observada",
                    )
                    + "<figcaption>Calibration on the test split: on the diagonal, the probabilities are right · calibração</figcaption></figure></div>"
                )
        except duckdb.Error:
            curves = '<p class="muted">the evaluation tables are not in this database</p>'
    return (
        f'<p id="model-words"><b>{html.escape(model_en)}</b> <span class="pt">· {html.escape(model_pt)}</span>, '
        f"version <code>{html.escape(card.model_version)}</code>, trained {html.escape(card.created_at)} on "
        f"{card.data.rows:,} loans. Measured on the held-out test split · medido no conjunto de teste:</p><table>{rows}</table>"
        f"<p>Deny when the probability of default is at least <b>{policy.value:.1%}</b> ({html.escape(policy.policy)} policy: "
        f"loss given default {policy.lgd:g}, margin {policy.margin:g}) · negar a partir de {policy.value:.1%}.</p>"
        f"{_reasons_method(card)}{curves}"
    )


def _reasons_method(card: ModelCard) -> str:
    """How the reasons beside each decision are computed, in both languages."""
    how = card.explanation
    # Only trees carry an agreement with TreeSHAP: a linear model's terms are its Shapley values.
    top1 = how.top1_agreement_treeshap
    if top1 is None:
        en, pt, agreement = (
            "each coefficient times the distance from the training mean",
            "cada coeficiente vezes a distância da média do treino",
            "",
        )
    else:
        en, pt = "path contributions of its trees", "contribuições dos caminhos das árvores"
        agreement = f"; the top reason is exact TreeSHAP's for {top1:.0%} of test applicants"
    return (
        '<p id="reasons-method">Reasons name the up to 4 features that raise the risk the most, from contributions '
        f"computed inside the model ({en}) that add up to the probability{agreement} · os motivos vêm de "
        f"contribuições calculadas dentro do modelo ({pt}), que, somadas, dão a probabilidade.</p>"
    )


def _form(reference: dict[str, Any]) -> str:
    fields = []
    for f in contract.FEATURES:
        label = f"{html.escape(f.description)} <span class='muted'>{html.escape(f.label_pt)}</span>"
        if f.kind == "categorical":
            words = f.english_categories  # "Debt consolidation" shown, "Debtconsolidation" sent
            options = "".join(
                f'<option value="{html.escape(c)}"{" selected" if c == reference.get(f.name) else ""}>'
                f"{html.escape(w)}</option>"
                for c, w in zip(f.categories, words, strict=True)
            )
            blank = '<option value=""></option>' if f.name not in contract.REQUIRED else ""
            fields.append(f'<label>{label}<select name="{f.name}">{blank}{options}</select></label>')
        else:
            value = reference.get(f.name)
            shown = "" if f.derived is not None or value is None else f"{value:g}"
            derived = ""
            if f.derived is not None:
                # Left blank, the rules derive it (as the API and the SQL mart do): the form says how.
                top, bottom = (contract.BY_NAME[n] for n in (f.derived.numerator, f.derived.denominator))
                how = html.escape(f"{top.english_label} ÷ {bottom.english_label}")
                derived = f' placeholder="blank: {how}" data-derived="derived: {how}"'
            fields.append(
                f'<label>{label}<input type="number" step="any" name="{f.name}" value="{shown}" '
                f'min="{f.valid_min:g}" max="{f.valid_max:g}"{" required" if f.name in contract.REQUIRED else ""}'
                f"{derived}></label>"
            )
    # The reasons' language: a query parameter of the request, never a field of the applicant.
    fields.append(
        "<label>Reasons in <span class='muted'>motivos em</span><select name=\"lang\">"
        '<option value="en" selected>English</option><option value="pt">Português</option></select></label>'
    )
    return f'<form id="whatif">{"".join(fields)}<button type="submit">Score this applicant</button></form>'


# PSI bars are drawn up to this value (anything above is "alert" anyway).
PSI_SCALE = 0.5


def _psi_bar(value: float | None) -> str:
    """A PSI as a bar on a 0-0.5 scale with the 0.1 (watch) and 0.25 (alert) marks."""
    width = 180
    if value is None or value != value:
        return '<span class="muted">no data</span>'
    shown = min(value, PSI_SCALE) / PSI_SCALE * width
    colour = "#1b7a3a" if value < 0.1 else "#b7791f" if value < 0.25 else "#b3261e"
    marks = "".join(
        f'<line x1="{mark / PSI_SCALE * width:.1f}" y1="0" x2="{mark / PSI_SCALE * width:.1f}" y2="14" stroke="#555" stroke-dasharray="2"/>'
        for mark in (0.1, 0.25)
    )
    return (
        f'<svg width="{width}" height="14" role="img" aria-label="PSI {value:.3f}">'
        f'<rect width="{shown:.1f}" height="14" fill="{colour}"/>{marks}</svg>'
    )


def _status(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return "ok" if value < 0.1 else "watch" if value < 0.25 else "alert"


def _read_monitoring(con: duckdb.DuckDBPyConnection, version: str) -> dict[str, Any]:
    """The latest drift and fairness measurements stored for this model version (empty when none)."""
    found: dict[str, Any] = {}
    for table in ("drift", "fairness"):
        try:
            head = con.execute(
                f"select measured_at, population from monitoring.{table} where model_version = ? "
                "order by measured_at desc limit 1",
                [version],
            ).fetchall()
        except duckdb.CatalogException:
            continue
        if not head:
            continue
        cursor = con.execute(
            f"select * from monitoring.{table} where model_version = ? and measured_at = ? and population = ?",
            [version, head[0][0], head[0][1]],
        )
        names = [d[0] for d in cursor.description]
        found[table] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return found


def _monitoring(page: Reading, version: str) -> dict[str, Any]:
    if page.con is None:
        return {}
    try:
        return _read_monitoring(page.con, version)
    except duckdb.Error:
        return {}


def _drift_panel(live: tuple[str | None, dict[str, float], int], stored: list[dict[str, Any]] | None) -> str:
    version, psi, rows = live
    head = "<tr><th>feature</th><th>PSI (bar to 0.5; marks at 0.1 watch, 0.25 alert)</th><th>status</th></tr>"
    if rows:
        few = (
            f"<p class='muted'>PSI is shown from {live_module.MIN_ROWS} applicants on; fewer say more about the "
            "sample than the population</p>"
            if rows < live_module.MIN_ROWS
            else ""
        )
        body = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{_psi_bar(value)} {'' if value != value else f'{value:.3f}'}</td>"
            f"<td>{_status(value)}</td></tr>"
            for name, value in psi.items()
        )
        live_html = (
            f"<h3>Live traffic</h3>{few}<p class='muted'>the latest {rows:,} applicant(s) this worker scored, against "
            f'the training population of model {html.escape(version or "")}</p><table id="drift-live">{head}{body}</table>'
        )
    else:
        live_html = "<h3>Live traffic</h3><p class='muted'>no applicant scored since the server started</p>"
    if stored:
        first = stored[0]
        body = "".join(
            f"<tr><td>{html.escape(r['feature'])}</td><td>{_psi_bar(r['psi'])} "
            f"{'-' if r['psi'] is None else format(r['psi'], '.3f')}</td><td>{html.escape(r['status'])}</td></tr>"
            for r in stored
        )
        batch_html = (
            f"<h3>Latest batch measurement</h3><p class='muted'>{html.escape(str(first['population']))}: "
            f"{first['rows']:,} rows, measured {html.escape(str(first['measured_at']))[:19]}"
            f' (cashscore monitor)</p><table id="drift-batch">{head}{body}</table>'
        )
    else:
        batch_html = (
            "<h3>Latest batch measurement</h3><p class='muted'>none stored for this model: "
            "run <code>cashscore monitor --table marts.applicants</code></p>"
        )
    return live_html + batch_html


def _fairness_panel(card: ModelCard, stored: list[dict[str, Any]] | None) -> str:
    if stored:
        rows = stored
        where = (
            f"{html.escape(str(rows[0]['population']))}, measured {html.escape(str(rows[0]['measured_at']))[:19]}"
            " (cashscore fairness)"
        )
    else:
        rows = [msgspec.structs.asdict(b) for b in card.fairness]
        where = "the held-out test split at training"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    def num(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    body = "".join(
        f"<tr><td>{html.escape(r['band'])}</td><td>{r['rows']:,}</td>"
        f'<td><svg width="100" height="12" role="img" aria-label="approval {pct(r["approval_rate"])}">'
        f'<rect width="{100 * (r["approval_rate"] or 0):.1f}" height="12" fill="#14325c"/></svg> {pct(r["approval_rate"])}</td>'
        f"<td>{num(r['adverse_impact_ratio'], '.2f')}{' ⚑' if r['flagged'] else ''}</td>"
        f"<td>{pct(r['mean_predicted'])}</td><td>{pct(r['realised_rate'])}</td>"
        f"<td>{num(r['tpr_gap'], '+.2f')}</td><td>{num(r['fpr_gap'], '+.2f')}</td></tr>"
        for r in rows
    )
    return (
        f"<p class='muted'>{where}; protected age {card.protected_age.age:g}: from it on, age never raises the risk</p>"
        '<table id="fairness"><tr><th>age band</th><th>rows</th><th>approval rate (0-100 %)</th>'
        "<th>adverse impact ratio</th><th>mean predicted default</th><th>realised default</th>"
        "<th>TPR gap</th><th>FPR gap</th></tr>"
        f"{body}</table><p class='muted'>Adverse impact ratio: approval rate over the most-approved band's; ⚑ under "
        "0.8 (the four-fifths rule of US employment law: a heuristic, not a legal test of credit decisions). "
        "TPR: defaulters refused; FPR: good payers refused; gaps against the most-approved band.</p>"
    )


def render(
    card: ModelCard,
    db: Path | None,
    live: tuple[str | None, dict[str, float], int] = (None, {}, 0),
    filters: challenge.Filters | None = None,
) -> str:
    """The dashboard page for the serving model.

    Args:
        card: the serving model's card.
        db: the database holding model_eval, scores and monitoring tables, if any.
        live: the live drift window: (model version, PSI per feature and score, applicants in it).
        filters: the challenge panel's filters (grade, intent, home ownership).

    Returns:
        HTML text.
    """
    with reading(db) as page:
        portfolio_text, portfolio = _portfolio(page)
        stored = _monitoring(page, card.model_version)
        panel = challenge.panel(page, filters or challenge.Filters())
        model = _model_card(card, page)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cashscore dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>
<header><h1>cashscore · Alura Cash credit risk</h1></header><main>
<section class="wide" id="challenge"><h2>Alura Cash loans <span class="pt">· empréstimos da Alura Cash</span></h2>{panel}</section>
<section><h2>Model <span class="pt">· modelo</span></h2>{model}</section>
<section><h2>Portfolio scores <span class="pt">· carteira pontuada</span></h2><p>{html.escape(portfolio_text)}</p>{portfolio}</section>
<section id="drift-panel"><h2>Drift against the training population</h2>{_drift_panel(live, stored.get("drift"))}</section>
<section id="fairness-panel"><h2>Fairness by age band</h2>{_fairness_panel(card, stored.get("fairness"))}</section>
<section class="wide" id="whatif-panel"><h2>Evaluate a client <span class="pt">· avaliar um cliente</span></h2>{_form(card.reference)}<div id="result"></div></section>
</main><script>{SCRIPT}</script>
<script type="application/json" id="contract">{html.escape(json.dumps([f.name for f in contract.FEATURES]))}</script>
</body></html>"""


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# The page's only script and style are the two inline blocks above, allowed by their hashes:
# markup injected into the page, should any ever get through, could run nothing.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_digest(SCRIPT)}; style-src {_digest(CSS)}; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def login_page(error: str | None = None) -> str:
    """The page asking for the API key before the dashboard shows anything.

    Args:
        error: what went wrong with the last attempt, if anything.

    Returns:
        HTML text.
    """
    problem = f'<p class="deny">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cashscore: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>
<header><h1>cashscore · Alura Cash credit risk</h1></header>
<form class="login" method="post" action="/login"><label>API key
<input type="password" name="api_key" autocomplete="current-password" required autofocus></label>{problem}
<button type="submit">Open the dashboard</button></form></body></html>"""
