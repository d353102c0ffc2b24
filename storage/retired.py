"""Segments GC has retired: recorded in the commit that stops referencing them, deleted after.

GC's commit removes a segment's row and lists its id in ``meta`` (``gc_retired``) in the
same transaction that repoints every reference to the copies; only then is the file
unlinked. A crash in between leaves a file that nothing references and no row describes:
the next open deletes every listed file before recovery (which would otherwise adopt it as
a sealed segment again), and the list is cleared once the files are gone.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from storage import catalog
from storage.segments import fsync_directory, segment_path

log = logging.getLogger("lakenode.gc")

RETIRED_META = "gc_retired"


def read_retired(conn: sqlite3.Connection) -> set[int]:
    raw = catalog.read_meta(conn, RETIRED_META)
    return {int(i) for i in json.loads(raw)} if raw else set()


def add_retired(conn: sqlite3.Connection, segment_ids: set[int]) -> None:
    """Inside GC's commit: these segments' files are to be deleted."""
    ids = read_retired(conn) | segment_ids
    catalog.write_meta(conn, RETIRED_META, json.dumps(sorted(ids)))
    conn.executemany("DELETE FROM segments WHERE id = ?", ((i,) for i in segment_ids))


def delete_files(segment_dir: Path, segment_ids: set[int]) -> int:
    """Unlink the retired segment files still present, then fsync the directory; return
    the bytes freed."""
    freed = 0
    for segment_id in sorted(segment_ids):
        path = segment_path(segment_dir, segment_id)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed += size
        log.info("deleted retired segment %s (%d bytes)", path.name, size)
    fsync_directory(segment_dir)
    return freed


def clear_retired(conn: sqlite3.Connection, segment_ids: set[int]) -> None:
    """Forget retired segments whose files are gone (own transaction)."""
    remaining = read_retired(conn) - segment_ids
    if remaining:
        catalog.write_meta(conn, RETIRED_META, json.dumps(sorted(remaining)))
    else:
        conn.execute("DELETE FROM meta WHERE name = ?", (RETIRED_META,))


def finish_at_open(conn: sqlite3.Connection, segment_dir: Path) -> None:
    """Store.open, before segment recovery: complete deletions a crash interrupted."""
    pending = read_retired(conn)
    if not pending:
        return
    delete_files(segment_dir, pending)
    conn.execute("BEGIN IMMEDIATE")
    clear_retired(conn, pending)
    conn.execute("COMMIT")
