"""The one configuration module: every setting with its CASHSCORE_* variable, default and meaning, read once.

Each concern has a small frozen dataclass; a field's default, environment variable and docstring
sit together (`setting(...)`), command-line flags map onto the same fields (`dataclasses.replace`),
and values travel as these objects, never through the environment.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cashscore.core.errors import CashscoreError

# The checkout holding this package (tests, README, the real data beside it); meaningless once installed.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def setting(env: str, default: Any, doc: str) -> Any:
    """A settings field: its default, the variable that overrides it and what it means."""
    return field(default=default, metadata={"env": env, "doc": doc})


def _sql_dir() -> Path:
    return Path(str(importlib.resources.files("cashscore.sql")))


@dataclass(frozen=True)
class PathSettings:
    """Where cashscore reads and writes."""

    db: Path = setting("CASHSCORE_DB", Path("data/cashscore.duckdb"), "the database --db defaults to")
    models: Path = setting("CASHSCORE_MODELS", Path("models"), "the model folder --models defaults to")
    sql_dir: Path = setting("CASHSCORE_SQL_DIR", _sql_dir(), "the SQL layers (shipped inside the package)")
    # The real Alura Cash dump lives beside the project, never inside it.
    data_dir: Path = setting(
        "CASHSCORE_DATA_DIR", PROJECT_ROOT.parent / "shared/data/alura-cash", "the real dump, for tests and benchmarks"
    )


@dataclass(frozen=True)
class RestoreSettings:
    """How `restore` guards the database it replaces and how long writers wait for readers."""

    max_shrink: float = setting(
        "CASHSCORE_RESTORE_MAX_SHRINK", 0.5, "the share of a required table's rows a new dump may drop without --force"
    )
    lock_wait: float = setting(
        "CASHSCORE_LOCK_WAIT", 30.0, "seconds a command waits for another process's lock on the database"
    )


@dataclass(frozen=True)
class TrainingSettings:
    """The threshold policy and the seed of a training run."""

    policy: str = setting("CASHSCORE_POLICY", "profit", "threshold policy: profit, approval or f1")
    lgd: float = setting("CASHSCORE_LGD", 0.75, "loss given default, a share of the amount (profit policy)")
    margin: float = setting("CASHSCORE_MARGIN", 0.15, "margin earned on a repaid loan (profit policy)")
    approval_rate: float = setting("CASHSCORE_APPROVAL_RATE", 0.70, "share approved (approval policy)")
    seed: int = setting("CASHSCORE_SEED", 42, "the seed of every random choice in training")
    tuning_tolerance: float = setting(
        "CASHSCORE_TUNING_TOLERANCE", 0.001, "CV ROC-AUC within which fewer trees and a better Brier win"
    )
    protected_age: float = setting(
        "CASHSCORE_PROTECTED_AGE",
        60.0,
        "from this age on, age never raises an applicant's risk (60: Estatuto da Pessoa Idosa; 62: US Regulation B)",
    )


@dataclass(frozen=True)
class ServerSettings:
    """How `serve` listens, authenticates and bounds its work."""

    host: str = setting("CASHSCORE_HOST", "127.0.0.1", "address to bind")
    port: int = setting("CASHSCORE_PORT", 8000, "port to bind")
    workers: int = setting("CASHSCORE_WORKERS", 1, "worker processes")
    api_key: str | None = setting("CASHSCORE_API_KEY", None, "the key /v1/* and the dashboard need, when set")
    admin_key: str | None = setting("CASHSCORE_ADMIN_KEY", None, "the key POST /admin/reload needs")
    model_version: str | None = setting("CASHSCORE_MODEL_VERSION", None, "serve this version instead of models/current")
    max_batch: int = setting("CASHSCORE_MAX_BATCH", 10_000, "applicants in one batch request")
    max_body_bytes: int = setting("CASHSCORE_MAX_BODY_BYTES", 8 * 1024 * 1024, "largest request body")
    max_in_flight: int = setting("CASHSCORE_MAX_IN_FLIGHT", 256, "requests at once per worker; more answer 503")
    read_timeout: float = setting("CASHSCORE_READ_TIMEOUT", 15.0, "seconds a request may take to arrive whole")
    log_level: str = setting("CASHSCORE_LOG_LEVEL", "warning", "uvicorn's log level")


@dataclass(frozen=True)
class AuditSettings:
    """The decision log: where, signed with what, kept how long."""

    enabled: int = setting("CASHSCORE_AUDIT", 1, "1: the server logs every decision before answering; 0: none")
    log: Path = setting("CASHSCORE_AUDIT_LOG", Path("data/audit"), "the decision log's folder")
    key: str | None = setting("CASHSCORE_AUDIT_KEY", None, "an HMAC key signing each record, when set")
    retention_months: int = setting(
        "CASHSCORE_AUDIT_RETENTION_MONTHS", 25, "months of records `cashscore audit prune` keeps"
    )


@dataclass(frozen=True)
class MonitoringSettings:
    """How drift and fairness are measured."""

    age_bands: str = setting(
        "CASHSCORE_AGE_BANDS", "25,35,45,60", "ages where fairness bands start (<25, 25-34, 35-44, 45-59, 60+)"
    )
    drift_window: int = setting(
        "CASHSCORE_DRIFT_WINDOW", 5000, "the server's rolling drift covers this many latest applicants per worker"
    )


@dataclass(frozen=True)
class BatchSettings:
    """How the streaming commands (score, monitor, fairness) use memory."""

    stream_memory: str | None = setting(
        "CASHSCORE_STREAM_MEMORY",
        None,
        "DuckDB's memory limit for a whole streaming pass (score, monitor, fairness), e.g. 4GB; unset, once the "
        "rows begin it is what DuckDB holds then plus 64MB for the blocks it caches; a query needing more fails",
    )


@dataclass(frozen=True)
class Settings:
    """Every setting, by concern."""

    paths: PathSettings = field(default_factory=PathSettings)
    restore: RestoreSettings = field(default_factory=RestoreSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)


_UNITS = {"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
# Below this DuckDB cannot pin the blocks a scan needs.
MIN_MEMORY_BYTES = 16 * 10**6


def memory_size(text: str, variable: str) -> str:
    """A memory size as DuckDB's memory_limit reads it ("128MB", "2 GiB"), checked before DuckDB sees it.

    Raises:
        CashscoreError: naming the variable, for anything but a number and a unit of at least 16MB.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b)\s*", text, re.IGNORECASE)
    if match is None:
        raise CashscoreError(f"{variable}={text[:40]!r}: expected a number and a unit, e.g. 128MB or 2GiB")
    if float(match[1]) * _UNITS[match[2].lower()] < MIN_MEMORY_BYTES:
        raise CashscoreError(f"{variable}={text[:40]!r}: DuckDB needs at least 16MB to read a table")
    return f"{match[1]}{match[2]}"


def _convert(name: str, kind: str, text: str) -> Any:
    if kind in ("str", "str | None"):
        return text or None if kind == "str | None" else text
    if kind == "Path":
        return Path(text)
    number_kind = int if kind == "int" else float
    try:
        value = number_kind(text)
    except ValueError:
        raise CashscoreError(
            f"{name}={text[:40]!r}: expected a {'whole ' if number_kind is int else ''}number"
        ) from None
    if value < 0:
        raise CashscoreError(f"{name}={text[:40]!r}: expected a number of 0 or more")
    return value


def _read(cls: Any, environ: Mapping[str, str]) -> Any:
    values = {}
    for f in dataclasses.fields(cls):
        env = f.metadata["env"]
        if env in environ:
            values[f.name] = _convert(env, str(f.type), environ[env])
    return cls(**values)


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from the environment (or `environ`), defaults where unset.

    Returns:
        The settings.

    Raises:
        CashscoreError: naming a variable whose value is not of its kind.
    """
    env = os.environ if environ is None else environ
    return Settings(
        paths=_read(PathSettings, env),
        restore=_read(RestoreSettings, env),
        training=_read(TrainingSettings, env),
        server=_read(ServerSettings, env),
        audit=_read(AuditSettings, env),
        monitoring=_read(MonitoringSettings, env),
        batch=_read(BatchSettings, env),
    )


def variables() -> list[tuple[str, Any, str]]:
    """(variable, default, meaning) of every setting, for the README's table and its test."""
    rows = []
    for cls in (
        PathSettings,
        RestoreSettings,
        TrainingSettings,
        ServerSettings,
        AuditSettings,
        MonitoringSettings,
        BatchSettings,
    ):
        for f in dataclasses.fields(cls):
            rows.append((f.metadata["env"], f.default, f.metadata["doc"]))
    return rows
