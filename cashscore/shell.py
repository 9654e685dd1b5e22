"""`cashscore sql`'s reading loop: SQL statements ended by `;`, and the dot-commands an analyst
used to DuckDB's own shell types first (`.tables`, `.schema NAME`)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cashscore.core import sqlnames
from cashscore.core.atomic import file_identity
from cashscore.core.errors import CashscoreError

HELP = """\
.tables          every table and view, by schema
.schema NAME     the columns of a table or view (name or schema.name)
.reopen          open the database again (after a restore replaced it) with the current model
.help            this list
.quit, .exit     leave (Ctrl-D too)
Anything else is SQL, run when a line ends with ';'."""

# Every relation but DuckDB's own catalogue views.
TABLES = (
    "select table_schema as schema, table_name as name, lower(table_type) as kind from information_schema.tables "
    "where table_schema not in ('information_schema', 'pg_catalog') order by 1, 2"
)


class Shell:
    """Runs statements on one connection and says on stderr why one failed.

    Args:
        con: the DuckDB connection.
        explain_error: given DuckDB's first line of an error, the message to print.
        db: the database file `con` opened. A restore replaces it with a new file while a reader
            goes on reading the one it opened: the shell then says so once, before the next statement.
        reopen: opens `db` again, for `.reopen`.
    """

    def __init__(
        self,
        con: Any,
        explain_error: Callable[[str], str] = lambda message: message,
        db: Path | None = None,
        reopen: Callable[[], Any] | None = None,
    ) -> None:
        self.con = con
        self.explain_error = explain_error
        self.db = db
        self.reopen = reopen
        self._remember_file()

    def statement(self, query: str) -> bool:
        """Run one statement and print its rows; False when it failed."""
        self._notice_replacement()
        if self.con is None:
            print("error: no database is open: .reopen opens it", file=sys.stderr)
            return False
        try:
            relation = self.con.sql(query)
        except Exception as exc:  # every DuckDB error is the user's SQL
            print(f"error: {self.explain_error(str(exc).splitlines()[0])}", file=sys.stderr)
            return False
        if relation is not None:
            relation.show(max_width=160)
        return True

    def dot(self, line: str) -> bool:
        """Run a dot-command (`.tables`, `.schema NAME`, `.help`); False when it failed."""
        command, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if command == ".help" and not rest:
            print(HELP)
            return True
        if command == ".tables" and not rest:
            return self.statement(TABLES)
        if command == ".reopen" and not rest and self.reopen is not None:
            return self._reopen(self.reopen)
        if command == ".schema" and rest:
            try:
                # A name typed here is checked and quoted like any other name from outside.
                parts = sqlnames.relation_name(rest, ".schema")
            except CashscoreError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return False
            return self.statement(f"describe {'.'.join(sqlnames.quote(p) for p in parts)}")
        print(f"error: {line.strip()[:80]!r}: not a command here; .help lists them", file=sys.stderr)
        return False

    def _remember_file(self) -> None:
        """The file the connection opened (None without a database path): what a replacement differs from."""
        self._opened = self._noticed = file_identity(self.db) if self.db is not None else None

    def _notice_replacement(self) -> None:
        db = self.db
        if db is None or self._opened is None:
            return
        now = file_identity(db)
        if now == self._opened or now == self._noticed:
            return
        self._noticed = now
        try:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(db).st_mtime))
        except OSError:
            print(f"note: {db} is gone; this shell still reads the database it opened", file=sys.stderr)
            return
        print(
            f"note: {db} was replaced since this shell opened it (by a file written {when}, a restore); "
            "the shell still reads the database as it was: .reopen reads the new one",
            file=sys.stderr,
        )

    def _reopen(self, reopen: Callable[[], Any]) -> bool:
        # Closed first: DuckDB hands a path it still has open back to the same database, old file and all.
        if self.con is not None:
            self.con.close()
            self.con = None
        try:
            self.con = reopen()
        except CashscoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return False
        self._remember_file()
        print(f"reopened {self.db}", file=sys.stderr)
        return True

    def loop(self, interactive: bool, banner: str = "") -> bool:
        """Read statements until the end of the input or `.quit`; True when every one ran.

        A terminal gets the banner, prompts, line editing and history (readline); a piped script
        gets only its results, and its last statement needs no `;`.
        """
        if interactive:
            with contextlib.suppress(ImportError):  # not on every platform; input() uses it once imported
                import readline  # noqa: F401
            print(banner)
        buffer: list[str] = []
        ok = True
        while True:
            try:
                line = input(("cashscore> " if not buffer else "      ...> ") if interactive else "")
            except EOFError:
                # The end of the input ends the last statement, ';' or not.
                pending = "\n".join(buffer)
                if pending.strip():
                    ok = self.statement(pending) and ok
                if interactive:
                    print()
                return ok
            if not buffer and line.lstrip().startswith("."):
                if line.strip() in (".quit", ".exit"):
                    return ok
                ok = self.dot(line) and ok
                continue
            buffer.append(line)
            if line.rstrip().endswith(";"):
                ok = self.statement("\n".join(buffer)) and ok
                buffer = []
