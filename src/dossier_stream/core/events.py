"""Event models of the dossier event contract, version 1, and the one parser.

The authority is ``shared/spec/event-contract.md``; this module is its
executable form. Every event type is a frozen pydantic v2 model, validated in
strict JSON mode: a wrong JSON type (``"5"`` for an integer, ``"true"`` for a
boolean, a number for a timestamp) makes the event invalid instead of being
coerced. Unknown extra fields are ignored.

:func:`parse_event` is the single entry point. It either returns one of the
models or raises :class:`InvalidEvent`, whose ``reason`` is machine readable:

================================  ==============================================
reason                            meaning
================================  ==============================================
``too_large``                     the message is over 64 KiB
``not_json``                      not UTF-8 JSON (nested too deeply, ``NaN``...)
``not_object``                    JSON, but not an object
``missing_field:<f>``             a required field is absent
``unknown_event_type``            ``event_type`` names no contract type
``unsupported_schema_version``    ``schema_version`` is not the integer ``1``
``naive_timestamp:<f>``           a timestamp without a UTC offset
``bad_timestamp:<f>``             not an RFC 3339 timestamp / date
``timestamp_out_of_range:<f>``    before 2000-01-01 or from 2100-01-01 on
``bad_enum:<f>``                  a value outside the contract's enumeration
``bad_type:<f>``                  a JSON value of the wrong type
``bad_value:<f>``                 the right type but out of range (empty id...)
``unknown_unit``                  ``unit_code`` is not in the unit registry
``unit_not_active``               the unit does not exist on the reception day
================================  ==============================================

``InvalidEvent.code`` is the part before the colon; it is what metrics use as
a label, so the label set stays bounded whatever the input is.

Decisions where the contract is silent:

* Timestamps outside [2000-01-01, 2100-01-01) are rejected: no dossier of the
  system predates it, and a year-9999 timestamp is a producer bug that would
  otherwise open a cohort day nobody reports on.
* ``processing_working_days`` is bounded at 3650 (ten years of working days).
* Identifiers (``event_id``, ``dossier_id``, ``transaction_id``,
  ``feedback_id``) are 1..128 characters, ``unit_code`` 1..64.
* ``unit.reported_totals`` with ``period_end`` before ``period_start`` is
  ``bad_value:period_end``.
* ``amount_vnd`` is at most :data:`MAX_AMOUNT_VND` (10^13 đồng, more than
  any fee): amounts are summed into signed 64-bit counters per unit and day,
  and a larger value would stop every write of the worker instead of being
  one dead letter. ``received_total`` is at most :data:`MAX_REPORTED_TOTAL`
  (10^9 dossiers in one report) for the same reason.
* ``schema_version`` must be the JSON integer ``1``: ``true``, ``1.0`` and
  ``"1"`` are ``unsupported_schema_version`` like ``2`` (a strict reading of
  "integer"; pydantic alone would take ``true`` and ``1.0`` for ``1``).
* ``NaN``, ``Infinity``, ``-Infinity`` and numbers beyond a double (``1e400``)
  are not JSON (RFC 8259), even in an ignored extra field: ``not_json``. A
  valid event is also one orjson reads, as ``produce`` and ``deadletter replay``
  route it, so every event the worker accepts can be routed the same way
  (proved from the bytes for the lines ``produce`` writes,
  :mod:`~dossier_stream.core.plainjson`; read with orjson otherwise).
* A key given twice counts with its last value, as every JSON parser of the
  pipeline (pydantic's and orjson, which ``produce`` routes with) reads it.
* A byte order mark before the object is ``not_json`` (RFC 8259 forbids
  sending one).
"""

from __future__ import annotations

import functools
import operator
from datetime import UTC, date, datetime
from types import FunctionType
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, get_args

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dossier_stream.core.plainjson import reads_plainly, shape_of
from dossier_stream.core.workdays import VN_TZ

if TYPE_CHECKING:
    from dossier_stream.core.registry import UnitRegistry

__all__ = [
    "DOSSIER_EVENT_MODELS",
    "DOSSIER_EVENT_TYPES",
    "EVENT_TYPES",
    "MAX_AMOUNT_VND",
    "MAX_EVENT_BYTES",
    "MAX_REPORTED_TOTAL",
    "PLAIN_READER",
    "DossierCompleted",
    "DossierDigitized",
    "DossierEvent",
    "DossierPayment",
    "DossierReceived",
    "DossierWithdrawn",
    "Event",
    "FeedbackEvent",
    "FeedbackReceived",
    "FeedbackResolved",
    "InvalidEvent",
    "SupplementReceived",
    "SupplementRequested",
    "UnitReportedTotals",
    "check_unit",
    "event_adapter",
    "parse_event",
]

MAX_EVENT_BYTES: Final = 64 * 1024
MAX_AMOUNT_VND: Final = 10**13
"""The largest ``amount_vnd`` of one payment (the Int64 counters sum them)."""
MAX_REPORTED_TOTAL: Final = 10**9
"""The largest ``received_total`` of one ``unit.reported_totals``."""
_MIN_TS: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TS: Final = datetime(2100, 1, 1, tzinfo=UTC)

Id = Annotated[str, Field(min_length=1, max_length=128)]
UnitCode = Annotated[str, Field(min_length=1, max_length=64)]
Channel = Literal["online", "direct", "postal"]
ServiceLevel = Literal["full", "partial", "none"]
PaymentMethod = Literal["online", "cashless", "cash"]
FileKind = Literal["component", "result"]
Outcome = Literal["approved", "rejected"]


class InvalidEvent(ValueError):
    """An event that breaks the contract.

    Attributes:
        code: the bounded reason code, e.g. ``missing_field``.
        field: the offending field (dotted path), if any.
        reason: ``code`` or ``code:field``, the machine-readable reason.
        detail: a human-readable explanation.
    """

    def __init__(self, code: str, field: str | None = None, detail: str = "") -> None:
        self.code = code
        self.field = field
        self.reason = f"{code}:{field}" if field else code
        self.detail = detail or self.reason
        super().__init__(f"{self.reason}: {self.detail}" if detail else self.reason)


def _out_of_range(value: Any, field: str) -> PydanticCustomError | None:
    """The ``timestamp_out_of_range`` error of a field value, or ``None`` if it is fine.

    Only timestamps and dates are checked; every other value is fine.
    """
    if isinstance(value, datetime):
        if _MIN_TS <= value < _MAX_TS:
            return None
    elif not isinstance(value, date) or _MIN_TS.date() <= value < _MAX_TS.date():
        return None
    return PydanticCustomError(
        "timestamp_out_of_range",
        "{field} {value} is outside 2000-01-01 .. 2099-12-31",
        {"field": field, "value": value.isoformat()},
    )


class _Envelope(BaseModel):
    """Fields every event carries.

    Two rules are not validators of these models, because a Python call per
    field is most of what validating an event costs: timestamps in range, and
    ``schema_version`` written as the JSON integer ``1`` (``Literal[1]`` alone
    also matches JSON ``true``, ``1.0`` and ``1e0``). :func:`parse_event`
    checks both on a validated event itself (the second with the proof of
    :mod:`~dossier_stream.core.plainjson`, or on orjson's reading) and, when
    one of them or validation fails, validates again with subclasses that add
    :class:`_Checked`, so that the errors, and their order, are those of one
    model holding every rule.
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    event_id: Id
    schema_version: Literal[1]
    occurred_at: AwareDatetime
    unit_code: UnitCode


class _Checked(BaseModel):
    """The rules :func:`parse_event` checks outside pydantic, as validators."""

    @field_validator("schema_version", mode="before", check_fields=False)
    @classmethod
    def _integer_version(cls, value: Any) -> Any:
        if type(value) is not int:
            raise PydanticCustomError("literal_error", "schema_version must be the JSON integer 1")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _timestamps_in_range(cls, value: Any, info: Any) -> Any:
        error = _out_of_range(value, info.field_name)
        if error is not None:
            raise error
        return value


class DossierReceived(_Envelope):
    """``dossier.received``: the unit received (tiếp nhận) a dossier."""

    event_type: Literal["dossier.received"]
    dossier_id: Id
    procedure_code: Id
    channel: Channel
    online_service_level: ServiceLevel
    received_at: AwareDatetime
    due_at: AwareDatetime | None = None
    processing_working_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    fee_required: bool
    reused_digital_data: bool = False

    @model_validator(mode="after")
    def _due_or_working_days(self) -> DossierReceived:
        if self.due_at is None and self.processing_working_days is None:
            raise PydanticCustomError(
                "missing_due",
                "processing_working_days is required when due_at is absent",
            )
        return self


class DossierPayment(_Envelope):
    """``dossier.payment``: one fee payment transaction."""

    event_type: Literal["dossier.payment"]
    dossier_id: Id
    transaction_id: Id
    amount_vnd: Annotated[int, Field(ge=0, le=MAX_AMOUNT_VND)]
    method: PaymentMethod
    paid_at: AwareDatetime


class DossierDigitized(_Envelope):
    """``dossier.digitized``: files were attached to the dossier."""

    event_type: Literal["dossier.digitized"]
    dossier_id: Id
    kind: FileKind
    file_count: Annotated[int, Field(ge=1)]


class SupplementRequested(_Envelope):
    """``dossier.supplement_requested``: the processing clock stops."""

    event_type: Literal["dossier.supplement_requested"]
    dossier_id: Id


class SupplementReceived(_Envelope):
    """``dossier.supplement_received``: the processing clock starts again."""

    event_type: Literal["dossier.supplement_received"]
    dossier_id: Id


class DossierCompleted(_Envelope):
    """``dossier.completed``: the unit finished processing."""

    event_type: Literal["dossier.completed"]
    dossier_id: Id
    completed_at: AwareDatetime
    outcome: Outcome
    result_e_signed: bool = False


class DossierWithdrawn(_Envelope):
    """``dossier.withdrawn``: withdrawn or stopped; leaves completed cohorts."""

    event_type: Literal["dossier.withdrawn"]
    dossier_id: Id


class FeedbackReceived(_Envelope):
    """``feedback.received``: citizen feedback (phản ánh, kiến nghị) arrived."""

    event_type: Literal["feedback.received"]
    feedback_id: Id
    due_at: AwareDatetime


class FeedbackResolved(_Envelope):
    """``feedback.resolved``: the feedback was handled."""

    event_type: Literal["feedback.resolved"]
    feedback_id: Id
    resolved_at: AwareDatetime


class UnitReportedTotals(_Envelope):
    """``unit.reported_totals``: what a unit reported itself for a period."""

    event_type: Literal["unit.reported_totals"]
    period_start: date
    period_end: date
    received_total: Annotated[int, Field(ge=0, le=MAX_REPORTED_TOTAL)]

    @model_validator(mode="after")
    def _ordered_period(self) -> UnitReportedTotals:
        if self.period_end < self.period_start:
            raise PydanticCustomError("period_order", "period_end is before period_start")
        return self


DossierEvent = (
    DossierReceived
    | DossierPayment
    | DossierDigitized
    | SupplementRequested
    | SupplementReceived
    | DossierCompleted
    | DossierWithdrawn
)
FeedbackEvent = FeedbackReceived | FeedbackResolved
Event = DossierEvent | FeedbackEvent | UnitReportedTotals

DOSSIER_EVENT_MODELS: Final = (
    DossierReceived,
    DossierPayment,
    DossierDigitized,
    SupplementRequested,
    SupplementReceived,
    DossierCompleted,
    DossierWithdrawn,
)
"""The members of :data:`DossierEvent`: ``isinstance`` with a tuple is cheaper than with a union."""
_EVENT_MODELS: Final[tuple[type[_Envelope], ...]] = (
    *DOSSIER_EVENT_MODELS,
    FeedbackReceived,
    FeedbackResolved,
    UnitReportedTotals,
)
EVENT_TYPES: Final[tuple[str, ...]] = (
    "dossier.received",
    "dossier.payment",
    "dossier.digitized",
    "dossier.supplement_requested",
    "dossier.supplement_received",
    "dossier.completed",
    "dossier.withdrawn",
    "feedback.received",
    "feedback.resolved",
    "unit.reported_totals",
)
DOSSIER_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    t for t in EVENT_TYPES if t.startswith("dossier.")
)


def event_models() -> tuple[type[BaseModel], ...]:
    """Return the model class of every event type, in contract order."""
    return _EVENT_MODELS


@functools.cache
def event_adapter() -> TypeAdapter[Event]:
    """Return the (lazily built, shared) TypeAdapter of the event union.

    It validates everything but the timestamp range, which :func:`parse_event`
    checks (see :class:`_Envelope`).
    """
    return TypeAdapter(Annotated[Event, Field(discriminator="event_type")])


def _mentions_date(annotation: Any) -> bool:
    """Whether a field annotation can hold a ``date`` (or ``datetime``)."""
    if isinstance(annotation, type):
        return issubclass(annotation, date | AwareDatetime)
    return any(_mentions_date(arg) for arg in get_args(annotation))


_DATE_FIELDS: Final[dict[type[BaseModel], tuple[str, ...]]] = {
    model: tuple(n for n, f in model.model_fields.items() if _mentions_date(f.annotation))
    for model in _EVENT_MODELS
}
"""The fields of each event model that the timestamp range rule applies to."""
_SHAPES: Final = {model: shape_of(model) for model in _EVENT_MODELS}
"""What :func:`~dossier_stream.core.plainjson.reads_plainly` needs of each event model."""
PLAIN_READER: Final = None if isinstance(reads_plainly, FunctionType) else reads_plainly
"""The proof from the bytes, compiled (``scripts/compile``); ``None`` when it runs as
Python, where it costs more than orjson's reading (bench/README.md, the sixth round)."""


def _in_range(event: BaseModel) -> bool:
    """Whether every timestamp and date of a validated event is in range."""
    values = event.__dict__  # a validated model's fields (cheaper than getattr)
    for name in _DATE_FIELDS[type(event)]:
        value = values[name]
        # well inside the range whatever the UTC offset: no aware comparison needed
        if value is not None and not 2001 <= value.year <= 2098 and _out_of_range(value, name):
            return False
    return True


@functools.cache
def _checked_adapter() -> TypeAdapter[Any]:
    """The union of the event models with the timestamp range rule, for errors."""
    checked: list[Any] = [
        type(f"Checked{model.__name__}", (model, _Checked), {"__module__": __name__})
        for model in _EVENT_MODELS
    ]
    union = functools.reduce(operator.or_, checked)
    target: Any = Annotated[union, Field(discriminator="event_type")]
    return TypeAdapter(target)


def _checked_errors(raw: bytes) -> list[Any] | None:
    """The validation errors of an event under every rule, ``None`` if it is valid.

    Raises:
        InvalidEvent: ``not_json`` for JSON nested too deeply.
    """
    try:
        _checked_adapter().validate_json(raw, strict=True)
    except ValidationError as exc:
        return list(exc.errors(include_url=False))
    except RecursionError:
        raise InvalidEvent("not_json", detail="JSON nested too deeply") from None
    return None


@functools.cache
def _core_validator() -> Any:
    """The pydantic-core validator of :func:`event_adapter` (no Python wrapper per call)."""
    return event_adapter().validator


_VALIDATE_JSON: Any = None
"""The core validator's ``validate_json``, once built (a global read per event, no call)."""


def _validate_json() -> Any:
    """Build :data:`_VALIDATE_JSON` (the first event parsed)."""
    global _VALIDATE_JSON  # noqa: PLW0603 (built lazily: importing this module stays cheap)
    _VALIDATE_JSON = _core_validator().validate_json
    return _VALIDATE_JSON


_TYPE_ERRORS: Final = {
    "missing": "missing_field",
    "timezone_aware": "naive_timestamp",
    "datetime_parsing": "bad_timestamp",
    "datetime_type": "bad_timestamp",
    "datetime_from_date_parsing": "bad_timestamp",
    "date_parsing": "bad_timestamp",
    "date_type": "bad_timestamp",
    "date_from_datetime_parsing": "bad_timestamp",
    "date_from_datetime_inexact": "bad_timestamp",
    "literal_error": "bad_enum",
    "enum": "bad_enum",
    "timestamp_out_of_range": "timestamp_out_of_range",
}


def _reason_of(error: Any, raw: bytes) -> InvalidEvent:
    """Map one pydantic error dict to an :class:`InvalidEvent`."""
    kind: str = error["type"]
    loc: tuple[Any, ...] = error["loc"]
    field = ".".join(str(p) for p in loc[1:]) or None
    msg: str = error.get("msg", kind)
    if kind == "json_invalid":
        return InvalidEvent("not_json", detail=msg)
    if kind in {"dict_type", "model_type", "model_attributes_type"} and len(loc) <= 1:
        return InvalidEvent("not_object", detail="the message must be a JSON object")
    if kind == "union_tag_not_found":
        return InvalidEvent("missing_field", "event_type", "event_type is required")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "")
        if raw and b'"event_type"' in raw and not _event_type_is_string(raw):
            return InvalidEvent("bad_type", "event_type", "event_type must be a string")
        return InvalidEvent("unknown_event_type", detail=f"unknown event_type {tag!r}")
    if kind == "missing_due":
        return InvalidEvent("missing_field", "processing_working_days", msg)
    if kind == "period_order":
        return InvalidEvent("bad_value", "period_end", msg)
    if field == "schema_version" and kind != "missing":
        return InvalidEvent(
            "unsupported_schema_version", detail=f"this processor reads schema_version 1; {msg}"
        )
    if kind in _TYPE_ERRORS:
        return InvalidEvent(_TYPE_ERRORS[kind], field, msg)
    if kind.endswith("_type") or kind in {"int_from_float", "bool_parsing", "int_parsing"}:
        return InvalidEvent("bad_type", field, msg)
    return InvalidEvent("bad_value", field, msg)


def _event_type_is_string(raw: bytes) -> bool:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("event_type"), str)


_PRIORITY: Final = ("union_tag_not_found", "union_tag_invalid", "json_invalid")


def parse_event(raw: bytes) -> Event:
    """Parse one Kafka message value into an event model.

    Args:
        raw: the message value, UTF-8 JSON.

    Returns:
        The validated event.

    Raises:
        InvalidEvent: with a machine-readable ``reason`` (see module docs).
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(
            "too_large", detail=f"{len(raw)} bytes, the contract allows {MAX_EVENT_BYTES}"
        )
    try:
        event: Event = (_VALIDATE_JSON or _validate_json())(raw, strict=True)
    except ValidationError:
        pass
    except RecursionError:
        raise InvalidEvent("not_json", detail="JSON nested too deeply") from None
    else:
        # pydantic reads NaN, Infinity and 1e400 (as an infinite float) in fields
        # it then ignores; orjson, which routes events in produce and deadletter
        # replay, refuses them: a valid event must be plain JSON (RFC 8259). Most
        # lines prove it from their bytes; the others are read with orjson.
        if PLAIN_READER is not None and PLAIN_READER(raw, event, _SHAPES[type(event)]):
            if _in_range(event):
                return event
        else:
            try:
                source = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if _checked_errors(raw) is None:
                    detail = f"not plain JSON (RFC 8259): {exc}"
                    raise InvalidEvent("not_json", detail=detail) from None
            else:
                if type(source.get("schema_version")) is int and _in_range(event):
                    return event
    errors = _checked_errors(raw)
    assert errors is not None  # the checked models refuse all that the fast path refuses
    # schema_version first: a future version is reported as such, not as the
    # missing/renamed fields that version may have.
    for err in errors:
        if err["type"] in _PRIORITY or err["loc"][1:] == ("schema_version",):
            raise _reason_of(err, raw) from None
    raise _reason_of(errors[0], raw) from None


def check_unit(event: Event, registry: UnitRegistry) -> None:
    """Check the event's ``unit_code`` against the unit registry.

    A ``dossier.received`` must name a unit that exists on the local day of
    reception, because the reception anchors every received cohort; other
    events only need a known unit (a dossier received before a unit ended may
    be completed after it).

    Raises:
        InvalidEvent: ``unknown_unit`` or ``unit_not_active``.
    """
    if event.unit_code not in registry:
        raise InvalidEvent(
            "unknown_unit",
            detail=f"unit_code {event.unit_code!r} is not in the unit registry",
        )
    if isinstance(event, DossierReceived):
        day = event.received_at.astimezone(VN_TZ).date()
        unit = registry.get(event.unit_code)
        if not unit.exists_on(day):
            raise InvalidEvent(
                "unit_not_active",
                detail=f"unit {unit.code} ({unit.name}) does not exist on {day.isoformat()}",
            )
