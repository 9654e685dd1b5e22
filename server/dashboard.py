# ruff: noqa: E501 - the CSS, script and markup read better unwrapped
"""The built-in dashboard at GET /: model card, portfolio of the latest stored scores, what-if form.

Plain server-rendered HTML with inline SVG charts and a small script; nothing is fetched from a
CDN, so it works offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import duckdb

from features import contract

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
"""

SCRIPT = """
const form = document.getElementById('whatif');
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = {};
  for (const [key, value] of new FormData(form).entries()) {
    if (value === '') continue;
    body[key] = form.elements[key].type === 'number' ? Number(value) : value;
  }
  const out = document.getElementById('result');
  out.textContent = 'scoring...';
  const response = await fetch('/v1/score', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                             body: JSON.stringify(body)});
  const data = await response.json();
  if (!response.ok) {
    out.innerHTML = '<span class="deny">' + (data.detail || 'error') + '</span> ' +
      (data.extra || []).map(e => e.key + ': ' + e.message).join('; ');
    return;
  }
  const reasons = data.reasons.map(r => '<li>' + r.text + '</li>').join('');
  out.innerHTML = '<p>Decision: <span id="decision" class="' + data.decision + '">' + data.decision +
    '</span> · probability of default <b id="probability">' + (100 * data.default_probability).toFixed(1) +
    ' %</b> · risk band ' + data.risk_band + ' · threshold ' + (100 * data.threshold).toFixed(1) + ' %</p>' +
    (reasons ? '<ol id="reasons">' + reasons + '</ol>' : '<p>No feature raises the risk above the typical applicant.</p>');
});
"""


def _svg_line(points: list[tuple[float, float]], title: str, diagonal: bool = True) -> str:
    size = 220
    path = " ".join(f"{x * size:.1f},{size - y * size:.1f}" for x, y in points)
    diag = f'<line x1="0" y1="{size}" x2="{size}" y2="0" stroke="#bbb" stroke-dasharray="4"/>' if diagonal else ""
    return (
        f'<svg viewBox="-5 -5 {size + 10} {size + 10}" width="240" role="img" aria-label="{html.escape(title)}">'
        f'<rect x="0" y="0" width="{size}" height="{size}" fill="none" stroke="#ccc"/>{diag}'
        f'<polyline points="{path}" fill="none" stroke="#14325c" stroke-width="2"/></svg>'
    )


def _bars(rows: list[tuple[str, float, int]], title: str) -> str:
    if not rows:
        return '<p class="muted">no stored scores</p>'
    top = max(r[1] for r in rows) or 1.0
    body = "".join(
        f"<tr><td>{html.escape(str(name))}</td><td>{count:,}</td><td>{mean:.1%}</td>"
        f'<td><svg width="160" height="12"><rect width="{160 * mean / top:.1f}" height="12" fill="#14325c"/></svg></td></tr>'
        for name, mean, count in rows
    )
    return f"<h3>{html.escape(title)}</h3><table><tr><th></th><th>rows</th><th>mean PD</th><th></th></tr>{body}</table>"


def _portfolio(db: Path | None) -> tuple[str, str]:
    """(description, HTML) of the latest stored batch scores, by grade and by intent."""
    if db is None or not db.is_file():
        return "no database configured (CASHSCORE_DB)", ""
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            tables = con.execute("select table_name from duckdb_tables() where schema_name = 'scores'").fetchall()
            latest, when = None, None
            for (name,) in tables:
                stamp = con.execute(f"select max(scored_at) from scores.{name}").fetchall()[0][0]
                if stamp is not None and (when is None or stamp > when):
                    latest, when = name, stamp
            if latest is None:
                return "no stored scores yet: run `cashscore score --table marts.applicants --into portfolio`", ""
            by = {}
            for column in ("loan_grade", "loan_intent"):
                by[column] = con.execute(
                    f"select coalesce({column}, 'missing'), avg(default_probability), count(*) "
                    f"from scores.{latest} group by 1 order by 1"
                ).fetchall()
            hist = con.execute(
                f"select least(floor(default_probability * 10), 9)::int as bin, count(*) from scores.{latest} "
                "group by 1 order by 1"
            ).fetchall()
            summary = con.execute(
                f"select count(*), avg(default_probability), avg((decision = 'deny')::int), any_value(model_version) "
                f"from scores.{latest}"
            ).fetchall()[0]
    except duckdb.Error as exc:
        return f"cannot read the stored scores: {str(exc).splitlines()[0]}", ""
    total = max(sum(c for _, c in hist), 1)
    histogram = "".join(
        f'<rect x="{b * 22}" y="{100 - 100 * c / total:.1f}" width="20" height="{100 * c / total:.1f}" fill="#14325c">'
        f"<title>{b * 10}-{b * 10 + 10} %: {c:,}</title></rect>"
        for b, c in hist
    )
    text = (
        f"scores.{latest}: {summary[0]:,} applicants scored {when} by model {summary[3]}; "
        f"mean PD {summary[1]:.1%}, {summary[2]:.1%} denied"
    )
    body = (
        f'<svg width="220" height="110" role="img" aria-label="PD distribution">{histogram}</svg>'
        f'<p class="muted">distribution of default probability, 0-100 % in tenths</p>'
        + _bars(by["loan_grade"], "By grade")
        + _bars(by["loan_intent"], "By loan intent")
    )
    return text, body


def _model_card(meta: dict[str, Any], db: Path | None) -> str:
    test = meta["metrics"]["test"]
    policy = meta["threshold"]
    rows = "".join(
        f"<tr><td>{k}</td><td>{test[k]:.4f}</td></tr>" for k in ("roc_auc", "pr_auc", "ks", "gini", "brier", "accuracy")
    )
    charts = ""
    if db is not None and db.is_file():
        try:
            with duckdb.connect(str(db), read_only=True) as con:
                roc = con.execute(
                    "select fpr, tpr from model_eval.roc_points where model_version = ? order by fpr, tpr",
                    [meta["model_version"]],
                ).fetchall()
                cal = con.execute(
                    "select mean_predicted, observed_rate from model_eval.calibration_bins "
                    "where model_version = ? order by bin",
                    [meta["model_version"]],
                ).fetchall()
            if roc:
                charts = (
                    f'<div style="display:flex;gap:1rem"><figure>{_svg_line(roc, "ROC curve")}'
                    f"<figcaption>ROC (test split)</figcaption></figure><figure>"
                    f"{_svg_line(cal, 'calibration')}<figcaption>calibration (test split)</figcaption></figure></div>"
                )
        except duckdb.Error:
            charts = '<p class="muted">the evaluation tables are not in this database</p>'
    return (
        f"<p><b>{html.escape(meta['model']['family'])}</b> + {html.escape(meta['model']['strategy'])}, "
        f"version <code>{html.escape(meta['model_version'])}</code>, trained {html.escape(meta['created_at'])} on "
        f"{meta['data']['rows']:,} rows.</p><table>{rows}</table>"
        f"<p>Deny when PD ≥ <b>{policy['value']:.1%}</b> ({html.escape(policy['policy'])} policy: loss given "
        f"default {policy['lgd']}, margin {policy['margin']}).</p>{charts}"
    )


def _form(reference: dict[str, Any]) -> str:
    fields = []
    for f in contract.FEATURES:
        label = f"{html.escape(f.description)} <span class='muted'>{html.escape(f.label_pt)}</span>"
        if f.kind == "categorical":
            options = "".join(
                f"<option{' selected' if c == reference.get(f.name) else ''}>{html.escape(c)}</option>"
                for c in f.categories
            )
            blank = '<option value=""></option>' if f.name not in contract.REQUIRED else ""
            fields.append(f'<label>{label}<select name="{f.name}">{blank}{options}</select></label>')
        else:
            value = reference.get(f.name)
            shown = "" if f.name == "loan_percent_income" or value is None else f"{value:g}"
            fields.append(
                f'<label>{label}<input type="number" step="any" name="{f.name}" value="{shown}" '
                f'min="{f.valid_min:g}" max="{f.valid_max:g}"{" required" if f.name in contract.REQUIRED else ""}>'
                "</label>"
            )
    return f'<form id="whatif">{"".join(fields)}<button type="submit">Score this applicant</button></form>'


def render(meta: dict[str, Any], db: Path | None) -> str:
    """The dashboard page for the serving model.

    Args:
        meta: the model's metadata.
        db: the database holding model_eval and scores tables, if any.

    Returns:
        HTML text.
    """
    portfolio_text, portfolio = _portfolio(db)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cashscore dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>
<header><h1>cashscore · Alura Cash credit risk</h1></header><main>
<section><h2>Model</h2>{_model_card(meta, db)}</section>
<section><h2>Portfolio</h2><p>{html.escape(portfolio_text)}</p>{portfolio}</section>
<section class="wide"><h2>What if: a new applicant</h2>{_form(meta.get("reference", {}))}<div id="result"></div></section>
</main><script>{SCRIPT}</script>
<script type="application/json" id="contract">{html.escape(json.dumps([f.name for f in contract.FEATURES]))}</script>
</body></html>"""
