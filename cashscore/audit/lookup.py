"""One decision, found and explained: what an auditor or an applicant's review (LGPD art. 20) asks for.

`find` streams the log for a request id (and a batch row's id); `describe` words a record: the
decision against the threshold, the reasons as answered, the values the model saw, and whether the
model version that decided gives the same answer again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cashscore.artefact import store
from cashscore.audit import log
from cashscore.audit.replay import difference, language, reworded
from cashscore.core.errors import CashscoreError
from cashscore.features import contract
from cashscore.scoring.reasons import format_value
from cashscore.scoring.scorer import Scorer


@dataclass
class Found:
    """A record and where it sits: its segment and line."""

    where: str
    record: dict[str, Any]


def find(folder: Path, request_id: str, row_id: str | None = None) -> Iterator[Found]:
    """The records answering `request_id` (every row of a batch request), or only the row `row_id`.

    Raises:
        CashscoreError: for a log that cannot be read.
    """
    # The field as every record spells it (canonical JSON: sorted keys, no spaces): lines without
    # it are not decoded. The comparison below stays exact.
    field = log.canonical({"request_id": request_id})[1:-1]
    for path, number, record in log.records(folder, holding=field):
        if record.get("request_id") != request_id:
            continue
        if row_id is not None and str(record.get("id")) != row_id:
            continue
        yield Found(f"{path.name}:{number}", record)


def rescore(record: dict[str, Any], models: Path, scorers: dict[str, Scorer | str]) -> str:
    """Whether the record's model version, scoring its input again, gives the same answer (in words).

    `scorers` keeps each loaded version (or why it cannot be loaded) across records.
    """
    version = str(record.get("model_version"))
    if version not in scorers:
        try:
            scorers[version] = Scorer(store.load_verified(models, version))
        except CashscoreError as exc:
            scorers[version] = f"model version {version} cannot be loaded: {exc}"
    scorer = scorers[version]
    if isinstance(scorer, str):
        return f"NOT scored again: {scorer}"
    try:
        (again,) = scorer.score([record.get("input") or {}], language=language(record))
    except Exception as exc:  # an input the rules now refuse is itself a finding
        return f"NOT the same: its input cannot be scored again: {exc}"
    found = difference(record, again)
    if found:
        return f"NOT the same: {found}"
    if reworded(record):
        return (
            f"scored again with model {version}: the same probability and decision (the reasons were worded"
            " by an earlier cashscore's words, so their words are not compared)"
        )
    return f"scored again with model {version}: the same probability, decision and reasons"


def describe(found: Found, replayed: str | None) -> str:
    """A record in words, for a person: the decision first, then why, then what the model saw."""
    r = found.record
    p, threshold = r.get("default_probability"), r.get("threshold")
    decision = r.get("decision")
    lines = [
        f"record {r.get('seq')} ({found.where}), {r.get('time')}, {r.get('channel')} request {r.get('request_id')}"
        + (f", row id {r.get('id')}" if r.get("id") is not None else ""),
        f"model {r.get('model_version')}",
    ]
    if isinstance(p, float | int) and isinstance(threshold, float | int):
        side = ">=" if p >= threshold else "<"
        lines.append(
            f"decision: {decision}: probability of default {p:.2%} {side} the threshold {threshold:.2%}"
            f" (denied from the threshold on)"
        )
    else:
        lines.append(f"decision: {decision}; probability {p!r}, threshold {threshold!r}")
    reasons = r.get("reasons")
    if reasons is None:
        lines.append("reasons: none were asked for with this decision (`cashscore audit replay` words them again)")
    elif not reasons:
        lines.append("reasons: no feature raised the risk above the typical applicant's")
    else:
        worded = r.get("language", "en")
        lines.append("reasons, as answered" + ("" if worded == "en" else f" (language {str(worded)[:20]})") + ":")
        lines.extend(f"  {i}. {text}" for i, text in enumerate(reasons, 1))
    if r.get("counter_offer"):
        offer = r["counter_offer"]
        lines.append(
            f"counter-offer: {format_value(float(offer.get('loan_amnt', 0)))} "
            f"at a probability of default of {offer.get('default_probability', 0):.2%}"
        )
    lines.append("values the model saw:")
    seen = r.get("input") or {}
    for f in contract.FEATURES:
        lines.append(f"  {f.description} ({f.name}): {format_value(seen.get(f.name))}")
    if replayed is not None:
        lines.append(replayed)
    return "\n".join(lines)
