"""``lakenode repl validate``: compare this site with peers through their Merkle digests.

It prints every (bucket, key) that differs. On a stopped data dir it reads the store; beside a
running node it asks that node (whose address the node records in DATA/serve.json). Each
outcome is recorded in the data dir, for ``repl status`` and the metrics.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.cli.keys import open_catalog
from node.cli.repl_common import Verify, fail, running_node_client
from node.peers import PEER_TIMEOUT_S
from replication.client import PeerClient, PeerUnavailable, RemoteDigests, Signer
from replication.protocol import ProtocolError
from replication.validate import (
    Difference,
    DigestSource,
    WalkStats,
    compare,
    compare_deep,
    describe,
    explain,
)
from storage.data_dir_lock import DataDirLocked
from storage.errors import StorageError
from storage.hlc import wall_clock_ms
from storage.store import Store, StoreConfig
from storage.sync.peer_stats import ValidateRecord, record_validate
from storage.sync.site import SyncSite


async def validate_all(
    data_dir: Path,
    peers: tuple[str, ...],
    sign: Signer,
    verify: Verify = True,
    *,
    deep: bool = False,
) -> int:
    """Compare the local site with each peer; print the differences; 0 only if all agree."""
    status = 0
    for url in peers:
        try:
            differences, stats, peer_id = await _validate_one(data_dir, url, sign, verify, deep)
        except (PeerUnavailable, ProtocolError, StorageError, OSError) as exc:
            fail(f"{url}: {type(exc).__name__}: {exc}", "validate")
            status = 1
            continue
        _record_validate(data_dir, peer_id, url, len(differences))
        for difference in differences:
            print(
                f"{difference.bucket}\t{difference.key}\t"
                f"here={describe(difference.local_facts)}\t"
                f"peer={describe(difference.remote_facts)}"
            )
        verdict = "agree" if not differences else f"{len(differences)} difference(s)"
        cost = (
            f"{stats.keys_compared_deep} keys compared with their chunk lists"
            if deep
            else f"{stats.nodes_compared} nodes, {stats.leaf_ranges_compared} leaf ranges compared"
        )
        purged = (
            f", {stats.purged_tombstones} purged tombstone(s) ignored"
            if stats.purged_tombstones
            else ""
        )
        print(f"validate {url}: {verdict} ({cost}{purged})")
        status = status or (1 if differences else 0)
    return status


async def _validate_one(
    data_dir: Path, url: str, sign: Signer, verify: Verify, deep: bool
) -> tuple[list[Difference], WalkStats, str]:
    """The differences, the walk's cost, and the peer's node id (the key of the record)."""
    async with PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) as peer:
        peer_id = (await peer.info()).node_id
        try:
            store = await Store.open(StoreConfig(data_dir))
        except DataDirLocked:
            async with running_node_client(data_dir, sign) as local:
                return (*await _compare(RemoteDigests(local), RemoteDigests(peer), deep), peer_id)
        try:
            site = await SyncSite.open(store)
            return (*await _compare(site, RemoteDigests(peer), deep), peer_id)
        finally:
            await store.close()


async def _compare(
    local: DigestSource, remote: DigestSource, deep: bool
) -> tuple[list[Difference], WalkStats]:
    if deep:
        return await compare_deep(local, remote)
    differences, stats = await compare(local, remote)
    return await explain(differences, local, remote, stats), stats


def _record_validate(data_dir: Path, peer_id: str, url: str, differences: int) -> None:
    """Keep the outcome for `repl status` and metrics (works beside a running node: SQLite)."""
    record = ValidateRecord(time_ms=wall_clock_ms(), differences=differences, url=url)
    try:
        conn = open_catalog(data_dir)
        try:
            record_validate(conn, peer_id, record)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        fail(f"could not record the outcome in {data_dir}: {exc}", "validate")
