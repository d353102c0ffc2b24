"""rebuild-index on real stores: the catalog rebuilt from the segments equals the lost one.

Method: write every kind of mutation through the Store (and replicate a peer's changes
into it), dump the catalog's tables, delete meta.db*, rebuild, and compare the dump table by
table; then reopen the store and read every object back. No mocks.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from storage import journal, keys
from storage.catalog import NULL_VERSION
from storage.hlc import pack, wall_clock_ms
from storage.key_journal import journal_path
from storage.manifest import ChunkRef, Kind, Manifest
from storage.ops.rebuild import COMPLETE, INCOMPLETE, RebuildRefused, rebuild_index
from storage.segments import RECORD_HEADER, RecordKind, list_segment_ids, segment_path
from storage.store import Store, StoreConfig
from tests.unit.storage.stores import put_object, read_all, run_with_two_stores, site_of
from tests.unit.storage.sync.test_apply import replicate

# Every table rebuild-index restores, with the columns compared.
RESTORED = {
    "buckets": "name, owner, created_ms, hlc, origin, versioning",
    "versions": "bucket, key, version_id, kind, hlc, origin, size, etag, last_modified_ms,"
    " is_latest, manifest",
    "changes": "seq, hlc, origin, op, bucket, key, version_id, size, etag, manifest, payload",
    "bucket_config": "bucket, name, value, hlc, origin",
    "object_tags": "bucket, key, version_id, tags, hlc, origin",
    "object_acls": "bucket, key, version_id, acl, hlc, origin",
    "version_tombstones": "bucket, key, version_id, hlc, origin",
    "version_locks": "bucket, key, version_id, state, protected_until, hlc, origin",
    "uploads": "upload_id, bucket, key, initiated_ms, owner, headers, checksum",
    "parts": "upload_id, part_number, size, etag, modified_ms, manifest",
    "access_keys": "access_key, secret_key, status, read_only, buckets, policy, replication,"
    " created_ms",
    "key_digests": "khash, bucket, key, leaf",
    "digest_nodes": "prefix, xor",
}
MiB = 1 << 20


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def advance(self, done: int, total: int | None, unit: str) -> None:
        self.lines.append(f"{done}/{total} {unit}")

    def note(self, message: str) -> None:
        self.lines.append(message)


def dump(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(data_dir / "meta.db")
    try:
        return {
            table: conn.execute(f"SELECT {columns} FROM {table} ORDER BY {columns}").fetchall()
            for table, columns in RESTORED.items()
        }
    finally:
        conn.close()


def drop_catalog(data_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"meta.db{suffix}").unlink(missing_ok=True)


def key_conn(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "meta.db", isolation_level=None, timeout=10)


async def write_history(store: Store) -> dict[tuple[str, str, str], bytes]:
    """Every kind of mutation; returns (bucket, key, version id) -> bytes of live versions."""
    live: dict[tuple[str, str, str], bytes] = {}
    for number in range(3):
        data = os.urandom(300_000 + number)
        manifest = await put_object(store, "b", f"plain/{number}", data, tags=(("n", str(number)),))
        live[("b", manifest.key, NULL_VERSION)] = data
    replaced = await put_object(store, "b", "plain/0", b"second")
    live[("b", replaced.key, NULL_VERSION)] = b"second"
    await store.put_tags("b", "plain/1", None, (("later", "yes"),))
    await store.put_tags("b", "plain/2", None, None)
    await store.put_object_acl("b", "plain/1", None, '{"grants": "later"}')
    await store.put_bucket_document("b", "acl", '{"grants": "bucket"}')
    copy = await store.copy_object(replaced, "b", "copy", None)
    live[("b", copy.key, NULL_VERSION)] = b"second"
    await store.delete_object("b", "plain/2")  # unversioned: a tombstone
    live.pop(("b", "plain/2", NULL_VERSION))
    await store.put_bucket_document("b", "policy", '{"Version": "2012-10-17"}')
    await store.put_bucket_document("b", "cors", "<CORSConfiguration/>")
    await store.put_bucket_document("b", "cors", None)

    await store.create_bucket("v", "owner-v")
    await store.set_versioning("v", "Enabled")
    first = await put_object(store, "v", "k", b"one")
    second = await put_object(store, "v", "k", b"two")
    live[("v", "k", first.version_id)] = b"one"
    live[("v", "k", second.version_id)] = b"two"
    await store.delete_object("v", "k")  # a delete marker
    gone = await put_object(store, "v", "gone", b"soon gone")
    await store.delete_object("v", "gone", gone.version_id)  # removed for good

    await store.create_bucket("short-lived", "owner")
    await put_object(store, "short-lived", "x", b"x")
    await store.delete_object("short-lived", "x")
    await store.delete_bucket("short-lived")

    upload = await store.multipart.create_upload("v", "big", (("content-type", "a/b"),), "owner")
    for part_number in (1, 2):
        writer = await store.multipart.begin_part(upload, 1 << 30)
        await writer.write(bytes([part_number]) * (5 * MiB if part_number == 1 else 10))
        await writer.finish()
        await writer.commit_part(upload, part_number)
    done = await store.multipart.list_parts(upload, 0, 10)
    big = await store.multipart.complete_upload(upload, [(p.part_number, p.etag) for p in done[0]])
    live[("v", "big", big.version_id)] = b"\x01" * 5 * MiB + b"\x02" * 10
    open_upload = await store.multipart.create_upload("b", "pending", (), "owner")
    writer = await store.multipart.begin_part(open_upload, 1 << 30)
    await writer.write(b"part data")
    await writer.finish()
    await writer.commit_part(open_upload, 3)
    aborted = await store.multipart.create_upload("b", "aborted", (), "owner")
    await store.multipart.abort_upload(aborted)

    conn = key_conn(store.config.data_dir)
    keys.create_key(conn, keys.AccessKey("LKFIRSTKEY", "first-secret", read_only=True))
    keys.create_key(conn, keys.AccessKey("LKSECONDKEY", "second-secret"))
    keys.set_status(conn, "LKFIRSTKEY", "disabled")
    keys.create_key(conn, keys.AccessKey("LKTHIRDKEY", "third-secret"))
    keys.delete_key(conn, "LKTHIRDKEY")
    conn.close()
    return live


async def read_back(store: Store, live: dict[tuple[str, str, str], bytes]) -> None:
    for (bucket, key, version_id), data in live.items():
        manifest = await store.head_object(bucket, key, version_id)
        assert await read_all(store, manifest) == data, (bucket, key, version_id)


def rebuild(data_dir: Path, **options: Any) -> dict[str, Any]:
    return rebuild_index(data_dir, Notes(), **options)


def run(data_dir: Path, test: Callable[[Store], Any], node_id: str | None = None) -> Any:
    async def main() -> Any:
        store = await Store.open(StoreConfig(data_dir, node_id=node_id, chunk_bytes=MiB))
        try:
            return await test(store)
        finally:
            await store.close()

    return asyncio.run(main())


def write_one(data_dir: Path, data: bytes) -> None:
    """A data dir holding bucket b with one object, k."""

    async def history(store: Store) -> None:
        await store.create_bucket("b", "owner")
        await put_object(store, "b", "k", data)

    run(data_dir, history)


def test_rebuilt_catalog_equals_the_lost_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    async def history(store: Store) -> dict[tuple[str, str, str], bytes]:
        await store.create_bucket("b", "owner")
        return await write_history(store)

    live = run(data_dir, history, node_id="node-r")
    before = dump(data_dir)
    drop_catalog(data_dir)

    report = rebuild(data_dir)

    assert report["exit_code"] == COMPLETE, report
    assert report["skipped_count"] == 0 and report["moved_aside"] is None
    after = dump(data_dir)
    for table in RESTORED:
        assert after[table] == before[table], table
    assert report["buckets"] == 2 and report["keys"] == 2 and report["uploads"] == 1
    assert report["versions"] == len(before["versions"])
    assert report["last_seq"] > before["changes"][-1][0]  # continues above the lost log

    async def check(store: Store) -> None:
        await read_back(store, live)
        assert (await store.get_tags("b", "plain/1", None))[1] == (("later", "yes"),)
        assert (await store.get_tags("b", "plain/0", None))[1] == ()
        # The log goes on above every seq a peer may hold, and journals again.
        await put_object(store, "b", "after", b"after the rebuild")

    run(data_dir, check)
    assert dump(data_dir)["changes"][-1][0] > report["last_seq"]


def test_replicated_changes_are_rebuilt_with_their_origin(tmp_path: Path) -> None:
    async def scenario(a: Store, b: Store) -> None:
        await b.create_bucket("shared", "owner")
        await put_object(b, "shared", "from-b", b"written on b", tags=(("site", "b"),))
        await replicate(b, a)
        await put_object(a, "shared", "from-a", b"written on a")

    run_with_two_stores(scenario, tmp_path)
    data_dir = tmp_path / "a"
    before = dump(data_dir)
    drop_catalog(data_dir)

    report = rebuild(data_dir)

    assert report["exit_code"] == COMPLETE, report
    after = dump(data_dir)
    for table in ("buckets", "versions", "changes", "object_tags", "key_digests"):
        assert after[table] == before[table], table
    assert {row[5] for row in after["versions"]} == {"node-a", "node-b"}


def test_refuses_a_healthy_catalog_without_force_and_keeps_it_aside_with(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    write_one(data_dir, b"data")
    before = dump(data_dir)
    with pytest.raises(RebuildRefused, match="healthy"):
        rebuild(data_dir)

    report = rebuild(data_dir, force=True)

    assert report["exit_code"] == COMPLETE
    assert report["moved_aside"] is not None and Path(report["moved_aside"]).exists()
    assert dump(data_dir)["versions"] == before["versions"]


def test_refuses_while_a_node_holds_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    async def hold(store: Store) -> None:
        await store.create_bucket("b", "owner")
        with pytest.raises(RebuildRefused, match="a node is running"):
            rebuild(data_dir, force=True)

    run(data_dir, hold)


def test_a_damaged_catalog_is_replaced_without_force(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    write_one(data_dir, b"data")
    drop_catalog(data_dir)
    (data_dir / "meta.db").write_bytes(b"this is not a database" * 100)

    report = rebuild(data_dir)

    assert report["exit_code"] == COMPLETE and report["objects"] == 1
    assert Path(report["moved_aside"]).read_bytes().startswith(b"this is not")


def test_versions_with_damaged_chunks_are_skipped_and_reported(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    async def first_session(store: Store) -> Any:
        await store.create_bucket("b", "owner")
        await put_object(store, "b", "good", b"g" * 5000)
        return await put_object(store, "b", "damaged", b"d" * 5000)

    async def second_session(store: Store) -> None:  # a new segment: the copy's manifest
        source = await store.head_object("b", "damaged")
        await store.copy_object(source, "b", "copy", None)
        await put_object(store, "b", "after", b"a" * 5000)

    damaged = run(data_dir, first_session)
    run(data_dir, second_session)
    chunk = damaged.chunks[0]
    with open(segment_path(data_dir / "segments", chunk.segment_id), "r+b") as file:
        file.seek(chunk.offset + 10)
        file.write(b"X")
    drop_catalog(data_dir)

    report = rebuild(data_dir)

    # The damaged chunk ends its segment's scan (what follows it there is not seen); the
    # copy, in a later segment, names that chunk: skipped and reported.
    assert report["exit_code"] == INCOMPLETE
    assert [d["segment"] for d in report["damaged_segments"]] == [chunk.segment_id]
    assert [item["what"] for item in report["skipped"]] == ["object.put b/copy null"]

    async def check(store: Store) -> None:
        assert await read_all(store, await store.head_object("b", "good")) == b"g" * 5000
        assert await read_all(store, await store.head_object("b", "after")) == b"a" * 5000
        page = await store.list_objects("b", "", "", "", 10)
        assert [entry.key for entry in page.entries] == ["after", "good"]

    run(data_dir, check)


def test_a_torn_tail_is_reported_and_cut_by_the_next_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    write_one(data_dir, b"kept")
    last = segment_path(data_dir / "segments", list_segment_ids(data_dir / "segments")[-1])
    size = last.stat().st_size
    with open(last, "ab") as file:
        file.write(b"\x02\x00\x00\x00\xff\x00\x00\x00torn")
    drop_catalog(data_dir)

    report = rebuild(data_dir)

    assert report["exit_code"] == COMPLETE and report["torn_tail_bytes"] == 12

    async def check(store: Store) -> None:
        assert await read_all(store, await store.head_object("b", "k")) == b"kept"

    run(data_dir, check)
    assert last.stat().st_size == size


def test_the_key_journal_is_private_and_replayed_last_line_wins(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run(data_dir, lambda store: store.create_bucket("b", "owner"))
    conn = key_conn(data_dir)
    keys.create_key(conn, keys.AccessKey("LKKEY1", "secret-one"))
    keys.set_status(conn, "LKKEY1", "disabled")
    conn.close()
    path = journal_path(data_dir)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    with open(path, "ab") as file:
        file.write(b"0123 {torn")
    drop_catalog(data_dir)

    report = rebuild(data_dir)

    assert report["keys"] == 1 and report["key_journal_lines_skipped"] == [3]
    conn = key_conn(data_dir)
    assert keys.get_key(conn, "LKKEY1").status == "disabled"
    assert keys.get_key(conn, "LKKEY1").secret_key == "secret-one"
    conn.close()


def append_record(path: Path, kind: RecordKind, payload: bytes) -> int:
    """Append one record to a segment file by hand; the payload's offset."""
    with open(path, "ab") as file:
        start = file.tell()
        file.write(RECORD_HEADER.pack(int(kind), len(payload), blake3.blake3(payload).digest()))
        file.write(payload)
    return start + RECORD_HEADER.size


def hand_written_version(path: Path, bucket: str, key: str, hlc: int, data: bytes) -> Manifest:
    """A chunk and a manifest appended by hand, as a lakenode without the journal wrote them."""
    segment_id = int(path.stem, 16)
    offset = append_record(path, RecordKind.CHUNK, data)
    chunk = ChunkRef(segment_id, offset, len(data), blake3.blake3(data).digest())
    manifest = Manifest(
        Kind.OBJECT, bucket, key, NULL_VERSION, hlc, "node-old", len(data), "etag", 1, (), (chunk,)
    )
    append_record(path, RecordKind.MANIFEST, manifest.encode())
    return manifest


def test_manifests_without_journal_entries_are_replayed_into_known_buckets(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_one(data_dir, b"journaled")
    last = segment_path(data_dir / "segments", list_segment_ids(data_dir / "segments")[-1])
    hand_written_version(last, "b", "legacy", pack(wall_clock_ms(), 0), b"no journal entry")
    hand_written_version(last, "unknown", "x", pack(wall_clock_ms(), 1), b"no bucket")
    drop_catalog(data_dir)

    report = rebuild(data_dir)

    assert report["unjournaled_versions"] == 2 and report["exit_code"] == INCOMPLETE
    assert [item["what"].split(" (")[0] for item in report["skipped"]] == ["object.put unknown/x"]

    async def check(store: Store) -> None:
        legacy = await store.head_object("b", "legacy")
        assert await read_all(store, legacy) == b"no journal entry"
        assert await read_all(store, await store.head_object("b", "k")) == b"journaled"

    run(data_dir, check)


def test_a_seq_reused_after_an_uncommitted_batch_takes_the_committed_change(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    write_one(data_dir, b"committed first")
    last = segment_path(data_dir / "segments", list_segment_ids(data_dir / "segments")[-1])
    # A batch whose records reached the disk but whose COMMIT did not (a crash between the
    # fsync and the commit): its seq (3) is given out again after the restart.
    orphan = hand_written_version(last, "b", "orphan", pack(wall_clock_ms(), 0), b"never acked")
    entry = {
        "t": "change", "seq": 3, "hlc": orphan.hlc, "origin": orphan.origin,
        "op": "object.put", "bucket": "b", "key": "orphan", "version_id": NULL_VERSION,
        "size": orphan.size, "etag": orphan.etag, "payload": None, "manifest": True,
    }  # fmt: skip
    append_record(last, RecordKind.JOURNAL, journal.encode(entry))

    async def after_restart(store: Store) -> None:
        await put_object(store, "b", "real", b"committed second")
        assert await (await site_of(store)).last_seq() == 3

    run(data_dir, after_restart)
    drop_catalog(data_dir)

    report = rebuild(data_dir)

    assert report["exit_code"] == COMPLETE and report["unjournaled_versions"] == 0

    async def check(store: Store) -> None:
        page = await store.list_objects("b", "", "", "", 10)
        assert [entry.key for entry in page.entries] == ["k", "real"]

    run(data_dir, check)
