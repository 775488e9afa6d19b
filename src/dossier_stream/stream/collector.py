"""The worker's garbage-collection policy: no automatic collection, a full sweep now and then.

The fold makes no reference cycles: over 900.000 tiled events (``python -m
bench.flat``) the automatic collections of the worker's old thresholds
(50.000, 20, 100) freed **no** object, yet took 11-15 µs of CPU per event
(about a sixth of the worker's CPU), more as the run grew (8,5 µs per event
in the first 300.000 events, 12,3 in the third): a young-generation pass
traverses every young container, and the fold's young containers are the
rows and columns buffered for ClickHouse (lists of 50.000 values), whose
referents are cold in a large heap. Everything those passes find is freed
by reference counting anyway.

So the worker freezes what is alive at start (:func:`gc.freeze`), turns
automatic collection off, and collects everything once every ``sweep_s``
seconds (:meth:`CollectorPolicy.tick`, called by the worker's metrics
refresher): what the async machinery leaves in cycles (exceptions and their
tracebacks, finished futures) is freed then. A sweep traverses the whole
heap, which the settings bound (the states' and counters' caches, the live
figures' index), so it costs about a second of CPU at most every
``sweep_s`` seconds. ``sweep_s = 0`` keeps automatic collection, with the
worker's former thresholds.

The same tick gives freed memory back to the system every ``release_s``
seconds (:meth:`CollectorPolicy.release_memory`): glibc's ``malloc_trim(0)``
(the free pages inside its arenas, which RocksDB's memtables and the
buffers of each batch leave behind: 30-45 MiB in ``python -m bench.flat``)
and the embedded ClickHouse's purge of its own allocator (``release``:
the pages its inserts and merges freed). Neither moves an object; without
them those pages stay resident until reused, and each insert's peak comes
on top of them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import time
from collections.abc import Callable
from typing import Final

__all__ = ["DEFAULT_THRESHOLDS", "TUNED_THRESHOLDS", "CollectorPolicy"]

DEFAULT_THRESHOLDS: Final = (700, 10, 10)
"""CPython's thresholds: a process that kept them has not tuned its collector."""
TUNED_THRESHOLDS: Final = (50_000, 20, 100)
"""The thresholds of a worker that keeps automatic collection (``sweep_s = 0``)."""

_active = 0  # started policies that turned automatic collection off
_LOG = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class CollectorPolicy:
    """Automatic collection off while a worker runs, a full collection every ``sweep_s`` s.

    Args:
        sweep_s: seconds between full collections; ``0`` keeps automatic
            collection with :data:`TUNED_THRESHOLDS`.
        clock: monotonic seconds (tests pass their own).
        release_s: seconds between returns of freed memory to the system
            (:meth:`release_memory`); ``0`` for never.
        release: what else gives memory back at each return (the embedded
            ClickHouse's purge), after glibc's trim.

    A process that set its own thresholds (not CPython's defaults) is left as
    it is. :meth:`stop` turns automatic collection back on once the last
    started policy of the process stops.
    """

    def __init__(
        self,
        sweep_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        release_s: float = 0.0,
        release: Callable[[], object] | None = None,
    ) -> None:
        if sweep_s < 0:
            raise ValueError(f"sweep_s must be at least 0, not {sweep_s}")
        if release_s < 0:
            raise ValueError(f"release_s must be at least 0, not {release_s}")
        self.sweep_s, self.release_s = sweep_s, release_s
        self.sweeps = self.releases = 0
        self._clock = clock
        self._last = self._released = clock()
        self._owns = False
        self._release = release

    def start(self) -> None:
        """Freeze the objects alive now, then turn automatic collection off (or tune it)."""
        global _active  # noqa: PLW0603 - one collector per process
        threshold = gc.get_threshold()
        if self._owns or threshold not in (DEFAULT_THRESHOLDS, TUNED_THRESHOLDS):
            return  # started already, or the process tuned its collector itself
        if threshold == DEFAULT_THRESHOLDS:
            gc.set_threshold(*TUNED_THRESHOLDS)
            gc.freeze()
        if self.sweep_s > 0 and (gc.isenabled() or _active):
            gc.disable()
            _active += 1
            self._owns = True
        self._last = self._clock()

    def tick(self) -> bool:
        """Collect everything if ``sweep_s`` seconds passed since the last sweep; whether it did.

        Memory goes back to the system too if ``release_s`` seconds passed
        since the last return (after the sweep, which frees what it finds).
        """
        swept = False
        if self._owns and self._clock() - self._last >= self.sweep_s:
            gc.collect()
            self.sweeps += 1
            self._last = self._clock()
            swept = True
        if self.release_s > 0 and self._clock() - self._released >= self.release_s:
            self.release_memory()
        return swept

    def release_memory(self) -> None:
        """Give freed memory back to the system: glibc's free pages, then ``release``."""
        trim = _malloc_trim()
        if trim is not None:
            trim(0)
        if self._release is not None:
            try:
                self._release()
            except Exception as exc:  # memory not returned is no reason to stop the worker
                _LOG.warning("memory release failed: %s", exc)
        self.releases += 1
        self._released = self._clock()

    def stop(self) -> None:
        """Give automatic collection back to the process if no other policy holds it."""
        global _active  # noqa: PLW0603 - one collector per process
        if not self._owns:
            return
        self._owns = False
        _active -= 1
        if _active == 0:
            gc.enable()
