"""``dossier-stream backfill``: read a backlog with several worker processes (every core).

Registered on the ``dossier-stream`` group by :mod:`dossier_stream.cli.main`; the
work is :func:`dossier_stream.stream.backfill.run_backfill`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

__all__ = ["backfill"]


@click.command("backfill")
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (default: the machine's cores).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the workers keep their data and logs (default: DOSSIER_DATA_DIR/backfill).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=24 * 3600.0,
    show_default=True,
    help="Give up after this many seconds.",
)
def backfill(processes: int | None, workdir: Path | None, timeout: float) -> None:
    """Read everything waiting on the input topics with several worker processes, then stop.

    For a backlog (months of history after an outage, a migration, a new
    province): the workers join the worker's consumer group (DOSSIER_APP_ID)
    and split the partitions, one core each; they share the store (a chdb://
    store is served from this process while they run). The figures are the
    same as with one worker. Stop any running worker of the group first, or
    it takes its share too.
    """
    from dossier_stream.cli._common import core_or_exit, settings_or_exit  # noqa: PLC0415
    from dossier_stream.stream.backfill import BackfillError, run_backfill  # noqa: PLC0415

    settings = settings_or_exit()
    _, _, catalog = core_or_exit(settings)
    n = processes or os.cpu_count() or 1
    where = workdir or settings.data_dir / "backfill"

    def progress(left: int) -> None:
        print(f"\rcòn {left:,} sự kiện".replace(",", "."), end="", file=sys.stderr, flush=True)

    try:
        result = run_backfill(
            settings, catalog, processes=n, workdir=where, timeout_s=timeout, on_progress=progress
        )
    except (BackfillError, OSError, RuntimeError) as exc:
        raise click.ClickException(
            f"không hoàn tất được việc xử lý tồn đọng: {exc} (xem nhật ký trong {where})"
        ) from None
    print(file=sys.stderr)
    rate = f"{result.events_per_s:,.0f}".replace(",", ".")
    click.echo(
        f"Đã xử lý {result.messages:,} sự kiện tồn đọng bằng {result.processes} tiến trình "
        f"trong {result.seconds:.1f} giây ({rate} sự kiện/giây)".replace(",", "."),
    )
