"""fsck: metadata <-> manifests <-> segments, checked without changing anything.

Everything is read in one SQLite read transaction, and segment bytes past a segment's
recorded durable end are treated as not committed yet, so fsck beside a live writer reports
no write that races it. Checks, each finding with a code:

* ``version-manifest-undecodable`` / ``-mismatch``: a version row whose manifest blob does not
  decode, or describes another version; ``part-manifest-undecodable`` likewise for parts;
* for every chunk a version, a part or chunk_index locates: ``chunk-segment-missing`` (no
  such segment file), ``chunk-beyond-durable-end`` (past the committed end),
  ``chunk-beyond-file-end`` (the file was truncated), ``chunk-length-mismatch`` (the record
  there has the chunk's hash but another length, or the chunk runs past its record),
  ``chunk-not-at-record`` (no record there), ``chunk-unreadable-record`` (no readable record
  header at or before it);
* ``segment-missing`` (a recorded segment without its file), ``segment-truncated`` (a file
  shorter than its recorded durable end);
* ``change-chunk-missing`` / ``conflict-chunk-missing``: a change after the replication
  horizon, or a retained conflict, needs a chunk the chunk index does not know;
  ``change-manifest-undecodable`` likewise;
* ``cursor-beyond-log``: a peer's acknowledged or pushed position past the end of our log
  (seq gaps are fine: the log is pruned);
* ``manifest-orphan``: an OBJECT manifest record (committed: below its segment's durable end)
  whose version row is missing although nothing superseded it. Superseded manifests are
  normal garbage, not findings: a record is superseded when its key has a version row, a
  delete record or a change-log row with a greater (HLC, origin) stamp, when its version was
  deleted for good (a version tombstone, or its ``version.delete`` still in the log), or when
  its bucket is gone or was re-created after it. Tombstone GC drops old deletes and prunes
  the log: a record whose own change was pruned is too old to judge and is skipped. Of a
  key's unexplained records only the newest is reported.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from storage import catalog, retired
from storage.errors import FormatError
from storage.manifest import Kind, Manifest, decode
from storage.ops.liveness import hash_references, read_snapshot
from storage.ops.records import HeaderScan, RecordHeader, read_payload
from storage.segments import RecordKind, list_segment_ids, segment_path

FINDINGS_PER_CODE_MAX = 1000
Stamp = tuple[int, str]  # (HLC, origin): the LWW order


@dataclass(frozen=True)
class Finding:
    code: str
    subject: str  # the object, segment, change or cursor concerned
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "subject": self.subject, "message": self.message}


@dataclass
class FsckReport:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    omitted: dict[str, int] = field(default_factory=dict)  # findings past the cap, per code
    _seen: set[tuple[str, str, str]] = field(default_factory=set, repr=False)
    _listed: Counter[str] = field(default_factory=Counter, repr=False)

    @property
    def clean(self) -> bool:
        return not self.findings

    def add(self, code: str, subject: str, message: str) -> None:
        if (code, subject, message) in self._seen:
            return
        self._seen.add((code, subject, message))
        if self._listed[code] >= FINDINGS_PER_CODE_MAX:
            self.omitted[code] = self.omitted.get(code, 0) + 1
            return
        self._listed[code] += 1
        self.findings.append(Finding(code, subject, message))

    def count(self, name: str, amount: int = 1) -> None:
        self.checked[name] = self.checked.get(name, 0) + amount

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "findings": [f.to_json() for f in self.findings],
            "checked": dict(sorted(self.checked.items())),
            "omitted": self.omitted,
        }


@dataclass(frozen=True)
class _Ref:
    offset: int
    length: int
    digest: bytes
    owner: str


@dataclass
class _Segments:
    """Recorded state and files of the segment directory, in the snapshot's terms."""

    durable: dict[int, int]
    files: set[int]
    directory: Path

    def extent(self, segment_id: int) -> int:
        """Committed end: bytes past it were not committed in this snapshot."""
        return self.durable.get(segment_id, 0)


def check(conn: sqlite3.Connection, segment_dir: Path) -> FsckReport:
    """Run every check on a consistent snapshot of the catalog (a connection of its own)."""
    report = FsckReport()
    with read_snapshot(conn):
        pending = retired.read_retired(conn)
        states = catalog.segment_states(conn)
        files = set(list_segment_ids(segment_dir)) - pending
        segments = _Segments({s: e for s, (e, _sealed) in states.items()}, files, segment_dir)
        _check_segment_files(segments, report)
        refs, version_digests = _collect_refs(conn, report)
        _check_locations(segments, refs, report)
        _check_hash_references(conn, report)
        _check_cursors(conn, report)
        _check_orphans(conn, segments, version_digests, report)
    return report


def _check_segment_files(segments: _Segments, report: FsckReport) -> None:
    for segment_id, durable_end in sorted(segments.durable.items()):
        report.count("segments")
        if segment_id not in segments.files:
            report.add("segment-missing", f"segment {segment_id}", "recorded but its file is gone")
            continue
        size = os.stat(segment_path(segments.directory, segment_id)).st_size
        report.count("segment_bytes", size)
        if size < durable_end:
            report.add(
                "segment-truncated",
                f"segment {segment_id}",
                f"file has {size} bytes, {durable_end} were committed",
            )


def _collect_refs(
    conn: sqlite3.Connection, report: FsckReport
) -> tuple[dict[int, list[_Ref]], set[bytes]]:
    """Every location a version, a part or the chunk index points at, by segment."""
    refs: dict[int, list[_Ref]] = {}
    digests: set[bytes] = set()

    def add(segment_id: int, ref: _Ref) -> None:
        refs.setdefault(segment_id, []).append(ref)
        report.count("chunk_references")

    for manifest, owner in _version_manifests(conn, report, digests):
        for chunk in manifest.chunks:
            add(chunk.segment_id, _Ref(chunk.offset, chunk.length, chunk.blake3, owner))
    for upload_id, number, bucket, key, blob in conn.execute(
        "SELECT p.upload_id, p.part_number, u.bucket, u.key, p.manifest FROM parts p"
        " JOIN uploads u ON u.upload_id = p.upload_id"
    ):
        report.count("parts")
        owner = f"{bucket}/{key} upload {upload_id} part {number}"
        try:
            chunks = decode(blob).chunks
        except FormatError as exc:
            report.add("part-manifest-undecodable", owner, str(exc))
            continue
        for chunk in chunks:
            add(chunk.segment_id, _Ref(chunk.offset, chunk.length, chunk.blake3, owner))
    for digest, segment_id, offset, length in conn.execute(
        "SELECT blake3, segment_id, offset, length FROM chunk_index"
    ):
        report.count("chunk_index")
        add(segment_id, _Ref(offset, length, bytes(digest), f"chunk index {bytes(digest).hex()}"))
    for found in refs.values():
        found.sort(key=lambda ref: ref.offset)
    return refs, digests


def _version_manifests(
    conn: sqlite3.Connection, report: FsckReport, digests: set[bytes]
) -> Iterator[tuple[Manifest, str]]:
    for bucket, key, version_id, kind, hlc, origin, blob in conn.execute(
        "SELECT bucket, key, version_id, kind, hlc, origin, manifest FROM versions"
    ):
        report.count("versions")
        owner = f"{bucket}/{key} version {version_id}"
        digests.add(blake3.blake3(blob).digest())
        try:
            manifest = decode(blob)
        except FormatError as exc:
            report.add("version-manifest-undecodable", owner, str(exc))
            continue
        described = (manifest.bucket, manifest.key, manifest.version_id, int(manifest.kind),
                     manifest.hlc, manifest.origin)  # fmt: skip
        if described != (bucket, key, version_id, kind, hlc, origin):
            report.add("version-manifest-mismatch", owner, "manifest describes another version")
            continue
        yield manifest, owner


def _check_locations(segments: _Segments, refs: dict[int, list[_Ref]], report: FsckReport) -> None:
    for segment_id, found in sorted(refs.items()):
        if segment_id not in segments.files:
            for lost in found:
                report.add("chunk-segment-missing", lost.owner, f"segment {segment_id} is missing")
            continue
        path = segment_path(segments.directory, segment_id)
        scan = HeaderScan(path, segments.extent(segment_id))
        pending = iter(found)
        ref: _Ref | None = next(pending, None)
        for header in scan:
            while ref is not None and ref.offset < header.end:
                _check_ref_in_record(segment_id, ref, header, report)
                ref = next(pending, None)
        size = os.stat(path).st_size
        while ref is not None:
            _check_ref_past_scan(segments, segment_id, size, ref, report)
            ref = next(pending, None)


def _check_ref_in_record(
    segment_id: int, ref: _Ref, header: RecordHeader, report: FsckReport
) -> None:
    where = f"segment {segment_id} offset {ref.offset} length {ref.length}"
    if ref.offset < header.offset:
        report.add("chunk-not-at-record", ref.owner, f"{where}: no record starts there")
    elif ref.offset + ref.length > header.end or (
        ref.digest == header.digest and ref.length != header.length
    ):
        report.add(
            "chunk-length-mismatch",
            ref.owner,
            f"{where}: the record there holds {header.length} bytes from offset {header.offset}",
        )


def _check_ref_past_scan(
    segments: _Segments, segment_id: int, size: int, ref: _Ref, report: FsckReport
) -> None:
    where = f"segment {segment_id} offset {ref.offset} length {ref.length}"
    end = ref.offset + ref.length
    if end > size:
        report.add("chunk-beyond-file-end", ref.owner, f"{where}: the file has {size} bytes")
    elif end > segments.extent(segment_id):
        report.add(
            "chunk-beyond-durable-end",
            ref.owner,
            f"{where}: committed only up to {segments.extent(segment_id)}",
        )
    else:
        report.add("chunk-unreadable-record", ref.owner, f"{where}: no readable record header")


def _check_hash_references(conn: sqlite3.Connection, report: FsckReport) -> None:
    undecodable: list[str] = []
    for digest, owner in sorted(hash_references(conn, undecodable).items()):
        report.count("hash_references")
        if catalog.chunk_location(conn, digest) is None:
            code = f"{owner.split()[0]}-chunk-missing"
            report.add(code, owner, f"needs chunk {digest.hex()}, which the chunk index lacks")
    for subject in undecodable:
        report.add(f"{subject.split()[0]}-manifest-undecodable", subject, "cannot be decoded")


def _check_cursors(conn: sqlite3.Connection, report: FsckReport) -> None:
    (last,) = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    last = max(int(last), int(row[0]) if row else 0)
    report.count("changes_last_seq", last)
    for peer, direction, seq in conn.execute(
        "SELECT peer, direction, seq FROM peer_cursors WHERE direction IN ('acked', 'push')"
    ):
        report.count("cursors")
        if seq > last:
            report.add(
                "cursor-beyond-log",
                f"cursor {peer} {direction}",
                f"at seq {seq}, but the log ends at {last}",
            )


def _check_orphans(
    conn: sqlite3.Connection, segments: _Segments, version_digests: set[bytes], report: FsckReport
) -> None:
    newest: dict[tuple[str, str], tuple[Stamp, str]] = {}  # unexplained OBJECT records
    deletes: dict[tuple[str, str], Stamp] = {}  # newest delete record without its row
    for manifest, where in _unmatched_records(segments, version_digests, report):
        key, stamp = (manifest.bucket, manifest.key), (manifest.hlc, manifest.origin)
        if manifest.kind != Kind.OBJECT:
            deletes[key] = max(stamp, deletes.get(key, stamp))
        elif not _superseded(conn, manifest) and (key not in newest or newest[key][0] < stamp):
            newest[key] = (stamp, f"{where}: version {manifest.version_id} has no row")
    for (bucket, name), (stamp, message) in sorted(newest.items()):
        if deletes.get((bucket, name), stamp) <= stamp:
            report.add("manifest-orphan", f"{bucket}/{name}", message)


def _unmatched_records(
    segments: _Segments, version_digests: set[bytes], report: FsckReport
) -> Iterator[tuple[Manifest, str]]:
    """Committed manifest records that are not a version row's manifest blob."""
    for segment_id in sorted(segments.files):
        path = segment_path(segments.directory, segment_id)
        fd = os.open(path, os.O_RDONLY)
        try:
            for header in HeaderScan(path, segments.extent(segment_id)):
                if header.kind != RecordKind.MANIFEST:
                    continue
                report.count("manifest_records")
                if header.digest in version_digests:
                    continue
                try:
                    manifest = decode(read_payload(fd, header))
                except FormatError:
                    continue  # a damaged record: scrub's finding
                yield manifest, f"segment {segment_id} offset {header.offset}"
        finally:
            os.close(fd)


def _superseded(conn: sqlite3.Connection, manifest: Manifest) -> bool:
    """Whether the catalog explains why this version has no row (see the module docstring).

    Tombstone GC drops old deletes (versions, version tombstones) and prunes the log, so
    the evidence is looked for in the log too, and a record whose own change was pruned is
    too old to judge.
    """
    stamp = (manifest.hlc, manifest.origin)
    bucket = conn.execute(
        "SELECT hlc, origin FROM buckets WHERE name = ?", (manifest.bucket,)
    ).fetchone()
    if bucket is None or (int(bucket[0]), str(bucket[1])) > stamp:
        return True
    own_change = conn.execute(
        "SELECT 1 FROM changes WHERE origin = ? AND hlc = ?", (manifest.origin, manifest.hlc)
    ).fetchone()
    if own_change is None:
        return True
    where = (manifest.bucket, manifest.key)
    newer = conn.execute(
        "SELECT 1 FROM versions WHERE bucket = ? AND key = ? AND (hlc, origin) >= (?, ?)"
        " UNION ALL SELECT 1 FROM version_tombstones WHERE bucket = ? AND key = ?"
        " AND version_id = ?"
        " UNION ALL SELECT 1 FROM changes WHERE bucket = ? AND key = ? AND (hlc, origin) > (?, ?)"
        " AND (op != 'version.delete' OR version_id = ?)"
        " UNION ALL SELECT 1 FROM changes WHERE bucket = ? AND op = 'bucket.delete'"
        " AND (hlc, origin) > (?, ?) LIMIT 1",
        (*where, *stamp, *where, manifest.version_id, *where, *stamp, manifest.version_id,
         manifest.bucket, *stamp),
    ).fetchone()  # fmt: skip
    return newer is not None
