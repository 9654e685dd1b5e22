"""Stream a mysqldump file as statements and turn INSERT rows into CSV lines for DuckDB."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cashscore.core import sqlnames
from cashscore.core.errors import CashscoreError

# A MySQL string literal: backslash escapes and doubled quotes. Possessive quantifiers keep the
# regex engine from backtracking on megabyte-long INSERT lines.
STRING = r"'(?:[^'\\]++|\\.|'')*+'"
STRING_RE = re.compile(STRING, re.S)
QUOTED_RE = re.compile(STRING + r"|`(?:[^`]|``)*+`", re.S)
# One VALUES tuple: strings may hold anything, everything else holds no quote and no parenthesis.
ROW_RE = re.compile(r"\(((?:[^'()]++|" + STRING + r")*+)\)", re.S)
# A VALUES list, strings replaced by 0, that DuckDB's CSV reader can take as it is: no spaces, no
# escapes, only numbers and NULL between commas.
_PLAIN_VALUE = r"(?:[0-9.eE+\-]++|NULL)"
_PLAIN_TUPLE = rf"\({_PLAIN_VALUE}(?:,{_PLAIN_VALUE})*+\)"
PLAIN_BODY_RE = re.compile(rf"{_PLAIN_TUPLE}(?:,{_PLAIN_TUPLE})*+")
INSERT_RE = re.compile(
    rf"(?:INSERT|REPLACE)\s+(?:IGNORE\s+)?INTO\s+({sqlnames.QUALIFIED})\s*"
    r"(?:\(((?:`(?:[^`]|``)*`|[^`)])*)\))?\s*VALUES\s*",
    re.I | re.S,
)
CONDITIONAL_OPEN_RE = re.compile(r"/\*!\d*")
BLOCK_COMMENT_RE = re.compile(r"/\*(?!!).*?\*/", re.S)
TOKEN_RE = re.compile(r"\s*(" + STRING + r"|[^,']+?)\s*(?:,|$)", re.S)
NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}
ESCAPE_RE = re.compile(r"\\(.)|''", re.S)


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a dump, with where it starts."""

    text: str
    path: str
    line: int

    def where(self) -> str:
        """Returns the statement's place as `file:line`."""
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Insert:
    """The parts of an INSERT statement cashscore needs to bulk-load it."""

    table: str
    columns: tuple[str, ...] | None
    rows: list[str]


def open_dump(path: Path) -> IO[bytes]:
    """Open a dump, transparently gunzipping `.gz` files.

    Args:
        path: a `.sql` or `.sql.gz` file.

    Returns:
        A binary file object.
    """
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def statements(path: Path) -> Iterator[Statement]:
    """Yield the statements of a dump one at a time, holding only the current one in memory.

    A statement ends at a line ending in `;` outside any string literal; comments and MySQL
    conditional comments (`/*!40101 ... */`) are unwrapped or dropped.

    Args:
        path: the dump file.

    Yields:
        Each statement, stripped of comments.

    Raises:
        CashscoreError: on bytes that are not UTF-8, or a statement still open at the end of file.
    """
    where = str(path)
    parts: list[str] = []
    start = 0
    lineno = 0
    try:
        handle = open_dump(path)
        with handle:
            for lineno, raw in enumerate(handle, start=1):  # noqa: B007 - lineno used after the loop
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise CashscoreError(
                        f"{where}:{lineno}: bytes that are not UTF-8 at column {exc.start + 1} "
                        "(cashscore reads dumps written with --default-character-set=utf8mb4)"
                    ) from None
                line = line.rstrip("\r\n")
                if not parts:
                    stripped = line.strip()
                    if not stripped or stripped.startswith(("--", "#")):
                        continue
                    if stripped.startswith("/*") and not stripped.startswith("/*!") and stripped.endswith("*/"):
                        continue  # a plain comment on its own line
                    start = lineno
                parts.append(line)
                if line.rstrip().endswith(";"):
                    text = "\n".join(parts)
                    if _balanced(text):
                        parts = []
                        cleaned = _strip_comments(text).strip()
                        if cleaned.rstrip(";").strip():
                            yield Statement(cleaned.rstrip().rstrip(";").rstrip(), where, start)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise CashscoreError(f"{where}:{lineno}: cannot read the dump: {exc}") from None
    if parts:
        text = "\n".join(parts)
        problem = "an unclosed string literal" if not _balanced(text) else "no closing ';'"
        raise CashscoreError(
            f"{where}:{start}: the statement starting here is truncated: {problem} "
            f"before the end of the file at line {lineno}"
        )


def _balanced(text: str) -> bool:
    """Tell whether every string literal and backquoted name in the text is closed."""
    if "\\" not in text and text[:7].upper().startswith(("INSERT", "REPLACE")):
        head = text[: text.find("'")] if "'" in text else text
        if head.count("`") % 2 == 0 and "`" not in text[len(head) :]:
            # Names all before the first quote, no escapes: quotes (doubled ones too) pair up.
            return text.count("'") % 2 == 0
    # A quote inside a backquoted name is part of the name, a backquote inside a string is data.
    rest = QUOTED_RE.sub("", text)
    return "'" not in rest and "`" not in rest


def _strip_comments(text: str) -> str:
    """Unwrap `/*!NNNNN ... */` (MySQL runs them) and drop plain block comments."""
    if "/*" not in text:
        return text
    head, sep, tail = text.partition(" VALUES ")
    # Never touch the VALUES part: comment markers there are data.
    head = BLOCK_COMMENT_RE.sub(" ", head)
    if "/*!" in head:
        head = CONDITIONAL_OPEN_RE.sub("", head).replace("*/", "")
    return head + sep + tail


def parse_insert(stmt: Statement) -> Insert:
    """Split an INSERT statement into table, column list and CSV-ready rows.

    Rows come back as CSV lines in DuckDB's dialect with `'` as quote and escape and `NULL`
    unquoted; rows in mysqldump's usual form pass through untouched (the fast path).

    Args:
        stmt: an INSERT or REPLACE statement.

    Returns:
        The parsed statement.

    Raises:
        CashscoreError: naming the file, line and problem when the statement is malformed.
    """
    head = INSERT_RE.match(stmt.text)
    if head is None:
        raise CashscoreError(f"{stmt.where()}: cannot read this INSERT statement: {stmt.text[:80]!r}")
    where = stmt.where()
    (table,) = sqlnames.split_names(head.group(1), where)
    sqlnames.check_identifier(table, where, "table name")
    columns = None
    if head.group(2) is not None:
        columns = tuple(
            sqlnames.check_identifier(c, where, "column name") for c in sqlnames.split_names(head.group(2), where)
        )
    body = stmt.text[head.end() :]
    if "\\" not in body:
        skeleton = STRING_RE.sub("0", body)
        if PLAIN_BODY_RE.fullmatch(skeleton):
            # mysqldump's own form: well formed, so split at "),(" unless a string holds one.
            if body.count("),(") == skeleton.count("),("):
                return Insert(table, columns, body[1:-1].split("),("))
            return Insert(table, columns, ROW_RE.findall(body))
    rows = ROW_RE.findall(body)
    leftover = ROW_RE.sub("", body)
    if leftover.count(",") != len(rows) - 1 or leftover.replace(",", "").strip():
        _raise_at_garbage(stmt, head.end(), body)
    if not rows or not all(rows):
        raise CashscoreError(f"{stmt.where()}: INSERT into `{table}` has an empty VALUES tuple")
    rows = [_rewrite_row(stmt, i, row) for i, row in enumerate(rows, start=1)]
    return Insert(table, columns, rows)


def _raise_at_garbage(stmt: Statement, offset: int, body: str) -> None:
    """Find the first text between tuples that is not a single comma and report where it is."""
    pos = 0
    for i, match in enumerate(ROW_RE.finditer(body)):
        if body[pos : match.start()].strip() != ("," if i else ""):
            break
        pos = match.end()
    line = stmt.line + stmt.text.count("\n", 0, offset + pos)
    snippet = body[pos : pos + 60].strip()
    raise CashscoreError(
        f"{stmt.path}:{line}: malformed VALUES list near {snippet!r} "
        "(expected tuples like ('a',1,NULL) separated by commas)"
    )


def _rewrite_row(stmt: Statement, index: int, row: str) -> str:
    """Rewrite one tuple into DuckDB's CSV dialect: decode MySQL escapes, check bare values."""
    out: list[str] = []
    pos = 0
    while pos < len(row) or not out:
        match = TOKEN_RE.match(row, pos)
        if match is None or match.end() == pos:
            raise CashscoreError(
                f"{stmt.where()}: row {index} of this INSERT cannot be read near "
                f"{row[pos : pos + 40]!r} (expected a quoted string, a number or NULL)"
            )
        token = match.group(1)
        if token.startswith("'"):
            out.append("'" + _unescape(token[1:-1]).replace("'", "''") + "'")
        elif token.upper() == "NULL":
            out.append("NULL")
        elif NUMBER_RE.fullmatch(token):
            out.append(token.lstrip("+"))
        elif token.upper() in ("TRUE", "FALSE"):
            out.append("1" if token.upper() == "TRUE" else "0")
        else:
            raise CashscoreError(
                f"{stmt.where()}: row {index} of this INSERT has a value cashscore cannot read: "
                f"{token[:40]!r} (expected a quoted string, a number or NULL)"
            )
        pos = match.end()
    return ",".join(out)


def _unescape(text: str) -> str:
    """Decode MySQL's backslash escapes and doubled quotes inside a string literal."""
    if "\\" not in text and "''" not in text:
        return text
    # \% and \_ keep their backslash in MySQL; every other unknown escape drops it.
    return ESCAPE_RE.sub(_escape_value, text)


def _escape_value(match: re.Match[str]) -> str:
    char = match.group(1)
    if char is None:
        return "'"
    if char in "%_":
        return "\\" + char
    return MYSQL_ESCAPES.get(char, char)
