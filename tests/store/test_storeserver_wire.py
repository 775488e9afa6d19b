"""``store-server``'s HTTP reading, request by request, on an in-process server.

Every encoding it accepts decodes as a stream within the limit (a bomb of
each is refused ``413``, a truncated or corrupt stream ``400``, an unknown
one ``415``); the forms of a request ClickHouse accepts still work (the
statement in the body with an insert's data after it, keep-alive with
several requests on one connection, ``Expect: 100-continue``); a ``GET``
reads only; a request from a web browser is refused.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import lz4.frame
import pytest
from backports import zstd

from dossier_stream.cli.storeserver import server_credentials
from dossier_stream.settings import Settings
from dossier_stream.store.httpwire import Limits
from dossier_stream.store.sink import connect
from dossier_stream.store.storeserver import StoreServer

MiB = 1024 * 1024
LIMITS = Limits(max_body_bytes=2 * MiB, max_decompressed_bytes=4 * MiB, read_timeout_s=5)
INSERT = "/?query=INSERT+INTO+t+FORMAT+TSV"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    s = StoreServer(tmp_path_factory.mktemp("wire") / "ch", limits=LIMITS)
    s.start()
    client = connect(s.dsn)
    client.command("CREATE TABLE t (line String) ENGINE = MergeTree ORDER BY tuple()")
    client.close()
    try:
        yield s
    finally:
        s.stop()


def _exchange(port: int, raw: bytes, answers: int = 1) -> list[tuple[int, bytes]]:
    """Send ``raw``; read ``answers`` responses (status, body); fewer if the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        data, out = b"", []
        while len(out) < answers:
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                head = data[:head_end].decode("latin-1")
                status = int(head.split(" ", 2)[1])
                if status == 100:
                    data = data[head_end + 4 :]
                    continue
                length = int(next(
                    (ln.split(":", 1)[1] for ln in head.split("\r\n")
                     if ln.lower().startswith("content-length:")), "0",
                ))  # fmt: skip
                if len(data) >= head_end + 4 + length:
                    out.append((status, data[head_end + 4 : head_end + 4 + length]))
                    data = data[head_end + 4 + length :]
                    continue
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
        return out


def _post(target: str, body: bytes, headers: str = "") -> bytes:
    return (f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
            ).encode() + body  # fmt: skip


def _count(server: StoreServer) -> int:
    client = connect(server.dsn)
    try:
        return int(client.command("SELECT count() FROM t"))
    finally:
        client.close()


BOMBS = {
    "gzip": lambda data: gzip.compress(data, 9),
    "deflate": lambda data: zlib.compress(data, 9),
    "zstd": zstd.compress,
    "lz4": lz4.frame.compress,
}


@pytest.mark.parametrize("encoding", sorted(BOMBS))
def test_each_encoding_decodes_within_the_limit(server: StoreServer, encoding: str) -> None:
    before = _count(server)
    rows = b"".join(b"%d\n" % i for i in range(1000))
    frames = BOMBS[encoding](rows[:2000]) + BOMBS[encoding](rows[2000:])  # two frames
    if encoding == "deflate":
        frames = BOMBS[encoding](rows)  # a zlib stream is one frame
    head = f"Content-Encoding: {encoding}\r\n"
    assert _exchange(server.port, _post(INSERT, frames, head))[0][0] == 200
    assert _count(server) == before + 1000
    bomb = BOMBS[encoding](bytes(64 * MiB))
    assert len(bomb) < LIMITS.max_body_bytes
    status, text = _exchange(server.port, _post(INSERT, bomb, head))[0]
    assert status == 413 and b"DOSSIER_STORE_SERVER_MAX_DECOMPRESSED_BYTES" in text
    truncated = BOMBS[encoding](rows)[:-7]
    assert _exchange(server.port, _post(INSERT, truncated, head))[0][0] == 400
    assert _exchange(server.port, _post(INSERT, b"not compressed", head))[0][0] == 400
    assert _count(server) == before + 1000


def test_an_unknown_encoding_is_415_and_the_server_goes_on(server: StoreServer) -> None:
    raw = _post(INSERT, b"x\n", "Content-Encoding: br\r\n")
    assert _exchange(server.port, raw)[0][0] == 415


def test_the_forms_clickhouse_accepts_still_work(server: StoreServer) -> None:
    before = _count(server)
    # the statement in the body, the insert's data after it
    raw = _post("/", b"INSERT INTO t FORMAT TSV\nbody 1\nbody 2\n")
    assert _exchange(server.port, raw)[0][0] == 200
    # three requests on one connection (keep-alive), the last one chunked
    chunked = (b"POST /?query=SELECT+count()+FROM+t HTTP/1.1\r\nHost: x\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")  # fmt: skip
    answers = _exchange(server.port, _post("/", b"SELECT 1") + _post("/", b"SELECT 2") + chunked, 3)
    assert [a[0] for a in answers] == [200, 200, 200]
    assert [a[1] for a in answers] == [b"1\n", b"2\n", b"%d\n" % (before + 2)]
    # Expect: 100-continue
    raw = _post("/", b"SELECT 3", "Expect: 100-continue\r\n")
    assert _exchange(server.port, raw) == [(200, b"3\n")]


def test_a_get_reads_only_and_browsers_are_refused(server: StoreServer) -> None:
    get = b"GET /?query=SELECT+4 HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _exchange(server.port, get) == [(200, b"4\n")]
    drop = b"GET /?query=DROP+TABLE+t HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _exchange(server.port, drop)[0][0] == 403
    for header in ("Origin: http://evil.example", "Sec-Fetch-Site: cross-site"):
        raw = _post("/", b"DROP TABLE t", header + "\r\n")
        assert _exchange(server.port, raw)[0][0] == 403, header
    assert _count(server) >= 0  # the table is still there


def test_an_empty_password_is_no_password() -> None:
    """An empty secret (an empty file in DOSSIER_SECRETS_DIR) adds no user that anyone
    could authenticate as with an empty password."""
    settings = Settings(store_server_password="")  # type: ignore[arg-type]
    assert server_credentials(settings) == []


def test_a_read_only_server_reads_only_whoever_asks(tmp_path: Path) -> None:
    """``store-server --read-only`` (a subprocess: one chdb path per process)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dossier_stream", "store-server", "--path", str(tmp_path / "ch"),
         "--port", "0", "--read-only"],
        cwd=tmp_path, env={**os.environ, "DOSSIER_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        dsn = proc.stdout.readline().decode().strip().split("=", 1)[1]
        client = connect(dsn)
        try:
            assert client.command("SELECT count() FROM system.one") == 1
            for sql in (
                "CREATE TABLE kept (x Int8) ENGINE = MergeTree ORDER BY x",
                "INSERT INTO FUNCTION null('x Int8') VALUES (1)",
                "DROP TABLE system.one",
            ):
                with pytest.raises(Exception, match="164"):
                    client.command(sql)
            assert client.command("EXISTS TABLE kept") == 0
        finally:
            client.close()
    finally:
        proc.terminate()
        assert proc.wait(60) == 0
