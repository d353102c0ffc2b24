"""Operator tools with locked versions present: rebuild-index, snapshot/restore, chunk GC.

Two sites build the lock situations replication produces (a locked and held version; a
version deleted on b before b knew its hold: the delete refused and waiting on a, the version
brought back on b; the lock row of a version removed once its lock ran out). Each tool must
keep every locked version and its bytes, and the lock state itself: rebuild-index restores
``version_locks`` row for row from the journal in the segments (``version.lock`` changes
replayed through the apply path, even after GC moved or dropped their manifests),
snapshot/restore keeps the catalog, and GC keeps what locked versions reference.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.hlc import wall_clock_ms
from storage.ops import gc
from storage.ops.rebuild import COMPLETE
from storage.ops.snapshot import restore_snapshot, take_snapshot
from storage.store import Store, StoreConfig
from tests.unit.storage.ops.test_gc import NoProgress, assert_fsck_clean
from tests.unit.storage.ops.test_rebuild import RESTORED, Notes, drop_catalog, dump, rebuild
from tests.unit.storage.stores import put_object, read_all, run_with_two_stores
from tests.unit.storage.sync.locking import DAY_MS, compliance, hold, set_lock
from tests.unit.storage.sync.test_apply import replicate
from tests.unit.storage.sync.test_apply_locks import BUCKET, exchange, present, versioned_pair

LOCKED = {"k": b"backup data", "back": b"deleted on b, refused on a, back on b"}


async def lock_situations(a: Store, b: Store) -> None:
    v = await versioned_pair(a, b)
    await set_lock(a, BUCKET, "k", v.version_id, compliance(wall_clock_ms() + DAY_MS))
    await set_lock(a, BUCKET, "k", v.version_id, hold)
    back = await put_object(a, BUCKET, "back", LOCKED["back"])
    expired = await put_object(a, BUCKET, "expired", b"its lock ran out")
    await replicate(a, b)
    await set_lock(a, BUCKET, "back", back.version_id, hold)
    await set_lock(a, BUCKET, "expired", expired.version_id, compliance(wall_clock_ms() - 1))
    await b.delete_object(BUCKET, "back", back.version_id)  # before b knows the hold
    await a.delete_object(BUCKET, "expired", expired.version_id)
    await exchange(a, b)
    for store in (a, b):
        assert not await present(store, expired)
        for version in (v, back):
            assert await present(store, version)


async def assert_locked_versions_readable(store: Store) -> None:
    for key, data in LOCKED.items():
        assert await read_all(store, await store.head_object(BUCKET, key)) == data


def open_and(data_dir: Path, node_id: str, check: object) -> None:
    async def main() -> None:
        store = await Store.open(StoreConfig(data_dir, node_id=node_id))
        try:
            await check(store)  # type: ignore[operator]
        finally:
            await store.close()

    asyncio.run(main())


def test_rebuild_index_restores_lock_state_and_locked_versions(tmp_path: Path) -> None:
    run_with_two_stores(lock_situations, tmp_path)
    for site in ("a", "b"):
        data_dir = tmp_path / site
        before = dump(data_dir)
        assert len(before["version_locks"]) == 3
        drop_catalog(data_dir)

        report = rebuild(data_dir)

        assert report["exit_code"] == COMPLETE, report
        after = dump(data_dir)
        for table in RESTORED:
            assert after[table] == before[table], (site, table)
        open_and(data_dir, f"node-{site}", assert_locked_versions_readable)


def test_snapshot_and_restore_keep_lock_state(tmp_path: Path) -> None:
    run_with_two_stores(lock_situations, tmp_path)
    data_dir, out, restored = tmp_path / "b", tmp_path / "snap", tmp_path / "restored"
    take_snapshot(data_dir, out, Notes())
    restore_snapshot(out, restored, Notes())
    before, after = dump(data_dir), dump(restored)
    assert after["version_locks"] == before["version_locks"]
    assert after["versions"] == before["versions"]
    open_and(restored, "node-b", assert_locked_versions_readable)


def test_chunk_gc_keeps_locked_versions_and_a_later_rebuild_their_locks(tmp_path: Path) -> None:
    run_with_two_stores(lock_situations, tmp_path)
    data_dir = tmp_path / "b"

    async def collect(store: Store) -> None:
        await assert_fsck_clean(store)
        await gc.run(store, 1.0, NoProgress())  # rewrite every segment it may
        await assert_locked_versions_readable(store)
        await assert_fsck_clean(store)

    open_and(data_dir, "node-b", collect)
    before = dump(data_dir)
    drop_catalog(data_dir)
    report = rebuild(data_dir)
    assert report["exit_code"] == COMPLETE, report
    after = dump(data_dir)
    assert after["version_locks"] == before["version_locks"]
    assert after["versions"] == before["versions"]
    open_and(data_dir, "node-b", assert_locked_versions_readable)
