"""deploy/nightly.sh end to end on a synthetic dump: restore, the portfolio's scores, fairness,
the decision log's check, drift; a refused dump stops it with yesterday's results in place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from cashscore.core.config import PROJECT_ROOT
from cashscore.warehouse.sample import write_sample

NIGHTLY = PROJECT_ROOT / "deploy" / "nightly.sh"


def nightly(*dumps: Path, db: Path, models: Path, log: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CASHSCORE_DB": str(db),
        "CASHSCORE_MODELS": str(models),
        "CASHSCORE_AUDIT_LOG": str(log),
    }
    return subprocess.run([str(NIGHTLY), *map(str, dumps)], env=env, capture_output=True, text=True, timeout=600)


def results(db: Path) -> tuple:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "select (select count(*) from scores.portfolio), (select max(scored_at) from scores.portfolio), "
            "(select count(*) from monitoring.drift), (select count(*) from monitoring.fairness)"
        ).fetchone()


def test_the_nightly_job_stores_scores_fairness_and_drift(trained, tmp_path):
    sample_db, models, _ = trained
    db = tmp_path / "nightly.duckdb"
    done = nightly(sample_db.parent / "sample.sql.gz", db=db, models=models, log=tmp_path / "audit")
    assert done.returncode == 0, done.stderr
    steps = [line.split(": ", 1)[1] for line in done.stderr.splitlines() if line.startswith("nightly ")]
    assert [s.split()[0] for s in steps] == ["restore", "score", "fairness", "verify", "drift", "done"]
    scored, _, drift, fairness = results(db)
    with duckdb.connect(str(db), read_only=True) as con:
        valid = con.execute("select count(*) from marts.applicants").fetchone()[0]
    assert 0.9 * valid < scored <= valid  # the contract's rejects are not stored
    assert drift > 0 and fairness > 0
    assert "intact, 0 records" in done.stdout and "stored in monitoring.drift" in done.stdout


def test_a_refused_dump_stops_the_job_and_leaves_yesterdays_results(trained, tmp_path):
    sample_db, models, _ = trained
    db, log = tmp_path / "nightly.duckdb", tmp_path / "audit"
    assert nightly(sample_db.parent / "sample.sql.gz", db=db, models=models, log=log).returncode == 0
    yesterday = results(db)
    shrunk = tmp_path / "shrunk.sql.gz"
    write_sample(shrunk, rows=300, seed=11)  # a tenth of the rows: a truncated export
    done = nightly(shrunk, db=db, models=models, log=log)
    assert done.returncode == 1
    assert "would shrink" in done.stderr and "score marts.applicants" not in done.stderr
    assert results(db) == yesterday


def test_the_nightly_job_without_a_dump_says_how_to_call_it(tmp_path):
    done = subprocess.run([str(NIGHTLY)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage:" in done.stderr and "DUMP" in done.stderr


def test_a_second_job_while_one_runs_does_nothing(trained, tmp_path):
    # Cron starting tonight's job while last night's still runs: two restores and two scorings of
    # one database would race. The second stops at once, touching nothing.
    sample_db, models, _ = trained
    db = tmp_path / "nightly.duckdb"
    hold = (
        f"import fcntl, sys, time; f = open({str(db) + '.nightly.lock'!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(60)"
    )
    with subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True) as running:
        try:
            assert running.stdout.readline().strip() == "held"
            done = nightly(sample_db.parent / "sample.sql.gz", db=db, models=models, log=tmp_path / "audit")
        finally:
            running.kill()
    assert done.returncode == 75
    assert "another nightly job on this database is still running" in done.stderr
    assert "restore" not in done.stderr and not db.exists()
    # Once it has finished, the next job runs.
    assert nightly(sample_db.parent / "sample.sql.gz", db=db, models=models, log=tmp_path / "audit").returncode == 0


def test_a_lock_that_cannot_be_taken_is_not_read_as_another_job(tmp_path):
    # A python3 that fails (missing, broken) used to say "another nightly job is still running" and exit 75.
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "python3").write_text("#!/bin/sh\necho broken >&2\nexit 1\n")
    (broken / "python3").chmod(0o755)
    db = tmp_path / "x.duckdb"
    env = {**os.environ, "PATH": f"{broken}{os.pathsep}{os.environ['PATH']}", "CASHSCORE_DB": str(db)}
    done = subprocess.run([str(NIGHTLY), str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "cannot take the job's lock" in done.stderr and "another nightly job" not in done.stderr
    assert "restore" not in done.stderr and not db.exists()
