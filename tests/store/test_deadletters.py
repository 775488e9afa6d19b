"""``dead_letters`` since migration 5: original bytes, a stable id, legacy rows kept."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

from dossier_stream.cli.deadletter import is_lossy
from dossier_stream.store.deadletters import letter_id
from dossier_stream.store.sink import MIGRATIONS, ClickHouseStore, connect

AT = datetime(2024, 10, 3, 1, 0, tzinfo=UTC)


def test_migration_5_keeps_the_letters_of_version_4_and_marks_them_inexact(
    tmp_path: Path,
) -> None:
    client = connect(f"chdb://{tmp_path / 'ch'}")
    store = ClickHouseStore(client)
    try:
        store.migrate(before=5)  # a store of version 4, as older workers left it
        old = ["topic", "partition", "offset", "reason", "code", "detail", "value", "logged_at"]
        client.insert(
            "dead_letters",
            [("dossier.payments.v1", 0, 5, "not_json", "not_json", "d", "caf\ufffd", AT),
             ("dossier.payments.v1", 0, 6, "not_json", "not_json", "d", "plain", AT)],
            column_names=old,
        )  # fmt: skip
        client.insert(
            "unit_reports",
            [("U", date(2024, 9, 15), date(2024, 10, 14), 9, "e1", 1)],
            column_names=["unit_code", "period_start", "period_end", "received_total",
                          "event_id", "version"],
        )  # fmt: skip
        assert store.migrate() == [v for v, _, _ in MIGRATIONS if v > 4]
        legacy = {r["offset"]: r for r in store.find_dead_letters()}
        assert legacy[5]["id"] == "legacy:dossier.payments.v1:0:5"
        assert legacy[5]["value"] == "caf\ufffd".encode() and legacy[5]["value_exact"] == 0
        assert is_lossy(legacy[5]) and not is_lossy(legacy[6])
        assert store.reported_totals(date(2024, 9, 15), date(2024, 10, 14)) == {
            ("U", date(2024, 9, 15), date(2024, 10, 14)): 9
        }
        # a topic deleted and created again: offset 5 again, another letter, both kept
        raw = b"caf\xe9 \x00\xff"
        new = letter_id("dossier.payments.v1", 0, 5, 1_733_000_000_000)
        store.write_dead_letters(
            [(new, "dossier.payments.v1", 0, 5, "not_json", "not_json", "d", raw, 1, AT)]
        )
        store.mark_dead_letters_replayed([legacy[5]], AT)
        rows = {r["id"]: r for r in store.find_dead_letters(topic="dossier.payments.v1")}
        assert set(rows) == {new, legacy[5]["id"], legacy[6]["id"]}
        assert rows[new]["value"] == raw and not is_lossy(rows[new])  # byte for byte
        assert rows[new]["replayed_at"] is None  # not the old letter's replay
        assert rows[legacy[5]["id"]]["replayed_at"] == AT
        assert store.migrate() == []  # once
    finally:
        store.close()


def _granule_settings(store: ClickHouseStore) -> dict[str, str]:
    create = str(store.client.command("SHOW CREATE TABLE dead_letters")).replace("\\n", " ")
    return dict(re.findall(r"(index_granularity_bytes|merge_max_block_size_bytes) = (\d+)", create))


def test_migration_8_makes_granules_of_1_mib_and_keeps_every_letter(tmp_path: Path) -> None:
    """Large letters' merges hold 1 MiB granules, on a new store and on an older one.

    An older store's letters (bytes that are not UTF-8, a letter of 70 KB, a
    replayed one) come through the copy exactly, and the table takes letters
    afterwards as before.
    """
    want = {"index_granularity_bytes": "1048576", "merge_max_block_size_bytes": "1048576"}
    fresh = ClickHouseStore(connect(f"chdb://{tmp_path / 'fresh'}"))
    try:
        fresh.migrate()
        assert _granule_settings(fresh) == want
    finally:
        fresh.close()
    client = connect(f"chdb://{tmp_path / 'older'}")
    store = ClickHouseStore(client)
    try:
        store.migrate(before=8)
        assert _granule_settings(store) == {}
        big = b'{"event_type": "dossier.received", "padding": "' + b"x" * 70_000 + b'"}'
        raw = b"caf\xe9 \x00\xff"
        letters = [
            (letter_id("t", 0, n, n), "dossier.progress.v1", 0, n, "too_large", "too_large",
             "d", value, 1, AT)
            for n, value in enumerate((big, raw, b"plain"))
        ]  # fmt: skip
        store.write_dead_letters(letters)
        before = {r["id"]: r for r in store.find_dead_letters()}
        store.mark_dead_letters_replayed([before[letters[2][0]]], AT)
        before = {r["id"]: r for r in store.find_dead_letters()}
        assert store.migrate() == [v for v, _, _ in MIGRATIONS if v >= 8]
        assert _granule_settings(store) == want
        assert {r["id"]: r for r in store.find_dead_letters()} == before
        assert before[letters[0][0]]["value"] == big and before[letters[1][0]]["value"] == raw
        assert before[letters[2][0]]["replayed_at"] == AT
        later = (letter_id("t", 0, 9, 9), "dossier.progress.v1", 0, 9, "not_json", "not_json",
                 "d", b"{", 1, AT)  # fmt: skip
        store.write_dead_letters([later])
        assert len(store.find_dead_letters()) == 4
        assert store.migrate() == []
    finally:
        store.close()
