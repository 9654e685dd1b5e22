"""Shared fixtures: small handwritten dumps, restored databases and the real Alura Cash data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest
from helpers.dumps import SQL_DIR, full_dump

from cashscore.core import config
from cashscore.warehouse.restore import restore


@pytest.fixture(autouse=True)
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's decisions go to a log of its own, never to the project's data/audit."""
    folder = tmp_path / "audit"
    monkeypatch.setenv("CASHSCORE_AUDIT_LOG", str(folder))
    return folder


@pytest.fixture
def write(tmp_path: Path):
    """Write text (or bytes) to a file under tmp_path and return its path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def small_db(tmp_path: Path, write) -> Path:
    """A database restored from the small handwritten dump."""
    db = tmp_path / "small.duckdb"
    restore([write("small.sql", full_dump())], db, SQL_DIR, say=lambda _: None)
    return db


@pytest.fixture
def query():
    """Run one query on a database file and return all rows."""

    def _query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    return _query


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real Alura Cash dump: skipped where absent, but a failure under CI."""
    path = config.load().paths.data_dir
    if not (path / "analise_risco_ids.sql").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the real Alura Cash dump is missing at {path} (CASHSCORE_DATA_DIR)")
        pytest.skip(f"the real Alura Cash dump is not at {path}; set CASHSCORE_DATA_DIR to run these tests")
    return path


@pytest.fixture(scope="session")
def real_db(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real dump restored once per test session."""
    db = tmp_path_factory.mktemp("real") / "real.duckdb"
    restore([real_data_dir], db, SQL_DIR, say=lambda _: None)
    return db


@pytest.fixture(scope="session")
def real_trained(real_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`cashscore train` with its defaults on the real dump, once per session (about 3 minutes)."""
    from cashscore.training import trainer

    models = tmp_path_factory.mktemp("real-models")
    return models, trainer.run(real_db, models, say=lambda _: None)


@pytest.fixture(scope="session")
def real_model(real_trained: tuple[Path, dict]) -> Path:
    return real_trained[0]


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database restored from a 3,000-application synthetic dump."""
    from cashscore.warehouse.sample import write_sample

    folder = tmp_path_factory.mktemp("sample")
    dump = folder / "sample.sql.gz"
    write_sample(dump, rows=3000, seed=11)
    db = folder / "sample.duckdb"
    restore([dump], db, SQL_DIR, say=lambda _: None)
    return db


@pytest.fixture(scope="session")
def trained(sample_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A tiny fitted model on the synthetic sample: (database, models folder, metadata)."""
    from cashscore.training import trainer

    models = tmp_path_factory.mktemp("models")
    # Trees: on the synthetic sample (drawn from a logistic model) logistic regression would win.
    meta = trainer.run(sample_db, models, quick=True, say=lambda _: None, families=("hist_gb", "lightgbm"))
    return sample_db, models, meta


@pytest.fixture(scope="session")
def trained_linear(sample_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A sign-constrained logistic regression on a copy of the synthetic sample (beside k-NN, which
    cannot be served): (database, models folder, metadata)."""
    from cashscore.training import trainer

    folder = tmp_path_factory.mktemp("linear")
    db = folder / "sample.duckdb"
    shutil.copy(sample_db, db)  # training writes its model_eval rows: not into the shared sample
    meta = trainer.run(db, folder / "models", quick=True, say=lambda _: None, families=("logreg", "knn"))
    return db, folder / "models", meta


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that train on the real dump at full size are slow: `make test-quick` leaves them out."""
    for item in items:
        if {"real_trained", "real_model"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
