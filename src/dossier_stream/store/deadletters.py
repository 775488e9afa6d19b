"""The ``dead_letters`` table: original bytes kept as bytes, one stable identity per letter.

Migration 5 (appended to :data:`dossier_stream.store.sink.MIGRATIONS`) rebuilds
the table keyed by ``id`` instead of the source (topic, partition, offset),
which repeat when a topic is deleted and created again (a new letter at an old
offset would have replaced the old letter, and inherited its ``replayed_at``):

* ``id`` — :func:`letter_id` of where the letter comes from: for the worker's
  letters the source topic, partition, offset *and the record's timestamp*
  (redelivering the same record gives the same id, so a replayed batch does
  not log its letters twice; a recreated topic's records have new
  timestamps); for the lines ``produce`` could not route, the file, the line
  number and the bytes. It travels as the ``id`` header of the letter on the
  dead-letter topic.
* ``value`` — the original bytes, not UTF-8 included (ClickHouse ``String``
  holds bytes; read back with ``column_formats={"value": "bytes"}``).
* ``value_exact`` — 1 when ``value`` holds the original bytes; 0 for the rows
  of older versions, which stored the value decoded with U+FFFD replacement
  characters (their ``id`` is ``legacy:topic:partition:offset``).

The same migration adds ``unit_reports.deleted``: a tombstone on
``unit.reports.v1`` marks that unit's reports deleted (the row stays, so the
deletion survives a restart; the readers skip it).

The reads and writes of the table are :class:`DeadLetterTable`, a part of
:class:`~dossier_stream.store.sink.ClickHouseStore`.

Migration 8 (:data:`GRANULES_MIGRATION`) makes the table again with granules
and merge blocks of at most 1 MiB, so that chdb's merges of many large letters
stay small; the rows are copied as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = [
    "DEAD_LETTER_COLUMNS",
    "GRANULES_MIGRATION",
    "MIGRATION",
    "DeadLetterTable",
    "letter_id",
]

DEAD_LETTER_COLUMNS: Final = (
    "id", "topic", "partition", "offset", "reason", "code", "detail", "value", "value_exact",
    "logged_at", "replayed_at",
)  # fmt: skip
"""The columns of ``dead_letters``; a row written by the worker has all but the last."""

_TABLE: Final = """(
            id String,
            topic LowCardinality(String),
            partition Int32,
            offset Int64,
            reason String,
            code LowCardinality(String),
            detail String,
            value String,
            value_exact UInt8 DEFAULT 1,
            logged_at DateTime64(3, 'UTC'),
            replayed_at Nullable(DateTime64(3, 'UTC'))
        ) ENGINE = ReplacingMergeTree
        ORDER BY id"""
"""The columns, engine and key of ``dead_letters`` since migration 5 (migration 8 adds settings)."""

MIGRATION: Final = (
    5,
    "dead_letters keyed by a stable id with the original bytes; unit_reports.deleted",
    (
        f"CREATE TABLE IF NOT EXISTS dead_letters_v5 {_TABLE}",
        "INSERT INTO dead_letters_v5 SELECT concat('legacy:', topic, ':', toString(partition), "
        "':', toString(offset)), topic, partition, offset, reason, code, detail, value, 0, "
        "logged_at, replayed_at FROM dead_letters FINAL",
        "RENAME TABLE dead_letters TO dead_letters_v4, dead_letters_v5 TO dead_letters",
        "DROP TABLE dead_letters_v4",
        "ALTER TABLE unit_reports ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0",
    ),
)


_SMALL: Final = 1 << 20
"""Most bytes of a granule and of a merge's block of ``dead_letters`` (migration 8)."""

GRANULES_MIGRATION: Final = (
    8,
    "dead_letters: granules and merge blocks of at most 1 MiB (merges of large letters)",
    # A letter keeps its message whole, up to the broker's limit (too_large ones are over
    # 64 KiB). With ClickHouse's 10 MiB granules a merge of a few parts held a granule of
    # values per part: merging a 30-million run's letters took 120-250 MiB for a second,
    # 65-76 MiB with these settings (bench.merges --tables dead_letters). The granule size
    # is fixed when a table is made, so the table is made again and its rows copied, as
    # migration 5 did.
    (
        f"CREATE TABLE IF NOT EXISTS dead_letters_v8 {_TABLE} "
        f"SETTINGS index_granularity_bytes = {_SMALL}, merge_max_block_size_bytes = {_SMALL}",
        f"INSERT INTO dead_letters_v8 ({', '.join(DEAD_LETTER_COLUMNS)}) "
        f"SELECT {', '.join(DEAD_LETTER_COLUMNS)} FROM dead_letters FINAL",
        "RENAME TABLE dead_letters TO dead_letters_v7, dead_letters_v8 TO dead_letters",
        "DROP TABLE dead_letters_v7",
    ),
)


def letter_id(*parts: object) -> str:
    """The identity of a dead letter: a hash of where it comes from (32 hex digits).

    Args:
        parts: for a worker's letter ``topic, partition, offset, timestamp_ms``
            of the source record; for a line ``produce`` could not route
            ``"produce", file, line number, bytes``.
    """
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def _filter(reason: str | None, topic: str | None, pending: bool) -> tuple[str, dict[str, Any]]:
    """A ``WHERE`` clause of constant SQL text; the values go as bound parameters."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if reason:
        clauses.append("(code = {reason:String} OR reason = {reason:String})")
        params["reason"] = reason
    if topic:
        clauses.append("topic = {topic:String}")
        params["topic"] = topic
    if pending:
        clauses.append("replayed_at IS NULL")
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


class DeadLetterTable:
    """Reads and writes of ``dead_letters`` (mixed into ``ClickHouseStore``)."""

    client: Client

    if TYPE_CHECKING:  # provided by ClickHouseStore, which mixes this class in

        def _insert(
            self,
            table: str,
            column_names: Sequence[str],
            columns: list[Sequence[Any]],
            *,
            distinct: bool = False,
        ) -> None: ...

    def write_dead_letters(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert dead-letter rows (every column of :data:`DEAD_LETTER_COLUMNS` but the last)."""
        if not rows:
            return 0
        columns = DEAD_LETTER_COLUMNS[:-1]
        widths = {len(r) for r in rows}
        if widths != {len(columns)}:
            raise ValueError(f"rows of {sorted(widths)} values for {len(columns)} columns")
        self._insert("dead_letters", columns, [[r[i] for r in rows] for i in range(len(columns))])
        return len(rows)

    def dead_letters(self, reason: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Logged dead letters, newest first, optionally of one reason code."""
        return self.find_dead_letters(reason=reason, limit=limit)

    def find_dead_letters(
        self,
        *,
        reason: str | None = None,
        topic: str | None = None,
        pending: bool = False,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Logged dead letters with their replay time (``replayed_at``, or ``None``).

        Args:
            reason: a reason code (``unknown_unit``) or a whole reason
                (``missing_field:unit_code``); ``None`` for every reason.
            topic: only letters read from this source topic.
            pending: only letters not replayed yet.
            limit: at most this many rows (``None``: all).
            oldest_first: in the order they were logged (for a replay)
                instead of the newest first.

        Returns:
            One dict per letter, keyed by column name; ``value`` is bytes,
            ``logged_at`` and ``replayed_at`` are aware (UTC) datetimes.
        """
        where, params = _filter(reason, topic, pending)
        order = "logged_at" if oldest_first else "logged_at DESC"
        limit_clause = ""
        if limit is not None:
            limit_clause = " LIMIT {limit:UInt64}"
            params["limit"] = limit
        result = self.client.query(
            f"SELECT {', '.join(DEAD_LETTER_COLUMNS)} FROM dead_letters FINAL {where} "
            f"ORDER BY {order}, topic, partition, offset, id{limit_clause}",
            parameters=params,
            column_formats={"value": "bytes"},
        )
        letters = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
        for letter in letters:  # the columns are UTC; the client returns them naive
            for column in ("logged_at", "replayed_at"):
                at = letter[column]
                if isinstance(at, datetime) and at.tzinfo is None:
                    letter[column] = at.replace(tzinfo=UTC)
        return letters

    def dead_letter_counts(
        self, *, reason: str | None = None, topic: str | None = None
    ) -> list[tuple[str, int, int]]:
        """``(reason, letters, of which replayed)`` per reason, the most frequent first."""
        where, params = _filter(reason, topic, pending=False)
        rows = self.client.query(
            "SELECT reason, count() AS n, countIf(replayed_at IS NOT NULL) "
            f"FROM dead_letters FINAL {where} GROUP BY reason ORDER BY n DESC, reason",
            parameters=params,
        ).result_rows
        return [(str(r), int(n), int(m)) for r, n, m in rows]

    def mark_dead_letters_replayed(self, letters: Sequence[Mapping[str, Any]], at: datetime) -> int:
        """Record that ``letters`` (rows of :meth:`find_dead_letters`) were re-published at ``at``.

        Each row is written again with ``replayed_at`` set: ``dead_letters`` is
        a ``ReplacingMergeTree`` keyed by ``id`` without a version column, in
        which the last insert wins.
        """
        if not letters:
            return 0
        columns: list[Sequence[Any]] = [
            [row[c] for row in letters] for c in DEAD_LETTER_COLUMNS[:-1]
        ]
        columns.append([at] * len(letters))
        self._insert("dead_letters", DEAD_LETTER_COLUMNS, columns)
        return len(letters)
