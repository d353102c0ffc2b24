"""storage/ops/usage.py: what is live (every reference kind) and what is garbage."""

from __future__ import annotations

import os
from pathlib import Path

from storage.ops import usage
from storage.store import Store
from tests.unit.storage.stores import put_object, run_with_store, site_of


def test_overwrite_and_delete_turn_bytes_into_garbage(tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        await put_object(store, "b", "one", os.urandom(1000))
        await put_object(store, "b", "two", os.urandom(2000))
        totals = await usage.store_usage(store)
        assert (totals.objects, totals.live_bytes) == (2, 3000)
        assert totals.segments >= 1
        assert totals.segment_bytes == totals.live_bytes + totals.garbage_bytes
        await put_object(store, "b", "one", os.urandom(500))  # unversioned: replaces
        await store.delete_object("b", "two")  # a tombstone: no object, no bytes
        totals = await usage.store_usage(store)
        assert (totals.objects, totals.live_bytes) == (1, 500)
        assert totals.garbage_bytes >= 3000

    run_with_store(scenario, tmp_path)


def test_noncurrent_versions_parts_and_copies_are_live_once(tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        await store.set_versioning("b", "Enabled")
        first = await put_object(store, "b", "k", os.urandom(1000))
        await put_object(store, "b", "k", os.urandom(700))  # the first stays, noncurrent
        await store.delete_object("b", "k")  # a delete marker on top: not an object
        assert (
            (await usage.store_usage(store)).objects,
            (await usage.store_usage(store)).live_bytes,
        ) == (0, 1700)

        await store.copy_object(first, "b", "copy", None)  # shares the chunks: counted once
        upload = await store.multipart.create_upload("b", "mpu", (), "owner")
        writer = await store.multipart.begin_part(upload, 1 << 40)
        await writer.write(os.urandom(300))
        await writer.finish()
        await writer.commit_part(upload, 1)  # a part in flight is live
        middle = await store.multipart.copy_part(upload, 2, first, 100, 199)  # a slice of a chunk
        assert middle.size == 100
        totals = await usage.store_usage(store)
        assert (totals.objects, totals.live_bytes) == (1, 1700 + 300)

        await store.multipart.abort_upload(upload)
        assert (await usage.store_usage(store)).live_bytes == 1700

    run_with_store(scenario, tmp_path)


def test_changes_a_known_peer_still_needs_keep_their_chunks(tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        site = await site_of(store)
        await site.set_cursor("peer-x", "acked", 0)  # a peer that has nothing of our log
        await put_object(store, "b", "k", os.urandom(1000))
        await put_object(store, "b", "k", os.urandom(400))
        assert (
            await usage.store_usage(store)
        ).live_bytes == 1400  # the peer must still fetch the first
        await site.set_cursor("peer-x", "acked", await site.last_seq())
        assert (await usage.store_usage(store)).live_bytes == 400

    run_with_store(scenario, tmp_path)
