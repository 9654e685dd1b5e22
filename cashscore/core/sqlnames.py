"""Names from outside (dumps, flags, stored tables) checked and quoted by one helper, never pasted into SQL."""

from __future__ import annotations

import re

from cashscore.core.errors import CashscoreError

# MySQL: at most 64 characters; any BMP character but NUL; no trailing space. cashscore also
# refuses control characters: no real schema has them, and they would corrupt messages and logs.
MAX_IDENTIFIER = 64
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]|[^\u0000-\uffff]")
# A MySQL identifier as a dump writes it: backquoted (a doubled backquote inside stands for one)
# or bare (letters, digits, $, _ and characters from U+0080 on).
_IDENT = r"`(?:[^`]|``)*`|[0-9A-Za-z$_\u0080-\uffff]+"
IDENT_RE = re.compile(_IDENT)
QUALIFIED = rf"(?:{_IDENT})(?:\s*\.\s*(?:{_IDENT}))?"
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_identifier(name: str, where: str, what: str = "name") -> str:
    """Check a table or column name against MySQL's identifier rules.

    Args:
        name: the unquoted name.
        where: `FILE:LINE` or the flag it came from, for the message.
        what: what the name is ("table name", "column name").

    Returns:
        The name, unchanged.

    Raises:
        CashscoreError: naming the rule the name breaks.
    """
    problem = None
    if not name:
        problem = "is empty"
    elif len(name) > MAX_IDENTIFIER:
        problem = f"is {len(name)} characters long; MySQL allows {MAX_IDENTIFIER}"
    elif name.endswith(" "):
        problem = "ends with a space, which MySQL does not allow"
    elif (bad := _FORBIDDEN.search(name)) is not None:
        problem = f"holds the character U+{ord(bad.group()):04X}, which a MySQL name cannot hold here"
    if problem:
        raise CashscoreError(f"{where}: {what} {name[:80]!r} {problem}")
    return name


def unquote(text: str) -> str:
    """One MySQL identifier as written (`a``b` or plain) to its name (a`b)."""
    text = text.strip()
    if text.startswith("`") and text.endswith("`") and len(text) >= 2:
        return text[1:-1].replace("``", "`")
    return text


def split_names(text: str, where: str) -> list[str]:
    """A comma-separated list of possibly qualified MySQL identifiers to their last parts.

    `db`.`t`, `u` gives ["t", "u"]: the database qualifier means nothing to the embedded copy.

    Raises:
        CashscoreError: on text that is not such a list.
    """
    names, pos = [], 0
    item = re.compile(rf"\s*({QUALIFIED})\s*(,|$)", re.S)
    while pos < len(text):
        match = item.match(text, pos)
        if match is None:
            raise CashscoreError(f"{where}: cannot read the names in {text[pos : pos + 60]!r}")
        parts = IDENT_RE.findall(match.group(1))
        names.append(unquote(parts[-1]))
        pos = match.end()
        if match.group(2) == "" and pos < len(text):
            raise CashscoreError(f"{where}: cannot read the names in {text[pos : pos + 60]!r}")
    if not names:
        raise CashscoreError(f"{where}: expected one or more names")
    return names


def quote(name: str) -> str:
    """A DuckDB identifier for any name: double quotes, doubled inside. The one way names enter SQL."""
    if "\x00" in name:
        raise CashscoreError(f"a name cannot hold a NUL character: {name[:80]!r}")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """`schema.name`, each part quoted."""
    return f"{quote(schema)}.{quote(name)}"


def plain_name(name: str, where: str) -> str:
    """A name a user chooses for a new table (`--into`): ASCII letters, digits and underscores.

    Raises:
        CashscoreError: on anything else.
    """
    if not _PLAIN_NAME.fullmatch(name) or len(name) > MAX_IDENTIFIER:
        raise CashscoreError(
            f"{where}: {name[:80]!r} is not a plain table name (a letter or underscore, then letters, "
            f"digits and underscores, at most {MAX_IDENTIFIER})"
        )
    return name


def relation_name(text: str, where: str) -> tuple[str, ...]:
    """`name` or `schema.name` given on the command line, split into parts each checked as a plain name."""
    parts = tuple(text.split("."))
    if not 1 <= len(parts) <= 2 or not all(_PLAIN_NAME.fullmatch(p) and len(p) <= MAX_IDENTIFIER for p in parts):
        raise CashscoreError(
            f"{where}: {text[:80]!r} is not a table or view name (name or schema.name, each letters, digits "
            "and underscores)"
        )
    return parts
