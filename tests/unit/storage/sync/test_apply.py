"""Replication at the storage layer: two real stores exchange change feeds in-process.

Method: write on one store, move its changes (and the chunks they need, fetched by BLAKE3)
into the other with apply_remote, and compare what each serves. No HTTP, no mocks.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from storage.errors import NoSuchKey
from storage.hlc import pack, wall_clock_ms
from storage.manifest import decode
from storage.store import Store
from storage.sync.apply import MissingChunks
from storage.sync.feed import Change
from tests.unit.storage.stores import (
    current_objects,
    put_object,
    run_with_two_stores,
    site_of,
)

SKEW_MS = 1000


async def replicate(source: Store, target: Store, fetch_chunks: bool = True) -> tuple[int, int]:
    """Pull everything ``target`` has not seen from ``source``; return (applied, conflicts)."""
    src, dst = await site_of(source), await site_of(target)
    cursor = await dst.get_cursor(source.node_id, "pull")
    changes = await src.changes_after(cursor, 1000, exclude_origin=target.node_id)
    if not changes:
        return 0, 0
    digests = [c.blake3 for ch in changes if ch.manifest for c in decode(ch.manifest).chunks]
    if fetch_chunks:
        for digest in await dst.missing_chunks(digests):
            data = await src.read_chunk_by_hash(digest)
            assert data is not None
            await dst.store_chunk(data)
    result = await dst.apply_remote(source.node_id, changes, changes[-1].seq, SKEW_MS)
    return result.applied, result.conflicts


def test_one_way_replication_serves_identical_objects(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        await a.create_bucket("docs", "owner")
        big = os.urandom(3 * (1 << 20) + 123)
        await put_object(a, "docs", "big", big)
        await put_object(a, "docs", "small", b"v1")
        await put_object(a, "docs", "small", b"v2")
        await put_object(a, "docs", "gone", b"x")
        await a.delete_object("docs", "gone")
        await a.put_bucket_document("docs", "policy", '{"Statement": []}')
        await a.put_tags("docs", "small", None, (("team", "blue"),))
        await replicate(a, b)
        assert await current_objects(b, "docs") == await current_objects(a, "docs")
        assert (await current_objects(b, "docs"))["big"][1] == big
        with pytest.raises(NoSuchKey):
            await b.head_object("docs", "gone")
        assert await b.get_bucket_document("docs", "policy") == '{"Statement": []}'
        assert (await b.get_tags("docs", "small", None))[1] == (("team", "blue"),)
        # Manifests on b point at b's own segments, with a's stamps.
        local = await b.head_object("docs", "big")
        remote = await a.head_object("docs", "big")
        assert (local.hlc, local.origin) == (remote.hlc, remote.origin)

    run_with_two_stores(body, tmp_path)


def test_applying_a_batch_twice_changes_nothing(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        await a.create_bucket("bkt", "owner")
        await put_object(a, "bkt", "k", b"data")
        site_a, site_b = await site_of(a), await site_of(b)
        changes = await site_a.changes_after(0, 1000, "node-b")
        for digest in await site_b.missing_chunks(
            [c.blake3 for ch in changes if ch.manifest for c in decode(ch.manifest).chunks]
        ):
            await site_b.store_chunk(await site_a.read_chunk_by_hash(digest) or b"")
        first = await site_b.apply_remote("node-a", changes, changes[-1].seq, SKEW_MS)
        seq_after_first = await site_b.last_seq()
        second = await site_b.apply_remote("node-a", changes, changes[-1].seq, SKEW_MS)
        assert (first.applied, second.applied, second.duplicates) == (2, 0, 2)
        assert await site_b.last_seq() == seq_after_first

    run_with_two_stores(body, tmp_path)


def test_missing_chunks_apply_nothing_and_keep_the_cursor(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        await a.create_bucket("bkt", "owner")
        await put_object(a, "bkt", "k", os.urandom(2000))
        site_a, site_b = await site_of(a), await site_of(b)
        changes = await site_a.changes_after(0, 1000, "node-b")
        with pytest.raises(MissingChunks) as excinfo:
            await site_b.apply_remote("node-a", changes, changes[-1].seq, SKEW_MS)
        assert len(excinfo.value.digests) == 1
        assert await b.list_buckets() == []  # the bucket.create in the same batch was not kept
        assert await site_b.get_cursor("node-a", "pull") == 0

    run_with_two_stores(body, tmp_path)


def test_concurrent_writes_converge_to_the_later_stamp_and_count_the_loser(
    tmp_path: Path,
) -> None:
    async def body(a: Store, b: Store) -> None:
        await a.create_bucket("bkt", "owner")
        await replicate(a, b)
        await put_object(a, "bkt", "k", b"from a")
        await put_object(b, "bkt", "k", b"from b")  # later stamp on b (clock moves forward)
        _applied_ab, conflicts_on_b = await replicate(a, b)
        _applied_ba, conflicts_on_a = await replicate(b, a)
        assert await current_objects(a, "bkt") == await current_objects(b, "bkt")
        winner = max(
            [await a.head_object("bkt", "k"), await b.head_object("bkt", "k")],
            key=lambda m: (m.hlc, m.origin),
        )
        assert (await current_objects(a, "bkt"))["k"][1] == (
            b"from b" if winner.origin == "node-b" else b"from a"
        )
        assert conflicts_on_a + conflicts_on_b == 1

    run_with_two_stores(body, tmp_path)


def test_an_older_put_never_resurrects_a_newer_delete(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        await a.create_bucket("bkt", "owner")
        await replicate(a, b)
        await put_object(a, "bkt", "k", b"old write")  # a's put ...
        await asyncio.sleep(0.002)
        await b.delete_object("bkt", "k")  # ... then b's delete, with a later stamp
        await replicate(b, a)
        await replicate(a, b)
        for store in (a, b):
            with pytest.raises(NoSuchKey):
                await store.head_object("bkt", "k")

    run_with_two_stores(body, tmp_path)


def test_changes_from_the_future_are_rejected_and_counted(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        await b.create_bucket("bkt", "owner")
        future = pack(wall_clock_ms() + 60_000, 0)
        change = Change(1, future, "node-a", "bucket.create", "evil", payload={"owner": "x"})
        result = await (await site_of(b)).apply_remote("node-a", [change], 1, SKEW_MS)
        assert (result.applied, result.skew_rejected) == (0, 1)
        assert [bk.name for bk in await b.list_buckets()] == ["bkt"]
        assert b.clock.last < future  # the clock was not dragged forward

    run_with_two_stores(body, tmp_path)


def test_a_change_never_goes_back_to_its_origin(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        await a.create_bucket("bkt", "owner")
        await put_object(a, "bkt", "k", b"x")
        await replicate(a, b)
        site_b = await site_of(b)
        assert await site_b.changes_after(0, 1000, exclude_origin="node-a") == []
        assert len(await site_b.changes_after(0, 1000, exclude_origin=None)) == 2  # relayed on

    run_with_two_stores(body, tmp_path)


def test_versioned_history_replicates_with_version_ids_and_markers(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        await a.create_bucket("ver", "owner")
        await a.set_versioning("ver", "Enabled")
        v1 = await put_object(a, "ver", "k", b"1")
        await put_object(a, "ver", "k", b"2")
        marker = await a.delete_object("ver", "k")
        await a.delete_object("ver", "k", v1.version_id)  # v1 removed for good
        await replicate(a, b)

        async def versions(store: Store) -> list[tuple[str, bool, bool]]:
            page = await store.list_versions("ver", "", "", "", "", 1000)
            return [(e.version_id, e.is_latest, e.is_delete_marker) for e in page.entries]

        assert await versions(b) == await versions(a)
        assert (await versions(b))[0] == (marker.version_id, True, True)
        assert (await b.get_bucket("ver")).versioning == "Enabled"

    run_with_two_stores(body, tmp_path)


def test_object_acls_and_acl_documents_replicate_by_lww(tmp_path: Path) -> None:
    async def scenario(a: Store, b: Store) -> None:
        await a.create_bucket("acl", "owner")
        written = await put_object(a, "acl", "k", b"x")
        await replicate(a, b)
        await b.put_object_acl("acl", "k", None, '{"from": "b, first"}')
        await a.put_object_acl("acl", "k", written.version_id, '{"from": "a, later"}')
        await b.put_bucket_document("acl", "acl", '{"from": "b, first"}')
        await a.put_bucket_document("acl", "acl", '{"from": "a, later"}')
        await a.put_bucket_document("acl", "public-access-block", '{"from": "a"}')
        await replicate(a, b)
        await replicate(b, a)
        for store in (a, b):
            manifest, acl = await store.get_object_acl("acl", "k", None)
            assert (manifest.version_id, acl) == (written.version_id, '{"from": "a, later"}')
            assert await store.get_bucket_document("acl", "acl") == '{"from": "a, later"}'
            assert await store.get_bucket_document("acl", "public-access-block") == '{"from": "a"}'
        # A new version of the key starts without the old version's later ACL.
        await put_object(a, "acl", "k", b"y")
        await replicate(a, b)
        assert (await b.get_object_acl("acl", "k", None))[1] is None

    run_with_two_stores(scenario, tmp_path)
