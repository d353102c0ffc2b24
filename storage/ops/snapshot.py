"""snapshot and restore: a consistent point-in-time copy of a data dir, and the way back.

**Snapshot** (beside a serving node or offline). One read transaction on ``meta.db`` fixes
the point in time: in it the segment list is read, every listed segment file is opened (a
descriptor keeps the file even if GC unlinks it meanwhile) and the SQLite online backup
API copies the whole catalog as that transaction sees it. Then each segment is copied up to
the length the copy needs: a sealed segment is immutable and taken whole; the one still
being appended to is taken up to its ``durable_end`` as recorded in the copied catalog,
which covers every record committed at that point (later appends are not in the copy's
catalog, so they are not needed). A sealed segment may instead be hard-linked when the
snapshot is on the same filesystem: sealed files are never written again and GC replaces
rather than rewrites them, so the link is as good as a copy (but shares the disk: use
``--copy`` for a backup that must survive the disk). ``SNAPSHOT.json`` lists every file
with its length and BLAKE3.

**Restore** verifies every file against ``SNAPSHOT.json`` while copying it into a staging
directory inside the data dir, fsyncs, adjusts the copied catalog (below), moves any
previous contents aside (``--force``) and renames the pieces into place. The node keeps its
node id. Because peers may hold cursors into the log past the snapshot, the restored log
continues above any seq the lost log can have reached, and the HLC restarts no earlier than
the restore, so nothing new is numbered or stamped like something peers already hold
(docs/ops.md, "Snapshot and restore").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import blake3

from storage import catalog, key_journal
from storage.clock import SYSTEM_CLOCK, Clock
from storage.data_dir import NODE_ID_PATTERN
from storage.data_dir_lock import DataDirLocked, lock_data_dir
from storage.errors import StorageError
from storage.hlc import pack
from storage.manifest import Kind
from storage.ops.jobstate import Progress
from storage.segments import fsync_directory, segment_path
from storage.sync.apply import start_repulling_own_changes
from storage.sync.feed import continue_log_above, last_seq

FORMAT: Final = 1
MANIFEST_FILE: Final = "SNAPSHOT.json"
CATALOG: Final = "meta.db"
COPY_BYTES: Final = 1 << 20
ATTEMPTS: Final = 5  # a segment GC removed between the read and opening it: read again
DATA_DIR_ENTRIES: Final = (
    "meta.db", "meta.db-wal", "meta.db-shm", "node_id", "segments", "journal",
)  # fmt: skip


class SnapshotError(StorageError):
    """A snapshot cannot be taken or restored (nothing was changed in the data dir)."""


@dataclass(frozen=True)
class SegmentCopy:
    segment_id: int
    durable_end: int  # as the copied catalog records it
    sealed: bool


# ---- taking a snapshot --------------------------------------------------------------------------


def take_snapshot(
    data_dir: Path,
    out: Path,
    progress: Progress,
    link: bool = True,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """Write a snapshot of ``data_dir`` to the new directory ``out``; the report."""
    started = clock.monotonic()
    if not (data_dir / CATALOG).exists():
        raise SnapshotError(f"no lakenode data in {data_dir}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SnapshotError(f"{out} already exists and is not an empty directory")
    node_id = (data_dir / "node_id").read_text().strip()
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    (staging / "segments").mkdir(mode=0o700)
    try:
        backup = _backup_catalog(data_dir, staging / CATALOG, clock)
        listed = _copy_segments(data_dir, staging, backup, link, progress)
        facts = _catalog_facts(staging / CATALOG)
        description = {
            "format": FORMAT,
            "node_id": node_id,
            "created_ms": backup.taken_ms,
            **facts,
            "catalog": _describe(staging / CATALOG, CATALOG),
            "segments": listed,
            "absent_segments": backup.absent,
        }
        _write_json(staging / MANIFEST_FILE, description)
        fsync_directory(staging / "segments")
        fsync_directory(staging)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
        fsync_directory(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {
        "exit_code": 0,
        "out": str(out),
        "node_id": node_id,
        "created_ms": description["created_ms"],
        **facts,
        "segments": len(listed),
        "absent_segments": description["absent_segments"],
        "bytes": sum(item["length"] for item in listed),
        "linked_bytes": sum(item["length"] for item in listed if item["linked"]),
        "seconds": round(clock.monotonic() - started, 3),
    }


@dataclass(frozen=True)
class CatalogBackup:
    taken_ms: int  # the point in time: when the read transaction began
    fds: dict[int, int]  # segment id -> open descriptor
    segments: list[SegmentCopy]
    absent: list[int]  # listed by the catalog but not on disk (before this snapshot began)


def _backup_catalog(data_dir: Path, target: Path, clock: Clock) -> CatalogBackup:
    """Back the catalog up to ``target`` in one read transaction that also lists the
    segments and opens each one."""
    absent_before: set[int] | None = None
    for _attempt in range(ATTEMPTS):
        source = sqlite3.connect(data_dir / CATALOG, isolation_level=None, timeout=30)
        try:
            source.execute("BEGIN")
            taken_ms = clock.wall_ms()
            rows = source.execute("SELECT id, durable_end, sealed FROM segments").fetchall()
            fds, absent = _open_segments(data_dir / "segments", [int(row[0]) for row in rows])
            if absent and absent != absent_before:
                # Removed after this read began (GC commits, then unlinks): read again. The
                # same ones absent from two reads in a row were gone before: not a race.
                for fd in fds.values():
                    os.close(fd)
                absent_before = absent
                continue
            destination = sqlite3.connect(target)
            try:
                source.backup(destination)  # inside the read transaction: the same view
                destination.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                destination.close()
            os.chmod(target, 0o600)
            segments = [
                SegmentCopy(int(i), int(end), bool(sealed))
                for i, end, sealed in rows
                if int(i) not in absent
            ]
            return CatalogBackup(taken_ms, fds, segments, sorted(absent))
        finally:
            source.close()
    raise SnapshotError(f"segments kept disappearing while the snapshot was read ({ATTEMPTS}x)")


def _open_segments(directory: Path, ids: list[int]) -> tuple[dict[int, int], set[int]]:
    fds: dict[int, int] = {}
    absent: set[int] = set()
    for segment_id in ids:
        try:
            fds[segment_id] = os.open(segment_path(directory, segment_id), os.O_RDONLY)
        except FileNotFoundError:
            absent.add(segment_id)
    return fds, absent


def _copy_segments(
    data_dir: Path, staging: Path, backup: CatalogBackup, link: bool, progress: Progress
) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    fds = backup.fds
    try:
        lengths = {s.segment_id: _length(fds[s.segment_id], s) for s in backup.segments}
        total, done = sum(lengths.values()), 0
        progress.note(f"copying {len(lengths)} segment(s), {total} bytes")
        for segment in sorted(backup.segments, key=lambda s: s.segment_id):
            fd, length = fds[segment.segment_id], lengths[segment.segment_id]
            name = segment_path(Path("segments"), segment.segment_id)
            source = segment_path(data_dir / "segments", segment.segment_id)
            linked = link and segment.sealed and _link(source, fd, staging / name)
            digest = _hash_fd(fd, length) if linked else _copy_fd(fd, length, staging / name)
            listed.append(
                {"id": segment.segment_id, "file": str(name), "length": length,
                 "blake3": digest, "sealed": segment.sealed, "linked": linked}
            )  # fmt: skip
            done += length
            progress.advance(done, total, "bytes")
    finally:
        for fd in fds.values():
            os.close(fd)
    return listed


def _length(fd: int, segment: SegmentCopy) -> int:
    """How much of a segment the snapshot needs (see the module docstring)."""
    size = os.fstat(fd).st_size
    if segment.sealed:
        return size
    if segment.durable_end > size:
        raise SnapshotError(
            f"segment {segment.segment_id:016x} is shorter ({size}) than its committed end"
            f" ({segment.durable_end}): run lakenode fsck"
        )
    return segment.durable_end


def _link(source: Path, fd: int, target: Path) -> bool:
    """Hard-link ``source`` if it is still the file ``fd`` has open; False to copy instead."""
    try:
        os.link(source, target)
    except OSError:
        return False  # another filesystem, or the file is gone: copy from the descriptor
    if os.stat(target).st_ino == os.fstat(fd).st_ino:
        return True
    target.unlink()
    return False


def _hash_fd(fd: int, length: int) -> str:
    hasher = blake3.blake3()
    for piece in _pieces(fd, length):
        hasher.update(piece)
    return str(hasher.hexdigest())


def _copy_fd(fd: int, length: int, target: Path) -> str:
    """Copy the first ``length`` bytes of ``fd`` to a new file, fsynced; their BLAKE3."""
    hasher = blake3.blake3()
    with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        for piece in _pieces(fd, length):
            hasher.update(piece)
            file.write(piece)
        file.flush()
        os.fsync(file.fileno())
    return str(hasher.hexdigest())


def _pieces(fd: int, length: int) -> Iterator[bytes]:
    offset = 0
    while offset < length:
        piece = os.pread(fd, min(COPY_BYTES, length - offset), offset)
        if not piece:
            raise SnapshotError(f"file ended at {offset} of {length} bytes")
        offset += len(piece)
        yield piece


def _catalog_facts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {
            "last_seq": last_seq(conn),
            "hlc": catalog.last_hlc(conn),
            "objects": int(
                conn.execute(
                    "SELECT count(*) FROM versions WHERE is_latest = 1 AND kind = ?",
                    (int(Kind.OBJECT),),
                ).fetchone()[0]
            ),
        }
    finally:
        conn.close()


def _describe(path: Path, name: str) -> dict[str, Any]:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return {"file": name, "length": size, "blake3": _hash_fd(fd, size)}
    finally:
        os.close(fd)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        json.dump(value, file, indent=2, sort_keys=True)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())


# ---- restoring --------------------------------------------------------------------------------


def restore_snapshot(
    snapshot: Path,
    data_dir: Path,
    progress: Progress,
    force: bool = False,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """Make ``data_dir`` the snapshot's data dir again; the report. The data dir must not be
    in use, and must be empty unless ``force`` (its contents are then moved aside)."""
    started = clock.monotonic()
    description = read_description(snapshot)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = lock_data_dir(data_dir)
    except DataDirLocked as exc:
        raise SnapshotError(f"a node is running on {data_dir}: stop it first") from exc
    try:
        present = [name for name in DATA_DIR_ENTRIES if _holds_data(data_dir / name)]
        if present and not force:
            raise SnapshotError(
                f"{data_dir} is not empty ({', '.join(present)}): pass --force to restore"
                " over it (its contents are moved to replaced-<time>/ inside it)"
            )
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(clock.wall_s()))
        staging = data_dir / f".restore-{stamp}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "segments").mkdir(mode=0o700, parents=True)
        try:
            copied = _stage_files(snapshot, description, staging, progress)
            log_floor = _prepare_catalog(staging, int(description["created_ms"]), clock)
            moved = _move_aside(data_dir, present, stamp) if present else None
            _move_into_place(staging, data_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        os.close(lock)
    return {
        "exit_code": 0,
        "data_dir": str(data_dir),
        "node_id": description["node_id"],
        "snapshot_created_ms": description["created_ms"],
        "snapshot_last_seq": description["last_seq"],
        "log_continues_after": log_floor,
        "segments": len(description["segments"]),
        "bytes": copied,
        "moved_aside": moved,
        "seconds": round(clock.monotonic() - started, 3),
    }


def _holds_data(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def read_description(snapshot: Path) -> dict[str, Any]:
    """SNAPSHOT.json, checked (file names are derived from ids, never taken as given)."""
    try:
        description = json.loads((snapshot / MANIFEST_FILE).read_text())
    except OSError as exc:
        raise SnapshotError(f"{snapshot} is not a snapshot: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{snapshot / MANIFEST_FILE} is not JSON: {exc}") from exc
    problem = _description_problem(description)
    if problem is not None:
        raise SnapshotError(f"{snapshot / MANIFEST_FILE}: {problem}")
    return dict(description)


def _description_problem(description: Any) -> str | None:
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        return f"not a format {FORMAT} snapshot description"
    if not NODE_ID_PATTERN.match(str(description.get("node_id"))):
        return "bad node id"
    for name in ("created_ms", "last_seq", "hlc"):
        if type(description.get(name)) is not int:
            return f"bad {name}"
    files = [description.get("catalog"), *(description.get("segments") or [])]
    for item in files:
        if not isinstance(item, dict) or not _HEX64.match(str(item.get("blake3"))):
            return "a file without a valid BLAKE3"
        if type(item.get("length")) is not int or item["length"] < 0:
            return "a file without a valid length"
    if any(type(item.get("id")) is not int or item["id"] < 1 for item in files[1:]):
        return "a segment without a valid id"
    return None


def _stage_files(
    snapshot: Path, description: dict[str, Any], staging: Path, progress: Progress
) -> int:
    """Copy every file into ``staging``, checking each against its length and BLAKE3."""
    files = [(CATALOG, description["catalog"])] + [
        (str(segment_path(Path("segments"), item["id"])), item) for item in description["segments"]
    ]
    total = sum(int(item["length"]) for _name, item in files)
    progress.note(f"verifying and copying {len(files)} file(s), {total} bytes")
    done = 0
    for name, item in files:
        try:
            fd = os.open(snapshot / name, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise SnapshotError(f"snapshot damaged: {name} is missing") from exc
        try:
            digest = _copy_fd(fd, int(item["length"]), staging / name)
        except SnapshotError as exc:
            raise SnapshotError(f"snapshot damaged: {name}: {exc}") from exc
        finally:
            os.close(fd)
        if digest != item["blake3"]:
            raise SnapshotError(f"snapshot damaged: {name} does not match its BLAKE3")
        done += int(item["length"])
        progress.advance(done, total, "bytes")
    node_id = staging / "node_id"
    with open(os.open(node_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w") as file:
        file.write(f"{description['node_id']}\n")
        file.flush()
        os.fsync(file.fileno())
    fsync_directory(staging / "segments")
    return total


def _prepare_catalog(staging: Path, snapshot_ms: int, clock: Clock) -> int:
    """Make the copied catalog safe to rejoin peers with; the log's new last seq."""
    conn = sqlite3.connect(staging / CATALOG, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        now_ms = clock.wall_ms()
        hlc_last = max(catalog.last_hlc(conn), pack(now_ms, 0))
        catalog.write_meta(conn, "hlc_last", str(hlc_last))
        floor = continue_log_above(conn, snapshot_ms, now_ms)
        start_repulling_own_changes(conn, now_ms)
        restored = {"snapshot_created_ms": snapshot_ms, "restored_ms": now_ms}
        catalog.write_meta(conn, "restored", json.dumps(restored, sort_keys=True))
        # The keys as of the snapshot (a newer journal would bring back later keys).
        key_journal.write_baseline(conn, staging)
        conn.execute("COMMIT")
    finally:
        conn.close()
    with open(staging / CATALOG, "rb+") as file:
        os.fsync(file.fileno())
    return floor


def _move_aside(data_dir: Path, present: list[str], stamp: str) -> str:
    aside = data_dir / f"replaced-{stamp}"
    aside.mkdir(mode=0o700)
    for name in present:
        os.replace(data_dir / name, aside / name)
    fsync_directory(aside)
    return str(aside)


def _move_into_place(staging: Path, data_dir: Path) -> None:
    """Segments, journal and node id first, the catalog last: a data dir with a catalog is
    a restored one (a crash before that leaves no catalog: restore again with --force)."""
    for name in ("segments", "journal", "node_id", CATALOG):
        os.replace(staging / name, data_dir / name)
    fsync_directory(data_dir)
