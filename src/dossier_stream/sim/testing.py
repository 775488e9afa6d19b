"""Test doubles: builders of contract events and of invalid messages.

Shipped in the package (not only in ``tests/``) so that a province writing
its own checks, the benchmark and the integration tests build events the
same way. Every builder returns a plain ``dict`` ready for :func:`encode`.

Example:
    >>> ev = received("D1", "HP-SO-TUPHAP", at="2024-10-03T08:15:00+07:00")
    >>> parse_event(encode(ev)).event_type
    'dossier.received'
"""

from __future__ import annotations

import itertools
from typing import Any, Final

import orjson

__all__ = [
    "INVALID_SAMPLES",
    "completed",
    "digitized",
    "encode",
    "feedback_received",
    "feedback_resolved",
    "payment",
    "received",
    "reported_totals",
    "supplement_received",
    "supplement_requested",
    "withdrawn",
]

_ids = itertools.count(1)


def _envelope(event_type: str, unit: str, at: str, event_id: str | None) -> dict[str, Any]:
    return {
        "event_id": event_id or f"ev-{next(_ids)}",
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": at,
        "unit_code": unit,
    }


def encode(event: dict[str, Any]) -> bytes:
    """The message value of an event dict (UTF-8 JSON), in a buffer of its own size.

    ``orjson.dumps`` returns bytes that keep the 4 KiB buffer they were written
    in (orjson 3.13): held by the hundred thousand, as a simulated month is,
    that is 4 KiB a line instead of ~350 bytes. The copy costs ~0,1 µs.
    """
    return memoryview(orjson.dumps(event)).tobytes()


def received(
    dossier_id: str,
    unit: str,
    *,
    at: str = "2024-10-03T08:15:00+07:00",
    channel: str = "online",
    level: str = "full",
    due_at: str | None = None,
    working_days: int | None = 5,
    fee: bool = False,
    reused: bool = False,
    procedure: str = "1.000001",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``dossier.received`` event (due time from ``working_days`` unless ``due_at``)."""
    ev = _envelope("dossier.received", unit, at, event_id)
    ev |= {
        "dossier_id": dossier_id,
        "procedure_code": procedure,
        "channel": channel,
        "online_service_level": level,
        "received_at": at,
        "fee_required": fee,
        "reused_digital_data": reused,
    }
    if due_at is not None:
        ev["due_at"] = due_at
    elif working_days is not None:
        ev["processing_working_days"] = working_days
    return ev


def payment(
    dossier_id: str,
    unit: str,
    *,
    at: str = "2024-10-03T09:00:00+07:00",
    method: str = "online",
    amount: int = 50_000,
    transaction_id: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``dossier.payment`` event."""
    ev = _envelope("dossier.payment", unit, at, event_id)
    ev |= {
        "dossier_id": dossier_id,
        "transaction_id": transaction_id or f"tx-{next(_ids)}",
        "amount_vnd": amount,
        "method": method,
        "paid_at": at,
    }
    return ev


def digitized(
    dossier_id: str,
    unit: str,
    *,
    kind: str = "component",
    files: int = 1,
    at: str = "2024-10-03T10:00:00+07:00",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``dossier.digitized`` event."""
    ev = _envelope("dossier.digitized", unit, at, event_id)
    ev |= {"dossier_id": dossier_id, "kind": kind, "file_count": files}
    return ev


def supplement_requested(
    dossier_id: str, unit: str, *, at: str, event_id: str | None = None
) -> dict[str, Any]:
    """A ``dossier.supplement_requested`` event (the clock stops at ``at``)."""
    return _envelope("dossier.supplement_requested", unit, at, event_id) | {
        "dossier_id": dossier_id
    }


def supplement_received(
    dossier_id: str, unit: str, *, at: str, event_id: str | None = None
) -> dict[str, Any]:
    """A ``dossier.supplement_received`` event (the clock restarts at ``at``)."""
    return _envelope("dossier.supplement_received", unit, at, event_id) | {"dossier_id": dossier_id}


def completed(
    dossier_id: str,
    unit: str,
    *,
    at: str = "2024-10-07T15:00:00+07:00",
    outcome: str = "approved",
    e_signed: bool = False,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``dossier.completed`` event."""
    ev = _envelope("dossier.completed", unit, at, event_id)
    ev |= {
        "dossier_id": dossier_id,
        "completed_at": at,
        "outcome": outcome,
        "result_e_signed": e_signed,
    }
    return ev


def withdrawn(
    dossier_id: str,
    unit: str,
    *,
    at: str = "2024-10-05T09:00:00+07:00",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``dossier.withdrawn`` event."""
    return _envelope("dossier.withdrawn", unit, at, event_id) | {"dossier_id": dossier_id}


def feedback_received(
    feedback_id: str,
    unit: str,
    *,
    at: str = "2024-10-03T08:00:00+07:00",
    due_at: str = "2024-10-10T17:00:00+07:00",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``feedback.received`` event."""
    return _envelope("feedback.received", unit, at, event_id) | {
        "feedback_id": feedback_id,
        "due_at": due_at,
    }


def feedback_resolved(
    feedback_id: str,
    unit: str,
    *,
    at: str = "2024-10-08T08:00:00+07:00",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``feedback.resolved`` event."""
    return _envelope("feedback.resolved", unit, at, event_id) | {
        "feedback_id": feedback_id,
        "resolved_at": at,
    }


def reported_totals(
    unit: str,
    *,
    start: str,
    end: str,
    total: int,
    at: str = "2024-10-15T08:00:00+07:00",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``unit.reported_totals`` event for the period ``[start, end]``."""
    return _envelope("unit.reported_totals", unit, at, event_id) | {
        "period_start": start,
        "period_end": end,
        "received_total": total,
    }


def _with(base: dict[str, Any], **changes: Any) -> bytes:
    ev = dict(base)
    for k, v in changes.items():
        if v is _DROP:
            ev.pop(k, None)
        else:
            ev[k] = v
    return encode(ev)


_DROP: Final = object()
_R: Final = received("D-invalid", "UNIT", event_id="ev-invalid")

INVALID_SAMPLES: Final[tuple[tuple[str, bytes, str], ...]] = (
    ("not JSON", b"{not json", "not_json"),
    ("invalid UTF-8", b'{"event_id": "\xff\xfe"}', "not_json"),
    ("JSON array", b"[1, 2, 3]", "not_object"),
    ("JSON string", b'"dossier.received"', "not_object"),
    ("over 64 KiB", _with(_R, padding="x" * 70_000), "too_large"),
    ("deeply nested", b"[" * 5000 + b"]" * 5000, "not_json"),
    ("no event_type", _with(_R, event_type=_DROP), "missing_field:event_type"),
    ("unknown event_type", _with(_R, event_type="dossier.teleported"), "unknown_event_type"),
    ("event_type not a string", _with(_R, event_type=7), "bad_type:event_type"),
    ("future schema_version", _with(_R, schema_version=2), "unsupported_schema_version"),
    ("no event_id", _with(_R, event_id=_DROP), "missing_field:event_id"),
    ("empty event_id", _with(_R, event_id=""), "bad_value:event_id"),
    ("no unit_code", _with(_R, unit_code=_DROP), "missing_field:unit_code"),
    ("no dossier_id", _with(_R, dossier_id=_DROP), "missing_field:dossier_id"),
    (
        "naive occurred_at",
        _with(_R, occurred_at="2024-10-03T08:15:00"),
        "naive_timestamp:occurred_at",
    ),
    (
        "naive received_at",
        _with(_R, received_at="2024-10-03T08:15:00"),
        "naive_timestamp:received_at",
    ),
    ("unparseable timestamp", _with(_R, received_at="3 October 2024"), "bad_timestamp:received_at"),
    ("numeric timestamp", _with(_R, received_at=1727923500), "bad_timestamp:received_at"),
    (
        "year 9999",
        _with(_R, received_at="9999-01-01T00:00:00+07:00"),
        "timestamp_out_of_range:received_at",
    ),
    (
        "before 2000",
        _with(_R, occurred_at="1999-12-31T23:00:00+07:00"),
        "timestamp_out_of_range:occurred_at",
    ),
    ("channel outside enum", _with(_R, channel="fax"), "bad_enum:channel"),
    (
        "service level outside enum",
        _with(_R, online_service_level="level4"),
        "bad_enum:online_service_level",
    ),
    ("fee_required as string", _with(_R, fee_required="true"), "bad_type:fee_required"),
    (
        "working days as string",
        _with(_R, processing_working_days="5"),
        "bad_type:processing_working_days",
    ),
    (
        "negative working days",
        _with(_R, processing_working_days=-1),
        "bad_value:processing_working_days",
    ),
    (
        "neither due_at nor working days",
        _with(_R, processing_working_days=_DROP),
        "missing_field:processing_working_days",
    ),
    ("negative amount", encode(payment("D", "UNIT", amount=-5)), "bad_value:amount_vnd"),
    (
        "payment method outside enum",
        encode(payment("D", "UNIT", method="barter")),
        "bad_enum:method",
    ),
    ("zero files", encode(digitized("D", "UNIT", files=0)), "bad_value:file_count"),
    ("file kind outside enum", encode(digitized("D", "UNIT", kind="photo")), "bad_enum:kind"),
    ("outcome outside enum", encode(completed("D", "UNIT", outcome="maybe")), "bad_enum:outcome"),
    (
        "feedback without due_at",
        _with(feedback_received("F", "UNIT"), due_at=_DROP),
        "missing_field:due_at",
    ),
    (
        "report period reversed",
        encode(reported_totals("UNIT", start="2024-10-14", end="2024-09-15", total=3)),
        "bad_value:period_end",
    ),
    (
        "report date not a date",
        encode(reported_totals("UNIT", start="15/09/2024", end="2024-10-14", total=3)),
        "bad_timestamp:period_start",
    ),
)
"""``(description, message value, expected reason)``: one per kind of contract defect."""
