"""Replicated writes that lost under LWW, kept for review (``conflicts`` table).

A losing write is recorded by the apply path (storage/replica.py) with its own stamp, the
winner's stamp and its manifest (so its bytes stay readable until the record expires:
chunk GC treats conflict manifests as live). Tombstone GC drops records older than the
conflict retention period.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

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


def list_conflicts(
    conn: sqlite3.Connection, bucket: str | None, after_id: int, limit: int
) -> list[ConflictRecord]:
    rows = conn.execute(
        "SELECT id, bucket, key, version_id, hlc, origin, winner_hlc, winner_origin, manifest,"
        " recorded_ms FROM conflicts WHERE id > ? AND (? IS NULL OR bucket = ?)"
        " ORDER BY id LIMIT ?",
        (after_id, bucket, bucket, limit),
    ).fetchall()
    return [_record(row) for row in rows]


def _record(row: Any) -> ConflictRecord:
    identity, bucket, key, version_id, hlc, origin, winner_hlc, winner_origin, raw, at = row
    size = decode(bytes(raw)).size if raw is not None else None
    return ConflictRecord(
        identity, bucket, key, version_id, hlc, origin, winner_hlc, winner_origin, size, at
    )
