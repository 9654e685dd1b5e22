"""One read-only connection for a whole dashboard page, or why there is none.

DuckDB lets one process write a file or several read it, never both: every open is a moment a
writer (`score --into`, `train`, `restore`) may have to wait for. A page opens the file once, for
the milliseconds its panels take, instead of once per panel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from cashscore.warehouse.export import is_lock_conflict, open_waiting, schema_clash

# A page waits this long for a writer's lock before its panels show what they read last.
READ_WAIT_SECONDS = 0.5
# What each panel read last, per database and panel key: shown while a writer holds the file.
_LAST: dict[tuple[Path | None, Hashable], Any] = {}
T = TypeVar("T")


class Unreadable(Exception):
    """A panel has neither a fresh reading nor a last one; the message says why."""


@dataclass(frozen=True)
class Reading:
    """The page's connection (None when there is none) and, then, why."""

    db: Path | None
    con: duckdb.DuckDBPyConnection | None
    problem: str | None = None
    locked: bool = False

    def read(self, key: Hashable, read: Callable[[duckdb.DuckDBPyConnection], T]) -> tuple[T, bool]:
        """`read(con)`, remembered under `key`; while a writer holds the file, what it gave last.

        Returns:
            The value, and whether it is the last reading instead of a fresh one.

        Raises:
            Unreadable: when there is neither, naming why.
        """
        remembered = (self.db, key)
        if self.con is not None:
            try:
                value = _LAST[remembered] = read(self.con)
            except duckdb.Error as exc:
                raise Unreadable(str(exc).splitlines()[0]) from None
            return value, False
        if self.locked and remembered in _LAST:
            return _LAST[remembered], True
        raise Unreadable(self.problem or "")


@contextlib.contextmanager
def reading(db: Path | None) -> Iterator[Reading]:
    """Open `db` read-only for one page; a missing, locked or unreadable file gives a Reading without one."""
    if db is None or not db.is_file():
        yield Reading(db, None, "no database configured (CASHSCORE_DB)")
        return
    try:
        con = open_waiting(db, read_only=True, wait=READ_WAIT_SECONDS)
    except duckdb.Error as exc:
        locked = is_lock_conflict(exc)
        yield Reading(db, None, "the database is being written" if locked else str(exc).splitlines()[0], locked)
        return
    problem = schema_clash(con, db)
    if problem:
        con.close()
        yield Reading(db, None, problem)
        return
    try:
        yield Reading(db, con)
    finally:
        con.close()
