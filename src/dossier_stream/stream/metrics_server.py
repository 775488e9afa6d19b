"""``/metrics`` over HTTP: the worker's registry served in a daemon thread."""

from __future__ import annotations

import errno
import logging
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

__all__ = ["MetricsServer"]

_LOG = logging.getLogger(__name__)

_POLL_S = 0.05
"""How often the serving thread looks for a stop: what :meth:`MetricsServer.stop` waits at
most (``prometheus_client.start_http_server`` serves with the standard library's 0,5 s)."""


class _Quiet(WSGIRequestHandler):
    """A request handler that does not log each scrape to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


def _serve(
    registry: CollectorRegistry, host: str, port: int
) -> tuple[WSGIServer, threading.Thread]:
    """Bind ``host:port`` (IPv4 or IPv6) and serve ``registry`` from a daemon thread.

    What ``prometheus_client.start_http_server`` does (a thread per scrape, the
    address family chosen from the host), but served with a short poll, so
    that a stop does not wait half a second.
    """
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True  # a scrape in progress does not hold the process

    server = make_server(str(sockaddr[0]), port, make_wsgi_app(registry), Server, _Quiet)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": _POLL_S},
        name="metrics-http",
        daemon=True,
    )
    thread.start()
    return server, thread


class MetricsServer:
    """``/metrics`` of one registry over HTTP, in a daemon thread.

    Args:
        registry: what to serve.
        host: bind address (``0.0.0.0`` in a container, ``127.0.0.1`` in tests).
        port: the port; 0 binds an ephemeral one (read :attr:`port` after start).
        fallback: when ``port`` is busy, bind an ephemeral port (with a
            warning) instead of failing.
    """

    def __init__(
        self, registry: CollectorRegistry, *, host: str, port: int, fallback: bool = False
    ) -> None:
        self.registry = registry
        self.host = host
        self.requested_port = port
        self.fallback = fallback
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        """The bound port while serving."""
        return None if self._server is None else int(self._server.server_address[1])

    def start(self) -> int:
        """Bind and serve; returns the bound port.

        Raises:
            OSError: the address cannot be bound (the message names the setting).
        """
        if self._server is not None:
            return int(self._server.server_address[1])
        try:
            self._server, self._thread = _serve(self.registry, self.host, self.requested_port)
        except OSError as exc:
            if self.fallback and exc.errno == errno.EADDRINUSE and self.requested_port:
                _LOG.warning(
                    "metrics port %s is busy; serving on an ephemeral port "
                    "(set DOSSIER_METRICS_PORT to choose one)",
                    self.requested_port,
                )
                self._server, self._thread = _serve(self.registry, self.host, 0)
                return self._started()
            raise OSError(
                exc.errno,
                f"cannot serve metrics on {self.host}:{self.requested_port} "
                f"(DOSSIER_METRICS_HOST / DOSSIER_METRICS_PORT): {exc.strerror or exc}; "
                "DOSSIER_METRICS_PORT=0 picks a free port",
            ) from exc
        return self._started()

    def _started(self) -> int:
        assert self._server is not None
        port = int(self._server.server_address[1])
        _LOG.info("serving metrics on http://%s:%s/metrics", self.host, port)
        return port

    def stop(self) -> None:
        """Stop serving (within ``_POLL_S``) and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
