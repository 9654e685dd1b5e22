"""Restore mysqldump files into a new DuckDB database, bulk-loaded, verified and swapped in atomically."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

import duckdb

from cashscore.core import config, sqlnames
from cashscore.core.atomic import build_dir, fault_point, file_identity, sweep_stale
from cashscore.core.errors import CashscoreError
from cashscore.warehouse import carry, export, views
from cashscore.warehouse.ddl import STORED_AS, create_table
from cashscore.warehouse.dump import Statement, parse_insert, statements

REQUIRED_TABLES = ("dados_mutuarios", "emprestimos", "historicos_banco")
LINK_TABLES = ("ids", "id")
# Statements a mysqldump carries that mean nothing to an embedded copy of the data.
SKIPPED = re.compile(
    r"(SET|LOCK\s+TABLES?|UNLOCK\s+TABLES?|USE|CREATE\s+(DATABASE|SCHEMA)|START\s+TRANSACTION|BEGIN|COMMIT"
    rf"|ALTER\s+TABLE\s+{sqlnames.QUALIFIED}\s+(DISABLE|ENABLE)\s+KEYS)\b",
    re.I,
)
CSV_OPTIONS = (
    "header = false, delim = ',', quote = '''', escape = '''', nullstr = 'NULL', "
    "allow_quoted_nulls = false, auto_detect = false, strict_mode = true, new_line = '\\n'"
)
DUCKDB_LINE_RE = re.compile(r"CSV Error on Line: (\d+)")
# A new dump may drop at most this share of a required table's rows without --force.
MAX_SHRINK = 0.5


@dataclass
class Pending:
    """Rows of one table (and one column list) waiting in a CSV file for DuckDB's bulk reader."""

    path: Path
    handle: IO[str]
    columns: tuple[str, ...]
    lines: int = 0
    # (first CSV line, rows, where the INSERT starts) for every INSERT, to map errors back.
    segments: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class Result:
    """What a restore did."""

    db: Path
    rows: dict[str, int]
    seconds: float
    bytes_read: int
    audits: dict[str, int]


def dump_files(paths: list[Path]) -> list[Path]:
    """Expand the command line's paths into dump files, folders sorted by name.

    Args:
        paths: files or folders.

    Returns:
        The `.sql` and `.sql.gz` files to read, in order.

    Raises:
        CashscoreError: when a path does not exist or a folder holds no dump.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith((".sql", ".sql.gz")))
            if not found:
                raise CashscoreError(f"{path}: the folder holds no .sql or .sql.gz dump file")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CashscoreError(f"{path}: no such file or folder")
    return files


class Loader:
    """Feeds statements into a DuckDB connection, bulk-loading INSERT rows through CSV files."""

    def __init__(self, con: duckdb.DuckDBPyConnection, workdir: Path) -> None:
        self.con = con
        self.workdir = workdir
        self.tables: dict[str, list[tuple[str, str]]] = {}
        self.pending: dict[tuple[str, tuple[str, ...]], Pending] = {}
        self.rows: dict[str, int] = {}
        self.files = 0

    def feed(self, stmt: Statement) -> None:
        """Apply one statement."""
        head = stmt.text[:40].lstrip().upper()
        if head.startswith(("INSERT", "REPLACE")):
            self._insert(stmt)
        elif head.startswith("CREATE") and re.match(r"CREATE\s+(TEMPORARY\s+)?TABLE", head):
            table, types, ddl = create_table(stmt)
            self._flush_table(table)
            self.con.execute(f"drop table if exists {sqlnames.qualified('raw', table)}")
            self.con.execute(ddl)
            self.tables[table] = types
            self.rows[table] = 0
        elif head.startswith("DROP"):
            match = re.match(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(.+)$", stmt.text, re.I | re.S)
            if match is None:
                raise CashscoreError(f"{stmt.where()}: unsupported statement: {stmt.text[:60]!r}")
            for table in sqlnames.split_names(match.group(1), stmt.where()):
                sqlnames.check_identifier(table, stmt.where(), "table name")
                self._discard_table(table)
                self.con.execute(f"drop table if exists {sqlnames.qualified('raw', table)}")
                self.tables.pop(table, None)
                self.rows.pop(table, None)
        elif SKIPPED.match(stmt.text):
            return
        else:
            raise CashscoreError(
                f"{stmt.where()}: unsupported statement {stmt.text[:60]!r}: a mysqldump of tables "
                "holds CREATE TABLE, INSERT, DROP TABLE, LOCK/UNLOCK, SET and USE only"
            )

    def _insert(self, stmt: Statement) -> None:
        def kinds(table: str, named: tuple[str, ...] | None) -> list[tuple[str, str]]:
            if table not in self.tables:
                raise CashscoreError(
                    f"{stmt.where()}: INSERT into `{table}`, a table no CREATE TABLE before it declares"
                )
            types = dict(self.tables[table])
            unknown = [c for c in named or () if c not in types]
            if unknown:
                raise CashscoreError(f"{stmt.where()}: INSERT into `{table}` names unknown columns {unknown}")
            return [(c, types[c]) for c in named] if named else list(types.items())

        insert = parse_insert(stmt, kinds)
        columns = insert.columns or tuple(c for c, _ in self.tables[insert.table])
        key = (insert.table, columns)
        pending = self.pending.get(key)
        if pending is None:
            # Named by a counter, never by the table: a name from the dump never becomes a path.
            self.files += 1
            path = self.workdir / f"rows-{self.files}.csv"
            pending = Pending(path, path.open("w", encoding="utf-8", newline="\n"), columns)
            self.pending[key] = pending
        pending.segments.append((pending.lines + 1, len(insert.rows), stmt.where()))
        pending.handle.write("\n".join(insert.rows))
        pending.handle.write("\n")
        pending.lines += len(insert.rows)
        self.rows[insert.table] += len(insert.rows)

    def _discard_table(self, table: str) -> None:
        for key in [k for k in self.pending if k[0] == table]:
            pending = self.pending.pop(key)
            pending.handle.close()
            pending.path.unlink()

    def _flush_table(self, table: str) -> None:
        for key in [k for k in self.pending if k[0] == table]:
            self._load(table, self.pending.pop(key))

    def finish(self) -> None:
        """Bulk-load every pending CSV file."""
        for table, columns in list(self.pending):
            self._load(table, self.pending.pop((table, columns)))

    def close(self) -> None:
        """Close the CSV files still open after a failure (the build folder goes with them)."""
        for pending in self.pending.values():
            pending.handle.close()
        self.pending.clear()

    def _load(self, table: str, pending: Pending) -> None:
        pending.handle.close()
        types = dict(self.tables[table])
        # Column names and types go to read_csv as a parameter, names into SQL only quoted.
        spec = {f"c{i}": STORED_AS.get(types[c], types[c]) for i, c in enumerate(pending.columns)}
        names = ", ".join(sqlnames.quote(c) for c in pending.columns)
        try:
            self.con.execute(
                f"insert into {sqlnames.qualified('raw', table)} ({names}) "
                f"select * from read_csv(?, {CSV_OPTIONS}, columns = ?)",
                [str(pending.path), spec],
            )
        except duckdb.Error as exc:
            raise CashscoreError(_explain_load_error(table, pending, exc)) from None
        pending.path.unlink()


def _explain_load_error(table: str, pending: Pending, exc: duckdb.Error) -> str:
    """Map DuckDB's CSV error back to the INSERT (file and line) and row that caused it."""
    message = str(exc)
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    reason = next(
        (ln for ln in lines if ln.startswith(("Expected Number", "Error when converting", "Could not convert"))),
        lines[0] if lines else type(exc).__name__,
    )
    match = DUCKDB_LINE_RE.search(message)
    if match:
        line = int(match.group(1))
        for first, count, where in pending.segments:
            if first <= line < first + count:
                return f"{where}: INSERT into `{table}`, row {line - first + 1}: {reason}"
    where = pending.segments[0][2] if pending.segments else "?"
    return f"{where}: loading `{table}` failed: {reason}"


def restore(
    paths: list[Path],
    db: Path,
    sql_dir: Path,
    say: Callable[[str], None] = print,
    audit: bool = True,
    force: bool = False,
    max_shrink: float = MAX_SHRINK,
    raw_only: bool = False,
    charset: str = "utf8mb4",
    lock_wait: float | None = None,
) -> Result:
    """Restore dump files into a new database at `db`, replacing the old one only on success.

    Args:
        paths: dump files or folders (plain or gzip).
        db: the DuckDB file to create or replace.
        sql_dir: the folder of staging, marts and audit SQL.
        say: where progress lines go.
        audit: run the SQL audits before the swap (on by default; they read the whole mart).
        force: replace the database even when the dump's required tables are empty, a table would
            shrink by more than `max_shrink`, or the file there is not a cashscore database.
        max_shrink: the largest share of a required table's rows a new dump may drop.
        raw_only: load every table of any dump into `raw` and stop there: no Alura tables required,
            no views, no audits, no guard (`cashscore restore --raw-only`).
        charset: the dump's character set until it names one with SET NAMES (a --compact dump does not).
        lock_wait: how long to wait for a process writing the old database (CASHSCORE_LOCK_WAIT by default).

    Returns:
        Rows per raw table, timings and audit results.

    Raises:
        CashscoreError: naming the file, line and problem; the old database is left untouched.
    """
    started = time.perf_counter()
    files = dump_files(paths)
    db = db.resolve()
    problem = export.schema_named(db)
    if problem:
        raise CashscoreError(problem)
    if raw_only and db.exists() and not force:
        # No guard can tell a raw dump's tables from the data they would replace: never silently.
        raise CashscoreError(f"{db} exists; a --raw-only restore replaces it only with --force (or give another --db)")
    db.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(db)
    wait = config.load().restore.lock_wait if lock_wait is None else lock_wait
    with _holding(db, wait, force) as old, build_dir(db, "restore") as work:
        target = work / db.name
        con = _sandboxed(target, work)
        with contextlib.ExitStack() as stack:
            stack.callback(con.close)
            con.execute("create schema raw")
            loader = Loader(con, work)
            stack.callback(loader.close)
            size = 0
            for path in files:
                size += path.stat().st_size
                say(f"reading {path} ({path.stat().st_size / 1e6:.1f} MB)")
                count = 0
                for count, stmt in enumerate(statements(path, charset), start=1):  # noqa: B007
                    loader.feed(stmt)
                if count == 0:
                    raise CashscoreError(f"{path}: the file holds no SQL statement (empty or only comments)")
            loader.finish()
            fault_point("restore: loaded")
            if not raw_only:
                _check_tables(loader, files)
            for table, expected in loader.rows.items():
                (got,) = con.execute(f"select count(*) from {sqlnames.qualified('raw', table)}").fetchall()[0]
                if got != expected:
                    raise CashscoreError(f"`{table}`: {expected} rows parsed but {got} loaded")
            audits: dict[str, int] = {}
            if not raw_only:
                if not force:
                    _guard(db, old.con, loader.rows, max_shrink)
                views.build(con, sql_dir)
                fault_point("restore: views built")
                audits = views.run_audits(con, sql_dir) if audit else {}
            con.execute("checkpoint")
        if old.con is not None:
            carry.carry_over(db, old.con, target, say)
        fault_point("restore: closed")
        _still_held(db, old)
        _drop_wal(db)
        os.replace(target, db)
        fault_point("restore: swapped")
    return Result(db, dict(loader.rows), time.perf_counter() - started, size, audits)


def _sandboxed(target: Path, work: Path) -> duckdb.DuckDBPyConnection:
    """A connection to the new database that can touch no file outside the build folder.

    The dump's text never becomes SQL, but should a bug ever let some through, DuckDB itself then
    refuses to read, write, attach or install anything elsewhere, and the settings are locked.
    """
    con = duckdb.connect(
        str(target), config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute("set allowed_directories = ?", [[str(work) + os.sep]])
    con.execute("set enable_external_access = false")
    con.execute("set preserve_insertion_order = true")
    con.execute("set lock_configuration = true")
    return con


def _link_rows(rows: dict[str, int]) -> int | None:
    return next((rows[t] for t in LINK_TABLES if t in rows), None)


def _required_rows(rows: dict[str, int]) -> dict[str, int | None]:
    found: dict[str, int | None] = {t: rows.get(t) for t in REQUIRED_TABLES}
    found["ids"] = _link_rows(rows)
    return found


def _holding_open(db: Path, wait: float, force: bool) -> duckdb.DuckDBPyConnection | None:
    """The database a restore replaces, opened read-only; None when there is none (or, with --force,
    when the file there is not a DuckDB database).

    Raises:
        CashscoreError: when another process writes it for `wait` seconds (never overridden: what it
            writes would go to the replaced file and be lost), or it is not a database (without --force).
    """
    if not db.exists():
        return None
    try:
        return export.open_waiting(db, True, wait)
    except duckdb.Error as exc:
        if export.is_lock_conflict(exc):
            message = f"{export.locked(db, wait)}; nothing was replaced: restore again once it is closed"
            raise CashscoreError(message) from None
        if force:
            return None
        raise CashscoreError(
            f"{db}: exists but cannot be opened as a DuckDB database ({str(exc).splitlines()[0]}); "
            "it was left as it is: pass --force to replace it"
        ) from None


class _Held(NamedTuple):
    """The database a restore replaces: a read-only connection (None when there is none, or a
    forced restore replaces a file that is not a database) and the file it found (device, inode)."""

    con: duckdb.DuckDBPyConnection | None
    file: tuple[int, int] | None


@contextlib.contextmanager
def _holding(db: Path, wait: float, force: bool) -> Iterator[_Held]:
    """`_holding_open`, held from before the dump is read until after the swap.

    Readers share the file meanwhile; a writer waits. One that got in between a check and the swap
    would write into the replaced file, and what it wrote would be lost with it.
    """
    con = _holding_open(db, wait, force)
    try:
        yield _Held(con, file_identity(db))
    finally:
        if con is not None:
            con.close()


def _still_held(db: Path, old: _Held) -> None:
    """Refuse to swap when the file at `db` is no longer the one found at the start (another
    restore, running at the same time, swapped its own in): replacing it would lose whatever was
    written to that one."""
    if file_identity(db) != old.file:
        raise CashscoreError(
            f"{db} was replaced by another process (another restore?) while this restore ran; "
            "nothing was replaced: restore again"
        )


def _old_rows(old: duckdb.DuckDBPyConnection | None) -> dict[str, int]:
    """Rows per raw table of the database a restore would replace (none when there is none)."""
    if old is None:
        return {}
    names = [
        r[0]
        for r in old.execute(
            "select table_name from duckdb_tables() where database_name = current_database() and schema_name = 'raw'"
        ).fetchall()
        if r[0] in REQUIRED_TABLES or r[0] in LINK_TABLES
    ]
    return {n: int(old.execute(f"select count(*) from {sqlnames.qualified('raw', n)}").fetchall()[0][0]) for n in names}


def _guard(db: Path, old_db: duckdb.DuckDBPyConnection | None, rows: dict[str, int], max_shrink: float) -> None:
    """Refuse a dump that would empty or shrink the data it replaces, with the counts before and after."""
    new = _required_rows(rows)
    empty = [t for t, n in new.items() if not n]
    if empty:
        raise CashscoreError(
            f"the dump's table(s) {', '.join(empty)} hold no rows; {db} was left as it is "
            "(pass --force to restore an empty dump)"
        )
    old = _required_rows(_old_rows(old_db))
    shrunk = [
        f"raw.{t}: {before:,} -> {n:,} rows ({(n - before) / before:.1%})"
        for t, n in new.items()
        if (before := old[t]) and n is not None and n < before * (1 - max_shrink)
    ]
    if shrunk:
        raise CashscoreError(
            f"the dump would shrink {db} by more than {max_shrink:.0%} of its rows: {'; '.join(shrunk)}; "
            "it was left as it is (pass --force to replace it anyway)"
        )


def _check_tables(loader: Loader, files: list[Path]) -> None:
    names = ", ".join(str(f) for f in files)
    missing = [t for t in REQUIRED_TABLES if t not in loader.tables]
    if not any(t in loader.tables for t in LINK_TABLES):
        missing.append("ids (or id, the link table)")
    if missing:
        found = ", ".join(sorted(loader.tables)) or "none"
        raise CashscoreError(f"{names}: the dump lacks table(s) {', '.join(missing)}; tables found: {found}")


def _drop_wal(db: Path) -> None:
    """Drop a write-ahead log left beside the old database so it is never replayed onto the new one.

    cashscore checkpoints before it closes, so a WAL here means the old file was left by a crash;
    it goes before the swap, so a kill in between can never pair the new file with the old log.
    """
    wal = db.with_name(db.name + ".wal")
    if wal.exists():
        wal.unlink()
