"""Store: group commit, listing, recovery across reopen (real files and SQLite, no mocks)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from storage.data_dir import NodeIdMismatch
from storage.errors import BucketNotEmpty, NoSuchBucket, NoSuchKey
from storage.manifest import Manifest
from storage.store import Store, StoreConfig
from tests.unit.storage.stores import put_object, read_all, run_with_store


def test_concurrent_writes_share_commits_and_all_land(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await store.create_bucket("b", "owner")
        payloads = {f"k{i:03d}": os.urandom(i * 37) for i in range(200)}
        await asyncio.gather(*(put_object(store, "b", k, v) for k, v in payloads.items()))
        assert store.committer.stats.batches < 200  # batched, not one commit per write
        for key, data in payloads.items():
            assert await read_all(store, await store.head_object("b", key)) == data

    run_with_store(body, tmp_path, chunk_bytes=4096, bucket=None)


def test_objects_and_change_log_survive_reopen(tmp_path: Path) -> None:
    data = os.urandom(10_000)  # three chunks of 4096

    async def write(store: Store) -> int:
        await store.create_bucket("b", "owner")
        manifest = await put_object(store, "b", "k", data)
        await store.delete_object("b", "gone")
        return manifest.hlc

    hlc = run_with_store(write, tmp_path, chunk_bytes=4096, bucket=None)

    async def check(store: Store) -> None:
        assert await read_all(store, await store.head_object("b", "k")) == data
        assert store.clock.now().pack() > hlc
        with pytest.raises(NoSuchKey):
            await store.head_object("b", "gone")

    run_with_store(check, tmp_path, chunk_bytes=4096, bucket=None)


def test_every_mutation_is_logged_with_increasing_seq_and_hlc(tmp_path: Path) -> None:
    async def body(store: Store) -> list[tuple[int, int, str, str]]:
        await store.create_bucket("b", "owner")
        await put_object(store, "b", "k", b"abc")
        await store.delete_object("b", "k")
        await store.delete_bucket("b")
        rows: list[tuple[int, int, str, str]] = await store._writer_db.run(
            lambda conn: conn.execute("SELECT seq, hlc, origin, op FROM changes").fetchall()
        )
        return rows

    rows = run_with_store(body, tmp_path, chunk_bytes=4096, bucket=None)
    assert [r[3] for r in rows] == ["bucket.create", "object.put", "object.delete", "bucket.delete"]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
    assert len({r[2] for r in rows}) == 1


def test_bucket_rules(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        with pytest.raises(NoSuchBucket):
            await store.begin_object("missing", "k", 10)
        await store.create_bucket("b", "owner")
        await put_object(store, "b", "k", b"1")
        with pytest.raises(BucketNotEmpty):
            await store.delete_bucket("b")
        await store.delete_object("b", "k")
        await store.delete_bucket("b")  # tombstones do not keep a bucket alive
        with pytest.raises(NoSuchBucket):
            await store.get_bucket("b")

    run_with_store(body, tmp_path, chunk_bytes=4096, bucket=None)


def test_failed_mutation_in_a_batch_does_not_sink_the_others(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await store.create_bucket("b", "owner")
        writer = await store.begin_object("b", "k", 100)
        await writer.write(b"ok")
        await writer.finish()
        results = await asyncio.gather(
            writer.commit([]), store.delete_bucket("missing"), return_exceptions=True
        )
        assert isinstance(results[0], Manifest)
        assert isinstance(results[1], NoSuchBucket)
        assert await read_all(store, await store.head_object("b", "k")) == b"ok"

    run_with_store(body, tmp_path, chunk_bytes=4096, bucket=None)


def test_listing_with_delimiter_and_markers(tmp_path: Path) -> None:
    keys = ["a", "b/1", "b/2", "b/3", "c/x/1", "c/y", "d", "e/"]

    async def body(store: Store) -> None:
        await store.create_bucket("b", "owner")
        for key in keys:
            await put_object(store, "b", key, b"")
        page = await store.list_objects("b", "", "/", "", 1000)
        assert [e.key for e in page.entries] == ["a", "d"]
        assert page.common_prefixes == ["b/", "c/", "e/"]
        # Page by 1: every item exactly once, continuing from the last returned marker.
        seen: list[str] = []
        marker = ""
        while True:
            page = await store.list_objects("b", "", "/", marker, 1)
            seen += [e.key for e in page.entries] + page.common_prefixes
            if not page.is_truncated:
                break
            assert page.last_returned is not None
            marker = page.last_returned
        assert seen == ["a", "b/", "c/", "d", "e/"]
        page = await store.list_objects("b", "c/", "/", "", 1000)
        assert page.common_prefixes == ["c/x/"]
        assert [e.key for e in page.entries] == ["c/y"]
        page = await store.list_objects("b", "b/", "", "b/1", 1000)
        assert [e.key for e in page.entries] == ["b/2", "b/3"]

    run_with_store(body, tmp_path, chunk_bytes=4096, bucket=None)


def test_listing_prefix_is_case_sensitive(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await store.create_bucket("b", "owner")
        for key in ["Photo", "photo", "photos/1", "PHOTOS/2"]:
            await put_object(store, "b", key, b"")
        page = await store.list_objects("b", "photo", "", "", 1000)
        assert [e.key for e in page.entries] == ["photo", "photos/1"]

    run_with_store(body, tmp_path, chunk_bytes=4096, bucket=None)


def test_node_id_is_persisted_and_guarded(tmp_path: Path) -> None:
    first = run_with_store(_node_id, tmp_path, bucket=None)
    assert run_with_store(_node_id, tmp_path, bucket=None) == first

    async def other() -> None:
        await Store.open(StoreConfig(tmp_path, node_id="someone-else"))

    with pytest.raises(NodeIdMismatch):
        asyncio.run(other())


async def _node_id(store: Store) -> str:
    return store.node_id


def test_put_then_delete_in_one_batch_reads_as_deleted(tmp_path: Path) -> None:
    """The read cache is filled at commit time: only a key's last mutation may fill it."""

    async def body(store: Store) -> None:
        await store.create_bucket("b", "owner")
        writer = await store.begin_object("b", "k", 100)
        await writer.write(b"doomed")
        await writer.finish()
        await asyncio.gather(writer.commit([]), store.delete_object("b", "k"))
        with pytest.raises(NoSuchKey):
            await store.head_object("b", "k")
        manifest = await put_object(store, "b", "k", b"again")
        assert (await store.head_object("b", "k")).hlc == manifest.hlc

    run_with_store(body, tmp_path, chunk_bytes=4096, bucket=None)
