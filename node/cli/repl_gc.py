"""`lakenode repl gc` and `lakenode repl conflicts`: tombstone GC by hand, losing writes listed.

``repl gc`` runs tombstone GC (storage/sync/tombstone_gc.py) once on a stopped data dir; a running
node does it by itself every ``--repl-gc-interval``. ``repl conflicts`` lists the replicated
writes that lost under LWW and are still retained; it reads the catalog read-only, so it
works beside a running node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from node.config import parse_period_ms
from storage.data_dir_lock import DataDirLocked
from storage.hlc import wall_clock_ms
from storage.store import Store, StoreConfig
from storage.sync.conflicts import ConflictRecord, list_conflicts
from storage.sync.retention import forget_peer
from storage.sync.site import SyncSite
from storage.sync.tombstone_gc import (
    DEFAULT_CONFLICT_RETENTION_MS,
    DEFAULT_WINDOW_MS,
    PurgeLimits,
    PurgeReport,
)

GC_ACTIONS: Final = ("gc", "conflicts", "forget")


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("LAKENODE_DATA_DIR", "./data")),
        help="data directory (default ./data) [env LAKENODE_DATA_DIR]",
    )


def add_gc_arguments(actions: Any) -> None:
    gc = actions.add_parser(
        "gc", help="purge tombstones and log rows every peer holds (stopped data dir)"
    )
    _data_dir_argument(gc)
    gc.add_argument(
        "--window",
        type=parse_period_ms,
        default=DEFAULT_WINDOW_MS,
        help="keep tombstones younger than this (default 24h)",
    )
    gc.add_argument(
        "--conflict-retention",
        type=parse_period_ms,
        default=DEFAULT_CONFLICT_RETENTION_MS,
        help="keep conflict records younger than this (default 30d)",
    )
    forget = actions.add_parser(
        "forget", help="forget a peer removed for good (it stops holding back tombstone GC)"
    )
    _data_dir_argument(forget)
    forget.add_argument("node_id", metavar="NODE_ID", help="the removed peer's node id")
    conflicts = actions.add_parser("conflicts", help="list replicated writes that lost (LWW)")
    _data_dir_argument(conflicts)
    conflicts.add_argument("--bucket", help="only this bucket")
    conflicts.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    conflicts.add_argument("--json", action="store_true", help="print JSON lines for scripts")


def run_gc_action(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not (args.data_dir / "node_id").exists():
        parser.error(f"argument --data-dir: no lakenode data in {args.data_dir}")
    if args.action == "forget":
        return forget(args.data_dir, args.node_id)
    if args.action == "conflicts":
        if args.limit < 1:
            parser.error("argument --limit: must be at least 1")
        return show_conflicts(args.data_dir, args.bucket, args.limit, as_json=args.json)
    limits = PurgeLimits(
        now_ms=wall_clock_ms(),
        window_ms=args.window,
        conflict_retention_ms=args.conflict_retention,
    )
    return asyncio.run(purge(args.data_dir, limits))


async def purge(data_dir: Path, limits: PurgeLimits) -> int:
    try:
        store = await Store.open(StoreConfig(data_dir))
    except DataDirLocked:
        sys.stderr.write(
            f"lakenode repl gc: a node is running on {data_dir}; it purges by itself every"
            " --repl-gc-interval (stop it to purge by hand)\n"
        )
        return 1
    try:
        site = await SyncSite.open(store)
        report = await site.purge_tombstones(limits)
    finally:
        await store.close()
    print(summary(report))
    return 0


def summary(report: PurgeReport) -> str:
    return (
        f"purged {report.tombstones} tombstone(s), {report.version_tombstones} version"
        f" tombstone(s), {report.documents} deleted document(s), {report.tag_sets} empty tag"
        f" set(s), {report.conflicts} expired conflict(s), {report.log_rows} log row(s);"
        f" replication horizon seq {report.horizon}, log pruned through seq"
        f" {report.log_pruned_through}"
    )


def forget(data_dir: Path, node_id: str) -> int:
    # Beside a running node too: one small SQLite transaction (WAL, busy timeout). A peer
    # still named by a running node's --peer is remembered again at its next exchange.
    try:
        conn = sqlite3.connect(data_dir / "meta.db", timeout=10)
        try:
            with conn:
                removed = forget_peer(conn, node_id)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        sys.stderr.write(f"lakenode repl forget: cannot update {data_dir}: {exc}\n")
        return 1
    if removed == 0:
        sys.stderr.write(f"lakenode repl forget: no peer {node_id!r} is known in {data_dir}\n")
        return 1
    print(f"forgot peer {node_id} ({removed} rows)")
    return 0


def show_conflicts(data_dir: Path, bucket: str | None, limit: int, *, as_json: bool) -> int:
    # Read-only and in WAL mode: safe beside a running node, never blocks its writes.
    try:
        conn = sqlite3.connect(f"file:{data_dir / 'meta.db'}?mode=ro", uri=True, timeout=10)
        try:
            records = list_conflicts(conn, bucket, 0, limit)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        sys.stderr.write(f"lakenode repl conflicts: cannot read {data_dir}: {exc}\n")
        return 1
    for record in records:
        print(json.dumps(asdict(record)) if as_json else _line(record))
    if not as_json:
        print(f"{len(records)} conflict(s)" + (" (limit reached)" if len(records) >= limit else ""))
    return 0


def _line(record: ConflictRecord) -> str:
    size = "no data" if record.size is None else f"{record.size} bytes"
    return (
        f"{record.bucket}\t{record.key}\tversion {record.version_id}\t"
        f"lost {record.hlc}/{record.origin} to {record.winner_hlc}/{record.winner_origin}\t"
        f"{size}\trecorded {record.recorded_ms}"
        + ("\tconditional write" if record.conditional else "")
    )
