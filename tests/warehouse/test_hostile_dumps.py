"""Hostile dumps: names that try to become SQL or paths, statements no mysqldump holds, broken files, shrinking data."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import duckdb
import pytest
from helpers.dumps import SQL_DIR, full_dump, table_sql

from cashscore.cli import main
from cashscore.core.errors import CashscoreError
from cashscore.warehouse.restore import restore


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under a folder with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def raw_tables(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'raw'").fetchall()
        }


# MySQL names hold at most 64 characters: the canaries live at short fixed paths.
CANARY = Path("/tmp/cs-owned.csv")
ATTACHED = Path("/tmp/cs-attack.duckdb")


def injections() -> list[str]:
    """Names that would run SQL if pasted between double quotes, single quotes or bare."""
    return [
        f"x\"; COPY (SELECT 'owned') TO '{CANARY}'; --",
        f"x'); COPY (SELECT 'owned') TO '{CANARY}'; --",
        "x\"; CREATE TABLE raw.stolen AS FROM read_csv('/etc/passwd');--",
        f"x\"; ATTACH '{ATTACHED}' AS a; --",
    ]


@pytest.fixture(autouse=True)
def no_canaries():
    for path in (CANARY, ATTACHED):
        path.unlink(missing_ok=True)
    yield
    for path in (CANARY, ATTACHED):
        assert not path.exists()


def backquote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def extra_table(name: str, column: str = "v") -> str:
    """A table beside the four real ones, as mysqldump writes it, its names backquoted."""
    q, c = backquote(name), backquote(column)
    return (
        f"DROP TABLE IF EXISTS {q};\nCREATE TABLE {q} (\n  {c} varchar(8) DEFAULT NULL\n) ENGINE=InnoDB;\n"
        f"LOCK TABLES {q} WRITE;\nINSERT INTO {q} VALUES ('a');\nUNLOCK TABLES;\n"
    )


@pytest.mark.parametrize("position", ["create", "column", "insert-columns", "drop"])
@pytest.mark.parametrize("which", range(4))
def test_injection_through_every_identifier_position_runs_nothing(tmp_path, write, position, which):
    name = injections()[which]
    if position == "create":
        extra = extra_table(name)
    elif position == "column":
        extra = extra_table("extra", column=name)
    elif position == "insert-columns":
        c = backquote(name)
        extra = f"CREATE TABLE `extra` ({c} varchar(8));\nINSERT INTO `extra` ({c}) VALUES ('a');\n"
    else:
        extra = f"DROP TABLE IF EXISTS {backquote(name)};\n"
    dump = write("evil.sql", full_dump() + extra)
    before = snapshot(tmp_path)
    db = tmp_path / "db" / "evil.duckdb"
    restore([dump], db, SQL_DIR, say=lambda _: None)
    assert not CANARY.exists() and not ATTACHED.exists()
    tables = raw_tables(db)
    assert "stolen" not in tables
    if position == "create":
        assert name in tables  # the name is kept as data, exactly
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("db/")} == before


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/cashscore-abs", "..", "a/b\\c"])
def test_table_names_never_become_paths(tmp_path, write, name):
    dump = write("paths.sql", full_dump() + extra_table(name))
    # Where a name pasted into the build folder's path would have written, then deleted, its rows.
    (tmp_path / "escaped.0.csv").write_text("precious")
    before = snapshot(tmp_path)
    db = tmp_path / "db" / "p.duckdb"
    restore([dump], db, SQL_DIR, say=lambda _: None)
    assert name in raw_tables(db)
    assert not Path("/tmp/cashscore-abs.0.csv").exists()
    assert (tmp_path / "escaped.0.csv").read_text() == "precious"
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("db/")} == before


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * 65, "65 characters long; MySQL allows 64"),
        ("trailing ", "ends with a space"),
        ("new\nline", "U+000A"),
        ("emoji\U0001f600", "U+1F600"),
    ],
)
def test_names_breaking_mysql_rules_are_refused_with_file_and_line(small_db, write, name, message):
    dump = write("bad-name.sql", full_dump() + extra_table(name))
    before = small_db.read_bytes()
    with pytest.raises(CashscoreError) as info:
        restore([dump], small_db, SQL_DIR, say=lambda _: None)
    assert f"{dump}:" in str(info.value) and message in str(info.value)
    assert small_db.read_bytes() == before


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO '/tmp/cashscore-copy.csv'",
        "ATTACH '/tmp/cashscore-attach.duckdb'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA version",
        "SELECT * FROM read_csv('/etc/passwd')",
        "CALL pragma_version()",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TABLE `t2` AS SELECT 1 AS a",
        "UPDATE `ids` SET person_id = 'x'",
        "DELETE FROM `ids`",
    ],
)
def test_statements_no_mysqldump_holds_are_refused(small_db, write, statement):
    dump = write("stmt.sql", full_dump() + statement + ";\n")
    line = full_dump().count("\n") + 1
    before = small_db.read_bytes()
    with pytest.raises(CashscoreError) as info:
        restore([dump], small_db, SQL_DIR, say=lambda _: None)
    assert str(info.value).startswith(f"{dump}:{line}:")
    assert small_db.read_bytes() == before
    assert not Path("/tmp/cashscore-copy.csv").exists() and not Path("/tmp/cashscore-attach.duckdb").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no SQL statement"),
        (b"-- only a comment\n/* and another */\n", "holds no SQL statement"),
        (full_dump().encode()[:-200], "truncated"),
        (full_dump().replace("Rent", "R\xe9nt").encode("latin-1"), "not UTF-8"),
        (b"\x1f\x8b\x08\x00garbage", "cannot read the dump"),
    ],
    ids=["empty", "comments", "truncated", "latin-1", "bad-gzip"],
)
def test_empty_truncated_and_misencoded_files_change_nothing(small_db, tmp_path, content, message):
    dump = tmp_path / ("bad.sql.gz" if content.startswith(b"\x1f\x8b") else "bad.sql")
    dump.write_bytes(content)
    before = small_db.read_bytes()
    with pytest.raises(CashscoreError) as info:
        restore([dump], small_db, SQL_DIR, say=lambda _: None)
    assert message in str(info.value) and str(dump) in str(info.value)
    assert small_db.read_bytes() == before


def test_restore_runs_duckdb_without_access_outside_its_build_folder(tmp_path):
    from cashscore.warehouse.restore import _sandboxed

    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "secret.csv").write_text("a\n1\n")
    con = _sandboxed(work / "x.duckdb", work)
    try:
        for sql in (
            f"select * from read_csv('{tmp_path / 'secret.csv'}')",
            f"copy (select 1) to '{tmp_path / 'out.csv'}'",
            f"attach '{tmp_path / 'other.duckdb'}'",
            "set enable_external_access = true",
            "install httpfs",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
    finally:
        con.close()
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_a_dump_with_empty_tables_never_replaces_a_database(small_db, write, capsys):
    empty = full_dump(
        **{t: table_sql(t).split("INSERT")[0] + "UNLOCK TABLES;\n" for t in ("emprestimos", "historicos_banco")}
    )
    dump = write("empty.sql", empty)
    before = small_db.read_bytes()
    assert main(["restore", str(dump), "--db", str(small_db)]) == 1
    err = capsys.readouterr().err
    assert "emprestimos, historicos_banco hold no rows" in err and "--force" in err
    assert small_db.read_bytes() == before
    assert main(["restore", str(dump), "--db", str(small_db), "--force", "--no-audits"]) == 0


def test_a_dump_that_shrinks_a_table_by_more_than_half_is_refused_with_the_counts(tmp_path, write, capsys):
    rows = ",".join(f"('p{i}','l{i}','c{i}')" for i in range(10))
    db = tmp_path / "big.duckdb"
    big = write("big.sql", full_dump(ids=table_sql("ids", rows=rows)))
    assert main(["restore", str(big), "--db", str(db), "--no-audits"]) == 0
    capsys.readouterr()
    small = write("small.sql", full_dump())
    before = db.read_bytes()
    assert main(["restore", str(small), "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "raw.ids: 10 -> 3 rows (-70.0%)" in err and "more than 50%" in err
    assert db.read_bytes() == before
    os.environ["CASHSCORE_RESTORE_MAX_SHRINK"] = "0.8"
    try:
        assert main(["restore", str(small), "--db", str(db)]) == 0
    finally:
        del os.environ["CASHSCORE_RESTORE_MAX_SHRINK"]


def test_a_file_that_is_not_a_database_is_never_replaced_without_force(tmp_path, write, capsys):
    precious = tmp_path / "thesis.duckdb"
    precious.write_bytes(b"years of work, not a database")
    assert main(["restore", str(write("d.sql", full_dump())), "--db", str(precious)]) == 1
    assert "cannot be opened as a DuckDB database" in capsys.readouterr().err
    assert precious.read_bytes() == b"years of work, not a database"


def test_gzip_dump_with_hostile_names_is_just_as_safe(tmp_path):
    dump = tmp_path / "evil.sql.gz"
    with gzip.open(dump, "wt", encoding="utf-8") as handle:
        handle.write(full_dump() + extra_table(injections()[0]))
    restore([dump], tmp_path / "g.duckdb", SQL_DIR, say=lambda _: None)
    assert not CANARY.exists()


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["export", "--out", "{db}/x.csv"], {}, "small.duckdb: File exists"),
        (["restore", "/nonexistent.sql"], {}, "/nonexistent.sql: no such file or folder"),
        (["serve", "--help"], {"CASHSCORE_PORT": "eighty"}, "CASHSCORE_PORT='eighty': expected a whole number"),
        (["restore", "x.sql"], {"CASHSCORE_RESTORE_MAX_SHRINK": "-1"}, "expected a number of 0 or more"),
    ],
)
def test_cli_mistakes_are_one_line_never_a_traceback(small_db, argv, env, message):
    import subprocess
    import sys

    if argv[0] == "export":
        argv = [a.replace("{db}", str(small_db)) for a in argv] + ["--db", str(small_db)]
    done = subprocess.run(
        [sys.executable, "-m", "cashscore.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and message in done.stderr
    assert done.stderr.startswith("cashscore")
