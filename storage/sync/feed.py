"""The change feed: this node's log of changes as peers read it, and the peers' cursors into it.

* ``Change``: one change-log row. ``seq`` is its position in the log of the node serving it
  (the peer's cursor); ``(origin, hlc)`` identifies it across sites.
* ``changes_after(after_seq, limit, exclude_origin)``: the serving node's log in commit order,
  without the changes that originated at ``exclude_origin`` (never send a change home);
  LogPruned when tombstone GC or chunk GC dropped part of what was asked for.
* ``missing_chunks``: which of these BLAKE3 digests this node lacks.
* cursors: how far each peer pulled from us, pushed to us, acknowledged; ``replication_state``
  (x-amz-replication-status) is read from them.

Applying what a peer sent is storage/sync/apply.py; the facade both are used through is
storage/sync/site.py.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from storage import catalog
from storage.commit import Outcome
from storage.errors import StorageError
from storage.hlc import HybridClock, Timestamp


@dataclass(frozen=True)
class Change:
    seq: int
    hlc: int
    origin: str
    op: str
    bucket: str
    key: str | None = None
    version_id: str | None = None
    size: int | None = None
    etag: str | None = None
    manifest: bytes | None = None
    payload: dict[str, Any] | None = None


LOG_PRUNED_THROUGH = "log_pruned_through"  # written by storage/sync/tombstone_gc.py
# Written by storage/ops/gc.py: chunks that only changes at or before this seq needed may be gone,
# so the log after an older position can no longer be served whole either.
CHUNKS_RECLAIMED_THROUGH = "chunks_reclaimed_through"


class LogPruned(StorageError):
    """Changes after the position asked for were pruned (tombstone GC): bootstrap again."""

    def __init__(self, after_seq: int, pruned_through: int) -> None:
        super().__init__(
            f"changes after seq {after_seq} were pruned (the log starts after seq"
            f" {pruned_through}): this site must be bootstrapped again"
            " (`lakenode repl bootstrap --from URL` on an empty data dir)"
        )
        self.after_seq = after_seq
        self.pruned_through = pruned_through


# ---- reading the feed ------------------------------------------------------------------------

_CHANGE_COLUMNS = "seq, hlc, origin, op, bucket, key, version_id, size, etag, manifest, payload"


def changes_after(
    conn: sqlite3.Connection, after_seq: int, limit: int, exclude_origin: str | None
) -> list[Change]:
    pruned = max(
        int(catalog.read_meta(conn, name) or 0)
        for name in (LOG_PRUNED_THROUGH, CHUNKS_RECLAIMED_THROUGH)
    )
    if after_seq < pruned:
        raise LogPruned(after_seq, pruned)
    rows = conn.execute(
        f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE seq > ? AND origin != ? ORDER BY seq LIMIT ?",
        (after_seq, exclude_origin or "", limit),
    ).fetchall()
    return [
        Change(seq, hlc, origin, op, bucket, key, version_id, size, etag,
               bytes(manifest) if manifest is not None else None,
               json.loads(payload) if payload else None)
        for seq, hlc, origin, op, bucket, key, version_id, size, etag, manifest, payload in rows
    ]  # fmt: skip


def last_seq(conn: sqlite3.Connection) -> int:
    """The log's last position: the largest seq ever given out. Normally the last row's seq;
    after a restore or rebuild, the floor set by :func:`continue_log_above` (no row yet)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    return int(row[0]) if row is not None else 0


# Changes a node can commit per millisecond, with a wide margin: SQLite inserts change rows
# at well under a million per second, and every change of this node goes through one writer.
LOG_GROWTH_PER_MS_MAX = 10_000


def continue_log_above(conn: sqlite3.Connection, since_ms: int, now_ms: int) -> int:
    """After a restore or a rebuild, make the next seq greater than any seq the lost log
    can have reached, and return the new last seq.

    Peers hold cursors into the log as it was before the loss; the log kept (or rebuilt)
    may end earlier. Were new changes numbered from there, a peer whose cursor is ahead
    would skip them without noticing. The lost log had at most the kept last seq plus
    what could be committed between ``since_ms`` (when the kept state was current) and
    ``now_ms``: the next seq is put above that.
    """
    elapsed_ms = max(0, now_ms - since_ms)
    floor = last_seq(conn) + elapsed_ms * LOG_GROWTH_PER_MS_MAX + 1
    updated = conn.execute(
        "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'changes'", (floor,)
    ).rowcount
    if not updated:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('changes', ?)", (floor,))
    return last_seq(conn)


def missing_chunks(conn: sqlite3.Connection, digests: list[bytes]) -> set[bytes]:
    return {d for d in digests if catalog.chunk_location(conn, d) is None}


def replication_state(conn: sqlite3.Connection, origin: str, hlc: int, peers: list[str]) -> str:
    """COMPLETED when every peer has acknowledged the change that wrote (origin, hlc)."""
    row = conn.execute(
        "SELECT seq FROM changes WHERE origin = ? AND hlc = ?", (origin, hlc)
    ).fetchone()
    if row is None:
        # Pruned rows were acknowledged by every peer before tombstone GC dropped them.
        return "COMPLETED" if catalog.read_meta(conn, LOG_PRUNED_THROUGH) else "PENDING"
    done = all(get_cursor(conn, peer, "acked") >= int(row[0]) for peer in peers)
    return "COMPLETED" if done else "PENDING"


def get_cursor(conn: sqlite3.Connection, peer: str, direction: str) -> int:
    row = conn.execute(
        "SELECT seq FROM peer_cursors WHERE peer = ? AND direction = ?", (peer, direction)
    ).fetchone()
    return 0 if row is None else int(row[0])


def set_cursor(conn: sqlite3.Connection, peer: str, direction: str, seq: int, now_ms: int) -> None:
    """Move a cursor forward (never back: a push and a pull from one peer may race)."""
    conn.execute(
        "INSERT INTO peer_cursors (peer, direction, seq, updated_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (peer, direction) DO UPDATE SET seq = max(seq, excluded.seq),"
        " updated_ms = excluded.updated_ms",
        (peer, direction, seq, now_ms),
    )


@dataclass(frozen=True)
class SetCursor:
    peer: str
    direction: str
    seq: int
    clock: HybridClock

    def touched(self) -> tuple[str, str | None]:
        return "", ""

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        set_cursor(conn, self.peer, self.direction, self.seq, self.clock.wall_ms())
        return Outcome(None)


def carries_tags(changes: tuple[Change, ...] | list[Change]) -> list[str]:
    """Buckets that these changes give object tags (the store must look tags up there)."""
    return [
        change.bucket
        for change in changes
        if change.op == "object.tags" or (change.payload or {}).get("tags")
    ]
