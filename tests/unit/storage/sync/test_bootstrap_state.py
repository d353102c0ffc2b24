"""Snapshots for bootstrap (storage/sync/bootstrap_state.py): two real stores in-process, no HTTP.

Method: A holds every kind of state (versions, delete markers, tombstones, version
tombstones, object lock state (of a version, and of one since removed), tags written with a
version and changed later, bucket documents set and deleted,
a bucket deleted, changes relayed from a third site). B, empty, applies A's snapshot read in
small pages while A keeps writing between pages, then pulls A's log after the snapshot seq.
B must then hold exactly A's state: every row that carries a stamp, compared table by table,
the Merkle root, and the bytes of every version.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from storage.hlc import wall_clock_ms
from storage.manifest import decode
from storage.store import Store, StoreConfig
from storage.sync.bootstrap_state import BootstrapRecord, Position
from storage.sync.feed import Change
from tests.unit.storage.stores import put_object, read_all, site_of
from tests.unit.storage.sync.locking import DAY_MS, compliance, hold, set_lock
from tests.unit.storage.sync.test_apply import SKEW_MS, replicate

TABLES = {
    "buckets": "name, owner, created_ms, hlc, origin, versioning",
    "versions": "bucket, key, version_id, kind, hlc, origin, size, etag, last_modified_ms,"
    " is_latest",
    "version_tombstones": "bucket, key, version_id, hlc, origin",
    "object_tags": "bucket, key, version_id, tags, hlc, origin",
    "object_acls": "bucket, key, version_id, acl, hlc, origin",
    "bucket_config": "bucket, name, value, hlc, origin",
    "version_locks": "bucket, key, version_id, state, protected_until, hlc, origin",
}


def three_stores(test: Callable[[Store, Store, Store], Awaitable[None]], tmp_path: Path) -> None:
    async def main() -> None:
        stores = [
            await Store.open(StoreConfig(tmp_path / n, node_id=f"node-{n}", chunk_bytes=1 << 16))
            for n in ("a", "b", "x")
        ]
        try:
            await test(*stores)
        finally:
            for store in stores:
                await store.close()

    asyncio.run(main())


def rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(store.config.data_dir / "meta.db")
    try:
        return {
            table: conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2, 3").fetchall()
            for table, columns in TABLES.items()
        }
    finally:
        conn.close()


async def version_bytes(store: Store) -> dict[tuple[str, str, str], bytes]:
    found = {}
    for bucket in await store.list_buckets():
        page = await store.list_versions(bucket.name, "", "", "", "", 1000)
        for entry in page.entries:
            if not entry.is_delete_marker:
                manifest = await store.head_object(bucket.name, entry.key, entry.version_id)
                found[(bucket.name, entry.key, entry.version_id)] = await read_all(store, manifest)
    return found


async def write_state(a: Store, x: Store) -> None:
    # A third site's writes, relayed through A (A's log holds them with x's stamps).
    await x.create_bucket("from-x", "x-owner")
    await put_object(x, "from-x", "k", b"written on x", tags=(("site", "x"),))
    await replicate(x, a)
    await a.create_bucket("plain", "owner")
    await put_object(a, "plain", "big", os.urandom(200_000))  # several 64 KiB chunks
    await put_object(a, "plain", "over", b"first")
    await put_object(a, "plain", "over", b"second", tags=(("t", "1"),))
    await a.put_tags("plain", "over", None, (("t", "2"),))  # tags changed after the write
    await a.put_bucket_document("plain", "ownership", "ObjectWriter")
    await put_object(a, "plain", "gone", b"x")
    await a.delete_object("plain", "gone")  # an unversioned tombstone
    await a.put_bucket_document("plain", "policy", '{"Statement": []}')
    await a.put_bucket_document("plain", "cors", "<CORSConfiguration/>")
    await a.put_bucket_document("plain", "cors", None)  # deleted: a stamped empty value
    await a.create_bucket("ver", "owner")
    await a.set_versioning("ver", "Enabled")
    first = await put_object(a, "ver", "doc", b"v1")
    await put_object(a, "ver", "doc", b"v2", tags=(("keep", "me"),))
    await put_object(a, "ver", "doc", b"v3")
    await a.delete_object("ver", "doc")  # a delete marker on top
    await a.delete_object("ver", "doc", first.version_id)  # v1 removed for good
    await a.delete_object("ver", "never-here", "0000000000000000deadbeef")  # a lone tombstone
    tagged = await put_object(a, "ver", "untagged", b"u", tags=(("a", "b"),))
    await a.put_tags("ver", "untagged", tagged.version_id, None)  # tags removed
    await a.put_object_acl("ver", "untagged", tagged.version_id, '{"acl": "set later"}')
    locked = await put_object(a, "ver", "locked", b"kept")  # locked, then held too
    await set_lock(a, "ver", "locked", locked.version_id, compliance(wall_clock_ms() + DAY_MS))
    await set_lock(a, "ver", "locked", locked.version_id, hold)
    expired = await put_object(a, "ver", "expired", b"removed once its lock ran out")
    await set_lock(a, "ver", "expired", expired.version_id, compliance(wall_clock_ms() - 1))
    await a.delete_object("ver", "expired", expired.version_id)  # its lock row stays
    await a.create_bucket("doomed", "owner")
    await a.delete_bucket("doomed")


async def copy_chunks(source: Store, target: Store, changes: list[Change]) -> None:
    site_source, site_target = await site_of(source), await site_of(target)
    digests = [c.blake3 for ch in changes if ch.manifest for c in decode(ch.manifest).chunks]
    for digest in await site_target.missing_chunks(digests):
        data = await site_source.read_chunk_by_hash(digest)
        assert data is not None
        await site_target.store_chunk(data)


def test_snapshot_while_writing_then_log_after_snapshot_seq_converges(tmp_path: Path) -> None:
    async def body(a: Store, b: Store, x: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        await write_state(a, x)
        assert await site_b.is_empty()
        snapshot_seq = await site_a.last_seq()
        record = BootstrapRecord(
            "node-a", snapshot_seq, None, objects_total=await site_a.count_versions()
        )
        after: Position | None = None
        writes = 0
        pages = 0
        while True:
            changes, after = await site_a.snapshot_page(after, 2)
            pages += 1
            await copy_chunks(a, b, changes)
            objects = sum(c.op in ("object.put", "object.delete") for c in changes)
            record = BootstrapRecord(
                "node-a", snapshot_seq, None if after is None else repr(after), pages,
                record.objects_done + objects, record.objects_total,
            )  # fmt: skip
            await site_b.apply_snapshot_page(changes, record, SKEW_MS)
            assert await site_b.bootstrap_record() == record
            assert await site_b.get_cursor("node-a", "pull") == 0  # pages never move the cursor
            if after is None:
                break
            # A keeps writing: before and after the position just read.
            writes += 1
            await put_object(a, "plain", f"new-{writes}", b"during the copy")
            await put_object(a, "plain", "over", f"rewritten {writes}".encode())
            await put_object(a, "ver", "doc", f"v-during-{writes}".encode())
            if writes == 2:
                await a.delete_object("plain", "big")
                await a.put_tags("plain", "new-1", None, (("late", "tag"),))
                await a.put_bucket_document("plain", "policy", None)
                await a.create_bucket("late-bucket", "owner")
                await a.set_versioning("ver", "Suspended")
        assert pages > 5 and writes == pages - 1
        await site_b.finish_bootstrap(record)
        assert await site_b.bootstrap_record() is None
        assert await site_b.get_cursor("node-a", "pull") == snapshot_seq
        await replicate(a, b)  # the log after the snapshot seq
        assert rows(b) == rows(a) and all(rows(a).values())
        assert await site_b.digest_node("") == await site_a.digest_node("")
        assert await version_bytes(b) == await version_bytes(a)
        assert (await b.get_bucket("ver")).versioning == "Suspended"
        assert b.may_have_tags("plain") and b.may_have_tags("from-x")
        # B relays the state with its original stamps: x already holds its own changes, and
        # takes A's from B as if from A.
        before = rows(x)["versions"]
        await replicate(b, x)
        assert rows(x) == rows(a)
        assert set(before) <= set(rows(x)["versions"])

    three_stores(body, tmp_path)


def test_pages_cover_the_state_exactly_once(tmp_path: Path) -> None:
    async def body(a: Store, _b: Store, x: Store) -> None:
        site_a = await site_of(a)
        await write_state(a, x)
        whole, end = await site_a.snapshot_page(None, 10_000)
        assert end is None
        paged: list[Change] = []
        after: Position | None = None
        while True:
            changes, after = await site_a.snapshot_page(after, 1)
            paged += changes
            if after is None:
                break
        assert paged == whole
        stamps = [(c.origin, c.hlc) for c in whole]
        assert len(stamps) == len(set(stamps))  # no two changes share a stamp (dedup key)
        assert {c.op for c in whole} == {
            "bucket.create", "bucket.policy", "bucket.cors", "bucket.versioning",
            "object.put", "object.delete", "version.delete", "object.tags", "object.acl",
            "bucket.ownership", "version.lock",
        }  # fmt: skip
        assert all(c.seq == 0 for c in whole)
        # Every stamp is the original change's: each is in A's log with the same operation.
        logged = {(c.origin, c.hlc): c.op for c in await site_a.changes_after(0, 10_000, None)}
        assert all(logged[(c.origin, c.hlc)] == c.op for c in whole)

    three_stores(body, tmp_path)


def test_bootstrap_record_survives_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        config = StoreConfig(tmp_path / "b", node_id="node-b")
        store = await Store.open(config)
        site = await site_of(store)
        record = BootstrapRecord("node-a", 42, "token", 3, 10, 100, 7)
        await site.apply_snapshot_page([], record, SKEW_MS)
        await store.close()
        store = await Store.open(config)
        site = await site_of(store)
        try:
            assert await site.bootstrap_record() == record
            await site.finish_bootstrap(record)
            assert await site.bootstrap_record() is None
            assert await site.finished_bootstrap() == record
            assert await site.get_cursor("node-a", "pull") == 42
            assert (await site.bootstrap_progress()) == {"node-a": 1.0}
        finally:
            await store.close()

    asyncio.run(main())
