"""The monitoring history in the database: `monitoring.drift` and `monitoring.fairness`, one row per
feature (or age band) per measurement, appended, never rewritten; `restore` carries them over.
"""

from __future__ import annotations

import duckdb
import msgspec

from cashscore.monitoring.drift import Measurement

SCHEMA = "monitoring"
DRIFT = """
create table if not exists monitoring.drift (
    measured_at timestamptz not null,
    model_version varchar not null,
    population varchar not null,
    feature varchar not null,
    rows bigint not null,
    psi double,
    statistic double,
    p_value double,
    status varchar not null,
    mean_predicted double,
    realised_rate double,
    labelled bigint not null,
    rejected bigint not null
)"""
FAIRNESS = """
create table if not exists monitoring.fairness (
    measured_at timestamptz not null,
    model_version varchar not null,
    population varchar not null,
    band varchar not null,
    rows bigint not null,
    approval_rate double,
    adverse_impact_ratio double,
    flagged boolean not null,
    mean_predicted double,
    realised_rate double,
    true_positive_rate double,
    false_positive_rate double,
    tpr_gap double,
    fpr_gap double
)"""


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or value != value else value


def _append(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    if rows:
        con.executemany(f"insert into {table} values ({', '.join('?' * len(rows[0]))})", rows)


def store(con: duckdb.DuckDBPyConnection, found: Measurement, drift: bool = True, fairness: bool = True) -> None:
    """Append a measurement's rows in one transaction (values as parameters, never as SQL text)."""
    con.execute("begin")
    try:
        con.execute(f"create schema if not exists {SCHEMA}")
        head = (found.measured_at, found.model_version, found.population)
        if drift:
            con.execute(DRIFT)
            totals = (found.mean_predicted, found.realised_rate, found.labelled, found.rejected)
            figures = [
                (*head, d.feature, d.rows, *map(_nan_to_none, (d.psi, d.statistic, d.p_value)), d.status, *totals)
                for d in found.drift
            ]
            _append(con, "monitoring.drift", figures)
        if fairness:
            con.execute(FAIRNESS)
            # The table's columns after the head are AgeBand's fields, in order.
            _append(con, "monitoring.fairness", [(*head, *msgspec.structs.astuple(b)) for b in found.fairness])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
