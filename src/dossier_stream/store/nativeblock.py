"""Insert blocks in ClickHouse's ``Native`` format, built at C speed.

clickhouse-connect serialises an insert value by value in Python (its
``LowCardinality`` dictionaries, nullable masks and arrays are Python loops).
The columns the worker writes are plain — ints, strings, dates, arrays of
ints — so their ``Native`` bytes can be built with ``array``, ``map``,
``zip`` and ``bytes.join``, whose loops run in C: no Python bytecode per
value. The bytes are those clickhouse-connect would send for the same values
(same types in the block header, ints written as they are, strings in UTF-8,
``LowCardinality`` with a dictionary of its own), so ClickHouse stores the
same values; :meth:`ClickHouseStore <dossier_stream.store.sink.ClickHouseStore>`
sends them with ``raw_insert``, which both the embedded engine and an HTTP
server accept.

A column is encoded only when every value has exactly the type the fast
path expects (``int`` for integer and ``DateTime64`` columns, ``str`` for
strings, ``date`` for ``Date``, ``list``/``tuple`` for arrays, ``None`` in
``Nullable`` columns); anything else raises :class:`Unsupported` (or the
``TypeError``/``OverflowError`` of ``array``), and the caller falls back to
clickhouse-connect, which converts or refuses the values as it always did.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Callable, Sequence
from datetime import date
from itertools import accumulate, chain, repeat
from operator import sub
from typing import Any, Final

__all__ = ["ColumnEncoder", "Unsupported", "column_encoder", "native_block"]


class Unsupported(ValueError):
    """A column's type or values are not for the fast path (use the client's writer)."""


ColumnEncoder = Callable[[Sequence[Any]], bytes]
"""The ``Native`` bytes of one column's values (prefix included)."""


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_VARINTS: Final = tuple(_leb128(n) for n in range(1 << 14))
"""The LEB128 bytes of every length up to 16 383 (one or two bytes)."""


def _code(size: int, signed: bool) -> str:
    """The ``array`` type code of a little-endian integer of ``size`` bytes."""
    for c in "bhilq" if signed else "BHILQ":
        if array(c).itemsize == size:
            return c
    raise Unsupported(f"no {size}-byte integer array")  # pragma: no cover


_INTS: Final = {
    f"{'U' if not signed else ''}Int{8 * size}": _code(size, signed)
    for size in (1, 2, 4, 8)
    for signed in (False, True)
}
_U64: Final = _code(8, False)
_DATE_EPOCH: Final = date(1970, 1, 1).toordinal()
_LITTLE: Final = sys.byteorder == "little"
_NULL_AS_ZERO: Final[Callable[[Any, Any], Any]] = {None: 0}.get
"""``_NULL_AS_ZERO(x, x)`` is 0 for ``None`` and ``x`` otherwise (a C call per value)."""
_NULL_FLAG: Final[Callable[[Any, int], int]] = {None: 1}.get
"""``_NULL_FLAG(x, 0)`` is 1 for ``None`` and 0 otherwise (a ``Nullable`` column's mask)."""


def _check(column: Sequence[Any], *kinds: type) -> None:
    found = set(map(type, column))
    if not found <= set(kinds):
        raise Unsupported(f"values of {sorted(t.__name__ for t in found)}")


def _strings(column: Sequence[Any]) -> bytes:
    """A ``String`` column: each value's UTF-8 bytes after their LEB128 length."""
    _check(column, str)
    data = list(map(str.encode, column))
    lengths = list(map(len, data))
    if lengths and max(lengths) >= len(_VARINTS):
        prefixes: Any = map(_leb128, lengths)
    else:
        prefixes = map(_VARINTS.__getitem__, lengths)
    return b"".join(chain.from_iterable(zip(prefixes, data, strict=True)))


def _ints(code: str, *kinds: type) -> ColumnEncoder:
    def encode(column: Sequence[Any]) -> bytes:
        _check(column, *kinds)
        return array(code, column).tobytes()

    return encode


def _dates(column: Sequence[Any]) -> bytes:
    """A ``Date`` column: days since 1970-01-01 as UInt16."""
    _check(column, date)
    return array("H", map(sub, map(date.toordinal, column), repeat(_DATE_EPOCH))).tobytes()


def _nullable_ints(code: str, *kinds: type) -> ColumnEncoder:
    def encode(column: Sequence[Any]) -> bytes:
        _check(column, type(None), *kinds)
        nulls = bytes(map(_NULL_FLAG, column, repeat(0)))
        return nulls + array(code, map(_NULL_AS_ZERO, column, column)).tobytes()

    return encode


def _array(inner: ColumnEncoder) -> ColumnEncoder:
    def encode(column: Sequence[Any]) -> bytes:
        _check(column, list, tuple)
        offsets = array(_U64, accumulate(map(len, column))).tobytes()
        return offsets + inner(list(chain.from_iterable(column)))

    return encode


def _low_cardinality_strings(column: Sequence[Any]) -> bytes:
    """A ``LowCardinality(String)`` column: version, flags, dictionary, indexes.

    The layout clickhouse-connect writes: version 1 (the column's prefix),
    then the index width with the "new dictionary" and "additional keys"
    flags, the dictionary as a ``String`` column, and each row's index in it.
    """
    keys = list(dict.fromkeys(column))
    if not keys:
        return b""
    _check(keys, str)
    width = (len(keys).bit_length() - 1) >> 3  # as clickhouse-connect: int(log2(len)) >> 3
    code = _code(1 << width, False)
    where = dict(zip(keys, range(len(keys)), strict=True))
    return b"".join(
        (
            (1).to_bytes(8, "little"),
            ((1 << 9) | (1 << 10) | width).to_bytes(8, "little"),
            len(keys).to_bytes(8, "little"),
            _strings(keys),
            len(column).to_bytes(8, "little"),
            array(code, map(where.__getitem__, column)).tobytes(),
        )
    )


_WRAPPED: Final = re.compile(r"^(Nullable|Array|LowCardinality)\((.*)\)$")
_DATETIME64: Final = re.compile(r"^DateTime64\(\d+(, *'[^']*')?\)$")


def column_encoder(type_name: str) -> ColumnEncoder | None:
    """The fast encoder of a column of ClickHouse type ``type_name``, or ``None``."""
    if not _LITTLE:  # pragma: no cover - ClickHouse's Native format is little-endian
        return None
    if type_name == "String":
        return _strings
    if type_name == "Date":
        return _dates
    if type_name in _INTS:
        return _ints(_INTS[type_name], int, bool)
    if _DATETIME64.match(type_name):
        return _ints(_INTS["Int64"], int)
    wrapped = _WRAPPED.match(type_name)
    if wrapped is None:
        return None
    wrapper, inner = wrapped.groups()
    if wrapper == "LowCardinality":
        return _low_cardinality_strings if inner == "String" else None
    if wrapper == "Array":
        if inner.startswith("LowCardinality"):  # its prefix would come before the offsets
            return None
        encoder = column_encoder(inner)
        return None if encoder is None else _array(encoder)
    if inner in _INTS:
        return _nullable_ints(_INTS[inner], int, bool)
    if _DATETIME64.match(inner):
        return _nullable_ints(_INTS["Int64"], int)
    return None


def native_block(
    names: Sequence[str],
    types: Sequence[str],
    encoders: Sequence[ColumnEncoder],
    columns: Sequence[Sequence[Any]],
) -> bytes:
    """One ``Native`` block of ``columns`` (all of the same length, at least one row).

    Raises:
        Unsupported: a column's values are not for the fast path.
        TypeError, OverflowError: from ``array``, for such values too.
    """
    rows = len(columns[0])
    if any(len(c) != rows for c in columns):
        raise Unsupported("columns of different lengths")
    parts = [_leb128(len(columns)), _leb128(rows)]
    for name, type_name, encoder, column in zip(names, types, encoders, columns, strict=True):
        for text in (name, type_name):
            raw = text.encode()
            parts += (_leb128(len(raw)), raw)
        parts.append(encoder(column))
    return b"".join(parts)
