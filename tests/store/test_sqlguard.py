"""The store-server's SQL guard: one statement per request, and reads only for readers.

The lexer must read SQL as ClickHouse does, or a keyword could hide from it
(in what it takes for a comment or a string and the engine does not). So
besides the verdicts, every tricky text is run on a real chdb engine: what
the guard lets a reader run must leave the table there, and what it counts
as one statement chdb must run as one.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dossier_stream.store.sqlguard import (
    SqlRefused,
    code_words,
    read_only_refusal,
    single_statement,
)

READS = [
    "SELECT 1",
    "select count() FROM t",
    "  (SELECT 1)",
    "WITH 1 AS a SELECT a",
    "SHOW TABLES",
    "DESCRIBE t",
    "DESC t",
    "EXISTS t",
    "SELECT name, value, readonly FROM system.settings LIMIT 10000",  # clickhouse-connect
    "SELECT 'DROP TABLE t; INSERT INTO t VALUES (1)'",
    'SELECT 1 AS "INSERT"',
    "SELECT 1 AS `DROP`",
    "SELECT 1 -- ; DROP TABLE t",
    "SELECT 1 /* ; DROP TABLE t */",
    "SELECT 1 /* /* */ ; DROP TABLE t */",  # nested comments: all of it is a comment
    "SELECT $$; DROP TABLE t$$",
    "SELECT $tag$; DROP TABLE t$tag$",
    "SELECT 'it''s', 'a\\'b'",
    "SELECT 1;",
    "SELECT 1 FORMAT Native",
    "SELECT replaceAll('a', 'b', 'c'), t.x FROM t",
]

REFUSED = [
    "DROP TABLE t",
    "drop table t",
    "INSERT INTO t VALUES (1)",
    "ALTER TABLE t DELETE WHERE 1",
    "CREATE TABLE u (x Int8) ENGINE = Memory",
    "TRUNCATE TABLE t",
    "RENAME TABLE t TO u",
    "OPTIMIZE TABLE t FINAL",
    "SYSTEM STOP MERGES",
    "KILL QUERY WHERE 1",
    "SET max_threads = 1",
    "USE system",
    "GRANT ALL ON *.* TO x",
    "DELETE FROM t WHERE 1",
    "SELECT 1; DROP TABLE t",
    "SELECT 1;DROP TABLE t;",
    "/* a comment */ DROP TABLE t",
    "-- a comment\nDROP TABLE t",
    "/* /* nested */ */ DROP TABLE t",
    "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
    "SELECT 1 INTO OUTFILE '/tmp/x'",
    "SELECT file('/etc/hostname')",
    "SELECT * FROM url('http://127.0.0.1:1/', 'CSV')",
    "SELECT * FROM executable('x', 'CSV', 'a String')",
    "SELECT * FROM python('x')",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT x$a$ FROM t INTO OUTFILE '/tmp/p' -- $a$",  # $ is part of the word x$a$
    "SELECT xé$a$ FROM t INTO OUTFILE '/tmp/p' -- $a$",
    "SELECT 'unterminated",
    "SELECT 1 /* unterminated",
    "",
    "   ",
]


@pytest.mark.parametrize("sql", READS)
def test_reads_pass(sql: str) -> None:
    assert read_only_refusal(sql) is None
    single_statement(sql)


@pytest.mark.parametrize("sql", REFUSED)
def test_writes_and_tricks_are_refused(sql: str) -> None:
    assert read_only_refusal(sql) is not None


def test_one_statement_per_request_for_every_user() -> None:
    single_statement("CREATE TABLE u (x Int8) ENGINE = Memory")
    single_statement("INSERT INTO t VALUES (1);  -- done")
    for sql in ("SELECT 1; SELECT 2", "CREATE TABLE u (x Int8) ENGINE = Memory; DROP TABLE t"):
        with pytest.raises(SqlRefused, match="Multi-statements"):
            single_statement(sql)
    with pytest.raises(SqlRefused, match="unterminated"):
        single_statement("SELECT 'x")


def test_words_in_strings_comments_and_quotes_are_not_code() -> None:
    sql = "SELECT a, 'DROP' /* INSERT */ -- ALTER\n, `CREATE`, \"KILL\", $$SET$$ FROM t"
    assert code_words(sql) == ["SELECT", "a", "FROM", "t"]


@pytest.fixture
def chdb_conn(tmp_path: Path) -> Iterator[Any]:
    conn = importlib.import_module("chdb").connect(str(tmp_path / "ch"))
    try:
        yield conn
    finally:
        conn.close()


def _tables(conn: Any) -> set[str]:
    out = conn.query("SHOW TABLES", "TabSeparated")
    return set(bytes(out.bytes()).decode().split())


def test_the_lexer_reads_sql_as_chdb_does(chdb_conn: Any, tmp_path: Path) -> None:
    """Whatever the guard lets a reader run leaves the table (and no file) behind on chdb;
    whatever it counts as one statement chdb runs as one."""
    chdb_conn.query("CREATE TABLE t (x Int32) ENGINE = MergeTree ORDER BY x")
    chdb_conn.query("CREATE TABLE marker (x Int32) ENGINE = Memory")
    for sql in [s for s in READS + REFUSED if read_only_refusal(s) is None]:
        with contextlib.suppress(Exception):  # not valid SQL: nothing ran
            chdb_conn.query(sql.replace("/tmp/", f"{tmp_path}/"), "TabSeparated")
        assert {"t", "marker"} <= _tables(chdb_conn), sql
        assert not list(tmp_path.glob("p*")) and not (tmp_path / "x").exists(), sql
    # one statement by the guard's count is one statement for chdb: the marker stays
    for sql in ("SELECT 1 /* /* */ ; DROP TABLE marker */", "SELECT $$;DROP TABLE marker$$"):
        single_statement(sql)
        chdb_conn.query(sql, "TabSeparated")
        assert "marker" in _tables(chdb_conn), sql
