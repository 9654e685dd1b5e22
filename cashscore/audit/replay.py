"""Replay: score every logged decision again with the model version that made it, and compare."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cashscore.artefact import store
from cashscore.audit import log
from cashscore.core.errors import CashscoreError
from cashscore.scoring.reasons import LANGUAGES, WORDING
from cashscore.scoring.scorer import Scored, Scorer

CHUNK = 10_000
# Differences listed in full; beyond, only counted.
SHOWN = 20


@dataclass
class Replayed:
    """How many records were scored again, how many differ, and the first differences in words."""

    records: int = 0
    differing: int = 0
    differences: list[str] = field(default_factory=list)
    # Records whose reasons were worded by other words than today's (another WORDING): their
    # probability and decision were compared, their words could not be.
    reworded: int = 0

    def differ(self, where: str, message: str) -> None:
        self.differing += 1
        if len(self.differences) < SHOWN:
            self.differences.append(f"{where}: {message}")


def language(record: dict[str, Any]) -> str:
    """The language the record's reasons were worded in (English unless it says otherwise).

    Raises:
        ValueError: for a language no reasons are worded in.
    """
    found = record.get("language", "en")
    if found not in LANGUAGES:
        raise ValueError(f"its reasons' language {str(found)[:20]!r} is none of {', '.join(LANGUAGES)}")
    return found


def reworded(record: dict[str, Any]) -> bool:
    """Whether the record's reasons were worded by other words than today's (so not comparable)."""
    wording = record.get("wording")
    return record.get("reasons") is not None and wording is not None and wording != WORDING


def difference(record: dict[str, Any], result: Scored) -> str | None:
    """How a record and its input scored again differ: probability (exactly), decision, then the
    reasons where the record has them and they were worded by today's words; None when they agree."""
    then = record.get("default_probability")
    if result.default_probability != then:
        return f"probability {then!r} then, {result.default_probability!r} now"
    if result.decision != record.get("decision"):
        return f"decision {record.get('decision')!r} then, {result.decision!r} now"
    if record.get("reasons") is None or reworded(record):
        return None
    if [r.text for r in result.reasons] != record["reasons"]:
        if "wording" not in record:
            return "the reasons differ (recorded before the words were versioned: perhaps only worded differently)"
        return "the reasons differ"
    return None


def replay(folder: Path, models: Path, progress: Callable[[int], None] | None = None) -> Replayed:
    """Score each record's cleaned input with its model version; compare probability (exactly),
    decision and reasons (where the record has them).

    Raises:
        CashscoreError: for a log that cannot be read.
    """
    out = Replayed()
    # None: a version that cannot be loaded, said once; its records in later chunks still each count.
    scorers: dict[str, Scorer | None] = {}
    batch: list[tuple[str, dict[str, Any]]] = []

    def flush() -> None:
        by_version: dict[tuple[str, Any], list[tuple[str, dict[str, Any]]]] = {}
        for where, record in batch:
            key = (str(record.get("model_version")), record.get("language", "en"))
            by_version.setdefault(key, []).append((where, record))
        for (version, _), items in by_version.items():
            if version not in scorers:
                try:
                    scorers[version] = Scorer(store.load_verified(models, version))
                except CashscoreError as exc:
                    scorers[version] = None
                    out.differ(items[0][0], f"model version {version} cannot be loaded: {exc}")
                    out.differing += len(items) - 1
                    continue
            scorer = scorers[version]
            if scorer is None:
                out.differing += len(items)
                continue
            again: list[Scored | None]
            try:
                again = list(scorer.score([r["input"] for _, r in items], language=language(items[0][1])))
            except Exception:  # one bad input: replay the chunk's records one at a time
                again = []
                for where, record in items:
                    try:
                        (one,) = scorer.score([record["input"]], language=language(record))
                    except Exception as inner:
                        out.differ(where, f"its input cannot be scored again: {inner}")
                        one = None
                    again.append(one)
            for (where, record), result in zip(items, again, strict=True):
                found = difference(record, result) if result is not None else None
                if found:
                    out.differ(where, found)
                elif result is not None and reworded(record):
                    out.reworded += 1
        out.records += len(batch)
        batch.clear()
        if progress:
            progress(out.records)

    for path, number, record in log.records(folder):
        batch.append((f"{path.name}:{number} (record {record.get('seq')})", record))
        if len(batch) >= CHUNK:
            flush()
    flush()
    return out
