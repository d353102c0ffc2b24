"""snapshot and restore on real stores: a point-in-time copy taken while writers commit.

Method: writers put objects continuously through a real Store while take_snapshot runs in a
thread (as the snapshot job does inside a node); the snapshot is restored into a new data
dir, opened, and checked against what the writers were told before and after it. No mocks.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from storage.ops import fsck
from storage.ops.rebuild import COMPLETE, rebuild_index
from storage.ops.snapshot import (
    MANIFEST_FILE,
    SnapshotError,
    read_description,
    restore_snapshot,
    take_snapshot,
)
from storage.segments import segment_path
from storage.store import Store, StoreConfig
from tests.unit.storage.ops.test_rebuild import RESTORED, Notes, drop_catalog, dump
from tests.unit.storage.stores import put_object, read_all, site_of

WRITERS = 4
SEGMENT_BYTES = 256 * 1024  # many sealed segments, to link and to copy


def content(key: str) -> bytes:
    """Each key's bytes follow from its name: any object read back can be checked."""
    size = 1000 + int(hashlib.sha256(key.encode()).hexdigest()[:4], 16) % 60_000
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


async def open_store(data_dir: Path) -> Store:
    return await Store.open(
        StoreConfig(
            data_dir, node_id="node-s", segment_bytes_max=SEGMENT_BYTES, chunk_bytes=1 << 16
        )
    )


async def snapshot_under_load(
    data_dir: Path, out: Path
) -> tuple[set[str], set[str], dict[str, Any]]:
    """(keys acknowledged before the snapshot began, keys begun after it ended, report)."""
    store = await open_store(data_dir)
    await store.create_bucket("load", "owner")
    acknowledged: list[tuple[float, float, str]] = []  # (started, acknowledged, key)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def writer(number: int) -> None:
        count = 0
        while not stop.is_set():
            key = f"w{number}/{count:05d}"
            started = loop.time()
            await put_object(store, "load", key, content(key), piece=20_000)
            acknowledged.append((started, loop.time(), key))
            count += 1

    tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
    try:
        while len(acknowledged) < 200:
            await asyncio.sleep(0.01)
        began = loop.time()
        report = await asyncio.to_thread(take_snapshot, data_dir, out, Notes())
        ended = loop.time()
        while not any(started > ended for started, _done, _key in acknowledged):
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await store.close()
    before = {key for _started, done, key in acknowledged if done < began}
    after = {key for started, _done, key in acknowledged if started > ended}
    return before, after, report


def test_a_snapshot_under_write_load_restores_to_a_consistent_state(tmp_path: Path) -> None:
    data_dir, out, restored = tmp_path / "data", tmp_path / "snap", tmp_path / "restored"
    before, after, report = asyncio.run(snapshot_under_load(data_dir, out))

    assert report["segments"] > 2 and report["linked_bytes"] > 0
    restore_report = restore_snapshot(out, restored, Notes())
    assert restore_report["node_id"] == "node-s"
    assert restore_report["log_continues_after"] > report["last_seq"]

    async def check() -> set[str]:
        store = await open_store(restored)
        try:
            page = await store.list_objects("load", "", "", "", 100_000)
            keys = {entry.key for entry in page.entries}
            for key in keys:  # every object the snapshot holds is whole and right
                assert await read_all(store, await store.head_object("load", key)) == content(key)
            consistency = await store.inspect(fsck.check, store.segment_dir)
            assert consistency.clean, consistency.to_json()
            return keys
        finally:
            await store.close()

    keys = asyncio.run(check())
    assert before <= keys, "a write acknowledged before the snapshot began is missing"
    assert not keys & after, "a write begun after the snapshot ended is in it"
    assert len(keys) == report["objects"]


def test_restored_node_continues_its_log_and_clock_beyond_the_snapshot(tmp_path: Path) -> None:
    data_dir, out, restored = tmp_path / "data", tmp_path / "snap", tmp_path / "restored"

    async def write(directory: Path, key: str) -> tuple[int, int]:
        store = await open_store(directory)
        try:
            if not await store.list_buckets():
                await store.create_bucket("b", "owner")
            manifest = await put_object(store, "b", key, content(key))
            return await (await site_of(store)).last_seq(), manifest.hlc
        finally:
            await store.close()

    asyncio.run(write(data_dir, "first"))
    take_snapshot(data_dir, out, Notes())
    lost_seq, lost_hlc = asyncio.run(write(data_dir, "after the snapshot"))  # a peer has it

    restore_snapshot(out, restored, Notes())
    new_seq, new_hlc = asyncio.run(write(restored, "after the restore"))

    # A peer that pulled up to lost_seq must not skip the new change; none of its stamps
    # may be reused for a different change.
    assert new_seq > lost_seq and new_hlc > lost_hlc


def test_the_restored_data_dir_can_itself_be_rebuilt(tmp_path: Path) -> None:
    data_dir, out, restored = tmp_path / "data", tmp_path / "snap", tmp_path / "restored"
    asyncio.run(snapshot_under_load(data_dir, out))
    restore_snapshot(out, restored, Notes())
    before = dump(restored)
    drop_catalog(restored)

    report = rebuild_index(restored, Notes())

    assert report["exit_code"] == COMPLETE, report
    after = dump(restored)
    for table in RESTORED:
        assert after[table] == before[table], table


def small_snapshot(tmp_path: Path) -> tuple[Path, Path]:
    data_dir, out = tmp_path / "data", tmp_path / "snap"

    async def write() -> None:
        store = await open_store(data_dir)
        try:
            await store.create_bucket("b", "owner")
            await put_object(store, "b", "k", content("k"))
        finally:
            await store.close()

    asyncio.run(write())
    take_snapshot(data_dir, out, Notes(), link=False)
    return data_dir, out


def test_restore_refuses_a_damaged_snapshot_and_changes_nothing(tmp_path: Path) -> None:
    _data_dir, out = small_snapshot(tmp_path)
    segment = out / read_description(out)["segments"][-1]["file"]
    with open(segment, "r+b") as file:
        file.seek(100)
        byte = file.read(1)
        file.seek(100)
        file.write(bytes([byte[0] ^ 1]))
    target = tmp_path / "target"

    with pytest.raises(SnapshotError, match="does not match its BLAKE3"):
        restore_snapshot(out, target, Notes())

    assert sorted(os.listdir(target)) == ["lakenode.lock"]


def test_restore_refuses_a_data_dir_in_use_or_not_empty_unless_forced(tmp_path: Path) -> None:
    data_dir, out = small_snapshot(tmp_path)

    async def while_open() -> None:
        store = await open_store(data_dir)
        try:
            with pytest.raises(SnapshotError, match="a node is running"):
                restore_snapshot(out, data_dir, Notes(), force=True)
        finally:
            await store.close()

    asyncio.run(while_open())
    with pytest.raises(SnapshotError, match="not empty"):
        restore_snapshot(out, data_dir, Notes())

    report = restore_snapshot(out, data_dir, Notes(), force=True)

    aside = Path(report["moved_aside"])
    assert (aside / "meta.db").exists() and (aside / "segments").is_dir()
    assert (data_dir / "node_id").read_text().strip() == "node-s"


def test_snapshot_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    data_dir, out = small_snapshot(tmp_path)
    with pytest.raises(SnapshotError, match="not an empty directory"):
        take_snapshot(data_dir, out, Notes())
    assert (out / MANIFEST_FILE).exists()


def test_snapshot_files_are_private(tmp_path: Path) -> None:
    _data_dir, out = small_snapshot(tmp_path)
    assert (out / "meta.db").stat().st_mode & 0o777 == 0o600  # it holds secret keys
    assert out.stat().st_mode & 0o777 == 0o700
    conn = sqlite3.connect(out / "meta.db")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()


def test_a_segment_listed_but_already_gone_is_reported_not_waited_for(tmp_path: Path) -> None:
    data_dir, first = small_snapshot(tmp_path)
    listed = [item["id"] for item in read_description(first)["segments"]]
    segment_path(data_dir / "segments", listed[-1]).unlink()  # as a GC that kept its row

    report = take_snapshot(data_dir, tmp_path / "second", Notes())

    assert report["absent_segments"] == [listed[-1]]
    assert [item["id"] for item in read_description(tmp_path / "second")["segments"]] == listed[:-1]
