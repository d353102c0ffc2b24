"""storage/usage.py on real stores: live bytes follow references; garbage is the rest."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from storage.segments import RECORD_HEADER
from storage.store import Store, StoreConfig
from storage.usage import UsageTotals, segment_usage, usage_totals
from tests.unit.storage.stores import put_object, run_with_store

CHUNK = 64 * 1024


def totals(store: Store) -> UsageTotals:
    conn = sqlite3.connect(store.config.data_dir / "meta.db")
    try:
        return usage_totals(conn, store.config.data_dir / "segments")
    finally:
        conn.close()


def record_bytes(size: int) -> int:
    """Chunk records (header + payload) that hold ``size`` bytes cut at CHUNK."""
    chunks = -(-size // CHUNK)
    return size + chunks * RECORD_HEADER.size


def test_live_garbage_and_objects_follow_writes_and_deletes(tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        empty = totals(store)
        assert (empty.live_bytes, empty.objects) == (0, 0)
        await put_object(store, "b", "one", b"1" * 100_000)
        await put_object(store, "b", "two", b"2" * 5_000)
        after_puts = totals(store)
        assert after_puts.objects == 2
        assert after_puts.live_bytes == record_bytes(100_000) + record_bytes(5_000)
        # Manifest records and the segment header are not chunk records: garbage here.
        assert after_puts.garbage_bytes == after_puts.segment_bytes - after_puts.live_bytes > 0

        await put_object(store, "b", "one", b"3" * 10_000)  # unversioned: replaces "one"
        await store.delete_object("b", "two")  # a tombstone, no object
        replaced = totals(store)
        assert replaced.objects == 1
        # The change log still references the old bytes only for peers; with none known,
        # the horizon is the last seq and nothing is kept for them.
        assert replaced.live_bytes == record_bytes(10_000)
        assert replaced.garbage_bytes - after_puts.garbage_bytes >= record_bytes(105_000)

    run_with_store(scenario, tmp_path / "data", chunk_bytes=CHUNK)


def test_shared_chunks_count_once_and_parts_are_live(tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        source = await put_object(store, "b", "src", b"s" * 70_000)
        await store.copy_object(source, "b", "copy", None)  # shares the source's chunks
        assert totals(store).live_bytes == record_bytes(70_000)
        upload = await store.create_upload("b", "big", (), "owner")
        writer = await store.begin_part(upload, 1 << 30)
        await writer.write(b"p" * 20_000)
        await writer.finish()
        await writer.commit_part(upload, 1)
        with_part = totals(store)
        assert with_part.live_bytes == record_bytes(70_000) + record_bytes(20_000)
        assert with_part.objects == 2  # an upload in flight is not an object
        await store.abort_upload(upload)
        assert totals(store).live_bytes == record_bytes(70_000)

    run_with_store(scenario, tmp_path / "data", chunk_bytes=CHUNK)


def test_segments_are_listed_with_their_file_sizes(tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        for index in range(4):
            await put_object(store, "b", f"k{index}", bytes([index]) * 60_000)
        segment_dir = store.config.data_dir / "segments"
        conn = sqlite3.connect(store.config.data_dir / "meta.db")
        try:
            segments = segment_usage(conn, segment_dir)
        finally:
            conn.close()
        assert len(segments) >= 2  # rotated at 100 kB
        assert [s.file_bytes for s in segments] == [
            path.stat().st_size for path in sorted(segment_dir.glob("*.seg"))
        ]
        assert all(s.sealed for s in segments[:-1])
        assert all(0 <= s.live_bytes <= s.file_bytes for s in segments)
        assert sum(s.live_bytes for s in segments) == 4 * record_bytes(60_000)

    async def small_segments() -> None:
        store = await Store.open(
            StoreConfig(tmp_path / "data", chunk_bytes=CHUNK, segment_bytes_max=100_000)
        )
        try:
            await store.create_bucket("b", "owner")
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(small_segments())
