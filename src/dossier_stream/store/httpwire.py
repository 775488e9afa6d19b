"""HTTP/1.1 requests read with limits: what the store-server reads from a socket.

Everything a client sends is bounded before it is kept (:class:`Limits`):
the request line, the header block, the body on the wire (``Content-Length``
and ``chunked`` alike, refused as soon as it announces or reaches more than
allowed) and the body once decompressed (``Content-Encoding`` gzip, deflate,
zstd, lz4, decoded as a stream in 64 KiB pieces, so a small bomb stops at
the limit instead of expanding in memory). Every read of a request shares
one deadline (:attr:`Limits.read_timeout_s`, from when the server starts
waiting for it): a client that sends a byte now and then cannot hold a
connection longer than that. What exceeds a limit is an :class:`HttpError`
carrying the status to answer (``400``, ``408``, ``413``, ``414``, ``431``,
``501``) and a message naming the setting.
"""

from __future__ import annotations

import importlib
import math
import re
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ClientGone",
    "HttpError",
    "Limits",
    "ReadTimeout",
    "Reader",
    "Request",
    "body_pieces",
    "check_encoding",
    "decoded",
    "read_head",
]

PIECE: Final = 64 * 1024
"""The most a single read or decompression step produces."""

MAX_HEADERS: Final = 100
MAX_CHUNK_LINE: Final = 4096
ENCODINGS: Final = ("gzip", "deflate", "zstd", "lz4")
"""The ``Content-Encoding`` values accepted (besides ``identity``)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may send; every value is a ``DOSSIER_STORE_SERVER_*`` setting.

    Attributes:
        max_request_line: bytes of the request line (method, URL with its
            query parameters, version).
        max_header_bytes: bytes of all header lines together (and of a
            chunked body's trailers).
        max_body_bytes: bytes of the body as sent (compressed or not).
        max_decompressed_bytes: bytes of the body once decompressed.
        max_query_bytes: bytes of a statement's SQL text (the ``query``
            parameter and the body up to an ``INSERT``'s data), kept in memory.
        read_timeout_s: the most a request may take to arrive, from when the
            server starts waiting for it (an idle keep-alive connection is
            closed after it).
        max_connections: connections served at once; more are answered
            ``503`` and closed.
    """

    max_request_line: int = 64 * 1024
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 4 * 50_000 * 1024  # the sink's largest flush (cli/storeserver.py)
    max_decompressed_bytes: int = 4 * 50_000 * 1024
    max_query_bytes: int = 1024 * 1024
    read_timeout_s: float = 30.0
    max_connections: int = 64


class HttpError(Exception):
    """A request refused before it reached the engine: answer ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ReadTimeout(Exception):
    """The request did not arrive within :attr:`Limits.read_timeout_s`."""


class ClientGone(Exception):
    """The client closed the connection."""


class Reader:
    """Buffered reads from a socket, each bounded by :attr:`deadline` (monotonic seconds)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.deadline = math.inf
        self.received = 0

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ReadTimeout
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(PIECE)
        except TimeoutError:
            raise ReadTimeout from None
        if not data:
            raise ClientGone
        self.received += len(data)
        self.buf += data

    def readline(self, limit: int, too_long: HttpError) -> bytes:
        """One line (with its ``\\n``) of at most ``limit`` bytes; else ``too_long``."""
        start = 0
        while True:
            end = self.buf.find(b"\n", start)
            if 0 <= end < limit:
                line = bytes(self.buf[: end + 1])
                del self.buf[: end + 1]
                return line
            if end >= limit or len(self.buf) >= limit:
                raise too_long
            start = len(self.buf)
            self._fill()

    def read_some(self, n: int) -> bytes:
        """Between 1 and ``n`` bytes."""
        if not self.buf:
            self._fill()
        piece = bytes(self.buf[:n])
        del self.buf[:n]
        return piece


@dataclass(slots=True)
class Request:
    """A request line and its headers (names in lower case, repeated values kept)."""

    method: str
    target: str
    version: str
    headers: dict[str, list[str]] = field(default_factory=dict)

    def header(self, name: str, default: str = "") -> str:
        """The header's value (repeated ones joined by ``, ``)."""
        values = self.headers.get(name.lower())
        return ", ".join(values) if values else default

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after the answer."""
        tokens = {t.strip().lower() for t in self.header("connection").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def has_body(self) -> bool:
        return "content-length" in self.headers or "transfer-encoding" in self.headers


_REQUEST_LINE = re.compile(r"^([A-Z]{1,16}) (\S+) (HTTP/1\.[01])$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_HEX = re.compile(rb"^[0-9A-Fa-f]{1,15}$")


def read_head(reader: Reader, limits: Limits) -> Request | None:
    """The next request's line and headers; ``None`` if the client closed before sending one.

    Raises:
        HttpError: a request line or header block over its limit, or malformed.
        ReadTimeout: the head did not arrive in time.
    """
    too_long = HttpError(414, f"request line over {limits.max_request_line} bytes "
                              "(DOSSIER_STORE_SERVER_MAX_REQUEST_LINE)")  # fmt: skip
    before = reader.received + len(reader.buf)
    line = b""
    for _ in range(8):  # a few empty lines before a request are tolerated (RFC 9112)
        try:
            line = reader.readline(limits.max_request_line + 2, too_long)
        except ClientGone:
            if reader.received + len(reader.buf) == before:
                return None
            raise
        if line.strip():
            break
    text = line.rstrip(b"\r\n").decode("latin-1")
    if len(text) > limits.max_request_line:
        raise too_long
    match = _REQUEST_LINE.match(text)
    if match is None:
        raise HttpError(400, "malformed request line")
    request = Request(match.group(1), match.group(2), match.group(3))
    budget = limits.max_header_bytes
    _read_fields(reader, request.headers, budget, "DOSSIER_STORE_SERVER_MAX_HEADER_BYTES")
    return request


def _read_fields(reader: Reader, into: dict[str, list[str]], budget: int, setting: str) -> None:
    """Header (or trailer) lines up to the empty line, ``budget`` bytes in all."""
    too_big = HttpError(431, f"request headers over {budget} bytes ({setting})")
    count = 0
    while True:
        line = reader.readline(budget + 1, too_big)
        budget -= len(line)
        if budget < 0:
            raise too_big
        if line in {b"\r\n", b"\n"}:
            return
        count += 1
        if count > MAX_HEADERS:
            raise HttpError(431, f"more than {MAX_HEADERS} header lines")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not _TOKEN.match(name):
            raise HttpError(400, "malformed header line")
        into.setdefault(name.lower(), []).append(value.strip())


def body_pieces(reader: Reader, request: Request, limits: Limits) -> Iterator[bytes]:
    """The body as sent (before decompression), in pieces, within ``max_body_bytes``.

    Raises:
        HttpError: malformed framing (``400``), an unknown transfer coding
            (``501``), or a body over the limit (``413``) — announced or reached.
    """
    limit = limits.max_body_bytes
    over = HttpError(413, f"request body over {limit} bytes (DOSSIER_STORE_SERVER_MAX_BODY_BYTES)")
    codings = request.headers.get("transfer-encoding")
    lengths = request.headers.get("content-length")
    if codings is not None:
        if lengths is not None:
            raise HttpError(400, "both Content-Length and Transfer-Encoding")
        if [c.strip().lower() for c in ", ".join(codings).split(",")] != ["chunked"]:
            raise HttpError(501, f"Transfer-Encoding {', '.join(codings)!r} is not supported")
        yield from _chunked(reader, limits, over)
        return
    if lengths is None:
        return
    values = {v.strip() for v in ", ".join(lengths).split(",")}
    if len(values) != 1 or not _DIGITS.match(text := values.pop()):
        raise HttpError(400, f"Content-Length {', '.join(lengths)[:40]!r} is not a number")
    remaining = int(text)
    if remaining > limit:
        raise over
    while remaining:
        piece = reader.read_some(min(remaining, PIECE))
        remaining -= len(piece)
        yield piece


def _chunked(reader: Reader, limits: Limits, over: HttpError) -> Iterator[bytes]:
    bad = HttpError(400, "malformed chunked body")
    total = 0
    while True:
        line = reader.readline(MAX_CHUNK_LINE, bad)
        size_text = line.split(b";", 1)[0].strip()
        if not _HEX.match(size_text):
            raise bad
        size = int(size_text, 16)
        if size == 0:
            trailers: dict[str, list[str]] = {}
            _read_fields(reader, trailers, limits.max_header_bytes,
                         "DOSSIER_STORE_SERVER_MAX_HEADER_BYTES")  # fmt: skip
            return
        total += size
        if total > limits.max_body_bytes:
            raise over
        while size:
            piece = reader.read_some(min(size, PIECE))
            size -= len(piece)
            yield piece
        if reader.readline(3, bad).strip():
            raise bad


class _Stream:
    """A streaming decompressor of concatenated frames (members), bounded output per step."""

    def __init__(self, make: Callable[[], Any], zlib_style: bool) -> None:
        self.make = make
        self.zlib_style = zlib_style
        self.d = make()
        self.started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while True:
            if data:
                self.started = True
            if self.zlib_style:
                out = self.d.decompress(data, PIECE)
                data = self.d.unconsumed_tail
                more = bool(out) or bool(data)
            else:
                out = self.d.decompress(data, PIECE)
                data = b""
                more = not self.d.needs_input
            if out:
                yield out
            if self.d.eof:
                data = (self.d.unused_data or b"") + data
                self.d, self.started = self.make(), False
                if not data:
                    return
                continue
            if not more:
                return

    def finish(self) -> None:
        if self.started:
            raise HttpError(400, "the compressed body ends in the middle of a frame")


def _decoder(encoding: str) -> _Stream:
    if encoding == "gzip":
        return _Stream(lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), True)
    if encoding == "deflate":
        return _Stream(lambda: zlib.decompressobj(zlib.MAX_WBITS), True)
    if encoding == "zstd":
        return _Stream(importlib.import_module("backports.zstd").ZstdDecompressor, False)
    if encoding == "lz4":
        return _Stream(importlib.import_module("lz4.frame").LZ4FrameDecompressor, False)
    raise HttpError(415, f"Content-Encoding {encoding!r} is not supported (use one of "
                         f"{', '.join(ENCODINGS)})")  # fmt: skip


def check_encoding(encoding: str) -> None:
    """Refuse an unsupported ``Content-Encoding`` before reading the body (``415``)."""
    if encoding not in {"", "identity", *ENCODINGS}:
        _decoder(encoding)


def decoded(pieces: Iterator[bytes], encoding: str, limit: int) -> Iterator[bytes]:
    """``pieces`` decompressed by ``encoding``, within ``limit`` bytes in all.

    Raises:
        HttpError: ``413`` past the limit, ``400`` for a corrupt stream,
            ``415`` for an unsupported encoding.
    """
    over = HttpError(413, f"decompressed request body over {limit} bytes "
                          "(DOSSIER_STORE_SERVER_MAX_DECOMPRESSED_BYTES)")  # fmt: skip
    total = 0
    if encoding in {"", "identity"}:
        for piece in pieces:
            total += len(piece)
            if total > limit:
                raise over
            yield piece
        return
    stream = _decoder(encoding)
    for piece in pieces:
        try:
            for out in stream.feed(piece):
                total += len(out)
                if total > limit:
                    raise over
                yield out
        except HttpError:
            raise
        except Exception as exc:  # zlib.error, ZstdError, lz4's RuntimeError …
            raise HttpError(400, f"corrupt {encoding} body: {exc}") from None
    stream.finish()
