"""rebuild-index: recreate ``meta.db`` from the segments (and the access-key journal).

Every commit makes its manifests and journal entries durable in the segments before the
catalog (storage/commit.py, storage/journal.py), so the segments hold every committed fact.
The rebuild, on a stopped data dir:

1. scans every segment (a torn or damaged tail ends that segment's scan, as at recovery),
   staging chunk records, manifests and journal entries in temporary tables (memory stays
   bounded by one record): storage/ops/rebuild_staging.py;
2. replays the change entries **in their original log order** (``seq``), each through the
   replication apply path (storage/sync/apply.py: LWW by ``(hlc, origin)``, version tombstones,
   latest flags, tags, bucket documents, digests) and logs it again **at its original seq**
   with its original stamp, so the change log and the peers' cursors into it stay valid.
   A manifest is used only if every chunk it names lies in an intact chunk record;
3. replays manifests no change entry accounts for (written before the journal existed) by
   LWW, then multipart uploads, then the access keys (storage/key_journal.py); steps 2 and 3
   are storage/ops/rebuild_replay.py;
4. records segments, the HLC and the log's continuation point, and swaps the new catalog in
   (the old files, if any, are kept as ``meta.db.broken-<time>``).

What cannot be rebuilt (peer cursors, replication counters, job records, conflicts'
original times) is listed in docs/ops.md.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from storage import catalog
from storage.clock import SYSTEM_CLOCK, Clock
from storage.data_dir import resolve_node_id
from storage.data_dir_lock import DataDirLocked, lock_data_dir
from storage.errors import StorageError
from storage.hlc import pack
from storage.manifest import Kind
from storage.ops.jobstate import Progress
from storage.ops.rebuild_replay import (
    replay_changes,
    replay_keys,
    replay_unjournaled,
    replay_uploads,
    settle_missing,
)
from storage.ops.rebuild_staging import STAGING_TABLES, RebuildStats, scan_segments
from storage.schema import migrate
from storage.segments import fsync_directory
from storage.sync.feed import continue_log_above, last_seq

CATALOG: Final = "meta.db"
SQLITE_SUFFIXES: Final = ("", "-wal", "-shm", "-journal")
# Exit codes: rebuilt completely / rebuilt, but something was skipped or a segment is damaged.
COMPLETE: Final = 0
INCOMPLETE: Final = 4


class RebuildRefused(StorageError):
    """rebuild-index will not run on this data dir (nothing was changed)."""


def rebuild_index(
    data_dir: Path,
    progress: Progress,
    force: bool = False,
    node_id: str | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """Rebuild ``DATA/meta.db`` from the segments; the report (JSON-able, with exit_code).
    Raises RebuildRefused when it will not run."""
    if not (data_dir / "segments").is_dir():
        raise RebuildRefused(f"no lakenode data in {data_dir} (no segments directory)")
    try:
        lock = lock_data_dir(data_dir)
    except DataDirLocked as exc:
        raise RebuildRefused(f"a node is running on {data_dir}: stop it first") from exc
    try:
        node = _node_id(data_dir, node_id)
        problem = catalog_problem(data_dir / CATALOG)
        if problem is None and not force:
            raise RebuildRefused(
                f"{data_dir / CATALOG} is healthy: pass --force to rebuild it anyway"
                " (the current files are kept as meta.db.broken-<time>)"
            )
        if problem not in (None, "missing"):
            progress.note(f"{CATALOG} is damaged ({problem}): rebuilding it")
        stats = RebuildStats()
        temporary = data_dir / f"{CATALOG}.rebuild"
        counts = _build(temporary, data_dir, stats, progress, clock)
        moved = _swap_in(temporary, data_dir, clock)
    finally:
        os.close(lock)
    complete = not (stats.skipped_count or stats.damaged_segments or stats.key_lines_skipped)
    return {
        "exit_code": COMPLETE if complete else INCOMPLETE,
        "data_dir": str(data_dir),
        "node_id": node,
        "moved_aside": moved,
        "segments": stats.segments,
        "segment_bytes": stats.segment_bytes,
        "records": stats.records,
        "changes": stats.changes,
        "duplicate_entries": stats.duplicates,
        "unjournaled_versions": stats.unjournaled_versions,
        **counts,
        "superseded_entries": stats.superseded,
        "skipped_count": stats.skipped_count,
        "skipped": stats.skipped,
        "damaged_segments": stats.damaged_segments,
        "torn_tail_bytes": stats.torn_tail_bytes,
        "key_journal_lines_skipped": stats.key_lines_skipped,
    }


def _node_id(data_dir: Path, requested: str | None) -> str:
    if not (data_dir / "node_id").exists() and requested is None:
        raise RebuildRefused(
            f"{data_dir / 'node_id'} is missing: pass --node-id with this node's id"
            " (the origin of its writes), or peers will see a different node"
        )
    try:
        return resolve_node_id(data_dir, requested)
    except (ValueError, StorageError) as exc:
        raise RebuildRefused(str(exc)) from exc


def catalog_problem(path: Path) -> str | None:
    """None when the catalog opens, passes quick_check and has a known schema; else why not."""
    if not path.exists():
        return "missing"
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            (check,) = conn.execute("PRAGMA quick_check").fetchone()
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            conn.execute("SELECT count(*) FROM changes").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return f"{type(exc).__name__}: {exc}"
    if check != "ok":
        return f"quick_check: {check}"
    if version == 0:
        return "empty (no schema)"
    return None


# ---- building the new catalog --------------------------------------------------------------


def _build(
    path: Path, data_dir: Path, stats: RebuildStats, progress: Progress, clock: Clock
) -> dict[str, int]:
    for suffix in SQLITE_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        # Nothing here is durable until the file is fsynced and renamed into place.
        conn.execute("PRAGMA synchronous=OFF")
        migrate(conn)
        conn.executescript(STAGING_TABLES)
        conn.execute("BEGIN IMMEDIATE")
        segments, unreadable = scan_segments(conn, data_dir / "segments", stats, progress)
        replay_changes(conn, stats, progress, clock)
        replay_unjournaled(conn, stats, clock)
        replay_uploads(conn, stats)
        settle_missing(conn, stats)
        keys = replay_keys(conn, data_dir, stats)
        _finish(conn, segments, unreadable, stats, clock)
        counts = _counts(conn)
        counts["keys"] = keys
        conn.execute("COMMIT")
    finally:
        conn.close()
    with open(path, "rb+") as file:
        os.fsync(file.fileno())
    return counts


def _finish(
    conn: sqlite3.Connection,
    ends: dict[int, int],
    unreadable: set[int],
    stats: RebuildStats,
    clock: Clock,
) -> None:
    # Only the last segment can have been open when the node stopped: the node's recovery
    # scans it (and cuts a torn tail) at start; every other one is sealed as it is, and so
    # is one whose header cannot be read (left for fsck, not for recovery to trip over).
    last = max(ends, default=None)
    conn.executemany(
        "INSERT INTO segments (id, durable_end, sealed) VALUES (?, ?, ?)",
        (
            (segment_id, end, int(segment_id != last or segment_id in unreadable))
            for segment_id, end in ends.items()
        ),
    )
    now_ms = clock.wall_ms()
    # Never reissue a stamp a peer may hold from before the loss: at least every stamp seen.
    catalog.write_meta(conn, "hlc_last", str(max(stats.max_hlc, pack(now_ms, 0))))
    continue_log_above(conn, stats.last_change_ms or now_ms, now_ms)
    # Both maintained by the replay itself (index_chunks, digest.refresh_key).
    catalog.write_meta(conn, "chunk_index_complete", "1")
    catalog.write_meta(conn, "digests_complete", "1")
    catalog.write_meta(conn, "rebuilt_ms", str(now_ms))


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    def count(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0])

    return {
        "buckets": count("SELECT count(*) FROM buckets"),
        "versions": count("SELECT count(*) FROM versions"),
        "objects": count(
            f"SELECT count(*) FROM versions WHERE is_latest = 1 AND kind = {int(Kind.OBJECT)}"
        ),
        "bucket_documents": count("SELECT count(*) FROM bucket_config"),
        "tagged_versions": count("SELECT count(*) FROM object_tags"),
        "version_tombstones": count("SELECT count(*) FROM version_tombstones"),
        "uploads": count("SELECT count(*) FROM uploads"),
        "last_seq": last_seq(conn),
    }


# ---- swapping the new catalog in --------------------------------------------------------------


def _swap_in(temporary: Path, data_dir: Path, clock: Clock) -> str | None:
    """Move the old catalog files aside (kept, never deleted), rename the new one in."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(clock.wall_s()))
    aside = f"{CATALOG}.broken-{stamp}"
    moved = None
    for suffix in SQLITE_SUFFIXES:
        old = data_dir / f"{CATALOG}{suffix}"
        if old.exists():
            os.replace(old, data_dir / f"{aside}{suffix}")
            moved = str(data_dir / aside)
    os.replace(temporary, data_dir / CATALOG)
    fsync_directory(data_dir)
    return moved
