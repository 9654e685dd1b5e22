"""Stream a mysqldump file as statements and turn INSERT rows into CSV lines for DuckDB."""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

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
# One value of a tuple: a string (with an optional _charset introducer, or X'..' / b'..'), or a bare
# token (a number, NULL, 0x.. hex) up to the next comma.
TOKEN_RE = re.compile(r"\s*((?:_\w+\s*|[xXbB])?" + STRING + r"|[^,']+?)\s*(?:,|$)", re.S)
HEX_RE = re.compile(r"0x([0-9a-fA-F]*)|[xX]'([0-9a-fA-F]*)'")
BITS_RE = re.compile(r"[bB]'([01]*)'|0b([01]+)")
INTRODUCER_RE = re.compile(r"\A_\w+\s*(?=')")
# Bytes a dump's text could not decode in its character set are kept as surrogates (U+DC80..U+DCFF)
# until the column they are in is known: a BLOB takes them back as bytes, text refuses them.
UNDECODED_RE = re.compile("[\udc80-\udcff]")
NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}
ESCAPE_RE = re.compile(r"\\(.)|''", re.S)


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a dump, with where it starts."""

    text: str
    path: str
    line: int
    # The character set its bytes were read in (SET NAMES / character_set_client before it), and
    # whether some of them could not be decoded in it (kept as surrogates, see UNDECODED_RE).
    encoding: str = "utf-8"
    undecoded: bool = False

    def where(self) -> str:
        """Returns the statement's place as `file:line`."""
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Insert:
    """The parts of an INSERT statement cashscore needs to bulk-load it."""

    table: str
    columns: tuple[str, ...] | None
    rows: list[str]


def open_dump(path: Path) -> io.BufferedIOBase:
    """Open a dump, transparently gunzipping `.gz` files.

    Args:
        path: a `.sql` or `.sql.gz` file.

    Returns:
        A binary file object.
    """
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


# MySQL's latin1 is Windows-1252, with the five bytes cp1252 leaves undefined kept as C1 controls.
_CP1252 = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256))
LATIN1_DECODE = str.maketrans({chr(b): c for b, c in enumerate(_CP1252)})
LATIN1_ENCODE = str.maketrans({c: chr(b) for b, c in enumerate(_CP1252)})
# The character sets a dump may be written in (SET NAMES, --default-character-set), and how to read them.
CHARSETS = {"utf8mb4": "utf-8", "utf8mb3": "utf-8", "utf8": "utf-8", "latin1": "mysql-latin1", "ascii": "utf-8"}
SET_CHARSET_RE = re.compile(r"SET\s+(?:NAMES|character_set_client\s*=)\s*'?(@?\w+)'?", re.I)
SAVE_CHARSET_RE = re.compile(r"SET\s+@saved_cs_client\s*=\s*@@character_set_client", re.I)


def decode(raw: bytes, encoding: str) -> tuple[str, int | None]:
    """Decode a line of a dump; bytes it cannot decode become surrogates.

    Returns:
        The text, and the 0-based offset of the first undecodable byte (None when there is none).
    """
    if encoding == "mysql-latin1":
        return raw.decode("latin-1").translate(LATIN1_DECODE), None
    try:
        return raw.decode(encoding), None
    except UnicodeDecodeError as exc:
        return raw.decode(encoding, "surrogateescape"), exc.start


def encode(text: str, encoding: str) -> bytes:
    """The dump's bytes back from text `decode` read (a BLOB's value)."""
    if encoding == "mysql-latin1":
        return text.translate(LATIN1_ENCODE).encode("latin-1")
    return text.encode(encoding, "surrogateescape")


def statements(path: Path, charset: str = "utf8mb4") -> Iterator[Statement]:
    """Yield the statements of a dump one at a time, holding only the current one in memory.

    A statement ends at a line ending in `;` outside any string literal; comments and MySQL
    conditional comments (`/*!40101 ... */`) are unwrapped or dropped. The text is read in the
    character set the dump names (`SET NAMES`, `SET character_set_client`; utf8mb4 until then).

    Args:
        path: the dump file.
        charset: the character set until the dump names one (a --compact dump names none).

    Yields:
        Each statement, stripped of comments.

    Raises:
        CashscoreError: on bytes the character set cannot decode outside an INSERT (inside one, the
            column decides: see parse_insert), an unknown character set, or a statement still open at
            the end of file.
    """
    where = str(path)
    parts: list[str] = []
    start = 0
    lineno = 0
    encoding = _charset(charset, "utf-8", "utf-8", where)
    saved = encoding
    bad: tuple[int, int] | None = None
    try:
        handle = open_dump(path)
        with handle:
            for lineno, raw in enumerate(handle, start=1):  # noqa: B007 - lineno used after the loop
                line, offset = decode(raw, encoding)
                line = line.rstrip("\r\n")
                if not parts:
                    stripped = line.strip()
                    if not stripped or stripped.startswith(("--", "#")):
                        continue
                    if stripped.startswith("/*") and not stripped.startswith("/*!") and stripped.endswith("*/"):
                        continue  # a plain comment on its own line
                    start = lineno
                if offset is not None and bad is None:
                    bad = (lineno, offset + 1)
                parts.append(line)
                if line.rstrip().endswith(";"):
                    text = "\n".join(parts)
                    if _balanced(text):
                        parts = []
                        cleaned = _strip_comments(text).strip().rstrip(";").rstrip()
                        found, bad = bad, None
                        if not cleaned:
                            continue
                        if found is not None and not cleaned[:7].upper().startswith(("INSERT", "REPLACE")):
                            raise CashscoreError(_undecodable(where, found, encoding))
                        yield Statement(cleaned, where, start, encoding, found is not None)
                        if SAVE_CHARSET_RE.match(cleaned):
                            saved = encoding
                        elif match := SET_CHARSET_RE.match(cleaned):
                            encoding = _charset(match.group(1), encoding, saved, f"{where}:{start}")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise CashscoreError(f"{where}:{lineno}: cannot read the dump: {exc}") from None
    if parts:
        text = "\n".join(parts)
        problem = "an unclosed string literal" if not _balanced(text) else "no closing ';'"
        raise CashscoreError(
            f"{where}:{start}: the statement starting here is truncated: {problem} "
            f"before the end of the file at line {lineno}"
        )


def _charset(name: str, current: str, saved: str, where: str) -> str:
    """The encoding a SET NAMES or SET character_set_client switches to."""
    if name.startswith("@"):
        # @saved_cs_client comes back around each CREATE TABLE; the others restore the session at the end.
        return saved if name.lower() == "@saved_cs_client" else current
    found = CHARSETS.get(name.lower())
    if found is None:
        raise CashscoreError(
            f"{where}: the dump is written in character set {name[:40]!r}; cashscore reads "
            f"{', '.join(CHARSETS)} (mysqldump --default-character-set=utf8mb4)"
        )
    return found


def _named(encoding: str) -> str:
    """An encoding as a message names it."""
    return "UTF-8" if encoding == "utf-8" else encoding


def _undecodable(where: str, at: tuple[int, int], encoding: str) -> str:
    return (
        f"{where}:{at[0]}: bytes that are not {_named(encoding)} at column {at[1]} "
        "(cashscore reads dumps written with --default-character-set=utf8mb4, or the character set they name)"
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


# What the rows' columns hold, by DuckDB type, where the dump's literal is not the CSV value: a
# BLOB's bytes are written as \\xHH escapes (DuckDB's text form of a BLOB), a BIT's b'0101' as a number.
BYTES = "BLOB"
BIT = "BIT"
# (table, INSERT column list or None) -> each value's (column, kind): the DuckDB type or a ddl.STORED_AS key.
Kinds = Callable[[str, "tuple[str, ...] | None"], Sequence[tuple[str, str]]]


def insert_head(stmt: Statement) -> tuple[str, tuple[str, ...] | None, int]:
    """The table an INSERT or REPLACE fills, its column list (None without one) and where VALUES begin.

    Raises:
        CashscoreError: naming the file, line and problem when the head is malformed.
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
    return table, columns, head.end()


def parse_insert(stmt: Statement, kinds: Kinds | None = None) -> Insert:
    """Split an INSERT statement into table, column list and CSV-ready rows.

    Rows come back as CSV lines in DuckDB's dialect with `'` as quote and escape and `NULL`
    unquoted; rows in mysqldump's usual form pass through untouched (the fast path).

    Args:
        stmt: an INSERT or REPLACE statement.
        kinds: each value's column and kind, from the table's CREATE TABLE (None: text and numbers).

    Returns:
        The parsed statement.

    Raises:
        CashscoreError: naming the file, line and problem when the statement is malformed, or a value
            does not fit its column (bytes the character set cannot decode in a text column).
    """
    table, columns, offset = insert_head(stmt)
    described = list(kinds(table, columns)) if kinds is not None else []
    types = [kind for _, kind in described]
    body = stmt.text[offset:]
    plain_kinds = BYTES not in types and BIT not in types
    if plain_kinds and not stmt.undecoded and "\\" not in body:
        skeleton = STRING_RE.sub("0", body)
        if PLAIN_BODY_RE.fullmatch(skeleton):
            # mysqldump's own form: well formed, so split at "),(" unless a string holds one.
            if body.count("),(") == skeleton.count("),("):
                return Insert(table, columns, body[1:-1].split("),("))
            return Insert(table, columns, ROW_RE.findall(body))
    rows = ROW_RE.findall(body)
    leftover = ROW_RE.sub("", body)
    if leftover.count(",") != len(rows) - 1 or leftover.replace(",", "").strip():
        _raise_at_garbage(stmt, offset, body)
    if not rows or not all(rows):
        raise CashscoreError(f"{stmt.where()}: INSERT into `{table}` has an empty VALUES tuple")
    names = [name for name, _ in described]
    rows = [_rewrite_row(stmt, i, row, types, names) for i, row in enumerate(rows, start=1)]
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


def _rewrite_row(stmt: Statement, index: int, row: str, types: Sequence[str], names: Sequence[str]) -> str:
    """Rewrite one tuple into DuckDB's CSV dialect: decode MySQL literals, each as its column needs."""
    out: list[str] = []
    pos = 0
    while pos < len(row) or not out:
        match = TOKEN_RE.match(row, pos)
        if match is None or match.end() == pos:
            raise CashscoreError(
                f"{stmt.where()}: row {index} of this INSERT cannot be read near "
                f"{row[pos : pos + 40]!r} (expected a quoted string, a number or NULL)"
            )
        column = len(out)
        kind = types[column] if column < len(types) else "VARCHAR"
        value = _literal(match.group(1), kind, stmt.encoding)
        if value is None:
            raise CashscoreError(
                f"{stmt.where()}: row {index} of this INSERT has a value cashscore cannot read: "
                f"{match.group(1)[:40]!r} (expected a quoted string, a number or NULL)"
            )
        if kind != BYTES and UNDECODED_RE.search(value):
            name = names[column] if column < len(names) else f"#{column + 1}"
            raise CashscoreError(
                f"{stmt.where()}: row {index} of this INSERT, column `{name}`: bytes that are not "
                f"{_named(stmt.encoding)} in a text value (cashscore reads "
                "dumps written with --default-character-set=utf8mb4, or the character set they name; "
                "only a BLOB holds any bytes)"
            )
        out.append(value)
        pos = match.end()
    return ",".join(out)


def _literal(token: str, kind: str, encoding: str) -> str | None:
    """One MySQL literal as a CSV value for a column of DuckDB type `kind` (None: not a literal)."""
    upper = token.upper()
    if upper == "NULL":
        return "NULL"
    if hexed := HEX_RE.fullmatch(token):  # 0x.. or X'..'
        digits = hexed.group(1) or hexed.group(2) or ""
        data = bytes.fromhex(digits.zfill(len(digits) + len(digits) % 2))
    elif bits := BITS_RE.fullmatch(token):  # b'..' or 0b..
        data = _bits(bits.group(1) or bits.group(2) or "")
    elif token.endswith("'"):
        # 'text' or _charset'text': the introducer names how MySQL reads it; the dump's own set did.
        text = _unescape(INTRODUCER_RE.sub("", token, count=1).lstrip()[1:-1])
        if kind == BYTES:
            return _blob(encode(text, encoding))
        if kind != BIT:
            return _csv_text(text)
        data = encode(text, encoding)  # mysqldump writes a BIT as its bytes without --hex-blob
    elif NUMBER_RE.fullmatch(token):
        return token.lstrip("+")
    elif upper in ("TRUE", "FALSE"):
        return "1" if upper == "TRUE" else "0"
    else:
        return None
    # A hex or bit literal, or a BIT's bytes: bytes for a BLOB, a number in a numeric column, text otherwise.
    if kind == BYTES:
        return _blob(data)
    if kind in NUMERIC_KINDS:
        return str(int.from_bytes(data, "big"))
    return _csv_text(data.decode("utf-8", "surrogateescape"))


def _csv_text(text: str) -> str:
    """A text value in the CSV dialect restore loads: `'` as quote and as its own escape."""
    return "'" + text.replace("'", "''") + "'"


# Column types a hex or bit literal reads as a number in (MySQL: numeric context).
NUMERIC_KINDS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", BIT}


def _bits(digits: str) -> bytes:
    value = int(digits or "0", 2)
    return value.to_bytes(max(1, (len(digits) + 7) // 8), "big")


def _blob(data: bytes) -> str:
    """A BLOB as DuckDB reads one from text: every byte escaped, so no byte is ever taken for an escape."""
    return "'" + "".join(f"\\x{b:02X}" for b in data) + "'"


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
