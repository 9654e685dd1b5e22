"""Configuration read once from the environment, with defaults that work from a checkout."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cashscore.errors import CashscoreError

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
    restore_max_shrink: float
    max_in_flight: int
    read_timeout: float
    model_version: str | None


def _number(name: str, default: str, kind: type[int] | type[float]) -> Any:
    text = os.environ.get(name, default)
    try:
        value = kind(text)
    except ValueError:
        raise CashscoreError(f"{name}={text[:40]!r}: expected a {'whole ' if kind is int else ''}number") from None
    if value < 0:
        raise CashscoreError(f"{name}={text[:40]!r}: expected a number of 0 or more")
    return value


def load() -> Settings:
    """Read the settings from the environment.

    Returns:
        The settings, with defaults relative to the project checkout.

    Raises:
        CashscoreError: naming a variable whose value is not a number.
    """
    env = os.environ.get
    return Settings(
        db=Path(env("CASHSCORE_DB", "data/cashscore.duckdb")),
        models=Path(env("CASHSCORE_MODELS", "models")),
        sql_dir=Path(env("CASHSCORE_SQL_DIR", str(PROJECT_ROOT / "sql"))),
        # The real Alura Cash dump lives beside the project, never inside it.
        data_dir=Path(env("CASHSCORE_DATA_DIR", str(PROJECT_ROOT.parent / "shared/data/alura-cash"))),
        host=env("CASHSCORE_HOST", "127.0.0.1"),
        port=_number("CASHSCORE_PORT", "8000", int),
        workers=_number("CASHSCORE_WORKERS", "1", int),
        api_key=env("CASHSCORE_API_KEY") or None,
        admin_key=env("CASHSCORE_ADMIN_KEY") or None,
        max_batch=_number("CASHSCORE_MAX_BATCH", "10000", int),
        max_body_bytes=_number("CASHSCORE_MAX_BODY_BYTES", str(8 * 1024 * 1024), int),
        restore_max_shrink=_number("CASHSCORE_RESTORE_MAX_SHRINK", "0.5", float),
        max_in_flight=_number("CASHSCORE_MAX_IN_FLIGHT", "256", int),
        read_timeout=_number("CASHSCORE_READ_TIMEOUT", "15", float),
        model_version=env("CASHSCORE_MODEL_VERSION") or None,
    )
