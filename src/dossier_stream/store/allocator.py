"""The embedded engine's allocator: chdb's jemalloc returns freed pages at once.

chdb runs ClickHouse inside the worker's process, with its own jemalloc, built
to keep freed pages for 5 s (``dirty_decay_ms:5000``) without a background
thread to return them. A merge of large parts frees and allocates its buffers
over and over, so those kept pages add to the worker's resident size: in
``python -m bench.merges`` a merge that ClickHouse tracks at ~90 MiB raised
the resident size by ~160 MiB. With ``dirty_decay_ms:0`` the transient halved,
and ``python -m bench.flat`` at 900.000 events peaked 38 MiB lower for the
same CPU (bench/README, issue 18's eighth round).

jemalloc reads its options from the ``JE_MALLOC_CONF`` environment variable
once, when chdb's library is loaded, so :func:`prepare_embedded_allocator`
must run before the first ``import chdb``: :func:`~.sink.connect` and the
store server call it. A value the operator set is kept. A ClickHouse server is
not concerned: its allocator is its own process's.
"""

from __future__ import annotations

import os
import sys
from typing import Final

__all__ = ["EMBEDDED_JEMALLOC_CONF", "prepare_embedded_allocator"]

EMBEDDED_JEMALLOC_CONF: Final = "dirty_decay_ms:0"
"""jemalloc's options for the embedded engine unless ``JE_MALLOC_CONF`` is set."""


def prepare_embedded_allocator() -> bool:
    """Set ``JE_MALLOC_CONF`` for chdb's jemalloc if nobody has, before chdb loads.

    Returns:
        Whether the options can still take effect (chdb not loaded yet); once
        chdb is loaded its allocator's options are fixed and nothing is changed.
    """
    if "chdb" in sys.modules:
        return False
    os.environ.setdefault("JE_MALLOC_CONF", EMBEDDED_JEMALLOC_CONF)
    return True
