"""``dossier-stream store-server``: serve one embedded ClickHouse to several processes.

Registered on the ``dossier-stream`` group by :mod:`dossier_stream.cli.main`; the
server is :class:`dossier_stream.store.storeserver.StoreServer`.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import click

__all__ = ["store_server"]


def chdb_path(dsn: str) -> Path | None:
    """The data directory of a ``chdb://`` DSN (``None`` for other schemes)."""
    parts = urlsplit(dsn)
    if parts.scheme != "chdb":
        return None
    return Path(parts.netloc + parts.path).resolve()


@click.command("store-server")
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    help="chdb data directory (default: the path of a chdb:// DOSSIER_CLICKHOUSE_DSN, "
    "else .dossier-stream/clickhouse).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (no auth!).")
@click.option("--port", type=click.IntRange(0, 65535), default=8123, show_default=True,
              help="Port; 0 takes a free one.")  # fmt: skip
def store_server(path: Path | None, host: str, port: int) -> None:
    """Share one embedded ClickHouse (chdb) between workers, report and reconcile.

    chdb lets only one process open a data directory. This process opens it
    and answers ClickHouse's HTTP interface (the part clickhouse-connect
    uses), so several `dossier-stream worker` processes of one machine (one
    consumer group), and `report` / `reconcile` while they run, use it with

    \b
      DOSSIER_CLICKHOUSE_DSN=http://127.0.0.1:8123/default

    It prints that line once listening, and serves until Ctrl-C or SIGTERM.
    No users, no TLS: keep it on loopback. For more than one machine, run a
    ClickHouse server.
    """
    from dossier_stream.cli._common import settings_or_exit  # noqa: PLC0415
    from dossier_stream.store.storeserver import StoreServer  # noqa: PLC0415

    settings = settings_or_exit()
    where = path or chdb_path(settings.clickhouse_dsn.get_secret_value())
    server = StoreServer(where or Path(".dossier-stream/clickhouse"), host=host, port=port)
    try:
        dsn = server.start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"cannot serve the store: {exc}") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    click.echo(f"DOSSIER_CLICKHOUSE_DSN={dsn}", err=False)
    try:
        while not stop.wait(3600):
            pass
    finally:
        server.stop()
        click.echo("store-server stopped", err=True)
