"""``dossier-stream store-server``: one embedded ClickHouse (chdb) shared over HTTP.

chdb runs ClickHouse inside one process, and only one process may open a data
path ("Cannot lock file …/status"): two workers cannot share an embedded
store. This server owns the path and answers the part of ClickHouse's HTTP
interface that clickhouse-connect's HTTP client uses, so workers, ``report``
and ``reconcile`` reach it with an ordinary DSN,
``http://127.0.0.1:PORT/default`` — the very code path of a real ClickHouse
server; nothing in the worker knows the difference.

What it implements (enough for clickhouse-connect, not a ClickHouse server):

* ``GET /ping`` (and ``GET /``): ``Ok.``;
* a statement from the ``query`` URL parameter and/or the request body (the
  parameter first, as ClickHouse does); ``param_NAME`` values for
  ``{NAME:Type}`` placeholders; ``database`` (``USE``); any other parameter
  that is a ClickHouse setting is applied for that request only; transport
  parameters (``query_id``, ``session_id``, ``compress``, progress headers …)
  are accepted and ignored;
* ``INSERT … FORMAT F`` followed by data in the body (the payload goes to the
  engine through a temporary file, ``INSERT … FROM INFILE``), the body
  chunked and/or compressed (``Content-Encoding: lz4|zstd|gzip|deflate``);
* results in the format the statement asks for (``FORMAT Native`` from
  clickhouse-connect; TabSeparated otherwise), uncompressed, with
  ``X-ClickHouse-Format`` and ``X-ClickHouse-Timezone``; errors as ClickHouse
  sends them: status 500, the ``Code: N. DB::Exception: …`` text and
  ``X-ClickHouse-Exception-Code``.

Statements run one at a time (one engine connection, a lock): a store for a
few workers of one machine, not a database server. It has no users and no
TLS, so it listens on loopback unless told otherwise.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import logging
import re
import tempfile
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

__all__ = ["StoreServer"]

_LOG = logging.getLogger(__name__)

TRANSPORT_PARAMS: Final = frozenset({
    "query", "database", "query_id", "session_id", "session_timeout", "session_check",
    "compress", "decompress", "enable_http_compression", "wait_end_of_query",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "client_protocol_version", "default_format", "buffer_size", "quota_key", "role",
    "user", "password",
})  # fmt: skip
"""URL parameters that steer the HTTP exchange, not the engine: accepted, not applied."""

_FORMAT_AT_END = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT_DATA = re.compile(rb"^\s*INSERT\s+INTO\b.*?\bFORMAT\s+(\w+)[ \t]*(\r?\n)?", re.I | re.S)
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)")


def _decompress(data: bytes, encoding: str) -> bytes:
    """Undo a request's ``Content-Encoding``."""
    if encoding in {"", "identity"}:
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "lz4":  # one frame per block, concatenated
        frame = importlib.import_module("lz4.frame")
        parts, rest = [], data
        while rest:
            decompressor = frame.LZ4FrameDecompressor()
            parts.append(decompressor.decompress(rest))
            rest = decompressor.unused_data
        return b"".join(parts)
    if encoding == "zstd":  # decompresses every concatenated frame
        return bytes(importlib.import_module("backports.zstd").decompress(data))
    raise ValueError(f"Content-Encoding {encoding!r} is not supported")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Engine:
    """The one chdb connection, used by one request at a time."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._conn = importlib.import_module("chdb").connect(str(path.resolve()))
        self._lock = threading.Lock()
        self._settings: dict[str, str] = {}
        self._database = "default"
        self.timezone = self._run("SELECT timezone()", "TabSeparated").decode().strip()

    def _run(self, sql: str, fmt: str, params: dict[str, str] | None = None) -> bytes:
        result = self._conn.query(sql, fmt, params=params or {})
        return bytes(result.bytes()) if result is not None else b""

    def _set(self, settings: dict[str, str]) -> None:
        for name in self._settings.keys() - settings.keys():
            self._run(f"SET {name} = DEFAULT", "TabSeparated")
        for name, value in settings.items():
            if self._settings.get(name) != value:
                self._run(f"SET {name} = {_quote(value)}", "TabSeparated")
        self._settings = dict(settings)

    def execute(
        self, sql: str, params: dict[str, str], settings: dict[str, str], database: str | None
    ) -> tuple[bytes, str]:
        """Run one statement; returns its output and the output format."""
        match = _FORMAT_AT_END.search(sql)
        fmt = match.group(1) if match else "TabSeparated"
        with self._lock:
            if database and database != self._database:
                self._run(f"USE `{database.replace('`', '')}`", "TabSeparated")
                self._database = database
            self._set(settings)
            return self._run(sql, fmt, params), fmt

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if _LOG.isEnabledFor(logging.DEBUG):
            _LOG.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        self._handle(self._body())

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(parts)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return _decompress(body, self.headers.get("Content-Encoding", "").strip().lower())

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        args = dict(parse_qsl(url.query, keep_blank_values=True))
        query = args.get("query", "").encode()
        if url.path == "/ping" or (url.path == "/" and not query and not body):
            self._reply(HTTPStatus.OK, b"Ok.\n", {"Content-Type": "text/plain"})
            return
        engine = self.server.engine
        try:
            text = query + (b"\n" if query and body else b"") + body
            data = _INSERT_DATA.match(text)
            params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
            settings = {
                k: v
                for k, v in args.items()
                if not k.startswith("param_") and k not in TRANSPORT_PARAMS and _SETTING.match(k)
            }
            if data is None:
                out, fmt = engine.execute(text.decode(), params, settings, args.get("database"))
            else:
                out, fmt = self._insert(text, data, params, settings, args.get("database"))
        except Exception as exc:  # the engine's error goes back to the client
            message = str(exc).strip() or type(exc).__name__
            code = _CODE.search(message)
            self._reply(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                message.encode() + b"\n",
                {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": code.group(1) if code else "1001",
                },
            )
            return
        self._reply(
            HTTPStatus.OK,
            out,
            {
                "Content-Type": "application/octet-stream",
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Timezone": engine.timezone,
            },
        )

    def _insert(
        self,
        text: bytes,
        data: re.Match[bytes],
        params: dict[str, str],
        settings: dict[str, str],
        database: str | None,
    ) -> tuple[bytes, str]:
        statement = text[: data.start(1)].decode().rstrip()
        statement = statement[: -len("FORMAT")].rstrip()  # what precedes FORMAT F
        fmt = data.group(1).decode()
        with tempfile.NamedTemporaryFile(prefix="insert-", dir=self.server.spool) as tmp:
            tmp.write(text[data.end() :])
            tmp.flush()
            sql = f"{statement} FROM INFILE {_quote(tmp.name)} FORMAT {fmt}"
            return self.server.engine.execute(sql, params, settings, database)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: _Engine, spool: Path) -> None:
        super().__init__(address, _Handler)
        self.engine = engine
        self.spool = spool


class StoreServer:
    """An embedded ClickHouse at ``path``, served on ``host:port`` (see the module docstring).

    Args:
        path: the chdb data directory (created if missing).
        host: bind address (loopback by default: there is no authentication).
        port: the port; 0 takes a free one (read :attr:`port` after :meth:`start`).
    """

    def __init__(self, path: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.path = path
        self.host = host
        self.requested_port = port
        self._engine: _Engine | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._spool: tempfile.TemporaryDirectory[str] | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def dsn(self) -> str:
        """The DSN clients use (``DOSSIER_CLICKHOUSE_DSN``)."""
        return f"http://{self.host}:{self.port}/default"

    def start(self) -> str:
        """Open the engine, bind, serve in a thread; returns the DSN."""
        self._engine = _Engine(self.path)
        self._spool = tempfile.TemporaryDirectory(prefix="dossier-store-")
        try:
            self._server = _Server(
                (self.host, self.requested_port), self._engine, Path(self._spool.name)
            )
        except OSError:
            self.stop()
            raise
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="store-server", daemon=True
        )
        self._thread.start()
        _LOG.info("serving the ClickHouse store %s on %s", self.path, self.dsn)
        return self.dsn

    def stop(self) -> None:
        """Stop serving and close the engine (its path is free again)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._spool is not None:
            with contextlib.suppress(OSError):
                self._spool.cleanup()
            self._spool = None
