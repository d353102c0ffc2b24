"""Replicated writes that lost under LWW, kept for review (``conflicts`` table).

A losing write is recorded by the apply path (storage/sync/apply.py) with its own stamp, the
winner's stamp and its manifest (so its bytes stay readable until the record expires:
chunk GC treats conflict manifests as live). Tombstone GC drops records older than the
conflict retention period.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from storage.conditions import written_conditionally
from storage.manifest import decode


@dataclass(frozen=True)
class ConflictRecord:
    id: int
    bucket: str
    key: str
    version_id: str
    hlc: int
    origin: str
    winner_hlc: int
    winner_origin: str
    size: int | None  # None when the losing change carried no manifest
    recorded_ms: int
    # The loser or the winner was a conditional write (If-None-Match/If-Match): such a
    # condition holds on its own site only, and LWW decided between the two.
    conditional: bool = False


def list_conflicts(
    conn: sqlite3.Connection, bucket: str | None, after_id: int, limit: int
) -> list[ConflictRecord]:
    rows = conn.execute(
        "SELECT c.id, c.bucket, c.key, c.version_id, c.hlc, c.origin, c.winner_hlc,"
        " c.winner_origin, c.manifest, c.recorded_ms, v.manifest FROM conflicts c"
        " LEFT JOIN versions v ON v.bucket = c.bucket AND v.key = c.key"
        " AND v.version_id = c.version_id AND v.hlc = c.winner_hlc AND v.origin = c.winner_origin"
        " WHERE c.id > ? AND (? IS NULL OR c.bucket = ?) ORDER BY c.id LIMIT ?",
        (after_id, bucket, bucket, limit),
    ).fetchall()
    return [_record(row) for row in rows]


def _record(row: Any) -> ConflictRecord:
    identity, bucket, key, version_id, hlc, origin, winner_hlc, winner_origin, raw, at = row[:10]
    loser = decode(bytes(raw)) if raw is not None else None
    winner = decode(bytes(row[10])) if row[10] is not None else None
    conditional = any(m is not None and written_conditionally(m) for m in (loser, winner))
    size = loser.size if loser is not None else None
    return ConflictRecord(
        identity,
        bucket,
        key,
        version_id,
        hlc,
        origin,
        winner_hlc,
        winner_origin,
        size,
        at,
        conditional,
    )
