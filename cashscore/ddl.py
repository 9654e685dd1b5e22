"""Translate mysqldump's CREATE TABLE into DuckDB with sqlglot, keeping columns and types only."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from cashscore.dump import Statement
from cashscore.errors import CashscoreError

# Length and display-width parameters mean nothing to DuckDB (VARCHAR(16), INT(11), TINYINT(1)).
UNSIZED = {
    exp.DataType.Type.VARCHAR,
    exp.DataType.Type.CHAR,
    exp.DataType.Type.NVARCHAR,
    exp.DataType.Type.NCHAR,
    exp.DataType.Type.TEXT,
    exp.DataType.Type.TINYINT,
    exp.DataType.Type.UTINYINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.USMALLINT,
    exp.DataType.Type.MEDIUMINT,
    exp.DataType.Type.UMEDIUMINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.UINT,
    exp.DataType.Type.BIGINT,
    exp.DataType.Type.UBIGINT,
    exp.DataType.Type.DOUBLE,
    exp.DataType.Type.FLOAT,
    exp.DataType.Type.BINARY,
    exp.DataType.Type.VARBINARY,
    exp.DataType.Type.DATETIME,
    exp.DataType.Type.TIMESTAMP,
    exp.DataType.Type.TIME,
}


def create_table(stmt: Statement, schema: str = "raw") -> tuple[str, list[tuple[str, str]], str]:
    """Turn a MySQL CREATE TABLE into a DuckDB one in `schema`.

    Engine, charset, collation, AUTO_INCREMENT, keys, indexes, comments and defaults are dropped on
    purpose: a restored raw table holds the dump's data as it is, columns and types intact.

    Args:
        stmt: the CREATE TABLE statement.
        schema: the DuckDB schema the table lands in.

    Returns:
        The table name, its (column, DuckDB type) pairs and the DuckDB DDL.

    Raises:
        CashscoreError: when sqlglot cannot parse the statement.
    """
    try:
        tree = sqlglot.parse_one(stmt.text, read="mysql")
    except ParseError as exc:
        raise CashscoreError(f"{stmt.where()}: cannot parse CREATE TABLE: {exc.errors[0]['description']}") from None
    if not isinstance(tree, exp.Create) or not isinstance(tree.this, exp.Schema):
        raise CashscoreError(f"{stmt.where()}: expected CREATE TABLE name (columns ...)")
    table = tree.this.this.name
    columns: list[exp.ColumnDef] = []
    for node in tree.this.expressions:
        if not isinstance(node, exp.ColumnDef):
            continue  # PRIMARY KEY, KEY, INDEX, UNIQUE, FOREIGN KEY, CONSTRAINT clauses
        kind = node.args.get("kind")
        if kind is None:
            raise CashscoreError(f"{stmt.where()}: column `{node.name}` of `{table}` has no type")
        kind = kind.copy()
        if kind.this in UNSIZED:
            kind.set("expressions", [])
        not_null = any(isinstance(c.kind, exp.NotNullColumnConstraint) for c in node.constraints)
        constraints = [exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())] if not_null else []
        columns.append(
            exp.ColumnDef(this=exp.to_identifier(node.name, quoted=True), kind=kind, constraints=constraints)
        )
    if not columns:
        raise CashscoreError(f"{stmt.where()}: CREATE TABLE `{table}` declares no columns")
    target = exp.Table(this=exp.to_identifier(table, quoted=True), db=exp.to_identifier(schema, quoted=True))
    ddl = exp.Create(kind="TABLE", this=exp.Schema(this=target, expressions=columns))
    types = [(c.name, c.args["kind"].sql("duckdb")) for c in columns]
    return table, types, ddl.sql("duckdb")
