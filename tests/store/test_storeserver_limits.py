"""``store-server`` under hostile clients: limits, authentication, the read-only user.

One real ``dossier-stream store-server`` process (small limits, a password,
a reader) is attacked over raw sockets on loopback: an oversized body, an
endless chunked body, compression bombs, malformed ``Content-Length``
values, a request line and headers over their limits, a slow client that
never finishes its headers, more connections than allowed. Each is answered
(``413``/``400``/``408``/``414``/``431``/``503``) or closed within the
configured limits, the server's resident memory (``VmRSS`` of
``/proc/<pid>/status``) grows by less than :data:`RSS_GROWTH_LIMIT` over
all of them, and it still answers ``SELECT 1`` after each.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import os
import select
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from dossier_stream.core.indicators import sum_counters
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim import testing as t
from dossier_stream.store.batching import BatchingSink
from dossier_stream.store.reportreads import counter_totals, open_past_due_counts
from dossier_stream.store.sink import connect
from dossier_stream.stream.processor import Message, Processor
from dossier_stream.stream.runner import open_store, report_from_store
from streamharness import reconcile

MiB = 1024 * 1024
PASSWORD = "t0ken-for-tests"
READER_PASSWORD = "r3ader-token"
LIMITS = {
    "DOSSIER_STORE_SERVER_MAX_REQUEST_LINE": 8 * 1024,
    "DOSSIER_STORE_SERVER_MAX_HEADER_BYTES": 16 * 1024,
    "DOSSIER_STORE_SERVER_MAX_BODY_BYTES": 4 * MiB,
    "DOSSIER_STORE_SERVER_MAX_DECOMPRESSED_BYTES": 8 * MiB,
    "DOSSIER_STORE_SERVER_MAX_QUERY_BYTES": 256 * 1024,
    "DOSSIER_STORE_SERVER_READ_TIMEOUT_S": 3,
    "DOSSIER_STORE_SERVER_MAX_CONNECTIONS": 6,
}
READ_TIMEOUT_S = 3.0
SLACK_S = 10.0
"""Added to every time bound: the machine is shared, the bounds are about never, not speed."""
RSS_GROWTH_LIMIT = 96 * MiB
"""Far below what the attacks send or expand to (> 2 GiB), above allocator noise."""
INSERT = "INSERT INTO sink FORMAT TSV"


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    dsn: str

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def select_1(self) -> None:
        assert self.proc.poll() is None, "the server exited"
        client = connect(self.dsn)
        try:
            assert client.command("SELECT 1") == 1
        finally:
            client.close()


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    """Whether ``sock`` has something to read (poll, not select: this process may hold
    descriptors above 1024 by then, chdb keeps three per thread it has started)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(int(timeout_s * 1000)))


def _auth(user: str = "dossier", password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("limits")
    env = {
        **os.environ,
        "DOSSIER_LOG_LEVEL": "WARNING",
        "DOSSIER_STORE_SERVER_PASSWORD": PASSWORD,
        "DOSSIER_STORE_SERVER_READER_PASSWORD": READER_PASSWORD,
        **{k: str(v) for k, v in LIMITS.items()},
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dossier_stream", "store-server", "--path", str(tmp / "ch"),
         "--port", "0"],
        cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        assert line.startswith("DOSSIER_CLICKHOUSE_DSN=http://dossier:***@127.0.0.1:"), line
        dsn = line.split("=", 1)[1].replace("***", PASSWORD)
        port = int(dsn.rsplit(":", 1)[1].split("/")[0])
        s = Server(proc, port, dsn)
        client = connect(dsn)
        client.command("CREATE TABLE sink (line String) ENGINE = MergeTree ORDER BY tuple()")
        client.insert("sink", [[f"row {i}"] for i in range(10_000)], column_names=["line"])
        client.close()
        yield s
    finally:
        proc.terminate()
        assert proc.wait(60) == 0


def _request(port: int, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S + SLACK_S)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused mid-body
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
    return sock


def _status(sock: socket.socket) -> int | None:
    """The status of the answer, ``None`` if the server closed without one."""
    data = b""
    try:
        while b"\r\n" not in data:
            piece = sock.recv(4096)
            if not piece:
                break
            data += piece
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def _post(port: int, query: str, headers: dict[str, str], body: bytes = b"") -> int | None:
    lines = [f"POST /?query={query.replace(' ', '+')} HTTP/1.1", "Host: x",
             f"Authorization: {_auth()}"]  # fmt: skip
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return _status(_request(port, "\r\n".join(lines) + "\r\n", body))


def _gzip_bomb(expanded: int) -> bytes:
    """gzip members of 16 MiB of zeros, concatenated: ~16 KiB each on the wire."""
    member = gzip.compress(bytes(16 * MiB), compresslevel=9)
    return member * (expanded // (16 * MiB))


def test_hostile_requests_are_answered_within_limits_and_memory_stays_bounded(
    server: Server,
) -> None:
    server.select_1()
    before = server.rss()
    port = server.port
    t0 = time.monotonic()

    # an oversized body announced: refused before a byte of it is read
    assert _post(port, INSERT, {"Content-Length": "4000000000"}) == 413
    assert _post(port, INSERT, {"Content-Length": str(4 * MiB + 1)}) == 413
    server.select_1()

    # non-numeric, negative, repeated or contradicting framing
    for length in ("abc", "-1", "1e3", "12 34", "0x10", "99999999999999999999999"):
        assert _post(port, INSERT, {"Content-Length": length}) in {400, 413}, length
    assert _post(port, INSERT, {"Content-Length": "5", "Transfer-Encoding": "chunked"}) == 400
    assert _post(port, INSERT, {"Transfer-Encoding": "gzip"}) == 501
    assert _post(port, INSERT, {"Transfer-Encoding": "chunked"}, b"zz\r\nxx\r\n0\r\n\r\n") == 400
    server.select_1()

    # an endless chunked body: answered 413 once the limit is read, long before the client stops
    target = f"/?query={INSERT.replace(' ', '+')}"
    sock = _request(port, f"POST {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {_auth()}\r\n"
                    "Transfer-Encoding: chunked\r\n")  # fmt: skip
    chunk = b"%x\r\n" % (64 * 1024) + b"a\t" * (32 * 1024) + b"\r\n"
    sent, answered = 0, False
    while sent < 256 * MiB:
        if _readable(sock, 0):
            answered = True
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    assert answered, f"no answer after {sent} bytes"
    assert sent < 64 * MiB, sent
    assert _status(sock) == 413
    server.select_1()

    # compression bombs: 2 GiB of zeros in ~2 MiB of gzip members, 64 MiB in 64 KiB of deflate
    bomb = _gzip_bomb(2048 * MiB)
    assert len(bomb) < 4 * MiB
    headers = {"Content-Encoding": "gzip", "Content-Length": str(len(bomb))}
    assert _post(port, INSERT, headers, bomb) == 413
    deflate = zlib.compress(bytes(64 * MiB), 9)
    headers = {"Content-Encoding": "deflate", "Content-Length": str(len(deflate))}
    assert _post(port, INSERT, headers, deflate) == 413
    server.select_1()

    # a request line, headers, or a statement over their limits
    assert _status(_request(port, f"GET /?query={'1' * 10_000} HTTP/1.1\r\nHost: x\r\n")) == 414
    many = "".join(f"X-Pad-{i}: {'p' * 900}\r\n" for i in range(20))
    assert _status(_request(port, f"GET /ping HTTP/1.1\r\n{many}")) == 431
    statement = b"SELECT '" + b"x" * (300 * 1024) + b"'"
    assert _post(port, "", {"Content-Length": str(len(statement))}, statement) == 413
    server.select_1()

    # a slow client that never finishes its headers: cut off after the read timeout
    sock = _request(port, "POST / HTTP/1.1\r\nHost: x")
    start = time.monotonic()
    status = None
    while time.monotonic() - start < READ_TIMEOUT_S + SLACK_S:
        readable = _readable(sock, 0.5)
        if readable:
            status = _status(sock)
            break
        try:
            sock.sendall(b"a")  # a byte now and then: the deadline is per request
        except OSError:
            break
    assert time.monotonic() - start < READ_TIMEOUT_S + SLACK_S
    assert status in {408, None}
    server.select_1()

    # more connections than allowed: the extra ones are answered 503, then all is well
    opened = time.monotonic()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(6)]
    time.sleep(0.5)
    extra = _status(_request(port, "GET /ping HTTP/1.1\r\nHost: x\r\n"))
    if time.monotonic() - opened < READ_TIMEOUT_S:  # else the idle ones timed out already
        assert extra == 503
    for sock in idle:
        sock.close()
    deadline = time.monotonic() + SLACK_S
    while True:  # the server notices the closed connections
        try:
            server.select_1()
            break
        except Exception:
            assert time.monotonic() < deadline
            time.sleep(0.2)

    grown = server.rss() - before
    print(
        f"hostile requests: {time.monotonic() - t0:.1f} s, RSS {before / MiB:.0f} -> "
        f"{(before + grown) / MiB:.0f} MiB"
    )
    assert grown < RSS_GROWTH_LIMIT, f"RSS grew {grown / MiB:.0f} MiB"
    client = connect(server.dsn)
    try:
        assert client.command("SELECT count() FROM sink") == 10_000  # nothing refused got in
    finally:
        client.close()


def test_without_the_password_401_with_it_it_works(server: Server) -> None:
    port = server.port
    select_1 = b"SELECT 1"
    length = {"Content-Length": str(len(select_1))}
    head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n"
    assert _status(_request(port, head, select_1)) == 401
    wrong = f"{head}Authorization: {_auth(password='wrong')}\r\n"
    assert _status(_request(port, wrong, select_1)) == 401
    assert _post(port, "", length, select_1) == 200
    # ClickHouse's other ways: X-ClickHouse-User/Key headers, user/password parameters
    keyed = f"{head}X-ClickHouse-User: dossier\r\nX-ClickHouse-Key: {PASSWORD}\r\n"
    assert _status(_request(port, keyed, select_1)) == 200
    params = f"POST /?user=dossier&password={PASSWORD} HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n"
    assert _status(_request(port, params, select_1)) == 200
    # /ping answers anyone (health checks), as ClickHouse's
    assert _status(_request(port, "GET /ping HTTP/1.1\r\nHost: x\r\n")) == 200
    # clickhouse-connect: without a password it is refused, with it it works
    with pytest.raises(Exception, match=r"516|Authentication failed"):
        connect(server.dsn.replace(f":{PASSWORD}@", "@"))
    server.select_1()


def test_the_reader_reads_and_cannot_drop_insert_or_alter(server: Server) -> None:
    reader = connect(server.dsn.replace(f"dossier:{PASSWORD}", f"reader:{READER_PASSWORD}"))
    try:
        assert reader.command("SELECT count() FROM sink") == 10_000
        for sql in (
            "DROP TABLE sink",
            "INSERT INTO sink VALUES ('x')",
            "ALTER TABLE sink DELETE WHERE 1",
            "SELECT 1; DROP TABLE sink",
            "/* */ DROP TABLE sink",
            "WITH 1 AS a INSERT INTO sink SELECT 'x'",
            "SELECT 1 INTO OUTFILE 'stolen'",
            "SELECT file('/etc/hostname')",
        ):
            with pytest.raises(Exception, match=r"Code: (164|62)"):
                reader.command(sql)
        with pytest.raises(Exception, match="164"):
            reader.insert("sink", [["x"]], column_names=["line"])
        assert reader.command("SELECT count() FROM sink") == 10_000
        assert reader.command("EXISTS TABLE sink") == 1
    finally:
        reader.close()


def test_refuses_to_listen_beyond_loopback_without_a_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_STORE_SERVER_")}
    proc = subprocess.run(
        [sys.executable, "-m", "dossier_stream", "store-server", "--path", str(tmp_path / "ch"),
         "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    err = proc.stderr.decode().strip()
    assert proc.returncode != 0
    assert len(err.splitlines()) == 1, err
    assert "DOSSIER_STORE_SERVER_PASSWORD" in err and "Traceback" not in err
    assert not (tmp_path / "ch").exists()  # refused before opening the store


def test_report_and_reconcile_read_through_the_reader(
    server: Server, registry: UnitRegistry, calendar: WorkCalendar, tmp_path: Path
) -> None:
    """The writer migrates and stores; ``report``'s path (open_store, report_from_store)
    and the ``reconcile`` command run as the reader: on an up-to-date store they read."""
    writer = open_store(Settings(clickhouse_dsn=server.dsn))  # type: ignore[arg-type]
    try:
        sink = BatchingSink(writer, max_rows=1000, interval_s=60)
        proc = Processor(registry, calendar, load_catalog(), sink, writer)
        proc.handle([
            Message("dossier.submissions.v1", 0, 0, t.encode(t.received("R1", "HP-SO-TUPHAP"))),
        ])  # fmt: skip
        sink.flush()
        # rows that cancel out over two sources and two days: the report's second read
        writer.write_counters([
            ("a", "HP-SO-XAYDUNG", date(2024, 10, 2), "completed", 3),
            ("b", "HP-SO-XAYDUNG", date(2024, 10, 3), "completed", -3),
        ])  # fmt: skip
    finally:
        writer.close()
    reader_dsn = server.dsn.replace(f"dossier:{PASSWORD}", f"reader:{READER_PASSWORD}")
    reader = open_store(Settings(clickhouse_dsn=reader_dsn))  # type: ignore[arg-type]
    try:
        period = monthly_report(2024, 10)
        report = report_from_store(reader, registry, period)
        assert report["received"]["city"] == 1
        totals = counter_totals(reader, period.start, period.end)
        assert totals["HP-SO-XAYDUNG"] == {"completed": 0}
        assert totals == sum_counters(reader.counters(period.start, period.end), period)
        assert open_past_due_counts(reader, period.ends_at) == {"HP-SO-TUPHAP": 1}
        with pytest.raises(Exception, match=r"164|readonly"):  # refused by the client or server
            reader.write_counters([("x", "HP-SO-TUPHAP", date(2024, 10, 3), "received", 5)])
    finally:
        reader.close()
    result = reconcile({"DOSSIER_CLICKHOUSE_DSN": reader_dsn}, tmp_path, "2024-10")
    assert result["summary"]["differences"] == 0
