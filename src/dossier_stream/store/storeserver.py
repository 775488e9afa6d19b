"""``dossier-stream store-server``: one embedded ClickHouse (chdb) shared over HTTP.

chdb runs ClickHouse inside one process, and only one process may open a data
path ("Cannot lock file …/status"): two workers cannot share an embedded
store. This server owns the path and answers the part of ClickHouse's HTTP
interface that clickhouse-connect's HTTP client uses, so workers, ``report``
and ``reconcile`` reach it with an ordinary DSN,
``http://user:password@127.0.0.1:PORT/default`` — the very code path of a
real ClickHouse server; nothing in the worker knows the difference.

What it implements (enough for clickhouse-connect, not a ClickHouse server):

* ``GET /ping`` (and ``GET /``): ``Ok.``, without authentication (as ClickHouse);
* a statement from the ``query`` URL parameter and/or the request body (the
  parameter first, as ClickHouse does), one statement per request;
  ``param_NAME`` values for ``{NAME:Type}`` placeholders; ``database``
  (``USE``); any other parameter that is a ClickHouse setting is applied for
  that request only; transport parameters (``query_id``, ``session_id``,
  ``compress``, progress headers …) are accepted and ignored;
* ``INSERT … FORMAT F`` followed by data in the body (the payload is
  streamed to a temporary file and goes to the engine with ``INSERT … FROM
  INFILE``), the body chunked and/or compressed (``Content-Encoding:
  lz4|zstd|gzip|deflate``);
* results in the format the statement asks for (``FORMAT Native`` from
  clickhouse-connect; TabSeparated otherwise), uncompressed, with
  ``X-ClickHouse-Format`` and ``X-ClickHouse-Timezone``; errors as ClickHouse
  sends them: the ``Code: N. DB::Exception: …`` text and
  ``X-ClickHouse-Exception-Code``.

Safety (see the README's threat model):

* every request is read within :class:`~.httpwire.Limits` (request line,
  headers, body on the wire and decompressed, SQL text, one deadline per
  request, a bounded number of connections); what exceeds a limit is
  answered ``413``/``414``/``431``/``408``, what is malformed ``400``, and
  the connection is closed — the process goes on;
* with credentials (:class:`Credential`), every request but ``/ping``
  authenticates as ClickHouse's HTTP interface accepts it: HTTP basic auth
  (what clickhouse-connect sends for ``http://user:password@host``),
  ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, or ``user``/``password``
  URL parameters; otherwise ``401``;
* a read-only credential (or a read-only server) runs only reads: the
  statement passes :func:`~.sqlguard.read_only_refusal` and runs on an
  engine session opened with ``readonly=1``; anything else is ``403``. A
  ``GET`` is read-only too (as in ClickHouse);
* a request from a web browser (``Origin`` or ``Sec-Fetch-Site``: no client
  of this project sends them) is refused, so a web page open on the same
  machine cannot make the browser send statements to a loopback server
  without a password (cross-site requests, DNS rebinding).

Statements run one at a time (one lock): a store for a few workers of one
machine, not a database server. There is no TLS: beyond loopback, put it
behind a TLS proxy or on a private network.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import select
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import parse_qsl, urlsplit

from dossier_stream.store.httpwire import (
    ClientGone,
    HttpError,
    Limits,
    Reader,
    ReadTimeout,
    Request,
    body_pieces,
    check_encoding,
    decoded,
    read_head,
)
from dossier_stream.store.serverauth import Credential, find_user, is_loopback, presented
from dossier_stream.store.sqlguard import (
    READ_STARTS,
    SqlRefused,
    code_words,
    read_only_refusal,
    single_statement,
)

__all__ = ["Credential", "Limits", "StoreServer", "is_loopback"]

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
LINGER_S: Final = 2.0
"""After refusing a request mid-body, how long the server reads (and drops) what the
client still sends, so that the client can read the answer before the connection closes."""


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Session:
    """One chdb connection and what was set on it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.settings: dict[str, str] = {}
        self.database = "default"

    def run(self, sql: str, fmt: str, params: dict[str, str] | None = None) -> bytes:
        result = self.conn.query(sql, fmt, params=params or {})
        return bytes(result.bytes()) if result is not None else b""


class _Engine:
    """The chdb engine: a read-write session and a ``readonly=1`` one, one request at a time."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        chdb = importlib.import_module("chdb")
        where = str(path.resolve())
        self._rw = _Session(chdb.connect(where))
        self._ro = _Session(chdb.connect(f"file:{where}?readonly=1"))
        self._lock = threading.Lock()
        self.timezone = self._rw.run("SELECT timezone()", "TabSeparated").decode().strip()

    @staticmethod
    def _set(session: _Session, settings: dict[str, str]) -> None:
        for name in session.settings.keys() - settings.keys():
            session.run(f"SET {name} = DEFAULT", "TabSeparated")
        for name, value in settings.items():
            if session.settings.get(name) != value:
                session.run(f"SET {name} = {_quote(value)}", "TabSeparated")
        session.settings = dict(settings)

    def execute(
        self,
        sql: str,
        params: dict[str, str],
        settings: dict[str, str],
        database: str | None,
        *,
        read_only: bool = False,
    ) -> tuple[bytes, str]:
        """Run one statement; returns its output and the output format."""
        match = _FORMAT_AT_END.search(sql)
        fmt = match.group(1) if match else "TabSeparated"
        session = self._ro if read_only else self._rw
        with self._lock:
            if database and database != session.database:
                session.run(f"USE `{database.replace('`', '')}`", "TabSeparated")
                session.database = database
            self._set(session, settings)
            return session.run(sql, fmt, params), fmt

    def close(self) -> None:
        with self._lock:
            self._ro.conn.close()
            self._rw.conn.close()


class _Refused(Exception):
    """A statement refused like ClickHouse refuses it: status, exception code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Handler(socketserver.BaseRequestHandler):
    """One connection: requests read within the limits, answered, until close or error."""

    server: _Server
    request: socket.socket

    def handle(self) -> None:
        reader = Reader(self.request)
        limits = self.server.limits
        while True:
            # an idle keep-alive connection waits up to the read timeout for its next
            # request and is then closed silently (as ClickHouse does); the timeout of a
            # request counts from its first byte, so idle time never makes it late
            if not reader.buf:  # poll, not select: a busy process has descriptors over 1024
                waiting = select.poll()
                waiting.register(self.request, select.POLLIN)
                if not waiting.poll(limits.read_timeout_s * 1000):
                    return
            reader.deadline = time.monotonic() + limits.read_timeout_s
            started = reader.received + len(reader.buf)
            try:
                head = read_head(reader, limits)
                if head is None:
                    return
                keep = self._serve(reader, head)
            except ReadTimeout:
                if reader.received + len(reader.buf) > started:
                    late = f"the request did not arrive within {limits.read_timeout_s:g} s"
                    self._refuse(408, 1001, f"{late} (DOSSIER_STORE_SERVER_READ_TIMEOUT_S)")
                return
            except HttpError as exc:
                self._refuse(exc.status, 1001, exc.message)
                return
            except (ClientGone, OSError):
                return
            if not keep:
                return

    # ------------------------------------------------------------------ answers
    def _send(self, status: int, body: bytes, headers: dict[str, str], close: bool) -> None:
        phrase = HTTPStatus(status).phrase
        lines = [f"HTTP/1.1 {status} {phrase}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if close:
            lines.append("Connection: close")
        self.request.settimeout(self.server.limits.read_timeout_s)
        self.request.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _error(self, status: int, code: int, message: str, close: bool) -> None:
        text = f"Code: {code}. DB::Exception: {message}\n".encode()
        headers = {"Content-Type": "text/plain; charset=UTF-8",
                   "X-ClickHouse-Exception-Code": str(code)}  # fmt: skip
        if status == HTTPStatus.UNAUTHORIZED:
            headers["WWW-Authenticate"] = 'Basic realm="dossier-stream store-server"'
        self._send(status, text, headers, close)

    def _refuse(self, status: int, code: int, message: str) -> None:
        """Answer and close, reading what the client still sends for a moment.

        Used when the request's body is not read: closing at once could reset
        the connection before the client reads the answer.
        """
        _LOG.info("refused a request from %s: %s %s", self.client_address[0], status, message)
        with contextlib.suppress(OSError):
            self._error(status, code, message, close=True)
            self.request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_S
            while (left := deadline - time.monotonic()) > 0:
                self.request.settimeout(left)
                if not self.request.recv(64 * 1024):
                    break

    # ------------------------------------------------------------------ requests
    def _serve(self, reader: Reader, head: Request) -> bool:
        """Answer one request; returns whether the connection stays open."""
        if head.method not in {"GET", "POST"}:
            raise HttpError(405, f"method {head.method} is not supported")
        url = urlsplit(head.target)
        args = dict(parse_qsl(url.query, keep_blank_values=True))
        query = args.get("query", "")
        keep = head.keep_alive
        if url.path == "/ping" or (url.path == "/" and not query and not head.has_body):
            if head.has_body:
                raise HttpError(400, "/ping takes no body")
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain"}, not keep)
            return keep
        limits = self.server.limits
        encoding = head.header("content-encoding").strip().lower()
        wire = reader.received - len(reader.buf)
        body = _Body(
            decoded(body_pieces(reader, head, limits), encoding, limits.max_decompressed_bytes),
            done=not head.has_body,
        )
        try:
            if "origin" in head.headers or "sec-fetch-site" in head.headers:
                raise _Refused(403, 497, "requests from web browsers are not served")
            # a GET is read-only, as in ClickHouse (a link or an image cannot write)
            read_only = self._authenticate(head, args) or head.method == "GET"
            if read_only:
                _check_start(query)
            check_encoding(encoding)
            if head.header("expect").lower() == "100-continue":
                self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            out, fmt = self._statement(query, body, args, read_only)
        except _Refused as exc:
            if not body.done:
                self._refuse(exc.status, exc.code, exc.message)
                return False
            self._error(exc.status, exc.code, exc.message, close=not keep)
            return keep
        sent = reader.received - len(reader.buf) - wire
        _LOG.debug("request body: %s bytes sent, %s decoded (%s)", sent, body.size, encoding)
        self._send(
            200,
            out,
            {"Content-Type": "application/octet-stream", "X-ClickHouse-Format": fmt,
             "X-ClickHouse-Timezone": self.server.engine.timezone},
            not keep,
        )  # fmt: skip
        return keep

    def _authenticate(self, head: Request, args: dict[str, str]) -> bool:
        """Whether the request is read-only; raises :class:`_Refused` (``401``) if unknown."""
        server = self.server
        if not server.credentials:
            return server.read_only
        user, password = presented(head, args)
        found = find_user(server.credentials, user, password)
        if found is None:
            why = "password is incorrect, or there is no user with such name"
            raise _Refused(401, 516, f"{user or 'default'}: Authentication failed: {why}")
        return found.read_only or server.read_only

    def _statement(
        self, query: str, body: _Body, args: dict[str, str], read_only: bool
    ) -> tuple[bytes, str]:
        """Read the statement (and an INSERT's data), check it, run it."""
        limits = self.server.limits
        text = bytearray(query.encode())
        ended, first = True, True
        for piece in body:
            if first and text:
                text += b"\n"  # the parameter, then the body (as ClickHouse joins them)
            first = False
            text += piece
            if len(text) >= limits.max_query_bytes:
                ended = False
                break
        data = _INSERT_DATA.match(text)
        if data is not None and (ended or data.end() < len(text)):
            statement = text[: data.start(1)].decode(errors="replace").rstrip()
            statement = statement[: -len("FORMAT")].rstrip()  # what precedes FORMAT F
            self._check(statement, read_only)
            with tempfile.NamedTemporaryFile(prefix="insert-", dir=self.server.spool) as tmp:
                tmp.write(text[data.end() :])
                del text
                _copy(body, tmp)
                tmp.flush()
                sql = f"{statement}\nFROM INFILE {_quote(tmp.name)} FORMAT {data.group(1).decode()}"
                return self._run(sql, args, read_only)
        if not ended:
            raise HttpError(413, f"statement over {limits.max_query_bytes} bytes "
                                 "(DOSSIER_STORE_SERVER_MAX_QUERY_BYTES)")  # fmt: skip
        try:
            sql = text.decode()
        except UnicodeDecodeError:
            raise _Refused(400, 62, "the statement is not UTF-8") from None
        self._check(sql, read_only)
        return self._run(sql, args, read_only)

    @staticmethod
    def _check(sql: str, read_only: bool) -> None:
        try:
            single_statement(sql)
        except SqlRefused as exc:
            raise _Refused(400, 62, f"Syntax error: {exc}") from None
        if read_only and (why := read_only_refusal(sql)) is not None:
            raise _Refused(403, 164, f"Cannot execute query in readonly mode: {why}")

    def _run(self, sql: str, args: dict[str, str], read_only: bool) -> tuple[bytes, str]:
        params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
        settings = {
            k: v
            for k, v in args.items()
            if not k.startswith("param_") and k not in TRANSPORT_PARAMS and _SETTING.match(k)
        }
        if read_only and settings:
            raise _Refused(403, 164, f"Cannot modify {min(settings)!r} setting in readonly mode")
        try:
            return self.server.engine.execute(
                sql, params, settings, args.get("database"), read_only=read_only
            )
        except Exception as exc:  # the engine's error goes back to the client
            message = str(exc).strip() or type(exc).__name__
            found = _CODE.search(message)
            code = int(found.group(1)) if found else 1001
            message = message.removeprefix(f"Code: {code}. DB::Exception: ")
            raise _Refused(403 if code == 164 else 500, code, message) from None


def _copy(pieces: Iterable[bytes], out: IO[bytes]) -> None:
    for piece in pieces:
        out.write(piece)


class _Body:
    """A request's decoded body, read once; :attr:`done` once every byte was read."""

    def __init__(self, pieces: Iterator[bytes], *, done: bool) -> None:
        self._pieces = pieces
        self.done = done

        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            self.size += len(piece)
            yield piece
        self.done = True


def _check_start(query: str) -> None:
    """Refuse a reader's ``query`` parameter that does not start as a read (before the body)."""
    try:
        words = code_words(query)
    except SqlRefused as exc:
        raise _Refused(400, 62, f"Syntax error: {exc}") from None
    if words and words[0].upper() not in READ_STARTS:
        raise _Refused(403, 164, f"Cannot execute query in readonly mode: {words[0]} by a "
                                 "read-only user")  # fmt: skip


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        engine: _Engine,
        spool: Path,
        limits: Limits,
        credentials: Sequence[Credential],
        read_only: bool,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.engine = engine
        self.spool = spool
        self.limits = limits
        self.credentials = tuple(credentials)
        self.read_only = read_only
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _LOG.warning("%s connections open (DOSSIER_STORE_SERVER_MAX_CONNECTIONS): "
                         "refusing one", self.limits.max_connections)  # fmt: skip
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")  # fmt: skip
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class StoreServer:
    """An embedded ClickHouse at ``path``, served on ``host:port`` (see the module docstring).

    Args:
        path: the chdb data directory (created if missing).
        host: bind address (loopback by default).
        port: the port; 0 takes a free one (read :attr:`port` after :meth:`start`).
        limits: what one request may send, how many connections at once.
        credentials: the users accepted; none: every request is accepted
            (keep such a server on loopback: the command refuses otherwise).
        read_only: every request reads only, whatever its credential.
    """

    def __init__(
        self,
        path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: Limits | None = None,
        credentials: Sequence[Credential] = (),
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.host = host
        self.requested_port = port
        self.limits = limits or Limits()
        self.credentials = tuple(credentials)
        self.read_only = read_only
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
        """The DSN clients use (``DOSSIER_CLICKHOUSE_DSN``), without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/default"

    def start(self) -> str:
        """Open the engine, bind, serve in a thread; returns the DSN."""
        self._engine = _Engine(self.path)
        self._spool = tempfile.TemporaryDirectory(prefix="dossier-store-")
        try:
            self._server = _Server(
                (self.host, self.requested_port),
                self._engine,
                Path(self._spool.name),
                self.limits,
                self.credentials,
                self.read_only,
            )
        except OSError:
            self.stop()
            raise
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="store-server", daemon=True
        )
        self._thread.start()
        users = ", ".join(
            f"{c.user} ({'read-only' if c.read_only or self.read_only else 'read-write'})"
            for c in self.credentials
        )
        _LOG.info("serving the ClickHouse store %s on %s; users: %s", self.path, self.dsn,
                  users or "none (no authentication)")  # fmt: skip
        if not self.credentials and not self.read_only:
            _LOG.warning("no DOSSIER_STORE_SERVER_PASSWORD: every process of this machine can "
                         "run any statement on the store, DROP included")  # fmt: skip
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
