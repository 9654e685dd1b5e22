"""A restore killed with SIGKILL leaves the old or the new database, never a partial one."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time

import duckdb
from helpers.dumps import SQL_DIR

from cashscore.warehouse.restore import restore
from cashscore.warehouse.sample import write_sample


def test_sigkill_at_random_moments(small_db, tmp_path):
    dump = tmp_path / "big.sql"
    write_sample(dump, rows=150_000, seed=5)
    old = hashlib.sha256(small_db.read_bytes()).hexdigest()
    rng = random.Random(20261127)
    command = [sys.executable, "-m", "cashscore.cli", "restore", str(dump), "--db", str(small_db)]
    outcomes = set()
    for _ in range(6):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if hashlib.sha256(small_db.read_bytes()).hexdigest() == old:
            outcomes.add("old")
            continue
        with duckdb.connect(str(small_db), read_only=True) as con:
            assert con.execute("select count(*) from raw.ids").fetchall() == [(150_000,)]
            assert con.execute("select count(*) from marts.applicants").fetchall() == [(150_000,)]
        outcomes.add("new")
        old = hashlib.sha256(small_db.read_bytes()).hexdigest()
    assert outcomes  # each kill left one complete database
    visible = sorted(p.name for p in small_db.parent.iterdir() if not p.name.startswith("."))
    assert visible == sorted(["small.duckdb", "small.sql", "big.sql"])
    # The next run sweeps the build folders the killed processes could not remove.
    restore([dump], small_db, SQL_DIR, say=lambda _: None)
    assert sorted(p.name for p in small_db.parent.iterdir() if p.name.startswith(".")) == []
