"""Differential restore: what a real MariaDB server holds is what cashscore restores, value for value.

hypothesis generates tables (every type below, every value at its limits), MariaDB stores the rows,
`mariadb-dump` writes them under a generated choice of options, cashscore restores the dump (the
same reader as `cashscore restore`, raw tables only), and every value is compared with what MariaDB
returns. Each CI run reads 200 generated dumps: 100 from a fixed seed and 100 from a rotating one
(CASHSCORE_DIFF_SEED replays one; a failure prints it).

Types, as the README's restore section documents them (MariaDB -> DuckDB):
TINYINT..BIGINT, signed and UNSIGNED -> the same width (MEDIUMINT -> INTEGER); DECIMAL(p,s) -> DECIMAL(p,s),
exact; FLOAT -> FLOAT; DOUBLE -> DOUBLE (the sign of zero kept); DATE -> DATE; DATETIME(n),
TIMESTAMP(n) -> TIMESTAMP (TIMESTAMP in UTC, as mariadb-dump writes it); TIME(n) -> INTERVAL (MySQL's
TIME is a duration up to 838 hours); YEAR -> SMALLINT; CHAR, VARCHAR, TEXT, ENUM, SET, JSON ->
VARCHAR; BINARY, VARBINARY, BLOB -> BLOB; BIT(n) -> UBIGINT (its value).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import mariadb
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from cashscore.core.config import PROJECT_ROOT
from cashscore.warehouse.dump import LATIN1_DECODE
from cashscore.warehouse.restore import restore

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

EXAMPLES = int(os.environ.get("CASHSCORE_DIFF_EXAMPLES", "100"))
FIXED_SEED = 20261127
ROTATING_SEED = int(os.environ.get("CASHSCORE_DIFF_SEED") or random.SystemRandom().randrange(2**32))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    if mariadb.MISSING:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install mariadb-server and mariadb-client (.ci/run); missing {mariadb.MISSING}")
        pytest.skip(f"MariaDB is not installed ({', '.join(mariadb.MISSING)} missing): apt install mariadb-server")
    with mariadb.running(tmp_path_factory.mktemp("mariadb")) as running:
        yield running


# ---- what a table holds --------------------------------------------------------------------------

# Every character the tests care about: NUL, tab, CR, LF, quotes, backslash, SQL and CSV punctuation,
# accents, beyond the BMP; then anything else hypothesis finds (no lone surrogates: not text).
SPECIAL = "\0\t\r\n'\"\\`,;()%_ \x1a\x7fÀçãéíõú€ßΩЖ中文😀𝄞"
UTF8_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters(exclude_categories=("Cs",))), max_size=40
)
# What a latin1 dump can hold: mariadb-dump writes every other character as '?'.
LATIN1 = "".join(chr(b).translate(LATIN1_DECODE) for b in range(256))
LATIN1_TEXT = st.text(alphabet=st.sampled_from(LATIN1), max_size=40)


@dataclass(frozen=True)
class Column:
    """One generated column: its MariaDB type, how its values are drawn and compared."""

    sql: str
    family: str
    values: st.SearchStrategy[Any]


INTEGERS = [
    ("TINYINT", -(2**7), 2**7 - 1), ("TINYINT UNSIGNED", 0, 2**8 - 1), ("SMALLINT", -(2**15), 2**15 - 1),
    ("SMALLINT UNSIGNED", 0, 2**16 - 1), ("MEDIUMINT", -(2**23), 2**23 - 1), ("MEDIUMINT UNSIGNED", 0, 2**24 - 1),
    ("INT", -(2**31), 2**31 - 1), ("INT UNSIGNED", 0, 2**32 - 1), ("BIGINT", -(2**63), 2**63 - 1),
    ("BIGINT UNSIGNED", 0, 2**64 - 1), ("BOOLEAN", -(2**7), 2**7 - 1),
]  # fmt: skip
TIME_MAX_US = (838 * 3600 + 59 * 60 + 59) * 10**6 + 999_999


def _fraction(value: int, digits: int) -> int:
    """Microseconds truncated to `digits` fractional digits (toward zero)."""
    unit = 10 ** (6 - digits)
    return value - value % unit if value >= 0 else -((-value) - (-value) % unit)


def _time_text(us: int) -> str:
    sign, us = ("-" if us < 0 else ""), abs(us)
    seconds, micro = divmod(us, 10**6)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{micro:06d}"


@st.composite
def columns(draw: st.DrawFn, text: st.SearchStrategy[str]) -> Column:
    family = draw(st.sampled_from([
        "int", "decimal", "float", "double", "date", "datetime", "timestamp", "time", "year", "char", "varchar",
        "text", "longtext", "enum", "set", "json", "binary", "varbinary", "blob", "bit",
    ]))  # fmt: skip
    if family == "int":
        name, low, high = draw(st.sampled_from(INTEGERS))
        return Column(name, family, st.integers(low, high))
    if family == "decimal":
        precision = draw(st.integers(1, 38))
        scale = draw(st.integers(0, min(precision, 30)))
        unsigned = draw(st.booleans())
        # Built by the exact constructor: arithmetic would round to the context's 28 digits.
        top = decimal.Decimal(f"{10**precision - 1}E-{scale}")
        # copy_negate is exact; unary minus rounds to the context's 28 digits (-(10**36 - 1) became -1E+36).
        low = decimal.Decimal(0) if unsigned else top.copy_negate()
        # Sent as plain digits: str(Decimal) may write 1E+35, which MariaDB would read through a double.
        # hypothesis rounds beyond 28 digits (its decimal context) and may step past the bounds: filtered.
        values = (
            st.decimals(low, top, places=scale, allow_nan=False, allow_infinity=False)
            .filter(lambda d: low <= d <= top)
            .map(lambda d: format(d, "f"))
        )
        return Column(f"DECIMAL({precision},{scale}){' UNSIGNED' if unsigned else ''}", family, values)
    if family == "float":
        # MariaDB's FLOAT stops at 3.402823466E+38, just short of the largest float32: the one below it.
        top = struct.unpack("<f", struct.pack("<I", 0x7F7FFFFE))[0]
        return Column("FLOAT", family, st.floats(-top, top, width=32))
    if family == "double":
        return Column("DOUBLE", family, st.floats(allow_nan=False, allow_infinity=False))
    if family == "date":
        return Column("DATE", family, st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)))
    if family in ("datetime", "timestamp"):
        digits = draw(st.integers(0, 6))
        if family == "datetime":
            low, high, sql = dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999), "DATETIME"
        else:
            low, high, sql = dt.datetime(1970, 1, 1, 0, 0, 1), dt.datetime(2038, 1, 19, 3, 14, 7), "TIMESTAMP"
        values = st.datetimes(low, high).map(lambda v: v.replace(microsecond=_fraction(v.microsecond, digits)))
        return Column(f"{sql}({digits}) NULL", family, values)
    if family == "time":
        digits = draw(st.integers(0, 6))
        return Column(f"TIME({digits})", family, st.integers(-TIME_MAX_US, TIME_MAX_US).map(
            lambda us: _time_text(_fraction(us, digits))))  # fmt: skip
    if family == "year":
        return Column("YEAR", family, st.one_of(st.just(0), st.integers(1901, 2155)))
    if family in ("char", "varchar"):
        size = draw(st.integers(1, 60))
        return Column(f"{family.upper()}({size})", family, text.map(lambda s: s[:size]))
    if family == "text":
        return Column("TEXT", family, text)
    if family == "longtext":
        # Very long text: a short pattern repeated up to 30,000 times.
        long = st.builds(lambda piece, n: piece * n, text.filter(bool).map(lambda s: s[:8]), st.integers(1, 30_000))
        return Column("MEDIUMTEXT", family, long)
    if family in ("enum", "set"):
        members = draw(st.lists(st.text("abcxyz é'\\ç-", min_size=1, max_size=6).map(str.strip).filter(bool),
                                min_size=1, max_size=5, unique_by=str.lower))  # fmt: skip
        declared = ",".join("'" + m.replace("\\", "\\\\").replace("'", "''") + "'" for m in members)
        if family == "enum":
            return Column(f"ENUM({declared})", family, st.sampled_from(members))
        values = st.lists(st.sampled_from(members), unique=True).map(
            lambda chosen: ",".join(m for m in members if m in chosen)
        )
        return Column(f"SET({declared})", family, values)
    if family == "json":
        leaves = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), text)
        tree = st.recursive(leaves, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text, kids, max_size=3),
                            max_leaves=6)  # fmt: skip
        return Column("JSON", family, tree.map(lambda v: json.dumps(v, ensure_ascii=False)))
    if family == "binary":
        size = draw(st.integers(1, 32))
        return Column(f"BINARY({size})", family, st.binary(max_size=size))
    if family == "varbinary":
        return Column("VARBINARY(64)", family, st.binary(max_size=64))
    if family == "blob":
        return Column("BLOB", family, st.one_of(st.binary(max_size=300), st.just(bytes(range(256)))))
    bits = draw(st.integers(1, 64))
    return Column(f"BIT({bits})", "bit", st.integers(0, 2**bits - 1))


@dataclass(frozen=True)
class Options:
    """One choice of mariadb-dump options, and how the dump reaches cashscore."""

    flags: tuple[str, ...]
    latin1: bool
    split_schema: bool
    gzipped: bool

    def describe(self) -> str:
        extra = [*(["schema in another file"] if self.split_schema else []), *(["gzip"] if self.gzipped else [])]
        return " ".join([*self.flags, *extra]) or "(defaults)"


@st.composite
def dump_options(draw: st.DrawFn) -> Options:
    flags = []
    if draw(st.booleans()):
        flags.append("--skip-extended-insert")
    if draw(st.booleans()):
        flags.append("--complete-insert")
    conflict = draw(st.sampled_from([None, "--insert-ignore", "--replace"]))
    if conflict:
        flags.append(conflict)
    if draw(st.booleans()):
        flags.append("--compact")
    if draw(st.booleans()):
        flags.append("--skip-quote-names")
    if draw(st.booleans()):
        flags.append("--hex-blob")
    latin1 = draw(st.booleans())
    flags.append(f"--default-character-set={'latin1' if latin1 else 'utf8mb4'}")
    return Options(tuple(flags), latin1, draw(st.booleans()), draw(st.booleans()))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Options, str, list[Column], list[tuple[Any, ...]]]:
    options = draw(dump_options())
    text = LATIN1_TEXT if options.latin1 else UTF8_TEXT
    quoted = "--skip-quote-names" not in options.flags
    table = draw(st.sampled_from(["t", "Empréstimos 2024", "we`ird", "select"] if quoted else ["t", "tab_1"]))
    kinds = draw(st.lists(columns(text), min_size=1, max_size=8))
    row = st.tuples(*(st.one_of(st.none(), c.values) for c in kinds))
    rows = draw(st.lists(row, max_size=12))
    return options, table, kinds, rows


# ---- comparing -----------------------------------------------------------------------------------


def _mariadb_select(family: str, name: str) -> str:
    """How each value is read from MariaDB: exactly, in the form DuckDB's value is compared with."""
    quoted = f"`{name}`"
    return {
        "time": f"TIME_TO_SEC({quoted})",  # seconds, exact decimal
        "bit": f"{quoted} + 0",
    }.get(family, quoted)


def _canonical(family: str, value: Any, side: str) -> Any:
    if value is None:
        return None
    if family == "time":
        if side == "mariadb":
            return int(decimal.Decimal(value) * 10**6)
        return value // dt.timedelta(microseconds=1)
    if family == "float":
        # MariaDB prints a FLOAT with 6 significant digits, in its results and its dumps alike: what it
        # returns is what a dump can hold, read as the nearest float32 on both sides.
        value = struct.unpack("f", struct.pack("f", float(value)))[0]
    if family in ("float", "double"):
        return repr(float(value))  # repr keeps -0.0 apart from 0.0
    if family == "decimal":
        return str(value)  # scale included: exact, never through a float
    if family in ("binary", "varbinary", "blob"):
        return bytes(value)
    return value


def check_case(server: mariadb.MariaDB, tmp: Path, case: tuple[Options, str, list[Column], list[tuple]]) -> None:
    options, table, kinds, rows = case
    database = f"diff_{random.SystemRandom().randrange(10**9)}"
    names = ["id", *(f"c{i}" for i in range(len(kinds)))]
    quoted = "`" + table.replace("`", "``") + "`"
    columns_sql = ", ".join(f"`{n}` {c.sql}" for n, c in zip(names[1:], kinds, strict=True))
    con = server.connect()
    try:
        con.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        con.select_db(database)
        cur = con.cursor()
        cur.execute(f"CREATE TABLE {quoted} (`id` INT PRIMARY KEY, {columns_sql})")
        if rows:
            marks = ", ".join(["%s"] * len(names))
            cur.executemany(f"INSERT INTO {quoted} VALUES ({marks})", [(i, *r) for i, r in enumerate(rows)])
        selects = ", ".join(["`id`", *(_mariadb_select(c.family, n) for n, c in zip(names[1:], kinds, strict=True))])
        cur.execute(f"SELECT {selects} FROM {quoted} ORDER BY `id`")
        expected = cur.fetchall()
        suffix = ".sql.gz" if options.gzipped else ".sql"
        if options.split_schema:
            files = [
                server.dump(database, tmp / f"1-schema{suffix}", [*options.flags, "--no-data"], options.gzipped),
                server.dump(database, tmp / f"2-data{suffix}", [*options.flags, "--no-create-info"], options.gzipped),
            ]
            if not rows and "--compact" in options.flags:
                files.pop()  # an empty file: restore refuses a file with no statement, on purpose
        else:
            files = [server.dump(database, tmp / f"dump{suffix}", options.flags, options.gzipped)]
    except Exception as exc:
        exc.add_note(f"table {table!r}: {columns_sql}; options {options.describe()}")
        raise
    finally:
        con.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        con.close()
    db = tmp / "restored.duckdb"
    # --compact leaves out SET NAMES: the character set is given, as `cashscore restore --charset` does.
    charset = "latin1" if options.latin1 else "utf8mb4"
    restore(files, db, PROJECT_ROOT / "sql", say=lambda _: None, raw_only=True, force=True, charset=charset)
    with duckdb.connect(str(db), read_only=True) as restored:
        got = restored.execute(f'SELECT * FROM raw."{table.replace(chr(34), chr(34) * 2)}" ORDER BY id').fetchall()
    assert len(got) == len(expected), f"{len(expected)} rows in MariaDB, {len(got)} restored"
    for want_row, got_row in zip(expected, got, strict=True):
        for name, column, want, have in zip(names[1:], kinds, want_row[1:], got_row[1:], strict=True):
            a, b = _canonical(column.family, want, "mariadb"), _canonical(column.family, have, "duckdb")
            assert a == b, (
                f"table {table!r}, row id {want_row[0]}, column {name} {column.sql}: "
                f"MariaDB {str(a)[:200]!r}, restored {str(b)[:200]!r}; options {options.describe()}"
            )


COMMON = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@seed(FIXED_SEED)
@COMMON
@given(case=cases())
def test_restore_equals_mariadb_fixed_seed(server, tmp_path_factory, case):
    check_case(server, tmp_path_factory.mktemp("dump"), case)


@seed(ROTATING_SEED)
@COMMON
@given(case=cases())
def test_restore_equals_mariadb_rotating_seed(server, tmp_path_factory, case, record_property):
    record_property("seed", ROTATING_SEED)
    try:
        check_case(server, tmp_path_factory.mktemp("dump"), case)
    except Exception as exc:
        exc.add_note(f"replay with CASHSCORE_DIFF_SEED={ROTATING_SEED}")
        raise
