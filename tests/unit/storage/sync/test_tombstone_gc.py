"""Tombstone GC on real stores: what is purged, when, and what a lagging peer is told."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
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
from tests.unit.storage.sync.locking import hold, lock_rows, set_lock, unhold
from tests.unit.storage.sync.test_apply import SKEW_MS, replicate
from tests.unit.storage.sync.test_apply_locks import (
    BUCKET,
    delete_from_elsewhere,
    exchange,
    not_pulled,
    present,
    versioned_pair,
)

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


async def _synced(a: Store, b: Store) -> dict[Store, int]:
    """After an exchange went quiet each site holds all of the other's log: its last seq."""
    return {store: await (await site_of(store)).last_seq() for store in (a, b)}


async def _acknowledge(store: Store, other: Store, synced: dict[Store, int]) -> None:
    """``other`` holds ``store``'s log up to ``synced``; a third site (node-c) all of it.
    The pull cursor too, as the puller's page ``last_seq`` moves it past our own changes."""
    site = await site_of(store)
    await (await site_of(other)).set_cursor(store.node_id, "pull", synced[store])
    await site.set_cursor(other.node_id, "acked", synced[store])
    await site.set_cursor("node-c", "acked", await site.last_seq())


def _version_tombstones(store: Store) -> list[str]:
    with sqlite3.connect(store.config.data_dir / "meta.db") as conn:
        rows = conn.execute("SELECT key FROM version_tombstones ORDER BY key").fetchall()
    return [str(row[0]) for row in rows]


def test_version_tombstones_a_lock_still_decides_are_kept(tmp_path: Path) -> None:
    """A delete a lock refused waits (its tombstone stays while the version does); a delete
    whose version a lock may bring back keeps its tombstone too; lock rows are never purged;
    an ordinary version tombstone goes as before."""

    async def body(a: Store, b: Store) -> None:
        held = await versioned_pair(a, b)
        plain = await put_object(a, BUCKET, "plain", b"no lock")
        await set_lock(a, BUCKET, "k", held.version_id, hold)
        await b.delete_object(BUCKET, "k", held.version_id)  # b did not know the hold
        await a.delete_object(BUCKET, "plain", plain.version_id)
        await exchange(a, b)
        synced = await _synced(a, b)
        # b learns of a delete (from a third site) and of a hold, but not yet of the version.
        late = await put_object(a, BUCKET, "late", b"arrives after the purge")
        await set_lock(a, BUCKET, "late", late.version_id, hold)
        site_b = await site_of(b)
        put, lock = await not_pulled(a, b)
        await site_b.apply_remote("node-c", [delete_from_elsewhere(late)], 1, SKEW_MS)
        await site_b.apply_remote("node-a", [replace(lock, manifest=None)], put.seq - 1, SKEW_MS)
        locks_before = {name: await lock_rows(store) for name, store in (("a", a), ("b", b))}
        for store, other in ((a, b), (b, a)):
            await _acknowledge(store, other, synced)
            await (await site_of(store)).purge_tombstones(_later(hours=48))
        assert _version_tombstones(a) == ["k"]
        assert _version_tombstones(b) == ["k", "late"]
        assert {"a": await lock_rows(a), "b": await lock_rows(b)} == locks_before
        await replicate(a, b)  # the late version meets its kept tombstone: the hold lets it in
        assert await present(b, late) and await present(a, held) and await present(b, held)
        # The hold lifted: the waiting delete takes effect on both, then its tombstone can go.
        await set_lock(a, BUCKET, "k", held.version_id, unhold)
        await exchange(a, b)
        assert not await present(a, held) and not await present(b, held)
        synced = await _synced(a, b)
        for store, other in ((a, b), (b, a)):
            await _acknowledge(store, other, synced)
            await (await site_of(store)).purge_tombstones(_later(hours=48))
        assert "k" not in _version_tombstones(a) + _version_tombstones(b)

    run_with_two_stores(body, tmp_path)
