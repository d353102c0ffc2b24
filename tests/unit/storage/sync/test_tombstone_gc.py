"""Tombstone GC on real stores: what is purged, when, and what a lagging peer is told."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage.errors import NoSuchKey
from storage.hlc import wall_clock_ms
from storage.manifest import Kind
from storage.store import Store
from storage.sync.feed import LogPruned
from storage.sync.retention import forget_peer
from storage.sync.tombstone_gc import PurgeLimits
from tests.unit.storage.stores import put_object, run_with_store, run_with_two_stores, site_of
from tests.unit.storage.sync.test_apply import replicate

HOUR_MS = 3600 * 1000


def _later(hours: float, window_hours: float = 24) -> PurgeLimits:
    """Limits as if ``hours`` had passed since now, with a ``window_hours`` safety window."""
    return PurgeLimits(
        now_ms=wall_clock_ms() + int(hours * HOUR_MS), window_ms=int(window_hours * HOUR_MS)
    )


def _tombstones(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "meta.db") as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM versions WHERE kind = ?", (int(Kind.TOMBSTONE),)
        ).fetchone()
    return int(count)


async def _write_and_delete(store: Store, keys: int) -> None:
    for index in range(keys):
        await put_object(store, "b", f"k{index}", b"data %d" % index)
    for index in range(keys):
        await store.delete_object("b", f"k{index}")


def test_a_lone_node_purges_tombstones_only_after_the_window(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        site = await site_of(store)
        await _write_and_delete(store, 5)
        early = await site.purge_tombstones(_later(hours=23))
        assert early.tombstones == 0
        late = await site.purge_tombstones(_later(hours=25))
        assert late.tombstones == 5
        for index in range(5):
            with pytest.raises(NoSuchKey):
                await store.head_object("b", f"k{index}")
        assert late.log_rows > 0
        assert await site.last_seq() > 0  # the log's last seq never goes back

    run_with_store(body, tmp_path)
    assert _tombstones(tmp_path) == 0


def test_nothing_is_purged_until_every_peer_acknowledged(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a = await site_of(a)
        await a.create_bucket("b", "owner")
        await replicate(a, b)
        await _write_and_delete(a, 3)
        # b knows a (it pulled from it) but has not acknowledged the deletes yet.
        await site_a.set_cursor(b.node_id, "acked", 1)
        held = await site_a.purge_tombstones(_later(hours=48))
        assert held.tombstones == 0
        assert held.log_pruned_through == 1  # only what b acknowledged (the bucket)
        await replicate(a, b)
        await site_a.set_cursor(b.node_id, "acked", await site_a.last_seq())
        done = await site_a.purge_tombstones(_later(hours=48))
        assert done.tombstones == 3
        # A peer still behind the pruned part of the log is told to bootstrap.
        with pytest.raises(LogPruned):
            await site_a.changes_after(0, 100, exclude_origin=None)
        assert await site_a.changes_after(await site_a.last_seq(), 100, exclude_origin=None) == []

    run_with_two_stores(body, tmp_path)


def test_an_unidentified_configured_peer_blocks_the_purge(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        site = await site_of(store)
        await _write_and_delete(store, 2)
        limits = _later(hours=48)
        blocked = PurgeLimits(limits.now_ms, limits.window_ms, extra_peers=frozenset({"url"}))
        assert (await site.purge_tombstones(blocked)).purged == 0
        assert (await site.purge_tombstones(limits)).tombstones == 2

    run_with_store(body, tmp_path)


def test_deleted_versions_and_documents_are_purged_too(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        site = await site_of(store)
        await store.set_versioning("b", "Enabled")
        manifest = await put_object(store, "b", "k", b"v1")
        await put_object(store, "b", "k", b"v2")
        await store.delete_object("b", "k", manifest.version_id)
        await store.put_bucket_document("b", "cors", "<CORSConfiguration/>")
        await store.put_bucket_document("b", "cors", None)
        report = await site.purge_tombstones(_later(hours=25))
        assert report.version_tombstones == 1
        assert report.documents == 1
        current = await store.head_object("b", "k")
        assert current.size == 2  # v2 stands

    run_with_store(body, tmp_path)


def test_a_forgotten_peer_no_longer_holds_back_the_purge(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        site = await site_of(store)
        await _write_and_delete(store, 3)
        await site.set_cursor("gone-site", "acked", 1)  # a peer that left long ago
        assert (await site.purge_tombstones(_later(hours=48))).tombstones == 0

    run_with_store(body, tmp_path)
    with sqlite3.connect(tmp_path / "meta.db") as conn:
        assert forget_peer(conn, "gone-site") == 1
        assert forget_peer(conn, "gone-site") == 0

    async def after(store: Store) -> None:
        site = await site_of(store)
        assert (await site.purge_tombstones(_later(hours=48))).tombstones == 3

    run_with_store(after, tmp_path, bucket=None)


def test_a_configured_peer_never_reached_holds_back_the_purge(tmp_path: Path) -> None:
    """The node records its --peer list; offline GC sees it too."""

    async def body(store: Store) -> None:
        site = await site_of(store)
        await _write_and_delete(store, 2)
        await site.record_configured_peers(("http://127.0.0.1:1",))
        assert (await site.purge_tombstones(_later(hours=48))).purged == 0
        await site.record_configured_peers(())  # the --peer was removed
        assert (await site.purge_tombstones(_later(hours=48))).tombstones == 2

    run_with_store(body, tmp_path)
