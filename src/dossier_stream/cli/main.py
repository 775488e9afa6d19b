"""The ``dossier-stream`` command line.

Every command has ``--help``. Heavy modules are imported inside the commands,
so ``dossier-stream --help`` starts fast.
"""

from __future__ import annotations

import click

from dossier_stream.cli import deadletter, offline, pipeline, reconcile, reference, report
from dossier_stream.cli.backfill import backfill
from dossier_stream.cli.errors import GuidedGroup
from dossier_stream.cli.storeserver import store_server

__all__ = ["COMMANDS", "main"]


@click.group(cls=GuidedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dossier-stream")
@click.option(
    "--debug",
    is_flag=True,
    help="Log at DEBUG and show the traceback of any error (also DOSSIER_LOG_LEVEL=DEBUG).",
)
def main(debug: bool) -> None:
    """dossier-stream: administrative-procedure dossier events in, official figures out.

    Lifecycle events of dossiers (hồ sơ thủ tục hành chính) flow through Kafka
    topics into a stateful worker that keeps each dossier's state and the
    per-unit day counters of every indicator (online submission, online
    payment, digitization, on-time, ...), and prints the province's reports.

    A mistake (an unreachable broker or ClickHouse, a file that cannot be
    written, options that contradict each other) prints what to do and exits
    with a non-zero code; --debug shows the traceback instead.
    """


COMMANDS: tuple[click.Command, ...] = (
    reference.schemas,
    reference.units,
    reference.calendar,
    pipeline.init_db,
    pipeline.topics,
    pipeline.produce,
    pipeline.worker,
    backfill,
    pipeline.demo,
    report.report,
    reconcile.reconcile,
    deadletter.deadletter,
    offline.replay,
    offline.simulate_cmd,
    store_server,
)
"""Every command of the group."""

for _command in COMMANDS:
    main.add_command(_command)
