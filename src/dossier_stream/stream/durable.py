"""Stored before acknowledged: retrying ClickHouse in place, and holding back a batch.

The worker acknowledges a batch's offsets only once its states and counters
are in ClickHouse. When ClickHouse fails, the agent retries *in place*
(:func:`until_done`, exponential backoff bounded by
``DOSSIER_FLUSH_RETRY_MIN_S`` / ``DOSSIER_FLUSH_RETRY_MAX_S``): it takes no
new batch meanwhile, so Faust's per-stream buffer (``stream_buffer_maxsize``)
fills, the conductor stops fetching those partitions, and consumption
pauses with bounded memory while the consumer thread keeps heart-beating.

Two things end a retry without success: the worker stopping, and a
rebalance starting (Faust waits for every delivered message to be
acknowledged before it hands partitions over, so an agent stuck on a dead
ClickHouse would stall the whole group). Then the batch is *held back*
(:func:`hold_back`): its messages count as finished for this process but
their offsets are never acknowledged, so they are not committed and are
read again — after the rebalance (Faust seeks every kept partition to its
committed offset) or by the next owner or the next start. ``take_events``
acknowledges a batch when the agent leaves it, whatever happened, which is
why the agents hold a batch back on *any* exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["Backoff", "GiveUp", "hold_back", "until_done"]

_LOG = logging.getLogger(__name__)

T = TypeVar("T")
_POLL_S = 0.5
"""How often a wait between retries checks whether to give up."""


class GiveUp(Exception):
    """A retry was abandoned (the worker stops or rebalances); nothing was acknowledged."""


class Backoff:
    """Exponential backoff: ``first_s``, doubling, never more than ``max_s``.

    Args:
        first_s: the first wait (> 0).
        max_s: the longest wait (>= ``first_s``).
    """

    def __init__(self, first_s: float, max_s: float) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"need 0 < first_s <= max_s, got {first_s} and {max_s}")
        self.first_s = first_s
        self.max_s = max_s

    def delays(self) -> Iterator[float]:
        """The waits between attempts, forever."""
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


async def until_done(
    action: Callable[[], T],
    *,
    what: str,
    backoff: Backoff,
    give_up: Callable[[], str | None],
) -> T:
    """Run ``action`` until it returns, waiting ``backoff`` between failures.

    Args:
        action: a synchronous call (a ClickHouse write or read).
        what: what it does, for the log (``"flush"``).
        backoff: the waits between attempts.
        give_up: returns a reason to stop retrying (``"stopping"``), or ``None``.

    Raises:
        GiveUp: ``give_up`` gave a reason after a failure (chained to the
            last error).
    """
    attempt = 0
    for delay in backoff.delays():
        try:
            return action()
        except Exception as exc:
            attempt += 1
            _check(give_up, what, exc)
            _LOG.warning(
                "ClickHouse %s failed (attempt %s): %s; retrying in %s s, consuming nothing "
                "new meanwhile",
                what,
                attempt,
                exc,
                delay,
            )
            loop = asyncio.get_running_loop()
            end = loop.time() + delay
            while (left := end - loop.time()) > 0:  # a stop or a rebalance need not wait
                await asyncio.sleep(min(left, _POLL_S))
                _check(give_up, what, exc)
    raise AssertionError("unreachable: the backoff never ends")  # pragma: no cover


def _check(give_up: Callable[[], str | None], what: str, exc: Exception) -> None:
    reason = give_up()
    if reason is not None:
        raise GiveUp(f"{what} failed and the worker is {reason}: {exc}") from exc


def hold_back(events: Iterable[Any]) -> int:
    """Mark the messages of Faust events finished *without* acknowledging their offsets.

    Faust's ``Message.ack`` does nothing for a message already marked
    ``acked`` and only an acknowledgement through the consumer records an
    offset as committable; the consumer's shutdown and rebalance waits
    (``wait_empty``) only look at the mark. So a held-back message neither
    blocks a stop or a rebalance nor gets committed: the committed offset of
    its partition stays before it and it is read again.

    Args:
        events: Faust events (``event.message`` is the consumed message).

    Returns:
        How many messages were held back (those not acknowledged yet).
    """
    held = 0
    for event in events:
        message = event.message
        if not message.acked:
            message.acked = True
            held += 1
    return held
