"""Configuration read once from the environment, with defaults that work from a checkout."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Where cashscore reads and writes; every field has a CASHSCORE_* variable."""

    db: Path
    models: Path
    sql_dir: Path
    data_dir: Path
    host: str
    port: int
    workers: int
    api_key: str | None
    admin_key: str | None
    max_batch: int
    max_body_bytes: int


def load() -> Settings:
    """Read the settings from the environment.

    Returns:
        The settings, with defaults relative to the project checkout.
    """
    env = os.environ.get
    return Settings(
        db=Path(env("CASHSCORE_DB", "data/cashscore.duckdb")),
        models=Path(env("CASHSCORE_MODELS", "models")),
        sql_dir=Path(env("CASHSCORE_SQL_DIR", str(PROJECT_ROOT / "sql"))),
        # The real Alura Cash dump lives beside the project, never inside it.
        data_dir=Path(env("CASHSCORE_DATA_DIR", str(PROJECT_ROOT.parent / "shared/data/alura-cash"))),
        host=env("CASHSCORE_HOST", "127.0.0.1"),
        port=int(env("CASHSCORE_PORT", "8000")),
        workers=int(env("CASHSCORE_WORKERS", "1")),
        api_key=env("CASHSCORE_API_KEY") or None,
        admin_key=env("CASHSCORE_ADMIN_KEY") or None,
        max_batch=int(env("CASHSCORE_MAX_BATCH", "10000")),
        max_body_bytes=int(env("CASHSCORE_MAX_BODY_BYTES", str(8 * 1024 * 1024))),
    )
