"""`export` and `sample`: the joined mart out as CSV/Parquet, and the synthetic dump's realism."""

from __future__ import annotations

import shutil
import subprocess
import sys

import duckdb
import pytest
from cashscore.features import contract
from helpers.dumps import SQL_DIR

from cashscore.core.errors import CashscoreError
from cashscore.warehouse.export import connect, export
from cashscore.warehouse.restore import restore
from cashscore.warehouse.sample import generate, write_sample


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips(small_db, tmp_path, suffix):
    out = tmp_path / f"applicants{suffix}"
    assert export(small_db, out) == 3
    with duckdb.connect(str(small_db), read_only=True) as con:
        want = con.execute("select * from marts.applicants order by loan_id").fetchall()
        got = con.execute(
            "select * from read_csv(?) order by loan_id"
            if suffix == ".csv"
            else "select * from read_parquet(?) order by loan_id",
            [str(out)],
        ).fetchall()
        header = [
            d[0]
            for d in con.execute(
                "select * from read_parquet(?)" if suffix == ".parquet" else "select * from read_csv(?)", [str(out)]
            ).description
        ]
    assert header == [*contract.ID_COLUMNS, *contract.NAMES, contract.TARGET]
    assert got == want


def test_export_real_dump_round_trips(real_db, tmp_path):
    out = tmp_path / "real.parquet"
    assert export(real_db, out) == 34_489
    with duckdb.connect(str(real_db), read_only=True) as con:
        # Both directions, with duplicates counted: the file holds the mart's rows, no more, no fewer.
        diff = con.execute(
            "select (select count(*) from (from marts.applicants except all from read_parquet(?))),"
            " (select count(*) from (from read_parquet(?) except all from marts.applicants))",
            [str(out), str(out)],
        ).fetchall()
    assert diff == [(0, 0)]


def test_export_refuses_unknown_format_and_keeps_old_file(small_db, tmp_path):
    out = tmp_path / "a.xlsx"
    out.write_bytes(b"the analyst's old workbook")
    with pytest.raises(CashscoreError, match="unknown output format"):
        export(small_db, out)
    assert out.read_bytes() == b"the analyst's old workbook"


def test_a_failed_export_keeps_the_old_file(small_db, tmp_path):
    out = tmp_path / "applicants.parquet"
    assert export(small_db, out) > 0
    before = out.read_bytes()
    broken = tmp_path / "broken.duckdb"
    with duckdb.connect(str(broken)) as con:
        # A mart that fails while its rows are being written, not before.
        con.execute("create schema marts")
        con.execute(
            "create view marts.applicants as select i::varchar as loan_id, "
            "case when i < 50000 then i else error('the disk is full') end as x from range(100000) t(i)"
        )
    with pytest.raises(CashscoreError, match="the disk is full"):
        export(broken, out)
    assert out.read_bytes() == before


def test_export_without_database(tmp_path):
    with pytest.raises(CashscoreError, match="no database here"):
        export(tmp_path / "none.duckdb", tmp_path / "a.csv")


def test_sample_is_deterministic(tmp_path):
    a, b, c = tmp_path / "a.sql", tmp_path / "b.sql", tmp_path / "c.sql"
    write_sample(a, rows=500, seed=7)
    write_sample(b, rows=500, seed=7)
    write_sample(c, rows=500, seed=8)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_sample_has_the_real_quirks_and_signal(tmp_path):
    dump = tmp_path / "s.sql.gz"
    write_sample(dump, rows=20_000, seed=1)
    db = tmp_path / "s.duckdb"
    result = restore([dump], db, SQL_DIR, say=lambda _: None)
    assert result.rows == dict.fromkeys(("dados_mutuarios", "emprestimos", "historicos_banco", "ids"), 20_000)
    assert all(n == 0 for n in result.audits.values())
    with duckdb.connect(str(db), read_only=True) as con:
        quirks = con.execute("""
            select
                count(*) filter (where person_home_ownership = ''),
                count(*) filter (where person_age > 100),
                count(*) filter (where person_home_ownership in ('RENT', 'rent', 'Alugada', 'Própria')),
                count(*) filter (where person_id = '')
            from raw.dados_mutuarios""").fetchall()[0]
        assert all(q > 0 for q in quirks)
        rate, by_grade, by_prior = con.execute("""
            select
                avg(loan_status),
                corr(loan_status, ascii(loan_grade)),
                avg(loan_status) filter (where cb_person_default_on_file = 'Y')
                    - avg(loan_status) filter (where cb_person_default_on_file = 'N')
            from marts.training_set""").fetchall()[0]
        by_share = con.execute("select corr(loan_status, loan_percent_income) from marts.training_set").fetchall()[0][0]
    assert 0.20 < rate < 0.24
    assert by_grade > 0.2
    assert by_share > 0.2
    assert by_prior > 0.05


def test_generate_rows_per_table():
    tables = generate(100, seed=3)
    assert {t: len(r) for t, r in tables.items()} == dict.fromkeys(tables, 100)


def test_a_database_held_by_a_writer_is_refused_naming_who_may_hold_it(small_db, tmp_path):
    # Another process holds the file as a writer (an analyst's writable `cashscore sql`, say).
    db = tmp_path / "held.duckdb"
    shutil.copy(small_db, db)
    hold = f"import duckdb, time; c = duckdb.connect({str(db)!r}); print(1, flush=True); time.sleep(30)"
    with subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE) as holder:
        try:
            assert holder.stdout.readline().strip() == b"1"
            with pytest.raises(CashscoreError, match=r"locked for 1 s .*`cashscore sql --write` shell left open"):
                connect(db, read_only=True, wait=1.0)
        finally:
            holder.kill()
