"""The warehouse as a DuckDB connection with the score functions registered, for Python and notebooks.

`cashscore sql` is this connection behind a prompt; `cashscore.connect()` hands it to an analyst's
Jupyter notebook or script, with DuckDB's whole Python API on it (`.sql(...).df()`, `.arrow()`).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from cashscore.artefact.store import load_verified
from cashscore.core import config
from cashscore.scoring import batch
from cashscore.scoring.scorer import Scorer
from cashscore.warehouse import export


def open_scoring(
    db: Path, models: Path, read_only: bool, memory: str | None = None
) -> tuple[duckdb.DuckDBPyConnection, Scorer]:
    """The database and the current model, verified, with the score functions registered on it.

    Raises:
        CashscoreError: for a missing database or model, or a model that fails its checks.
    """
    # The model first: a refused model never leaves a connection (and its lock) behind.
    scorer = Scorer(load_verified(models))
    con = export.connect(db, read_only=read_only, memory=memory)
    try:
        batch.register_udfs(con, scorer)
    except BaseException:
        con.close()
        raise
    return con, scorer


def connect(
    db: str | Path | None = None, models: str | Path | None = None, *, read_only: bool = True
) -> duckdb.DuckDBPyConnection:
    """Open the restored database with `score(...)`, `score_default(...)`, `score_decision(...)`,
    `score_pt(...)` and `score_model_version()` registered, as `cashscore sql` does.

        import cashscore
        con = cashscore.connect()
        con.sql("select loan_grade, avg(score_default(a)) from marts.applicants a group by 1").df()

    Args:
        db: the DuckDB file (CASHSCORE_DB, `data/cashscore.duckdb`, by default).
        models: the models folder whose current version scores (CASHSCORE_MODELS, `models`, by default).
        read_only: True by default: a notebook stays open for hours, and a read-only connection
            lets the dashboard and other readers share the file. Writers (`cashscore score
            --into`, training's evaluation rows) still wait for it to close: DuckDB lets a
            writer in only alone.

    Raises:
        CashscoreError: naming the missing database or model, or what is wrong with the model.
    """
    paths = config.load().paths
    con, _ = open_scoring(
        Path(db) if db is not None else paths.db, Path(models) if models is not None else paths.models, read_only
    )
    return con
