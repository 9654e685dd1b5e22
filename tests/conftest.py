"""Shared fixtures: small handwritten dumps, restored databases and the real Alura Cash data."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from cashscore.core import config
from cashscore.warehouse.restore import restore

SQL_DIR = config.PROJECT_ROOT / "sql"

HEADER = "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n/*!50503 SET NAMES utf8mb4 */;\n"
DDL = {
    "dados_mutuarios": "`person_id` varchar(16) DEFAULT NULL, `person_age` int DEFAULT NULL, "
    "`person_income` int DEFAULT NULL, `person_home_ownership` varchar(8) DEFAULT NULL, "
    "`person_emp_length` double DEFAULT NULL",
    "emprestimos": "`loan_id` varchar(16) DEFAULT NULL, `loan_intent` varchar(32) DEFAULT NULL, "
    "`loan_grade` varchar(1) DEFAULT NULL, `loan_amnt` int DEFAULT NULL, `loan_int_rate` double DEFAULT NULL, "
    "`loan_status` int DEFAULT NULL, `loan_percent_income` double DEFAULT NULL",
    "historicos_banco": "`cb_id` varchar(16) DEFAULT NULL, `cb_person_default_on_file` varchar(1) DEFAULT NULL, "
    "`cb_person_cred_hist_length` int DEFAULT NULL",
    "ids": "`person_id` varchar(16) DEFAULT NULL, `loan_id` varchar(16) DEFAULT NULL, `cb_id` varchar(16) DEFAULT NULL",
}
ROWS = {
    "dados_mutuarios": "('p1',22,59000,'Rent',3),('p2',35,120000,'MORTGAGE',10),('',NULL,30000,'',NULL)",
    "emprestimos": "('l1','Education','B',35000,16.02,1,0.59),('l2','médico','a',5000,NULL,0,0.04),"
    "('l3','','',1000,11.1,NULL,NULL)",
    "historicos_banco": "('c1','Y',3),('c2','n',14),('c3','',NULL)",
    "ids": "('p1','l1','c1'),('p2','l2','c2'),('','l3','c3')",
}


def table_sql(table: str, rows: str | None = None, ddl: str | None = None) -> str:
    """One table as mysqldump writes it: DROP, CREATE with MySQL-only clauses, LOCK, INSERT."""
    return (
        f"DROP TABLE IF EXISTS `{table}`;\n"
        f"CREATE TABLE `{table}` (\n  {ddl or DDL[table]}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3;\n"
        f"LOCK TABLES `{table}` WRITE;\n/*!40000 ALTER TABLE `{table}` DISABLE KEYS */;\n"
        f"INSERT INTO `{table}` VALUES {rows if rows is not None else ROWS[table]};\n"
        f"/*!40000 ALTER TABLE `{table}` ENABLE KEYS */;\nUNLOCK TABLES;\n"
    )


def full_dump(**overrides: str) -> str:
    """A small dump of the four tables; keyword arguments replace a table's whole text."""
    parts = [HEADER]
    for table in DDL:
        parts.append(overrides.get(table, table_sql(table)))
    return "".join(parts)


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
    meta = trainer.run(sample_db, models, quick=True, say=lambda _: None, families=("logreg", "hist_gb", "lightgbm"))
    return sample_db, models, meta


@contextlib.contextmanager
def serve_process(models: Path, db: Path | None = None, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """A real `cashscore serve` process on a free loopback port; yields (base URL, pid) once ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "cashscore.cli", "serve", "--port", str(port), "--models", str(models)]
    if db is not None:
        command += ["--db", str(db)]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/health/ready", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)
