"""Translate mysqldump's CREATE TABLE into DuckDB: sqlglot parses it, a fixed type map writes it."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from cashscore.core import sqlnames
from cashscore.core.errors import CashscoreError
from cashscore.warehouse.dump import Statement

T = exp.DType  # exp.DataType.Type, by the name type checkers accept
# MySQL type -> DuckDB type. Nothing from the dump's text reaches the DDL but the names (quoted)
# and DECIMAL's two integers: an unlisted type is refused rather than guessed.
TYPES: dict[exp.DType, str] = {
    T.BOOLEAN: "BOOLEAN",
    T.TINYINT: "TINYINT",
    T.UTINYINT: "UTINYINT",
    T.SMALLINT: "SMALLINT",
    T.USMALLINT: "USMALLINT",
    T.MEDIUMINT: "INTEGER",
    T.UMEDIUMINT: "UINTEGER",
    T.INT: "INTEGER",
    T.UINT: "UINTEGER",
    T.BIGINT: "BIGINT",
    T.UBIGINT: "UBIGINT",
    T.FLOAT: "FLOAT",
    T.DOUBLE: "DOUBLE",
    T.UDOUBLE: "DOUBLE",
    T.CHAR: "VARCHAR",
    T.NCHAR: "VARCHAR",
    T.VARCHAR: "VARCHAR",
    T.NVARCHAR: "VARCHAR",
    T.TEXT: "VARCHAR",
    T.TINYTEXT: "VARCHAR",
    T.MEDIUMTEXT: "VARCHAR",
    T.LONGTEXT: "VARCHAR",
    # ENUM and SET values arrive as text; the staging views normalise them like any category.
    T.ENUM: "VARCHAR",
    T.SET: "VARCHAR",
    T.JSON: "VARCHAR",
    T.BINARY: "BLOB",
    T.VARBINARY: "BLOB",
    T.BLOB: "BLOB",
    T.TINYBLOB: "BLOB",
    T.MEDIUMBLOB: "BLOB",
    T.LONGBLOB: "BLOB",
    T.DATE: "DATE",
    T.DATETIME: "TIMESTAMP",
    T.TIMESTAMP: "TIMESTAMP",
    T.TIMESTAMPTZ: "TIMESTAMP",
    # MySQL's TIME is a duration from -838:59:59 to 838:59:59, beyond DuckDB's time of day.
    T.TIME: "INTERVAL",
    T.YEAR: "SMALLINT",
    # BIT(1..64): read from b'0101', 0x.. or a binary string, stored as its value (STORED_AS).
    T.BIT: "BIT",
}
# Kinds the INSERT reader needs told apart that DuckDB stores as another type.
STORED_AS = {"BIT": "UBIGINT"}
DECIMALS = {T.DECIMAL, T.UDECIMAL}
# DuckDB's DECIMAL holds 38 digits, MySQL's up to 65: a wider one is refused, never made a float.
MAX_DECIMAL_DIGITS = 38
# FLOAT(p) with p above 24 is a double in MySQL.
FLOAT_DIGITS = 24


def _duckdb_type(kind: exp.DataType, where: str, column: str) -> str:
    if kind.this in DECIMALS:
        params = [p.this.this if isinstance(p.this, exp.Literal) else None for p in kind.expressions]
        digits = [int(p) for p in params if p is not None and str(p).isdigit()]
        if len(digits) != len(params):
            raise CashscoreError(f"{where}: column `{column}` has a DECIMAL with parameters that are not numbers")
        precision, scale = (digits + [10, 0])[:2] if digits else (10, 0)
        if len(digits) == 1:
            scale = 0
        if precision > MAX_DECIMAL_DIGITS:
            raise CashscoreError(
                f"{where}: column `{column}` is DECIMAL({precision},{scale}): DuckDB holds at most "
                f"{MAX_DECIMAL_DIGITS} digits, and cashscore never rounds a decimal through a float"
            )
        return f"DECIMAL({precision},{scale})"
    if kind.this == T.FLOAT and len(kind.expressions) == 1:
        bits = kind.expressions[0].this
        if isinstance(bits, exp.Literal) and str(bits.this).isdigit() and int(bits.this) > FLOAT_DIGITS:
            return "DOUBLE"
    mapped = TYPES.get(kind.this)
    if mapped is None:
        raise CashscoreError(
            f"{where}: column `{column}` has type {kind.sql('mysql')[:40]}, which cashscore does not restore"
        )
    return mapped


def create_table(stmt: Statement, schema: str = "raw") -> tuple[str, list[tuple[str, str]], str]:
    """Turn a MySQL CREATE TABLE into a DuckDB one in `schema`.

    Engine, charset, collation, AUTO_INCREMENT, keys, indexes, comments and defaults are dropped on
    purpose: a restored raw table holds the dump's data as it is, columns and types intact.

    Args:
        stmt: the CREATE TABLE statement.
        schema: the DuckDB schema the table lands in.

    Returns:
        The table name, its (column, kind) pairs (the DuckDB type, or a STORED_AS key) and the DuckDB DDL.

    Raises:
        CashscoreError: when sqlglot cannot parse the statement, a name breaks MySQL's rules or a
            type is not in the map.
    """
    where = stmt.where()
    try:
        tree = sqlglot.parse_one(stmt.text, read="mysql")
    except ParseError as exc:
        raise CashscoreError(f"{where}: cannot parse CREATE TABLE: {exc.errors[0]['description']}") from None
    if not isinstance(tree, exp.Create) or not isinstance(tree.this, exp.Schema) or tree.args.get("expression"):
        raise CashscoreError(f"{where}: expected CREATE TABLE name (columns ...)")
    table = sqlnames.check_identifier(tree.this.this.name, where, "table name")
    columns: list[tuple[str, str, bool]] = []
    for node in tree.this.expressions:
        if not isinstance(node, exp.ColumnDef):
            continue  # PRIMARY KEY, KEY, INDEX, UNIQUE, FOREIGN KEY, CONSTRAINT clauses
        name = sqlnames.check_identifier(node.name, where, "column name")
        kind = node.args.get("kind")
        if kind is None:
            raise CashscoreError(f"{where}: column `{name}` of `{table}` has no type")
        # sqlglot reads an explicit NULL as a NotNullColumnConstraint with allow_null set.
        not_null = any(
            isinstance(c.kind, exp.NotNullColumnConstraint) and not c.kind.args.get("allow_null")
            for c in node.constraints
        )
        columns.append((name, _duckdb_type(kind, where, name), not_null))
    if not columns:
        raise CashscoreError(f"{where}: CREATE TABLE `{table}` declares no columns")
    if len({c.lower() for c, _, _ in columns}) != len(columns):
        raise CashscoreError(f"{where}: CREATE TABLE `{table}` declares a column twice")
    body = ", ".join(f"{sqlnames.quote(c)} {STORED_AS.get(t, t)}{' NOT NULL' if nn else ''}" for c, t, nn in columns)
    ddl = f"CREATE TABLE {sqlnames.qualified(schema, table)} ({body})"
    return table, [(c, t) for c, t, _ in columns], ddl
