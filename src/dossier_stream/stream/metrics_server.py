"""``/metrics`` over HTTP: the worker's registry served in a daemon thread."""

from __future__ import annotations

import errno
import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["MetricsServer"]

_LOG = logging.getLogger(__name__)


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
            self._server, self._thread = start_http_server(
                self.requested_port, addr=self.host, registry=self.registry
            )
        except OSError as exc:
            if self.fallback and exc.errno == errno.EADDRINUSE and self.requested_port:
                _LOG.warning(
                    "metrics port %s is busy; serving on an ephemeral port "
                    "(set DOSSIER_METRICS_PORT to choose one)",
                    self.requested_port,
                )
                self._server, self._thread = start_http_server(
                    0, addr=self.host, registry=self.registry
                )
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
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
