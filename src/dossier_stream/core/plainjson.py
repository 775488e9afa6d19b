"""Events orjson reads as pydantic did, told from their bytes without reading them again.

:func:`~dossier_stream.core.events.parse_event` accepts an event only where
orjson reads it too, with ``schema_version`` the JSON integer ``1`` (the
module docs of :mod:`~dossier_stream.core.events` say why). Reading every
valid event with ``orjson.loads`` builds a dictionary only to throw it away;
:func:`reads_plainly` proves the same from the bytes and the validated event
in a few scans in C, for the lines ``produce`` writes, and says ``False``
(read it with orjson, then) for anything it cannot prove.

The proof, for ``raw`` that pydantic's strict JSON validator accepted as
``event``:

1. ``raw`` holds no backslash, so every ``"`` in it opens or closes a string:
   its strings are ``raw.count(b'"') / 2``.
2. The event's top-level keys are strings, one per field in
   ``model_fields_set``; the strict validator takes a JSON string, and only a
   string, for a ``str``, ``Literal`` of strings, date or datetime field, so
   every such field present holds one more string. If ``raw`` holds exactly
   that many strings, there is nothing else in it: no key given twice, no
   extra field (its key is a string), no nested object or array (no field
   takes one). What is left is the known fields' values: strings without
   escapes (valid UTF-8 without control characters, or pydantic would have
   refused them), ``true``, ``false``, ``null``, integers, and
   ``schema_version``.
3. Integers orjson reads exactly up to 64 bits, and beyond that as doubles:
   a field without a small bound (``file_count``) must be within 64 bits.
4. ``"schema_version":``, then ``1``, then ``,`` or ``}`` (JSON's whitespace
   allowed between them) is in ``raw``: its first ``"`` cannot close a string
   (``schema_version`` outside a string is not JSON), so it is a key, the
   only one of that name (point 2), and its value is the JSON integer ``1``.
5. pydantic's JSON parser takes only JSON's whitespace between tokens (no
   form feed, no byte order mark: ``tests/core/test_events_plain.py`` holds
   it to that), and orjson takes all of it.

Compiled with mypyc (``scripts/compile``): interpreted, the checks cost about
what ``orjson.loads`` does; compiled, ``parse_event`` takes ≈ 10 % fewer
instructions (bench/README.md, the sixth round).
"""

from __future__ import annotations

from datetime import date
from types import UnionType
from typing import Annotated, Any, Final, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel

__all__ = ["Shape", "reads_plainly", "shape_of"]

_INT64: Final = 1 << 63
"""Integers orjson reads as integers: ``-2**63 <= n < 2**64`` (this checks less)."""
_BACKSLASH: Final = ord("\\")
_QUOTE: Final = ord('"')
_VERSION: Final = b'"schema_version":'
_AFTER: Final = len(_VERSION)
_ONE: Final = ord("1")
_ENDS: Final = frozenset(b",}")
"""What may follow a member's value."""


class Shape(NamedTuple):
    """What :func:`reads_plainly` needs of an event model.

    Attributes:
        strings: its required fields that hold a JSON string.
        optional: its optional fields that hold a JSON string unless absent or ``null``.
        integers: its integer fields without a bound inside 64 bits.
    """

    strings: int
    optional: tuple[str, ...]
    integers: tuple[str, ...]


def _is_string(annotation: Any) -> bool:
    """Whether a value of ``annotation`` can be read, strictly, only from a JSON string."""
    origin = get_origin(annotation)
    if origin is Literal:
        return all(isinstance(a, str) for a in get_args(annotation))
    if origin is Annotated:
        return _is_string(get_args(annotation)[0])
    return isinstance(annotation, type) and issubclass(annotation, str | date | AwareDatetime)


def _members(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (``X | None``), or the annotation alone."""
    origin = get_origin(annotation)
    return get_args(annotation) if origin is Union or origin is UnionType else (annotation,)


def _is_exact_scalar(annotation: Any) -> bool:
    """Whether a value of ``annotation`` is a JSON ``true``, ``false`` or integer, strictly."""
    origin = get_origin(annotation)
    if origin is Literal:
        return all(type(a) in (bool, int) for a in get_args(annotation))
    if origin is Annotated:
        return _is_exact_scalar(get_args(annotation)[0])
    return annotation is bool or annotation is int


def _is_small_integer(metadata: list[Any]) -> bool:
    """Whether constraints bound an integer inside 64 bits on both sides."""
    low = any(getattr(m, "ge", None) is not None and m.ge >= -_INT64 for m in metadata)
    high = any(getattr(m, "le", None) is not None and m.le < _INT64 for m in metadata)
    return low and high


def shape_of(model: type[BaseModel]) -> Shape:
    """The :class:`Shape` of an event model.

    Raises:
        TypeError: a field holds what :func:`reads_plainly` cannot count (a value
            that may or may not be a string, other than ``None``).
    """
    strings = 0
    optional: list[str] = []
    integers: list[str] = []
    for name, field in model.model_fields.items():
        members = [m for m in _members(field.annotation) if m is not type(None)]
        kinds = {_is_string(m) for m in members}
        if kinds == {True}:
            if field.is_required():
                strings += 1
            else:
                optional.append(name)
        elif kinds != {False}:
            raise TypeError(f"{model.__name__}.{name}: a string or not, {field.annotation}")
        elif not all(_is_exact_scalar(m) for m in members):
            # a float reads NaN, Infinity and 1e400, which orjson refuses; a list or an
            # object would hold strings this count cannot place
            raise TypeError(f"{model.__name__}.{name}: not provable, {field.annotation}")
        elif any(m is int or get_args(m)[:1] == (int,) for m in members) and not (
            _is_small_integer(field.metadata)
        ):
            integers.append(name)
    return Shape(strings, tuple(optional), tuple(integers))


def _skip_spaces(raw: bytes, at: int) -> int:
    """The first index from ``at`` on that is not JSON whitespace (``len(raw)`` if none)."""
    end = len(raw)
    while at < end:
        byte = raw[at]
        if byte != 32 and byte != 10 and byte != 9 and byte != 13:  # noqa: PLR1714 (C compares)
            return at
        at += 1
    return at


def reads_plainly(raw: bytes, event: BaseModel, shape: Shape) -> bool:
    """Whether orjson reads ``raw`` as pydantic did, with the integer ``schema_version``.

    ``True`` is a proof (see the module docs); ``False`` means only "read it to know".

    Args:
        raw: the message value, which pydantic's strict JSON validator accepted.
        event: what it made of it.
        shape: ``shape_of(type(event))``.
    """
    if _BACKSLASH in raw:  # an int: one memchr (the byte string b"\\" is a slower search)
        return False
    strings, optional, integers = shape
    fields = event.__pydantic_fields_set__
    if optional or integers:
        values = event.__dict__
        for name in optional:
            if values[name] is not None and name in fields:
                strings += 1
        for name in integers:
            value = values[name]
            if value is not None and not -_INT64 <= value < _INT64:
                return False
    if raw.count(_QUOTE) != 2 * (len(fields) + strings):
        return False
    at = raw.find(_VERSION)
    if at < 0:
        return False
    at = _skip_spaces(raw, at + _AFTER)  # the version's first byte
    if at >= len(raw) or raw[at] != _ONE:
        return False
    at = _skip_spaces(raw, at + 1)  # what ends it: the value is the one byte "1"
    return at < len(raw) and raw[at] in _ENDS
