"""`restore`: every dump shape, the raw tables it lands, and bad dumps that must change nothing."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from helpers.dumps import DDL, HEADER, ROWS, SQL_DIR, full_dump, table_sql

from cashscore.core.errors import CashscoreError
from cashscore.warehouse import carry
from cashscore.warehouse.restore import restore


def quiet_restore(paths: list[Path], db: Path) -> None:
    restore(paths, db, SQL_DIR, say=lambda _: None)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_single_file_with_database_statements(tmp_path, write, query):
    text = "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `analise_risco`;\nUSE `analise_risco`;\n" + full_dump()
    db = tmp_path / "x.duckdb"
    quiet_restore([write("all.sql", text)], db)
    counts = query(db, "select table_name, estimated_size from duckdb_tables() where schema_name='raw' order by 1")
    assert [c[0] for c in counts] == sorted(DDL)
    assert query(db, "select count(*) from marts.applicants") == [(3,)]


def test_per_table_files_folder_and_gzip(tmp_path, query):
    folder = tmp_path / "dumps"
    folder.mkdir()
    for i, table in enumerate(DDL):
        text = HEADER + table_sql(table)
        if i % 2:
            with gzip.open(folder / f"analise_risco_{table}.sql.gz", "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            (folder / f"analise_risco_{table}.sql").write_text(text.replace("\n", "\r\n"), encoding="utf-8")
    db = tmp_path / "x.duckdb"
    quiet_restore([folder], db)
    assert query(db, "select count(*) from raw.ids") == [(3,)]
    files = sorted(folder.iterdir())
    db2 = tmp_path / "y.duckdb"
    quiet_restore(files, db2)
    assert query(db2, "select * from raw.emprestimos order by 1") == query(
        db, "select * from raw.emprestimos order by 1"
    )


def test_mysql_only_clauses_and_unused_tables_keep_columns_and_types(tmp_path, write, query):
    extra = (
        "CREATE TABLE `audit_log` (\n  `id` int unsigned NOT NULL AUTO_INCREMENT COMMENT 'pk',\n"
        "  `at` datetime DEFAULT CURRENT_TIMESTAMP,\n  `amount` decimal(10,2) DEFAULT NULL,\n"
        "  `note` text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,\n  PRIMARY KEY (`id`),\n  KEY `ix_at` (`at`)\n"
        ") ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4 COMMENT='x';\n"
        "INSERT INTO `audit_log` (`id`, `at`, `amount`, `note`) VALUES (1,'2022-09-02 17:55:45',-12.5,'ok');\n"
        "INSERT INTO `audit_log` (`amount`, `id`) VALUES (3e2,2);\n"
    )
    db = tmp_path / "x.duckdb"
    quiet_restore([write("a.sql", full_dump() + extra)], db)
    types = query(
        db,
        "select column_name, data_type from information_schema.columns "
        "where table_schema='raw' and table_name='audit_log' order by ordinal_position",
    )
    assert types == [("id", "UINTEGER"), ("at", "TIMESTAMP"), ("amount", "DECIMAL(10,2)"), ("note", "VARCHAR")]
    rows = query(db, 'select id, cast("at" as varchar), cast(amount as double), note from raw.audit_log order by id')
    assert rows == [(1, "2022-09-02 17:55:45", -12.5, "ok"), (2, None, 300.0, None)]


def test_one_insert_per_row_and_escapes_reach_duckdb_intact(tmp_path, write, query):
    rows = [
        r"('p1',22,59000,'Rent',3)",
        r"('p\'2',35,120000,'Own',10)",
        r"('p\\3',40,1,'tab\there',NULL)",
        "('p''4',41,2,'line\\nbreak',1.5e1)",
        r"('p5),(',42,-3,'nul\0;--/*',0)",
        r"('p6',43,4,'say \"ok\"',NULL)",
        "('Ünïcødé',44,5,'Própria',NULL)",
    ]
    borrowers = (
        "CREATE TABLE `dados_mutuarios` ("
        + DDL["dados_mutuarios"]
        + ");\n"
        + "".join(f"INSERT INTO `dados_mutuarios` VALUES {r};\n" for r in rows)
    )
    db = tmp_path / "x.duckdb"
    quiet_restore([write("a.sql", full_dump(dados_mutuarios=borrowers))], db)
    got = query(
        db, "select person_id, person_income, person_home_ownership, person_emp_length from raw.dados_mutuarios"
    )
    assert got == [
        ("p1", 59000, "Rent", 3.0),
        ("p'2", 120000, "Own", 10.0),
        ("p\\3", 1, "tab\there", None),
        ("p'4", 2, "line\nbreak", 15.0),
        ("p5),(", -3, "nul\0;--/*", 0.0),
        ("p6", 4, 'say "ok"', None),
        ("Ünïcødé", 5, "Própria", None),
    ]


def test_older_link_table_named_id(tmp_path, write, query):
    link = table_sql("ids").replace("`ids`", "`id`")
    db = tmp_path / "x.duckdb"
    quiet_restore([write("a.sql", full_dump(ids=link))], db)
    assert query(db, "select count(*) from marts.applicants") == [(3,)]
    assert query(db, "select count(*) from raw.id") == [(3,)]


BAD_DUMPS = {
    "truncated mid-INSERT": (
        full_dump()[: full_dump().index("('l2'") + 9],
        r"bad.sql:\d+: the statement starting here is truncated",
    ),
    "unbalanced quote": (
        full_dump(historicos_banco=table_sql("historicos_banco", "('c1','Y,3)")),
        "unclosed string literal",
    ),
    "unknown statement": (
        full_dump() + "CREATE TRIGGER t BEFORE INSERT ON ids FOR EACH ROW SET @x = 1;\n",
        r"bad.sql:\d+: unsupported statement 'CREATE TRIGGER",
    ),
    "wrong column count": (
        full_dump(historicos_banco=table_sql("historicos_banco", "('c1','Y',3),('c2','N',4,5)")),
        r"bad.sql:\d+: INSERT into `historicos_banco`, row 2: Expected Number of Columns: 3 Found: 4",
    ),
    "wrong type": (
        full_dump(historicos_banco=table_sql("historicos_banco", "('c1','Y',3),('c2','N','many')")),
        r"bad.sql:\d+: INSERT into `historicos_banco`, row 2: .*many",
    ),
    "non-UTF-8 bytes": (
        full_dump().encode().replace(b"'Rent'", b"'R\xe9nt'"),
        r"bad.sql:\d+: row 1 of this INSERT, column `person_home_ownership`: bytes that are not UTF-8",
    ),
    "empty file": ("", "bad.sql: the file holds no SQL statement"),
    "missing link table": (
        full_dump(ids=""),
        r"lacks table\(s\) ids \(or id, the link table\)",
    ),
    "insert before create": (
        "INSERT INTO `ids` VALUES ('a','b','c');\n" + full_dump(),
        r"bad.sql:1: INSERT into `ids`, a table no CREATE TABLE before it declares",
    ),
}


@pytest.mark.parametrize("case", BAD_DUMPS, ids=list(BAD_DUMPS))
def test_bad_dump_is_refused_and_changes_nothing(case, small_db, write, capsys):
    content, message = BAD_DUMPS[case]
    before = digest(small_db)
    bad = write("bad.sql", content)
    with pytest.raises(CashscoreError, match=message):
        quiet_restore([bad], small_db)
    assert digest(small_db) == before
    leftovers = sorted(p.name for p in small_db.parent.iterdir() if p.name.startswith("."))
    assert leftovers == []


def test_bad_dump_through_the_cli_exits_non_zero(small_db, write, capsys):
    from cashscore.cli import main

    bad = write("bad.sql", full_dump(ids=""))
    assert main(["restore", str(bad), "--db", str(small_db)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cashscore restore: error: ")
    assert "link table" in err


def test_missing_path_is_named(tmp_path):
    with pytest.raises(CashscoreError, match="nope.sql: no such file or folder"):
        quiet_restore([tmp_path / "nope.sql"], tmp_path / "x.duckdb")


@contextlib.contextmanager
def _holding(db: Path, read_only: bool) -> Iterator[subprocess.Popen]:
    """Another process with `db` open (an analyst's `cashscore sql`): it answers each line it reads
    with raw.ids' row count as it sees it."""
    code = (
        f"import duckdb, sys; c = duckdb.connect({str(db)!r}, read_only={read_only}); print('open', flush=True)\n"
        "for _ in sys.stdin: print(c.execute('select count(*) from raw.ids').fetchall()[0][0], flush=True)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout.readline().strip() == "open"
            yield holder
        finally:
            holder.kill()


def _ask(holder: subprocess.Popen) -> int:
    holder.stdin.write("\n")
    holder.stdin.flush()
    return int(holder.stdout.readline())


@pytest.mark.parametrize("force", [False, True], ids=["plain", "forced"])
def test_a_writer_holding_the_database_stops_a_restore_and_nothing_is_replaced(small_db, write, force):
    # Replaced under a writer, the file it goes on writing would be unlinked and its work lost: not
    # even --force does that (it overrides the dump's guards, not another process's lock).
    before = digest(small_db)
    with _holding(small_db, read_only=False) as holder:
        refused = r"locked for 1 s .*`cashscore sql --write` shell left open\); nothing was replaced"
        with pytest.raises(CashscoreError, match=refused):
            restore([write("next.sql", full_dump())], small_db, SQL_DIR, say=lambda _: None, force=force, lock_wait=1.0)
        assert _ask(holder) == 3
    assert digest(small_db) == before


def test_a_reader_keeps_the_database_it_opened_and_the_restore_goes_ahead(small_db, write, query):
    with _holding(small_db, read_only=True) as holder:
        quiet_restore([write("next.sql", full_dump(ids=table_sql("ids", ROWS["ids"] + ",('p2','l1','c1')")))], small_db)
        assert query(small_db, "select count(*) from raw.ids") == [(4,)]
        assert _ask(holder) == 3  # the file it opened, until it opens the database again


def test_a_database_swapped_in_by_another_restore_meanwhile_is_not_replaced(small_db, write, monkeypatch):
    # Two nightly jobs overlapping: the other one swapped its database in (and may have stored
    # scores and drift in it) while this restore ran. Swapping over it would lose all that.
    from cashscore.warehouse import restore as module

    theirs = small_db.with_name("theirs.duckdb")
    shutil.copy(small_db, theirs)
    with duckdb.connect(str(theirs)) as con:
        con.execute("create table main.stored_tonight as select 1 as x")
    swapped_in = digest(theirs)
    build = module.views.build

    def meanwhile(*args, **kwargs):
        os.replace(theirs, small_db)
        return build(*args, **kwargs)

    monkeypatch.setattr(module.views, "build", meanwhile)
    with pytest.raises(CashscoreError, match="was replaced by another process .* while this restore ran; nothing"):
        quiet_restore([write("next.sql", full_dump())], small_db)
    assert digest(small_db) == swapped_in
    assert sorted(p.name for p in small_db.parent.iterdir() if p.name.startswith(".")) == []


def test_tables_no_dump_holds_survive_a_restore_and_the_dumps_layers_are_rebuilt(small_db, write, query):
    # An analyst's table and scores stored yesterday are no dump's: the nightly restore keeps them.
    with duckdb.connect(str(small_db)) as con:
        con.execute("create table main.segment as select loan_id, 'watch' as tag from marts.applicants limit 2")
        con.execute("create schema scores")
        con.execute("create table scores.q3 as select 'l1' as loan_id, 0.25::double as default_probability")
    quiet_restore([write("next.sql", full_dump(ids=table_sql("ids", ROWS["ids"] + ",('p2','l1','c1')")))], small_db)
    assert query(small_db, "select count(*), min(tag) from main.segment") == [(2, "watch")]
    assert query(small_db, "select * from scores.q3") == [("l1", 0.25)]
    assert query(small_db, "select count(*) from raw.ids") == [(4,)]
    kinds = query(small_db, "select schema_name, count(*) from duckdb_views() where not internal group by 1 order by 1")
    assert [k for k, _ in kinds] == ["marts", "pt", "staging"]


def test_an_analysts_views_are_created_again_over_the_new_dump_and_a_broken_one_is_named(small_db, write, query):
    with duckdb.connect(str(small_db)) as con:
        con.execute("create view main.linked as select count(*) as n from marts.applicants")
        con.execute("create schema lab")
        # A view over a view made before it, in another schema, with a quote and a semicolon in a literal.
        con.execute("create view lab.twice as select n * 2 as n2, 'it''s; drop table raw.ids' as note from main.linked")
        con.execute("create table main.gone as select 1 as x")
        con.execute("create view main.over_gone as select x from main.gone")
        con.execute("drop table main.gone")  # DuckDB keeps the view; its query no longer binds
    said: list[str] = []
    dump = full_dump(ids=table_sql("ids", ROWS["ids"] + ",('p2','l1','c1')"))
    restore([write("next.sql", dump)], small_db, SQL_DIR, say=said.append)
    # Views read the new dump's rows, not a copy of yesterday's.
    assert query(small_db, "select n, n2, note from lab.twice, main.linked") == [(4, 8, "it's; drop table raw.ids")]
    assert query(small_db, "select count(*) from raw.ids") == [(4,)]
    (broken,) = [line for line in said if "over_gone" in line]
    assert broken.startswith(
        "warning: view main.over_gone not carried into the new database: Catalog Error: Table with name gone"
    )
    # Carried again by the next restore, as any view.
    quiet_restore([write("again.sql", dump)], small_db)
    assert query(small_db, "select n2 from lab.twice") == [(8,)]


def test_a_schema_named_like_the_restores_own_attachment_is_carried_like_any_other(small_db, write, query):
    # The restore attached the new file as "restored": a schema of that name made every restore fail.
    with duckdb.connect(str(small_db)) as con:
        con.execute("create schema restored")
        con.execute("create table restored.t as select 2 as y")
        con.execute("create view restored.v as select y + 1 as z from restored.t")
    quiet_restore([write("next.sql", full_dump())], small_db)
    assert query(small_db, "select y, z from restored.t, restored.v") == [(2, 3)]


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE main.v AS SELECT 1;",
        "CREATE VIEW main.v AS SELECT 1; DROP TABLE raw.ids;",
        "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k');",
        "SELECT 1",
        "CREATE VIEW main.v AS SELEC 1",
    ],
)
def test_a_stored_view_definition_that_is_not_one_create_view_is_never_run(sql, tmp_path):
    con = duckdb.connect()
    with pytest.raises(CashscoreError, match=r"x\.duckdb: .*view main\.v"):
        carry.view_statement(tmp_path / "x.duckdb", con, "main", "v", sql)
    assert carry.view_statement(tmp_path / "x.duckdb", con, "main", "v", "CREATE VIEW v AS SELECT 1;") == (
        "CREATE VIEW v AS SELECT 1;"
    )
