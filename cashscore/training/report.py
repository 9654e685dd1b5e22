"""The human report: one self-contained HTML page (plots inlined as PNG, works offline)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import msgspec  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cashscore.artefact.card import ModelCard  # noqa: E402
from cashscore.training import preprocess  # noqa: E402

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left} tr.chosen{background:#e8f5e9;font-weight:600}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem} img{width:100%}
"""


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _plots(card: ModelCard, tables: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    plots = []
    roc, pr = tables["roc_points"], tables["pr_points"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(roc["fpr"], roc["tpr"], label=f"ROC-AUC {card.metrics.test.roc_auc:.4f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (test split)")
    ax.legend()
    plots.append(("ROC curve", _png(fig)))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(pr["recall"], pr["precision"], label=f"PR-AUC {card.metrics.test.pr_auc:.4f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve (test split)")
    ax.legend()
    plots.append(("Precision-recall curve", _png(fig)))
    cal = tables["calibration_bins"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.plot(cal["mean_predicted"], cal["observed_rate"], "o-")
    ax.set(xlabel="mean predicted probability", ylabel="observed default rate", title="Calibration (test split)")
    plots.append(("Calibration", _png(fig)))
    cm = card.metrics.test.confusion
    matrix = np.array([[cm.tn, cm.fp], [cm.fn, cm.tp]])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{v:,}", ha="center", va="center", color="black", fontsize=12)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["approve", "deny"], yticklabels=["repaid", "defaulted"])
    ax.set_title(f"Confusion matrix at threshold {card.threshold.value:.3f}")
    plots.append(("Confusion matrix", _png(fig)))
    scores = tables["test_scores"]
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, name in ((0, "repaid"), (1, "defaulted")):
        ax.hist(scores.loc[scores["loan_status"] == label, "default_probability"], bins=40, alpha=0.6, label=name)
    ax.axvline(card.threshold.value, color="black", linestyle="--", label="threshold")
    ax.set(xlabel="probability of default", ylabel="applicants", title="Scores by class (test split)")
    ax.legend()
    plots.append(("Score distribution", _png(fig)))
    imp = tables["feature_importance"].iloc[::-1]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.barh(imp["feature"], imp["importance"], xerr=imp["std"])
    ax.set(xlabel="ROC-AUC drop when shuffled", title="Permutation importance (test split)")
    plots.append(("Feature importance", _png(fig)))
    return plots


def _fairness_rows(card: ModelCard) -> str:
    def cell(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    return "".join(
        f"<tr><td>{html.escape(b.band)}</td><td>{b.rows:,}</td><td>{cell(b.approval_rate, '.1%')}</td>"
        f"<td>{cell(b.adverse_impact_ratio, '.2f')}{' *' if b.flagged else ''}</td>"
        f"<td>{cell(b.mean_predicted, '.1%')}</td><td>{cell(b.realised_rate, '.1%')}</td>"
        f"<td>{cell(b.true_positive_rate, '.2f')}</td><td>{cell(b.false_positive_rate, '.2f')}</td>"
        f"<td>{cell(b.tpr_gap, '+.2f')}</td><td>{cell(b.fpr_gap, '+.2f')}</td></tr>"
        for b in card.fairness
    )


def render(card: ModelCard, tables: dict[str, pd.DataFrame]) -> str:
    """The report page.

    Args:
        card: the model card.
        tables: the evaluation tables from cashscore.evaluation.tables.

    Returns:
        HTML text.
    """
    test = card.metrics.test
    chosen = (card.model.family, card.model.strategy)
    rows = []
    cands = tables["candidates"].sort_values("roc_auc", ascending=False)
    for _, c in cands.iterrows():
        cls = ' class="chosen"' if (c["family"], c["strategy"]) == chosen else ""
        cells = "".join(
            f"<td>{c[k]:.4f}</td>"
            for k in (
                "roc_auc",
                "pr_auc",
                "ks",
                "gini",
                "brier",
                "log_loss",
                "threshold",
                "accuracy",
                "precision",
                "recall",
                "f1",
            )
        )
        rows.append(
            f"<tr{cls}><td>{html.escape(c['family'])}</td><td>{html.escape(c['strategy'])}</td>{cells}"
            f"<td>{c['seconds']:.1f}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "family",
            "balancing",
            "ROC-AUC",
            "PR-AUC",
            "KS",
            "Gini",
            "Brier",
            "log loss",
            "threshold",
            "accuracy",
            "precision",
            "recall",
            "F1",
            "s",
        )
    )
    numbers = msgspec.structs.asdict(test).items()
    metric_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in numbers if isinstance(v, float)
    )
    plots = "".join(f"<div><h3>{html.escape(t)}</h3>{img}</div>" for t, img in _plots(card, tables))
    fairness = _fairness_rows(card)
    protected = card.protected_age
    policy = card.threshold
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>cashscore model {html.escape(card.model_version)}</title><style>{STYLE}</style></head><body>
<h1>cashscore model report</h1>
<p class="sub">version {html.escape(card.model_version)} · created {html.escape(card.created_at)} ·
{card.data.rows:,} labelled rows ({card.data.default_rate:.2%} defaults) · data fingerprint
{card.data.fingerprint[:16]}…</p>
<h2>Chosen model</h2>
<p><b>{html.escape(chosen[0])}</b> with balancing <b>{html.escape(chosen[1])}</b>, parameters
<code>{html.escape(str(card.model.params or "defaults"))}</code> (cross-validated ROC-AUC
{card.model.cv_roc_auc:.4f}). Among families that can be held monotonic and explained in their graph
(LightGBM, sign-constrained logistic regression), candidates within
{card.config.tuning_tolerance} of the best cross-validated ROC-AUC are told apart by Brier score; the tuning
search then keeps the setting with the fewest trees within the same tolerance.
Probabilities calibrated by {html.escape(card.calibration.method)}
(a={card.calibration.a:.4f}, b={card.calibration.b:.4f}).
Decision: deny when the probability of default is at least <b>{policy.value:.4f}</b>, chosen by the
<b>{html.escape(policy.policy)}</b> policy (loss given default {policy.lgd}, interest margin {policy.margin},
target approval {policy.approval_rate}).</p>
<p>ONNX parity on the {card.parity.rows:,} test rows: max |Δp| {card.parity.max_abs_diff:.2e},
{card.parity.decision_flips} decision flips. Monotonicity violations: {card.monotonic_violations}.</p>
<h2>Reasons</h2>
<p>{_explanation(card)}</p>
<h2>Protected age</h2>
<p>From <b>{protected.age:g}</b> on, age never raises an applicant's risk: the model sees age capped there
and is non-increasing in age, and its contributions inherit that sign. Checked on
{protected.rows_checked:,} test applicants, as they are and as if older:
{protected.positive_age_contributions} risk-raising age contributions.</p>
<h2>Fairness by age band (held-out test split)</h2>
<table><tr><th>age band</th><th>rows</th><th>approval rate</th><th>adverse impact ratio</th>
<th>mean predicted default</th><th>realised default</th><th>true-positive rate</th><th>false-positive rate</th>
<th>TPR gap</th><th>FPR gap</th></tr>{fairness}</table>
<p class="sub">Adverse impact ratio: the band's approval rate over the most-approved band's; flagged (*) under
0.8, the four-fifths rule of US employment law: a heuristic for where to look, not a legal test of credit
decisions. A refusal counts as a positive: the true-positive rate is the share of defaulters refused, the
false-positive rate the share of good payers refused; gaps are against the most-approved band.</p>
<h2>Held-out test split (used once)</h2><table><tr><th>metric</th><th>value</th></tr>{metric_rows}</table>
<div class="grid">{plots}</div>
<h2>Candidates (cross-validated on the training part, samplers inside the folds only)</h2>
<table><tr>{head}</tr>{"".join(rows)}</table>
</body></html>
"""


def _explanation(card: ModelCard) -> str:
    """How the reasons are computed, their additivity and, for trees, their agreement with TreeSHAP."""
    how = card.explanation
    text = (
        f"Each applicant's reasons are the up to 4 features with the largest positive contributions: "
        f"{html.escape(how.method)}. Per applicant, sigmoid(base_log_odds + sum(contributions)) is the "
        f"probability of default: at most {how.additivity_max_error:.1e} apart on the {how.rows:,} test rows."
    )
    if how.coefficients is not None:
        signs = dict(zip(preprocess.output_columns("linear"), preprocess.monotonic_constraints("linear"), strict=True))
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{value:+.4f}</td><td>{_bound(signs.get(name, 0), value)}</td></tr>"
            for name, value in how.coefficients.items()
        )
        text += (
            " Its coefficients, in log-odds per standard deviation (numbers, ranks) or for the category "
            "(one-hot columns), before calibration (the served contributions are scaled by its slope a):</p>"
            "<table><tr><th>column</th><th>coefficient</th>"
            f"<th>sign held by the contract</th></tr>{rows}</table><p>"
        )
    if how.top1_agreement_treeshap is not None and how.top4_agreement_treeshap is not None:
        text += (
            f" The top reason by LightGBM's exact TreeSHAP (<code>pred_contrib</code>) is the top reason here for "
            f"<b>{how.top1_agreement_treeshap:.1%}</b> of test applicants, and among the 4 reasons for "
            f"<b>{how.top4_agreement_treeshap:.1%}</b>."
        )
    return text


def _bound(sign: int, value: float) -> str:
    """A coefficient's bound in words, and whether the fit pressed against it."""
    if not sign:
        return ""
    held = "≥ 0" if sign > 0 else "≤ 0"
    return f"{held}, at its bound (the fit pulls towards the other sign)" if value == 0.0 else held
