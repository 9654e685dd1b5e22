"""What a restore keeps from the database it replaces: every table and view outside the layers a dump
rebuilds (export.REBUILT_SCHEMAS), copied into the new database before the swap.

The tables are copied row for row (rows and column types; constraints are not carried). A view is
created again from the definition DuckDB regenerates from its stored parse tree (`duckdb_views().sql`),
run only when DuckDB's own parser finds in it one statement, a CREATE VIEW, and kept only when that
made the one view it names: a tampered file cannot make the restore run anything else. A view whose
query no longer binds against the new dump (a table since dropped, a column the dump lost) is left
behind with a line saying why; the restore goes on. Macros are not carried.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb

from cashscore.core import sqlnames
from cashscore.core.errors import CashscoreError
from cashscore.warehouse import export

# The new file is attached to the connection that holds the old one under a name of its own per
# restore: a view's stored definition names its schema in two parts (`lab.v`), which DuckDB reads as
# a catalog first, so a fixed name would break every restore of a database with a schema so named.
_NEW_PREFIX = "cashscore_carry_"
_CREATE_VIEW = re.compile(r"\s*create\s+view\s", re.I)


def carry_over(db: Path, old: duckdb.DuckDBPyConnection, target: Path, say: Callable[[str], None]) -> None:
    """Copy the old database's own tables and views into the new one at `target`, through the
    connection that holds the old one (the new one attached to it for writing).

    Raises:
        CashscoreError: when they cannot be copied, or a view's stored definition is not one
            CREATE VIEW of that view (nothing is replaced).
    """
    tables = _own(old, "select schema_name, table_name from duckdb_tables()")
    views = _own(old, "select schema_name, view_name, sql from duckdb_views()")
    if not tables and not views:
        return
    new = f"{_NEW_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        (home,) = old.execute("select current_database()").fetchall()[0]
        old.execute(f"attach ? as {new} (read_write)", [str(target)])
        try:
            for schema in sorted({row[0] for row in [*tables, *views]}):
                old.execute(f"create schema if not exists {new}.{sqlnames.quote(schema)}")
            for schema, table in tables:
                name = sqlnames.qualified(schema, table)
                old.execute(f"create table {new}.{name} as select * from {name}")
            if views:
                # Unqualified names in a view's query are the new database's, as they will be after the swap.
                old.execute(f"use {new}")
                try:
                    _create_views(db, old, new, views, say)
                finally:
                    old.execute(f"use {sqlnames.quote(home)}")
            old.execute(f"checkpoint {new}")
        finally:
            old.execute(f"detach {new}")
    except duckdb.Error as exc:
        message = f"{db}: cannot carry its tables and views into the new database: {str(exc).splitlines()[0]}"
        raise CashscoreError(message) from None


def _own(old: duckdb.DuckDBPyConnection, listing: str) -> list[tuple[str, ...]]:
    """Rows of a catalog listing for the old database's own objects outside the rebuilt layers."""
    return old.execute(
        f"{listing} where database_name = current_database() and not internal and not temporary "
        f"and schema_name not in ({', '.join('?' for _ in export.REBUILT_SCHEMAS)}) order by all",
        list(export.REBUILT_SCHEMAS),
    ).fetchall()


def _create_views(
    db: Path, old: duckdb.DuckDBPyConnection, new: str, views: list[tuple[str, ...]], say: Callable[[str], None]
) -> None:
    """Create the views in the new database, each once those it reads exist (passes until none
    more can be made); say which could not be made, and why."""
    pending = [(schema, name, view_statement(db, old, schema, name, sql)) for schema, name, sql in views]
    while pending:
        failed = []
        for schema, name, statement in pending:
            try:
                old.execute(statement)
            except duckdb.Error as exc:
                failed.append((schema, name, statement, str(exc).splitlines()[0]))
                continue
            made = old.execute(
                "select count(*) from duckdb_views() where database_name = ? and schema_name = ? and view_name = ?",
                [new, schema, name],
            ).fetchall()[0][0]
            if made != 1:
                raise CashscoreError(f"{db}: the stored definition of view {schema}.{name} made no view of that name")
        if len(failed) == len(pending):
            for schema, name, _, why in failed:
                say(f"warning: view {schema}.{name} not carried into the new database: {why}")
            return
        pending = [row[:3] for row in failed]


def view_statement(db: Path, con: duckdb.DuckDBPyConnection, schema: str, name: str, sql: str) -> str:
    """The one CREATE VIEW statement of a view's stored definition.

    Raises:
        CashscoreError: when DuckDB's parser finds anything else in it.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise CashscoreError(f"{db}: view {schema}.{name} has a definition DuckDB cannot parse: {exc}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.CREATE or not _CREATE_VIEW.match(sql):
        raise CashscoreError(f"{db}: the stored definition of view {schema}.{name} is not one CREATE VIEW statement")
    return statements[0].query
