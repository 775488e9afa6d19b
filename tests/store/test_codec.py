"""The ``dossier_facts`` row of a state against a plain rewrite of its definition.

:func:`~dossier_stream.store.codec.dossier_fact` is written out for speed (each
time converted once, for the row and the state's bytes); these tests hold it
to the definition: the state's properties, times as exact epoch microseconds
(``DateTime64(6)`` ticks) and :func:`~dossier_stream.store.codec.dumps_dossier`'s bytes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dossier_stream.core.engine import Engine
from dossier_stream.core.lifecycle import (
    Completion,
    DossierState,
    Payment,
    Reception,
    Supplement,
)
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.store.codec import (
    DOSSIER_FACT_COLUMNS,
    dossier_fact,
    dumps_dossier,
    loads_dossier,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(at: datetime | None) -> int | None:
    return None if at is None else (at - _EPOCH) // timedelta(microseconds=1)


def reference_row(state: DossierState, source: str) -> tuple[Any, ...]:
    """The row by its definition (the processor's row before it was written out)."""
    r, c = state.received, state.completion
    methods = {p.method for p in state.payments}
    return (
        state.dossier_id, source, r.unit_code if r else "",
        _us(r.received_at if r else None), _us(r.due_at if r else None),
        r.channel if r else "", r.online_service_level if r else "",
        int(bool(r and r.fee_required)), int(bool(r and r.reused_digital_data)),
        int("online" in methods), int("cashless" in methods), int("cash" in methods),
        int(state.has_component_files), int(state.has_result_files),
        state.supplement_requests, [_us(x.at) for x in state.supplements],
        [int(x.requested) for x in state.supplements], _us(c.completed_at if c else None),
        _us(state.effective_due() if c else None),
        None if state.is_on_time is None else int(state.is_on_time),
        int(bool(c and c.result_e_signed)), _us(state.withdrawn_at),
        dumps_dossier(state).decode(),
    )  # fmt: skip


def _every_state(registry: UnitRegistry, calendar: WorkCalendar) -> list[DossierState]:
    """Every state a simulated month's dossier passes through, in order."""
    sim = simulate(
        SimConfig(monthly_report(2024, 10), seed=5, dossiers=500, feedback=0), registry, calendar
    )
    engine = Engine(registry, calendar)
    states: list[DossierState] = []
    for raw in sim.lines:
        out = engine.process(raw)
        dossier_id = getattr(out.event, "dossier_id", None)
        if out.kind == "applied" and dossier_id is not None:
            states.append(engine.dossiers[dossier_id])
    return states


def test_the_row_of_every_simulated_state_is_its_definition(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    states = _every_state(registry, calendar)
    assert len(states) > 1_000
    assert any(s.supplements for s in states) and any(s.payments for s in states)
    assert any(s.completion is not None and s.supplements for s in states)
    for state in states:
        row = dossier_fact(state, "dossier:3")
        assert len(row) == len(DOSSIER_FACT_COLUMNS)
        assert row == reference_row(state, "dossier:3")
        assert loads_dossier(row[-1].encode()) == state


AT = datetime(2024, 10, 3, 8, 15, 0, 250_001, tzinfo=VN_TZ)


def _reception(at: datetime, due: datetime, order_at: datetime | None = None) -> Reception:
    return Reception((order_at or at, "e1"), "U", "P", "online", "4", at, due, True, False)


@pytest.mark.parametrize(
    "state",
    [
        DossierState("D-EMPTY"),
        # completed without a reception (its events arrived out of order)
        DossierState("D-DONE", completion=Completion((AT, "e9"), AT, "approved", True)),
        # the order's time is not the fact's time object (an equal instant, another object)
        DossierState(
            "D-ORDER",
            received=_reception(AT, AT + timedelta(days=3), AT.astimezone(UTC)),
            completion=Completion(
                (AT + timedelta(days=1), "e2"), AT + timedelta(days=2), "approved", False
            ),
        ),
        # two requests of documents: late whatever the pause; three payments, two methods
        DossierState(
            "D-SUPP",
            seen=frozenset({3, 1, 2}),
            received=_reception(AT, AT + timedelta(days=3)),
            payments=tuple(
                Payment((AT + timedelta(hours=h), f"e{h}"), f"tx{h}", 1000 * h, m, AT)
                for h, m in ((1, "cash"), (2, "online"), (3, "cash"))
            ),
            supplements=(
                Supplement(AT + timedelta(days=1), True, "s1"),
                Supplement(AT + timedelta(days=2), False, "s2"),
                Supplement(AT + timedelta(days=3), True, "s3"),
            ),
            completion=Completion(
                (AT + timedelta(days=4), "e4"), AT + timedelta(days=4), "approved", True
            ),
            has_result_files=True,
            withdrawn_at=AT + timedelta(days=5),
        ),
        # one pause, completed exactly at the due time plus the pause (on time)
        DossierState(
            "D-PAUSE",
            received=_reception(AT, AT + timedelta(days=3)),
            supplements=(
                Supplement(AT + timedelta(days=1), True, "s1"),
                Supplement(AT + timedelta(days=2), False, "s2"),
            ),
            completion=Completion(
                (AT + timedelta(days=4), "e4"), AT + timedelta(days=4), "approved", False
            ),
        ),
        # completed exactly at the due time, then a microsecond late
        DossierState(
            "D-EDGE",
            received=_reception(AT, AT + timedelta(days=3)),
            completion=Completion(
                (AT + timedelta(days=3), "e4"), AT + timedelta(days=3), "approved", False
            ),
        ),
        DossierState(
            "D-LATE",
            received=_reception(AT, AT + timedelta(days=3)),
            completion=Completion(
                (AT, "e4"), AT + timedelta(days=3, microseconds=1), "rejected", False
            ),
        ),
        # times outside the codec's fast years, and in UTC
        DossierState(
            "D-OLD",
            received=_reception(
                datetime(1960, 2, 29, 23, 59, 59, 999_999, tzinfo=VN_TZ),
                datetime(2200, 1, 1, tzinfo=UTC),
            ),
            withdrawn_at=datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        ),
    ],
    ids=lambda s: s.dossier_id,
)
def test_edge_states(state: DossierState) -> None:
    row = dossier_fact(state, "dossier:0")
    assert row == reference_row(state, "dossier:0")
    assert loads_dossier(row[-1].encode()) == state
    other = replace(state, has_component_files=True)
    assert dossier_fact(other, "dossier:0") == reference_row(other, "dossier:0")
