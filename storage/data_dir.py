"""Opening a data dir: its lock, its node id, and recovery of segments and catalog after a crash.

:func:`open_data_dir` does everything :meth:`Store.open <storage.store.Store.open>` needs before
the store can serve: it takes the lock (one process per data dir), reads or creates the node
id, opens the catalog, finishes a GC retirement a crash interrupted, truncates every segment not
known sealed to its last good record, and fills indexes that older data dirs lack. Offline tools
(rebuild-index, restore) use the lock and the node id helpers on their own.

With several workers (``StoreConfig.worker``) the supervisor holds the lock; the primary
worker recovers the data dir at the node's start (``StoreConfig.worker_recovers``) while the
others wait for it (storage/workers.py ``recovered``); each worker then only opens the
catalog and the shared state, and appends to segments of its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from storage import catalog, digest, key_journal, retired
from storage.data_dir_lock import lock_data_dir
from storage.database import Database
from storage.errors import StorageError
from storage.hlc import HybridClock
from storage.manifest import decode
from storage.segments import (
    SegmentWriter,
    fsync_directory,
    list_segment_ids,
    recover_segment,
    segment_path,
)
from storage.workers import SharedState

if TYPE_CHECKING:
    from storage.store import StoreConfig

RECOVERY_POLL_S = 0.02  # how often a worker looks whether the primary has recovered
NODE_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class NodeIdMismatch(StorageError):
    """The data dir was created by another node id."""


@dataclass(frozen=True)
class OpenedDataDir:
    """A locked, recovered data dir: what a Store is built from."""

    lock: int | None  # the lock's descriptor (closing it releases it); None in a worker
    node_id: str
    writer_db: Database
    reader_db: Database
    segments: SegmentWriter
    clock: HybridClock
    next_segment_id: int
    shared: SharedState | None = None  # with several workers


async def open_data_dir(config: StoreConfig) -> OpenedDataDir:
    """Lock the data dir, resolve its node id and recover it after a crash; in a worker of a
    multi-worker node, only open it (its supervisor did the rest)."""
    if config.worker is not None:
        return await _open_in_worker(config, config.worker)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_data_dir(config.data_dir)
    try:
        node_id, writer_db, next_id = await _recover(config)
    except BaseException:
        os.close(lock)
        raise
    reader_db = await Database.open(config.data_dir / "meta.db", read_only=True)
    segments = SegmentWriter(config.data_dir / "segments", next_id, config.segment_bytes_max)
    clock = HybridClock(
        node_id, last=await writer_db.run(catalog.last_hlc), now_ms=config.time_source.wall_ms
    )
    return OpenedDataDir(lock, node_id, writer_db, reader_db, segments, clock, next_id)


async def _recover(config: StoreConfig) -> tuple[str, Database, int]:
    segment_dir = config.data_dir / "segments"
    segment_dir.mkdir(parents=True, exist_ok=True)
    node_id = resolve_node_id(config.data_dir, config.node_id)
    writer_db = await Database.open(config.data_dir / "meta.db")
    try:
        await writer_db.run(retired.finish_at_open, segment_dir)
        states = await writer_db.run(catalog.segment_states)
        next_id = await asyncio.to_thread(_recover_segments, segment_dir, states)
        await writer_db.run(_mark_recovered, list_segment_ids(segment_dir))
        await writer_db.run(_backfill_chunk_index)
        await writer_db.run(key_journal.ensure_baseline, config.data_dir)
    except BaseException:
        await writer_db.close()
        raise
    return node_id, writer_db, next_id


async def _open_in_worker(config: StoreConfig, worker: int) -> OpenedDataDir:
    segment_dir = config.data_dir / "segments"
    shared = SharedState(config.data_dir, worker)
    if config.worker_recovers:
        node_id, writer_db, _next_id = await _recover(config)
        shared.mark_recovered()
    else:
        # At the node's start every worker starts at once (their imports overlap), but only
        # the primary touches the data dir until it has recovered it.
        while not shared.recovered():
            await asyncio.sleep(RECOVERY_POLL_S)
        node_id = resolve_node_id(config.data_dir, config.node_id)
        writer_db = await Database.open(config.data_dir / "meta.db")
    reader_db = await Database.open(config.data_dir / "meta.db", read_only=True)
    ids = list_segment_ids(segment_dir)
    # Appends go to fresh segments of this worker's own: the next free id (segments.py skips
    # ids another worker took meanwhile).
    next_id = (ids[-1] + 1) if ids else 1
    segments = SegmentWriter(segment_dir, next_id, config.segment_bytes_max)
    clock = HybridClock(
        node_id, last=await writer_db.run(catalog.last_hlc), now_ms=config.time_source.wall_ms
    )
    return OpenedDataDir(None, node_id, writer_db, reader_db, segments, clock, next_id, shared)


def resolve_node_id(data_dir: Path, requested: str | None) -> str:
    """Return the data dir's node id, creating it on first use; refuse a different one."""
    path = data_dir / "node_id"
    if requested is not None and not NODE_ID_PATTERN.match(requested):
        raise ValueError(f"invalid node id {requested!r}: use 1-64 of [A-Za-z0-9._-]")
    if path.exists():
        stored = path.read_text().strip()
        if requested is not None and requested != stored:
            raise NodeIdMismatch(
                f"data dir {data_dir} belongs to node id {stored!r}, not {requested!r}"
            )
        return stored
    node_id = requested or f"node-{secrets.token_hex(6)}"
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as file:
        file.write(node_id + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fsync_directory(data_dir)
    return node_id


def _recover_segments(segment_dir: Path, states: dict[int, tuple[int, bool]]) -> int:
    """Recover every segment not known sealed; return the id for the next segment."""
    ids = list_segment_ids(segment_dir)
    for segment_id in ids:
        durable_end, sealed = states.get(segment_id, (0, False))
        if not sealed:
            recover_segment(segment_path(segment_dir, segment_id), durable_end)
    return (ids[-1] + 1) if ids else 1


def _mark_recovered(conn: sqlite3.Connection, segment_ids: list[int]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    catalog.record_segments(conn, {}, segment_ids)
    conn.execute("COMMIT")


def _backfill_chunk_index(conn: sqlite3.Connection) -> None:
    """Index the chunks of versions written before the index existed (once per data dir)."""
    if (
        catalog.read_meta(conn, "chunk_index_complete") == "1"
        and catalog.read_meta(conn, "digests_complete") == "1"
    ):
        return
    conn.execute("BEGIN IMMEDIATE")
    for (blob,) in conn.execute("SELECT manifest FROM versions").fetchall():
        catalog.index_chunks(conn, decode(blob).chunks)
    catalog.write_meta(conn, "chunk_index_complete", "1")
    if catalog.read_meta(conn, "digests_complete") != "1":
        digest.rebuild(conn)
        catalog.write_meta(conn, "digests_complete", "1")
    conn.execute("COMMIT")
