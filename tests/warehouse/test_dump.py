"""The statement reader and INSERT parser on every mysqldump feature cashscore supports."""

from __future__ import annotations

import gzip

import pytest

from cashscore.core.errors import CashscoreError
from cashscore.warehouse.dump import Statement, parse_insert, statements


def stmt(text: str) -> Statement:
    return Statement(text, "t.sql", 1)


def test_statements_skip_comments_and_unwrap_conditional_comments(write):
    path = write("a.sql", "-- header\n/*!40101 SET NAMES utf8 */;\n\n# hash comment\nUSE `db`;\n")
    texts = [s.text for s in statements(path)]
    assert texts == ["SET NAMES utf8", "USE `db`"]


def test_statements_track_line_numbers_with_crlf(write):
    path = write("a.sql", b"-- x\r\nSET a=1;\r\n\r\nINSERT INTO t VALUES\r\n(1),\r\n(2);\r\n")
    found = list(statements(path))
    assert [s.line for s in found] == [2, 4]
    assert found[1].text == "INSERT INTO t VALUES\n(1),\n(2)"


def test_statement_ending_inside_a_string_continues(write):
    path = write("a.sql", "INSERT INTO t VALUES ('a;\nb;'),('c');\nSET x=1;\n")
    found = list(statements(path))
    assert len(found) == 2
    assert parse_insert(found[0]).rows == ["'a;\nb;'", "'c'"]


def test_gzip_dump(tmp_path):
    path = tmp_path / "a.sql.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("SET a=1;\nUSE b;\n")
    assert [s.text for s in statements(path)] == ["SET a=1", "USE b"]


def test_fast_path_keeps_mysqldump_rows_as_they_are():
    insert = parse_insert(stmt("INSERT INTO `t` VALUES ('a',1,NULL,-2.5e-3),('b''c',2,3,4)"))
    assert insert.table == "t"
    assert insert.columns is None
    assert insert.rows == ["'a',1,NULL,-2.5e-3", "'b''c',2,3,4"]


def test_column_list_and_qualified_table():
    insert = parse_insert(stmt("INSERT INTO `db`.`t` (`b`, `a`) VALUES (1,'x')"))
    assert insert.table == "t"
    assert insert.columns == ("b", "a")


@pytest.mark.parametrize(
    ("literal", "csv"),
    [
        (r"'it\'s'", "'it''s'"),
        ("'it''s'", "'it''s'"),
        (r"'back\\slash'", "'back\\slash'"),
        (r"'a\nb\tc'", "'a\nb\tc'"),
        (r"'nul\0'", "'nul\0'"),
        (r"'say \"hi\"'", "'say \"hi\"'"),
        (r"'100\%'", "'100\\%'"),
    ],
)
def test_mysql_escapes_are_decoded(literal, csv):
    assert parse_insert(stmt(f"INSERT INTO t VALUES ({literal},1)")).rows == [f"{csv},1"]


def test_values_holding_separators_and_comment_markers_stay_whole():
    text = "INSERT INTO t VALUES ('a),(b',1),('c;d -- e /* f */',2)"
    assert parse_insert(stmt(text)).rows == ["'a),(b',1", "'c;d -- e /* f */',2"]


def test_spaces_and_lowercase_null_take_the_rewriting_path():
    insert = parse_insert(stmt("insert into t values ( 'a' , null , +3 ),\n ('b', TRUE, 1E3)"))
    assert insert.rows == ["'a',NULL,3", "'b',1,1E3"]


def test_utf8_text_passes_through():
    assert parse_insert(stmt("INSERT INTO t VALUES ('Própria','Médico ✓')")).rows == ["'Própria','Médico ✓'"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("INSERT INTO t VALUES ('a',1) ('b',2)", "malformed VALUES list"),
        ("INSERT INTO t VALUES ('a',1),", "malformed VALUES list"),
        ("INSERT INTO t VALUES ()", "empty VALUES tuple"),
        ("INSERT INTO t VALUES ('a', NOW())", "malformed VALUES list"),
        ("INSERT INTO t VALUES ('a', abc)", "cannot read: 'abc'"),
        ("INSERT INTO t VALUES ('a',,1)", "cannot be read"),
    ],
)
def test_malformed_inserts_name_the_problem(text, message):
    with pytest.raises(CashscoreError, match=message) as info:
        parse_insert(stmt(text))
    assert str(info.value).startswith("t.sql:1")


def test_truncated_file_reports_the_open_statement(write):
    path = write("a.sql", "SET a=1;\nINSERT INTO t VALUES ('a',1),('b',")
    with pytest.raises(CashscoreError, match=r"a.sql:2: the statement starting here is truncated"):
        list(statements(path))


def test_unbalanced_quote_reports_the_string(write):
    path = write("a.sql", "INSERT INTO t VALUES ('a,1);\nSET b=2;\n")
    with pytest.raises(CashscoreError, match="unclosed string literal"):
        list(statements(path))


def test_non_utf8_bytes_outside_an_insert_name_line_and_column(write):
    path = write("a.sql", b"SET a=1;\nCREATE TABLE t (`caf\xe9` int);\n")
    with pytest.raises(CashscoreError, match=r"a.sql:2: bytes that are not UTF-8 at column 21"):
        list(statements(path))


def test_non_utf8_bytes_are_refused_in_text_and_kept_in_a_blob(write):
    path = write("a.sql", b"SET a=1;\nINSERT INTO t VALUES ('caf\xe9');\n")
    _, insert = list(statements(path))
    assert insert.undecoded
    with pytest.raises(CashscoreError, match=r"a.sql:2: row 1 of this INSERT, column `name`: bytes that are not UTF-8"):
        parse_insert(insert, lambda table, columns: [("name", "VARCHAR")])
    # A BLOB holds any bytes, each written as DuckDB's \xHH so none is ever read as an escape.
    assert parse_insert(insert, lambda table, columns: [("data", "BLOB")]).rows == ["'\\x63\\x61\\x66\\xE9'"]


def test_set_names_latin1_reads_mysqls_latin1(write):
    # MySQL's latin1 is cp1252: 0x80 is the euro sign, and 0x81 (undefined in cp1252) stays U+0081.
    path = write("a.sql", b"/*!40101 SET NAMES latin1 */;\nINSERT INTO t VALUES ('\x80 caf\xe9 \x81');\n")
    _, insert = list(statements(path))
    assert not insert.undecoded and insert.encoding == "mysql-latin1"
    assert parse_insert(insert).rows == ["'\u20ac caf\u00e9 \u0081'"]


def test_an_unknown_character_set_is_refused(write):
    path = write("a.sql", "SET NAMES koi8r;\nINSERT INTO t VALUES ('x');\n")
    with pytest.raises(CashscoreError, match=r"a.sql:1: the dump is written in character set 'koi8r'"):
        list(statements(path))
