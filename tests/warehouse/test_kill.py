"""A restore killed with SIGKILL leaves the old or the new database, never a partial one.

The kills land at named moments of the swap (`core.atomic.fault_point`), each one exactly, not
after a random sleep that may or may not hit it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import duckdb
import pytest
from helpers.dumps import SQL_DIR

from cashscore.core.atomic import KILL_AT
from cashscore.warehouse.restore import restore
from cashscore.warehouse.sample import write_sample

STEPS = [
    # (where the process dies, which database is left)
    ("restore: loaded", "old"),
    ("restore: views built", "old"),
    ("restore: closed", "old"),
    ("restore: swapped", "new"),
]


@pytest.mark.parametrize(("step", "left"), STEPS)
def test_sigkill_at_each_step_of_the_swap(small_db, tmp_path, step, left):
    dump = tmp_path / "big.sql"
    write_sample(dump, rows=20_000, seed=5)
    old = hashlib.sha256(small_db.read_bytes()).hexdigest()
    command = [sys.executable, "-m", "cashscore.cli", "restore", str(dump), "--db", str(small_db)]
    done = subprocess.run(command, capture_output=True, env={**os.environ, KILL_AT: step}, timeout=300)
    assert done.returncode == -9  # it died there, by SIGKILL
    if left == "old":
        assert hashlib.sha256(small_db.read_bytes()).hexdigest() == old
    else:
        with duckdb.connect(str(small_db), read_only=True) as con:
            assert con.execute("select count(*) from raw.ids").fetchall() == [(20_000,)]
            assert con.execute("select count(*) from marts.applicants").fetchall() == [(20_000,)]
    visible = sorted(p.name for p in small_db.parent.iterdir() if not p.name.startswith("."))
    assert visible == sorted(["small.duckdb", "small.sql", "big.sql"])
    # The next run sweeps the build folder the killed process could not remove.
    restore([dump], small_db, SQL_DIR, say=lambda _: None)
    assert sorted(p.name for p in small_db.parent.iterdir() if p.name.startswith(".")) == []
