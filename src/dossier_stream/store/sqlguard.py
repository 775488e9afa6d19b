"""What a statement may do on the store-server: one statement, and for readers, only reads.

A lexer of ClickHouse SQL (strings, quoted identifiers, heredocs, ``--`` /
``#`` / nested ``/* */`` comments, as ClickHouse's own lexer reads them)
finds the words that are code, so a keyword inside a string or a comment
is never mistaken for one, and one hidden behind a comment is never
missed. On that:

* :func:`single_statement` refuses a request holding more than one
  statement (chdb would run them all; ClickHouse's HTTP interface refuses
  them too) and text the lexer cannot end (an unterminated string or
  comment);
* :func:`read_only_refusal` is the read-only mode (ClickHouse's
  ``readonly = 1``): the statement starts with ``SELECT``, ``WITH``,
  ``SHOW``, ``DESCRIBE``/``DESC`` or ``EXISTS``, and no code word anywhere
  writes, changes a setting or reaches outside the store (``INSERT``,
  ``INTO OUTFILE``, ``SETTINGS``, ``KILL``, the ``file()`` function, table
  functions …). It is the first of two barriers: read-only statements also
  run on an engine session opened with ``readonly=1``
  (:mod:`~dossier_stream.store.storeserver`), which refuses writes and
  most table functions by itself but not ``file()``, ``INTO OUTFILE``,
  ``KILL`` or chdb's ``python()``; hence the list here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["SqlRefused", "code_words", "read_only_refusal", "single_statement"]

READ_STARTS: Final = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS"})
"""The first word of a statement a reader may run."""

WRITE_WORDS: Final = frozenset({
    "INSERT", "DROP", "ALTER", "CREATE", "TRUNCATE", "RENAME", "ATTACH", "DETACH", "OPTIMIZE",
    "KILL", "GRANT", "REVOKE", "SET", "SETTINGS", "USE", "DELETE", "UPDATE", "BACKUP",
    "RESTORE", "EXCHANGE", "UNDROP", "INTO", "OUTFILE", "INFILE",
})  # fmt: skip
"""Code words a read-only statement may not hold, wherever they are (a statement that
starts otherwise, ``SYSTEM …`` say, is refused by its first word; ``system.tables`` is a read)."""

OUTSIDE_FUNCTIONS: Final = frozenset({
    "file", "filecluster", "url", "urlcluster", "s3", "s3cluster", "gcs", "oss", "cosn",
    "remote", "remotesecure", "cluster", "clusterallreplicas", "executable", "input", "hdfs",
    "hdfscluster", "mysql", "postgresql", "jdbc", "odbc", "sqlite", "mongodb", "redis",
    "azureblobstorage", "azureblobstoragecluster", "iceberg", "icebergs3", "icebergazure",
    "icebergcluster", "deltalake", "deltalakecluster", "hudi", "hudicluster", "python",
    "arrowflight", "ytsaurus", "dictionary", "dictget", "loop", "fuzzjson", "fuzzquery",
})  # fmt: skip
"""Functions (lower case) that read or write outside the store, or run programs."""


class SqlRefused(ValueError):
    """A statement the server will not run; the message says why."""


@dataclass(frozen=True, slots=True)
class _Lexed:
    words: list[tuple[str, bool, bool]]  # (word, followed by "(", part of a dotted name)
    statements: int


_WORD = re.compile(r"(?:[A-Za-z_]|[^\x00-\x7f])(?:[A-Za-z0-9_$]|[^\x00-\x7f])*")
"""A word as ClickHouse reads one: ``$`` and every non-ASCII character are word characters."""
_NUMBER = re.compile(r"[0-9](?:[A-Za-z0-9_$.]|[^\x00-\x7f])*")
_HEREDOC = re.compile(r"\$([A-Za-z0-9_]*)\$")
_SPACE = re.compile(r"\s*")


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    """The index after the string or quoted identifier opened at ``i``."""
    j = i + 1
    while j < len(sql):
        ch = sql[j]
        if ch == "\\":
            j += 2
            continue
        if ch == quote:
            if sql.startswith(quote, j + 1):  # a doubled quote is one quote
                j += 2
                continue
            return j + 1
        j += 1
    raise SqlRefused(f"unterminated {quote} at character {i}")


def _skip_block_comment(sql: str, i: int) -> int:
    """The index after the (possibly nested) ``/* */`` comment opened at ``i``."""
    depth, j = 1, i + 2
    while j < len(sql):
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    raise SqlRefused(f"unterminated comment at character {i}")


def _lex(sql: str) -> _Lexed:
    """The code words of ``sql`` and how many statements it holds."""
    words: list[tuple[str, bool, bool]] = []
    statements, pending, i, n = 0, False, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"`":
            i, pending = _skip_quoted(sql, i, ch), True
        elif sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "$" and (doc := _HEREDOC.match(sql, i)):
            end = sql.find(doc.group(0), doc.end())
            if end < 0:
                raise SqlRefused(f"unterminated heredoc at character {i}")
            i, pending = end + len(doc.group(0)), True
        elif ch == ";":
            statements += pending
            pending, i = False, i + 1
        elif number := _NUMBER.match(sql, i):
            i, pending = number.end(), True
        elif word := _WORD.match(sql, i):
            i, pending = word.end(), True
            after = _SPACE.match(sql, i)
            nxt = sql[after.end() : after.end() + 1] if after is not None else ""
            back = word.start() - 1
            while back >= 0 and sql[back].isspace():
                back -= 1
            dotted = nxt == "." or (back >= 0 and sql[back] == ".")
            words.append((word.group(0), nxt == "(", dotted))
        else:
            i, pending = i + 1, True
    return _Lexed(words, statements + pending)


def code_words(sql: str) -> list[str]:
    """The words of ``sql`` that are code (not in strings, identifiers in quotes or comments).

    Raises:
        SqlRefused: an unterminated string, quoted identifier or comment.
    """
    return [w for w, _, _ in _lex(sql).words]


def single_statement(sql: str) -> None:
    """Refuse text holding more than one statement, or that the lexer cannot end.

    Raises:
        SqlRefused: saying why.
    """
    if _lex(sql).statements > 1:
        raise SqlRefused("Multi-statements are not allowed")


def read_only_refusal(sql: str) -> str | None:
    """Why a reader may not run ``sql`` (``None``: it may); see the module docstring."""
    try:
        lexed = _lex(sql)
    except SqlRefused as exc:
        return str(exc)
    if lexed.statements > 1:
        return "Multi-statements are not allowed"
    if not lexed.words or lexed.words[0][0].upper() not in READ_STARTS:
        first = lexed.words[0][0] if lexed.words else "(nothing)"
        return f"only SELECT, WITH, SHOW, DESCRIBE and EXISTS are allowed, not {first}"
    for word, call, dotted in lexed.words:
        if word.upper() in WRITE_WORDS and not dotted:  # dotted: a name (system.settings)
            return f"{word.upper()} is not allowed in read-only mode"
        if call and word.lower() in OUTSIDE_FUNCTIONS:
            return f"the function {word}() is not allowed in read-only mode"
    return None
