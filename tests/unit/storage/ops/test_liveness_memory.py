"""The live set (usage, GC) stays small per object: the node's usage task builds it for the
whole store every few minutes, so its size is part of the node's RSS at a million objects."""

from __future__ import annotations

import os
import sqlite3
import tracemalloc
from array import array

import blake3

from storage.manifest import ChunkRef, Kind, Manifest
from storage.ops.liveness import ManifestDigests, SegmentRefs, Spans, collect, read_snapshot
from storage.ops.records import RecordHeader
from storage.schema import migrate
from storage.segments import RecordKind

VERSIONS = 5_000


def _catalog() -> tuple[sqlite3.Connection, list[bytes]]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    blobs = []
    for n in range(VERSIONS):
        chunk = ChunkRef(1 + n // 1000, 100 + (n % 1000) * 4200, 4096, os.urandom(32))
        manifest = Manifest(Kind.OBJECT, "b", f"k{n:06d}", f"v{n}", n, "o", 4096, "e", 0,
                            chunks=(chunk,))  # fmt: skip
        blobs.append(manifest.encode())
    conn.executemany(
        "INSERT INTO versions (bucket, key, version_id, kind, hlc, origin, size, etag,"
        " last_modified_ms, is_latest, manifest) VALUES ('b', ?, ?, 1, ?, 'o', 4096, 'e', 0, 1,"
        " ?)",
        [(f"k{n:06d}", f"v{n}", n, blob) for n, blob in enumerate(blobs)],
    )
    return conn, blobs


def test_the_live_set_costs_a_few_dozen_bytes_an_object() -> None:
    conn, blobs = _catalog()
    tracemalloc.start()
    try:
        with read_snapshot(conn):
            live = collect(conn)
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(len(spans) for spans in live.refs.values()) == VERSIONS
    assert all(blake3.blake3(blob).digest() in live.manifests for blob in blobs[:100])
    assert os.urandom(32) not in live.manifests
    # Tuples in sets and lists, and 32-byte digests in a set, held ~270 bytes an object.
    print(f"live set: {kept / VERSIONS:.1f} bytes an object")
    assert kept / VERSIONS < 64, kept / VERSIONS


def test_spans_are_sorted_unique_and_walk_like_a_list() -> None:
    spans = Spans.from_flat(array("Q", [50, 5, 10, 5, 50, 5, 30, 2]))
    assert list(spans) == [(10, 5), (30, 2), (50, 5)]
    assert spans[1] == (30, 2) and spans[1:] == [(30, 2), (50, 5)] and len(spans) == 3
    refs = SegmentRefs(spans)
    assert refs.claim(RecordHeader(RecordKind.CHUNK, 10, 5, bytes(32)))
    assert not refs.claim(RecordHeader(RecordKind.CHUNK, 20, 5, bytes(32)))
    assert refs.finish() == [(30, 2), (50, 5)]


def test_manifest_digests_answer_membership() -> None:
    digests = [os.urandom(32) for _ in range(1000)]
    found = ManifestDigests(digests)
    assert len(found) == 1000
    assert all(digest in found for digest in digests)
    assert sum(os.urandom(32) in found for _ in range(1000)) == 0
