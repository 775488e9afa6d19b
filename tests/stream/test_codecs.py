"""Every standard codec decodes in the worker's client library, from another library's bytes.

Both runtimes read through aiokafka (the batch consumer directly, Faust on top
of it), and a batch whose codec library is missing stalls a partition
(``UnsupportedCodecError: Libraries for lz4 compression codec not found``).
The embedded Tansu broker hands some batches back decompressed (lz4 always,
and aiokafka's and kafka-python's snappy), so the end-to-end test on it
(``test_upstream.py``) cannot prove those two: here kafka-python's record-batch
builder — an independent implementation of the format and the codecs —
compresses a batch with each codec, and aiokafka's parsers (the C one the
worker uses, and the pure-Python one) must give back every record.
"""

from __future__ import annotations

import pytest
from aiokafka.record import default_records as aio
from kafka.record import default_records as kp

CODECS = {
    "none": kp.DefaultRecordBase.CODEC_NONE,
    "gzip": kp.DefaultRecordBase.CODEC_GZIP,
    "snappy": kp.DefaultRecordBase.CODEC_SNAPPY,
    "lz4": kp.DefaultRecordBase.CODEC_LZ4,
    "zstd": kp.DefaultRecordBase.CODEC_ZSTD,
}
VALUES = [
    b'{"event_type": "dossier.received", "n": %d, "note": "H\xe1\xbb\x93 s\xc6\xa1"}' % i
    for i in range(200)
]


def _batch(codec: int) -> bytes:
    builder = kp.DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=False, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1024 * 1024,
    )  # fmt: skip
    for offset, value in enumerate(VALUES):
        key = None if offset % 3 == 0 else b"000.00.31.H26-241003-%04d" % offset
        builder.append(offset, 1_727_940_000_000 + offset, key, value, [])
    return bytes(builder.build())


@pytest.mark.parametrize("parser", [aio.DefaultRecordBatch, aio._DefaultRecordBatchPy])
@pytest.mark.parametrize("name", list(CODECS))
def test_aiokafka_reads_a_batch_another_library_compressed(name: str, parser: type) -> None:
    raw = _batch(CODECS[name])
    batch = parser(raw)
    assert batch.compression_type == CODECS[name]  # compressed as asked, not by default
    records = list(batch)
    assert [r.value for r in records] == VALUES
    assert [r.offset for r in records] == list(range(len(VALUES)))
    assert records[1].key == b"000.00.31.H26-241003-0001" and records[0].key is None
    if name != "none":
        assert len(raw) < sum(map(len, VALUES))  # really compressed
