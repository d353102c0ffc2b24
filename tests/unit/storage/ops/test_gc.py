"""Segment GC on real stores: garbage is reclaimed, nothing live is ever lost.

Method: small segments and chunks so that a few objects spread over many segment files;
overwrite and delete, run GC in process, then read every version, part and chunk that must
survive, and run fsck. Live data of every kind is covered: current and noncurrent versions,
delete markers, an in-flight multipart upload's parts, a chunk only a change not yet
acknowledged by a peer needs, a conflict loser, an upload still streaming, and a manifest a
reader resolved before GC moved its chunks.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from node.admin.jobs import NoProgress
from storage import retired
from storage.manifest import Manifest
from storage.ops import fsck, gc, usage
from storage.ops.rebuild import rebuild_index
from storage.segments import RecordKind, SegmentWriter, list_segment_ids, segment_path
from storage.store import Store
from storage.sync.feed import LogPruned
from tests.unit.storage.stores import (
    Stored,
    assert_stored,
    put_object,
    put_part,
    read_all,
    run_with_store,
    run_with_two_stores,
    site_of,
)

SEGMENT = 64 * 1024
CHUNK = 16 * 1024


def run_small(test: object, data_dir: Path) -> None:
    run_with_store(test, data_dir, chunk_bytes=CHUNK, segment_bytes_max=SEGMENT)  # type: ignore[arg-type]


async def disk_bytes(store: Store) -> int:
    return sum(p.stat().st_size for p in store.segment_dir.glob("*.seg"))


async def assert_fsck_clean(store: Store) -> None:
    report = await store.inspect(fsck.check, store.segment_dir)
    assert report.clean, report.findings


async def gc_run(store: Store, threshold: float = gc.DEFAULT_THRESHOLD) -> gc.GcOutcome:
    return await gc.run(store, threshold, NoProgress())


def test_gc_reclaims_garbage_and_keeps_every_live_version_and_part(tmp_path: Path) -> None:
    expected: Stored = {}

    async def body(store: Store) -> None:
        await store.create_bucket("v", "owner")
        await store.set_versioning("v", "Enabled")
        for round_ in range(3):  # noncurrent versions stay live
            data = os.urandom(40_000 + round_)
            manifest = await put_object(store, "v", "kept", data)
            expected[("v", "kept", manifest.version_id)] = data
        marked = await put_object(store, "v", "marked", b"under a delete marker")
        expected[("v", "marked", marked.version_id)] = b"under a delete marker"
        await store.delete_object("v", "marked")
        for round_ in range(6):  # unversioned: each overwrite turns the last into garbage
            for key in ("a", "b", "c", "d"):
                data = os.urandom(30_000 + round_)
                manifest = await put_object(store, "b", key, data)
                expected[("b", key, "null")] = data
        for key in ("c", "d"):
            await store.delete_object("b", key)
            del expected[("b", key, "null")]
        part_data = os.urandom(50_000)
        upload = await put_part(store, "b", "mpu", part_data)
        expected[("upload", upload.upload_id, "b/mpu")] = part_data

        before = await usage.store_usage(store)
        plan, _live = await gc.make_plan(store, gc.DEFAULT_THRESHOLD)
        assert plan.to_json()["totals"]["reclaimable_bytes"] > 500_000
        disk_before = await disk_bytes(store)
        outcome = await gc_run(store)
        after = await usage.store_usage(store)
        assert outcome.segments_rewritten >= 8 and not outcome.kept
        assert await disk_bytes(store) < disk_before - 500_000
        assert disk_before - await disk_bytes(store) >= outcome.reclaimed_bytes - 16
        assert after.live_bytes == before.live_bytes
        assert after.garbage_bytes < before.garbage_bytes / 4
        await assert_stored(store, expected)
        await assert_fsck_clean(store)

    async def reopened(store: Store) -> None:
        await assert_stored(store, expected)
        await assert_fsck_clean(store)
        again = await gc_run(store)
        assert again.reclaimed_bytes < 2 * SEGMENT  # nothing much left to collect

    run_small(body, tmp_path)
    run_with_store(reopened, tmp_path, bucket=None)


def test_a_chunk_a_peer_still_needs_survives_until_acknowledged(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        site = await site_of(store)
        await site.set_cursor("peer-x", "acked", 0)  # a known peer that has pulled nothing
        old = os.urandom(40_000)
        first = await put_object(store, "b", "k", old)
        for _ in range(4):
            await put_object(store, "b", "k", os.urandom(40_000))
        digests = [c.blake3 for c in first.chunks]
        await gc_run(store, threshold=1.0)
        assert [await site.read_chunk_by_hash(d) for d in digests] == [
            old[i * CHUNK : (i + 1) * CHUNK] for i in range(len(digests))
        ]
        await assert_fsck_clean(store)
        await site.set_cursor("peer-x", "acked", await site.last_seq())
        await gc_run(store, threshold=1.0)
        assert [await site.read_chunk_by_hash(d) for d in digests] == [None] * len(digests)
        await assert_fsck_clean(store)

    run_small(body, tmp_path)


def test_a_conflict_loser_is_kept_while_its_conflict_is(tmp_path: Path) -> None:
    from tests.unit.storage.sync.test_apply import replicate

    async def body(a: Store, b: Store) -> None:
        for store in (a, b):
            await store.create_bucket("b", "owner")
        loser = os.urandom(30_000)
        await put_object(b, "b", "k", loser)  # older stamp
        await asyncio.sleep(0.002)
        await put_object(a, "b", "k", os.urandom(30_000))
        await replicate(a, b)  # b learns of a, so a's bucket exists for b's changes
        _applied, conflicts = await replicate(b, a)
        assert conflicts == 1
        site_a = await site_of(a)
        await site_a.set_cursor(b.node_id, "acked", await site_a.last_seq())  # nothing owed to b
        for _ in range(3):  # move a's active segment on, so the loser's is sealed
            await put_object(a, "b", "filler", os.urandom(60_000))
        digest = blake3_of(loser[:CHUNK])
        await gc_run(a, threshold=1.0)
        assert await site_a.read_chunk_by_hash(digest) == loser[:CHUNK]
        await assert_fsck_clean(a)
        conn = sqlite3.connect(a.config.data_dir / "meta.db")
        conn.execute("DELETE FROM conflicts")  # the review period is over
        conn.commit()
        conn.close()
        for _ in range(3):  # seal the segment GC copied the loser into
            await put_object(a, "b", "filler", os.urandom(60_000))
        await gc_run(a, threshold=1.0)
        assert await site_a.read_chunk_by_hash(digest) is None

    run_with_two_stores(body, tmp_path, chunk_bytes=CHUNK, segment_bytes_max=SEGMENT)


def blake3_of(data: bytes) -> bytes:
    import blake3

    return blake3.blake3(data).digest()


def test_an_upload_still_streaming_keeps_its_segments(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        data = os.urandom(5 * SEGMENT)  # spreads over several segments before its commit
        writer = await store.begin_object("b", "streaming", 1 << 30)
        await writer.write(data)
        await writer.finish()
        await put_object(store, "b", "other", b"a commit records the rotated segments sealed")
        outcome = await gc_run(store, threshold=1.0)
        assert outcome.kept and all("upload in progress" in r for r in outcome.kept.values())
        manifest = await writer.commit([])
        assert await read_all(store, manifest) == data
        await gc_run(store, threshold=1.0)  # committed: now its bytes are simply live
        assert await read_all(store, await store.head_object("b", "streaming")) == data
        await assert_fsck_clean(store)

    run_small(body, tmp_path)


def test_a_manifest_resolved_before_gc_still_reads_and_copies(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        data = os.urandom(100_000)
        await put_object(store, "b", "src", data)
        for _ in range(3):
            await put_object(store, "b", "filler", os.urandom(60_000))
        stale: Manifest = await store.head_object("b", "src")
        await gc_run(store, threshold=1.0)
        fresh = await store.head_object("b", "src")
        assert {c.segment_id for c in fresh.chunks}.isdisjoint({c.segment_id for c in stale.chunks})
        assert await read_all(store, stale) == data  # found again through the chunk index
        upload = await store.multipart.create_upload("b", "copy", (), "owner")
        await store.multipart.copy_part(upload, 1, stale, 10, 70_009)  # a slice of the moved chunks
        part_list, _more = await store.multipart.list_parts(upload, 0, 10)
        completed = await store.multipart.complete_upload(upload, [(1, part_list[0].etag)])
        assert await read_all(store, completed) == data[10:70_010]
        await assert_fsck_clean(store)

    run_small(body, tmp_path)


def test_gc_rewrite_takes_one_segment_and_refuses_the_active_one(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        data = os.urandom(100_000)
        manifest = await put_object(store, "b", "k", data)
        target = manifest.chunks[0].segment_id
        outcome = await gc.run(store, 0.0, NoProgress(), only={target})
        assert outcome.segments_rewritten == 1
        assert not segment_path(store.segment_dir, target).exists()
        assert await read_all(store, await store.head_object("b", "k")) == data
        with pytest.raises(gc.GcRefused, match="active"):
            await gc.run(store, 0.0, NoProgress(), only={store.active_segment_id})
        with pytest.raises(gc.GcRefused, match="no segment"):
            await gc.run(store, 0.0, NoProgress(), only={10_000})

    run_small(body, tmp_path)


def test_gc_refuses_to_run_when_a_manifest_cannot_be_decoded(tmp_path: Path) -> None:
    async def write(store: Store) -> None:
        await put_object(store, "b", "k", b"data")

    run_small(write, tmp_path)
    conn = sqlite3.connect(tmp_path / "meta.db")
    conn.execute("UPDATE versions SET manifest = x'00'")
    conn.commit()
    conn.close()

    async def collect(store: Store) -> None:
        with pytest.raises(gc.GcRefused, match="cannot be decoded"):
            await gc_run(store)

    run_with_store(collect, tmp_path, bucket=None)


def test_open_finishes_deleting_segments_a_crash_left_behind(tmp_path: Path) -> None:
    """GC's commit lists a segment as retired; a crash before the unlink leaves the file."""

    async def write(store: Store) -> None:
        await put_object(store, "b", "k", b"x" * 1000)

    run_small(write, tmp_path)
    unreferenced = max(list_segment_ids(tmp_path / "segments")) + 100
    writer = SegmentWriter(tmp_path / "segments", unreferenced, SEGMENT)
    writer.append(RecordKind.CHUNK, b"garbage")
    writer.close()
    conn = sqlite3.connect(tmp_path / "meta.db", isolation_level=None)
    conn.execute("BEGIN")
    retired.add_retired(conn, {unreferenced})
    conn.execute("COMMIT")
    conn.close()

    async def reopened(store: Store) -> None:
        assert not segment_path(store.segment_dir, unreferenced).exists()
        assert await store.inspect(retired.read_retired) == set()
        assert await read_all(store, await store.head_object("b", "k")) == b"x" * 1000

    run_with_store(reopened, tmp_path, bucket=None)


def test_gc_plan_never_selects_the_active_segment(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await put_object(store, "b", "k", os.urandom(1000))
        await store.delete_object("b", "k")
        plan, _live = await gc.make_plan(store, 1.0)
        active = [s for s in plan.segments if s.segment_id == store.active_segment_id]
        assert active and not active[0].rewrite and not active[0].sealed

    run_small(body, tmp_path)


def test_usage_functions_of_the_contract_agree_with_store_usage(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        for _ in range(3):
            await put_object(store, "b", "k", os.urandom(40_000))
        await put_object(store, "b", "other", os.urandom(10_000))
        await store.delete_object("b", "other")
        totals = await usage.store_usage(store)
        conn = sqlite3.connect(store.config.data_dir / "meta.db", isolation_level=None)
        try:
            assert usage.usage_totals(conn, store.segment_dir) == totals
            segments = usage.measure(usage.read_facts(conn), store.segment_dir)
        finally:
            conn.close()
        assert (totals.objects, totals.segments) == (1, len(segments))
        # Chunk bytes of the current "k" only: older ones and "other" are garbage.
        assert totals.live_bytes == sum(s.live_bytes for s in segments) == 40_000
        assert totals.garbage_bytes == totals.segment_bytes - totals.live_bytes > 90_000
        assert all(s.live_bytes <= s.kept_bytes <= s.file_bytes for s in segments)

    run_small(body, tmp_path)


def test_a_site_asking_for_log_whose_chunks_gc_reclaimed_is_told_to_bootstrap(
    tmp_path: Path,
) -> None:
    async def body(store: Store) -> None:
        site = await site_of(store)
        await site.set_cursor("peer-x", "acked", 0)
        for _ in range(4):
            await put_object(store, "b", "k", os.urandom(40_000))
        await gc_run(store, threshold=1.0)  # peer-x is owed everything: nothing reclaimed
        assert len(await site.changes_after(0, 100, None)) == 5
        horizon = await site.last_seq()
        await site.set_cursor("peer-x", "acked", horizon)
        for _ in range(3):  # seal the segment the first run copied into
            await put_object(store, "b", "filler", os.urandom(60_000))
        outcome = await gc_run(store, threshold=1.0)
        assert outcome.segments_rewritten > 0
        with pytest.raises(LogPruned):  # a new site starting from 0 would stall on chunks
            await site.changes_after(0, 100, None)
        assert len(await site.changes_after(horizon, 100, None)) == 3  # peer-x goes on

    run_small(body, tmp_path)


def test_rebuild_index_after_gc_recreates_every_live_version_and_part(tmp_path: Path) -> None:
    """GC moves chunks: it appends the moved versions' manifests and parts' journal entries
    again, so a catalog rebuilt from the segments alone points at the copies."""
    expected: Stored = {}

    async def body(store: Store) -> None:
        await store.create_bucket("v", "owner")
        await store.set_versioning("v", "Enabled")
        for _ in range(3):
            data = os.urandom(30_000)
            manifest = await put_object(store, "v", "k", data)
            expected[("v", "k", manifest.version_id)] = data
        for _ in range(4):
            data = os.urandom(30_000)
            await put_object(store, "b", "plain", data)
        expected[("b", "plain", "null")] = data
        part = os.urandom(40_000)
        upload = await put_part(store, "b", "mpu", part)
        expected[("upload", upload.upload_id, "b/mpu")] = part
        for _ in range(3):
            await put_object(store, "b", "filler", os.urandom(60_000))
        outcome = await gc_run(store, threshold=1.0)
        assert outcome.segments_rewritten > 0 and outcome.versions_rewritten > 0

    run_small(body, tmp_path)
    report = rebuild_index(tmp_path, NoProgress(), force=True)
    # Versions GC collected after they were overwritten are superseded, not lost: the
    # rebuild is complete (exit 0) and says how many entries it passed over.
    assert (report["versions"], report["uploads"]) == (5, 1)
    assert report["exit_code"] == 0 and report["skipped"] == [], report["skipped"]
    assert report["superseded_entries"] >= 3

    async def check(store: Store) -> None:
        await assert_stored(store, expected)
        await assert_fsck_clean(store)

    run_with_store(check, tmp_path, bucket=None)
