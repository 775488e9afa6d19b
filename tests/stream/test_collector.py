"""The worker's garbage-collection policy (:mod:`dossier_stream.stream.collector`)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from dossier_stream.stream.collector import (
    DEFAULT_THRESHOLDS,
    TUNED_THRESHOLDS,
    CollectorPolicy,
)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    """A reference cycle nothing else holds; a weak reference to one of its nodes."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(*DEFAULT_THRESHOLDS)
    gc.enable()
    yield
    gc.unfreeze()  # what a policy froze
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_no_automatic_collection_then_a_sweep_after_sweep_s() -> None:
    clock = _Clock()
    policy = CollectorPolicy(300.0, clock=clock)
    policy.start()
    assert not gc.isenabled()
    assert gc.get_threshold() == TUNED_THRESHOLDS
    ref = _cycle()
    junk = [[i] for i in range(3 * TUNED_THRESHOLDS[0])]  # would trigger young passes
    del junk
    assert ref() is not None  # nothing collected it
    clock.now = 299.0
    assert not policy.tick()
    assert ref() is not None
    clock.now = 300.0
    assert policy.tick()
    assert ref() is None
    assert policy.sweeps == 1
    clock.now = 400.0
    assert not policy.tick()  # the next one is due at 600
    policy.stop()
    assert gc.isenabled()


def test_zero_keeps_automatic_collection() -> None:
    policy = CollectorPolicy(0.0, clock=_Clock())
    policy.start()
    assert gc.isenabled()
    assert gc.get_threshold() == TUNED_THRESHOLDS
    assert not policy.tick()
    policy.stop()
    assert gc.isenabled()


def test_the_last_policy_to_stop_turns_collection_back_on() -> None:
    first, second = CollectorPolicy(60.0), CollectorPolicy(60.0)
    first.start()
    second.start()
    first.stop()
    assert not gc.isenabled()
    first.stop()  # idempotent: does not give back the second's hold
    assert not gc.isenabled()
    second.stop()
    assert gc.isenabled()


def test_a_process_that_tuned_its_collector_is_left_alone() -> None:
    gc.set_threshold(1_000, 5, 5)
    policy = CollectorPolicy(60.0)
    policy.start()
    assert gc.isenabled()
    assert gc.get_threshold() == (1_000, 5, 5)
    policy.stop()
    assert gc.isenabled()


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="sweep_s"):
        CollectorPolicy(-1.0)


def test_memory_goes_back_every_release_s_with_or_without_sweeps() -> None:
    clock, calls = _Clock(), []
    policy = CollectorPolicy(300.0, clock=clock, release_s=30.0, release=lambda: calls.append(1))
    policy.start()
    assert not policy.tick()
    assert (policy.releases, calls) == (0, [])
    clock.now = 29.0
    policy.tick()
    assert policy.releases == 0
    clock.now = 30.0
    assert not policy.tick()  # memory released, no sweep yet
    assert (policy.releases, len(calls), policy.sweeps) == (1, 1, 0)
    clock.now = 59.0
    policy.tick()
    assert policy.releases == 1
    clock.now = 300.0
    assert policy.tick()  # a sweep, and a release after it
    assert (policy.releases, len(calls), policy.sweeps) == (2, 2, 1)
    policy.stop()


def test_no_release_when_release_s_is_0_and_a_failing_release_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    never = CollectorPolicy(300.0, clock=clock, release=lambda: 1 / 0)
    clock.now = 10_000.0
    never.tick()
    assert never.releases == 0

    def fail() -> None:
        raise RuntimeError("chdb is gone")

    failing = CollectorPolicy(300.0, clock=clock, release_s=1.0, release=fail)
    clock.now = 20_000.0
    failing.tick()  # glibc's trim ran, the release failed: logged, counted, not raised
    assert failing.releases == 1
    assert "chdb is gone" in caplog.text
    with pytest.raises(ValueError, match="release_s"):
        CollectorPolicy(300.0, release_s=-1.0)
