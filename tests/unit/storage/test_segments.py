"""Segments: ordered appends, verified reads, rotation, and torn-tail recovery."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from storage.errors import CorruptData
from storage.manifest import ChunkRef
from storage.segments import (
    RECORD_HEADER,
    SEGMENT_HEADER,
    RecordKind,
    SegmentReader,
    SegmentWriter,
    list_segment_ids,
    recover_segment,
    scan_records,
    segment_path,
)


def chunk_ref(record_offset: int, segment_id: int, payload: bytes) -> ChunkRef:
    return ChunkRef(segment_id, record_offset, len(payload), blake3.blake3(payload).digest())


def test_appended_chunks_read_back_verified(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, 1, 1 << 20)
    payloads = [os.urandom(n) for n in (1, 100, 70_000)]
    records = [writer.append(RecordKind.CHUNK, p) for p in payloads]
    durable = writer.sync()
    assert durable == {1: records[-1].offset + len(payloads[-1])}
    reader = SegmentReader(tmp_path)
    for record, payload in zip(records, payloads, strict=True):
        assert reader.read_chunk(chunk_ref(record.offset, 1, payload)) == payload
    writer.close()
    reader.close()


def test_corrupted_chunk_is_never_returned(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, 1, 1 << 20)
    payload = b"important bytes" * 100
    record = writer.append(RecordKind.CHUNK, payload)
    writer.close()
    with open(segment_path(tmp_path, 1), "r+b") as file:
        file.seek(record.offset + 5)
        file.write(b"X")
    with pytest.raises(CorruptData):
        SegmentReader(tmp_path).read_chunk(chunk_ref(record.offset, 1, payload))


def test_rotation_starts_a_new_segment_when_full(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, 1, 4096)
    records = [writer.append(RecordKind.CHUNK, os.urandom(1500)) for _ in range(6)]
    assert len({r.segment_id for r in records}) >= 3
    assert writer.take_sealed()
    writer.close()
    for segment_id in list_segment_ids(tmp_path):
        assert segment_path(tmp_path, segment_id).stat().st_size <= 4096


def test_a_rotated_segment_reports_its_final_end_at_the_next_sync(tmp_path: Path) -> None:
    # A chunk appended just before rotation may be committed later: the catalog must learn
    # the rotated segment's end (fsck and GC take it as the committed extent).
    writer = SegmentWriter(tmp_path, 1, 4096)
    first = writer.append(RecordKind.CHUNK, os.urandom(3000))
    second = writer.append(RecordKind.CHUNK, os.urandom(3000))  # rotates to segment 2
    assert (first.segment_id, second.segment_id) == (1, 2)
    assert writer.sync() == {1: first.offset + 3000, 2: second.offset + 3000}
    writer.close()


def test_recovery_truncates_a_torn_tail_but_keeps_intact_records(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, 1, 1 << 20)
    kept = [writer.append(RecordKind.CHUNK, os.urandom(500)) for _ in range(3)]
    writer.close()
    path = segment_path(tmp_path, 1)
    intact_size = path.stat().st_size
    torn_header = RECORD_HEADER.pack(1, 10_000, b"\x00" * 32)
    with open(path, "ab") as file:
        file.write(torn_header + b"partial")
    assert recover_segment(path, durable_end=kept[0].offset + 500) == intact_size
    assert path.stat().st_size == intact_size
    records, end = scan_records(path)
    assert [r.offset for r in records] == [r.offset for r in kept]
    assert end == intact_size


def test_recovery_never_cuts_below_the_durable_end(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, 1, 1 << 20)
    record = writer.append(RecordKind.CHUNK, os.urandom(500))
    writer.close()
    path = segment_path(tmp_path, 1)
    with open(path, "r+b") as file:  # damage committed data: scan stops early
        file.seek(record.offset)
        file.write(b"\xff" * 10)
    durable_end = record.offset + 500
    assert recover_segment(path, durable_end) == durable_end
    assert path.stat().st_size == durable_end


def test_recovery_removes_a_segment_without_a_complete_header(tmp_path: Path) -> None:
    path = segment_path(tmp_path, 7)
    path.write_bytes(b"LKSG")
    assert recover_segment(path, 0) == 0
    assert not path.exists()


def test_a_segment_is_created_by_the_first_append_with_its_header_first(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, 3, 1 << 20)
    assert not segment_path(tmp_path, 3).exists()  # opened only to read: no empty segment
    assert writer.active_segment_id == 3
    record = writer.append(RecordKind.CHUNK, b"payload")
    assert (record.segment_id, record.offset) == (3, SEGMENT_HEADER.size + RECORD_HEADER.size)
    assert segment_path(tmp_path, 3).read_bytes()[:4] == b"LKSG"
    assert writer.sync() == {3: SEGMENT_HEADER.size + RECORD_HEADER.size + len(b"payload")}
    writer.close()


def test_recovery_reads_only_what_follows_the_durable_end(tmp_path: Path) -> None:
    """Every start recovers the active segment (up to 1 GiB): the committed prefix is not
    read again; damage in it stays there for scrub, and the torn tail is still cut."""
    writer = SegmentWriter(tmp_path, 1, 1 << 20)
    committed = [writer.append(RecordKind.CHUNK, os.urandom(500)) for _ in range(3)]
    uncommitted = writer.append(RecordKind.CHUNK, os.urandom(500))
    writer.close()
    path = segment_path(tmp_path, 1)
    intact_size = path.stat().st_size
    with open(path, "r+b") as file:
        file.seek(committed[0].offset)  # a full scan would stop here and keep only the prefix
        file.write(b"\xff" * 10)
        file.seek(0, os.SEEK_END)
        file.write(RECORD_HEADER.pack(1, 10_000, b"\x00" * 32) + b"partial")
    durable_end = committed[-1].offset + 500
    assert recover_segment(path, durable_end) == intact_size
    assert uncommitted.offset + 500 == intact_size == path.stat().st_size


def test_recovery_of_a_segment_shorter_than_its_durable_end_scans_it_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = SegmentWriter(tmp_path, 1, 1 << 20)
    record = writer.append(RecordKind.CHUNK, os.urandom(500))
    writer.close()
    path = segment_path(tmp_path, 1)
    with open(path, "r+b") as file:
        file.truncate(record.offset + 100)  # committed bytes lost
    assert recover_segment(path, record.offset + 500) == record.offset + 500
    assert "committed bytes up to" in caplog.text
