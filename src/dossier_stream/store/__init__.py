"""Storage: ClickHouse tables and migrations, the batching sink, indicator views, the
per-partition RocksDB state store with its state codec, and the store-server that
lets several workers share one embedded chdb.
"""

from __future__ import annotations

from dossier_stream.store.codec import dumps_dossier, dumps_feedback, loads_dossier, loads_feedback
from dossier_stream.store.sink import BatchingSink, ClickHouseStore, connect
from dossier_stream.store.statestore import open_dossier_store
from dossier_stream.store.storeserver import StoreServer
from dossier_stream.store.views import write_units

__all__ = [
    "BatchingSink",
    "ClickHouseStore",
    "StoreServer",
    "connect",
    "dumps_dossier",
    "dumps_feedback",
    "loads_dossier",
    "loads_feedback",
    "open_dossier_store",
    "write_units",
]
