"""The streaming shell: the processor that hands Kafka messages to the core, the batch
(aiokafka) and Faust runtimes, worker wiring, metrics, live figures and the embedded
broker.
"""

from __future__ import annotations

from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import (
    Worker,
    create_topics,
    open_store,
    produce_lines,
    report_from_store,
)

__all__ = [
    "EmbeddedBroker",
    "Worker",
    "create_topics",
    "open_store",
    "produce_lines",
    "report_from_store",
]
