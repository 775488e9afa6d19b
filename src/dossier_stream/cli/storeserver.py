"""``dossier-stream store-server``: serve one embedded ClickHouse to several processes.

Registered on the ``dossier-stream`` group by :mod:`dossier_stream.cli.main`; the
server is :class:`dossier_stream.store.storeserver.StoreServer`.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlsplit

import click

if TYPE_CHECKING:
    from dossier_stream.settings import Settings
    from dossier_stream.store.storeserver import Credential, Limits

__all__ = ["body_limit", "server_credentials", "server_limits", "store_server"]


def chdb_path(dsn: str) -> Path | None:
    """The data directory of a ``chdb://`` DSN (``None`` for other schemes)."""
    parts = urlsplit(dsn)
    if parts.scheme != "chdb":
        return None
    return Path(parts.netloc + parts.path).resolve()


ROW_BUDGET_BYTES: Final = 1024
"""Bytes allowed per row of a flush: a ``dossier_facts`` row, the widest the sink writes,
is ~425 bytes in ClickHouse's Native format on average and ~800 at most (a 698-byte
state, the largest of the calibrated month; see the README)."""
MIN_BODY_BYTES: Final = 64 * 1024 * 1024


def body_limit(settings: Settings) -> int:
    """The body limit: the setting, else the sink's largest flush in :data:`ROW_BUDGET_BYTES`.

    A flush writes at most ``4 * DOSSIER_FLUSH_MAX_ROWS`` rows (the sink's
    backpressure bound, reached after a ClickHouse outage), in one insert per
    table; the body may arrive uncompressed (``?compress=false``).
    """
    if settings.store_server_max_body_bytes is not None:
        return settings.store_server_max_body_bytes
    return max(MIN_BODY_BYTES, 4 * settings.flush_max_rows * ROW_BUDGET_BYTES)


def server_limits(settings: Settings) -> Limits:
    """The request limits of the ``DOSSIER_STORE_SERVER_*`` settings."""
    from dossier_stream.store.storeserver import Limits  # noqa: PLC0415

    decompressed = settings.store_server_max_decompressed_bytes
    return Limits(
        max_request_line=settings.store_server_max_request_line,
        max_header_bytes=settings.store_server_max_header_bytes,
        max_body_bytes=body_limit(settings),
        max_decompressed_bytes=decompressed if decompressed is not None else body_limit(settings),
        max_query_bytes=settings.store_server_max_query_bytes,
        read_timeout_s=settings.store_server_read_timeout_s,
        max_connections=settings.store_server_max_connections,
    )


def server_credentials(settings: Settings) -> list[Credential]:
    """The users of the ``DOSSIER_STORE_SERVER_*`` settings (those with a password)."""
    from dossier_stream.store.storeserver import Credential  # noqa: PLC0415

    users = []
    if settings.store_server_password is not None:
        password = settings.store_server_password.get_secret_value()
        users.append(Credential(settings.store_server_user, password))
    if settings.store_server_reader_password is not None:
        password = settings.store_server_reader_password.get_secret_value()
        users.append(Credential(settings.store_server_reader_user, password, read_only=True))
    return users


@click.command("store-server")
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    help="chdb data directory (default: the path of a chdb:// DOSSIER_CLICKHOUSE_DSN, "
    "else .dossier-stream/clickhouse).",
)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Bind address; anything but loopback requires DOSSIER_STORE_SERVER_PASSWORD "
                   "(or DOSSIER_STORE_SERVER_READER_PASSWORD).")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8123, show_default=True,
              help="Port; 0 takes a free one.")  # fmt: skip
@click.option("--read-only", is_flag=True,
              help="Serve reads only (SELECT, SHOW …), whatever the user.")  # fmt: skip
def store_server(path: Path | None, host: str, port: int, read_only: bool) -> None:
    """Share one embedded ClickHouse (chdb) between workers, report and reconcile.

    chdb lets only one process open a data directory. This process opens it
    and answers ClickHouse's HTTP interface (the part clickhouse-connect
    uses), so several `dossier-stream worker` processes of one machine (one
    consumer group), and `report` / `reconcile` while they run, use it with

    \b
      DOSSIER_CLICKHOUSE_DSN=http://dossier:PASSWORD@127.0.0.1:8123/default

    It prints that line once listening (the password as ***), and serves
    until Ctrl-C or SIGTERM. Users: DOSSIER_STORE_SERVER_USER /
    DOSSIER_STORE_SERVER_PASSWORD (read-write) and
    DOSSIER_STORE_SERVER_READER_USER / DOSSIER_STORE_SERVER_READER_PASSWORD
    (read-only: report, dashboards); without a password it accepts anyone
    and listens on loopback only. Request limits: DOSSIER_STORE_SERVER_MAX_*.
    No TLS: for more than one machine, run a ClickHouse server.
    """
    from dossier_stream.cli._common import settings_or_exit  # noqa: PLC0415
    from dossier_stream.store.storeserver import StoreServer, is_loopback  # noqa: PLC0415

    settings = settings_or_exit()
    credentials = server_credentials(settings)
    if not credentials and not is_loopback(host):
        raise click.ClickException(
            f"refusing to serve the store on {host} without authentication: set "
            "DOSSIER_STORE_SERVER_PASSWORD (environment or a file in DOSSIER_SECRETS_DIR), "
            "or listen on 127.0.0.1"
        )
    where = path or chdb_path(settings.clickhouse_dsn.get_secret_value())
    server = StoreServer(
        where or Path(".dossier-stream/clickhouse"),
        host=host,
        port=port,
        limits=server_limits(settings),
        credentials=credentials,
        read_only=read_only,
    )
    try:
        dsn = server.start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"cannot serve the store: {exc}") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if credentials:
        dsn = dsn.replace("://", f"://{quote(credentials[0].user, safe='')}:***@", 1)
    click.echo(f"DOSSIER_CLICKHOUSE_DSN={dsn}", err=False)
    try:
        while not stop.wait(3600):
            pass
    finally:
        server.stop()
        click.echo("store-server stopped", err=True)
