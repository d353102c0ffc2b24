"""``lakenode repl validate``: compare this site with peers through their Merkle digests.

It prints every (bucket, key) that differs. On a stopped data dir it reads the store; beside a
running node it asks that node (whose address the node records in DATA/serve.json). Each
outcome is recorded in the data dir, for ``repl status`` and the metrics. The comparison
itself is node/replication_validate.py, which the console's "Validate now" runs too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.cli.keys import open_catalog
from node.cli.repl_common import Verify, fail, running_node_client
from node.peers import PEER_TIMEOUT_S
from node.replication_validate import PeerValidation, validate_with
from replication.client import PeerClient, PeerUnavailable, RemoteDigests, Signer
from replication.protocol import ProtocolError
from storage.data_dir_lock import DataDirLocked
from storage.errors import StorageError
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
            outcome = await _validate_one(data_dir, url, sign, verify, deep)
        except (PeerUnavailable, ProtocolError, StorageError, OSError) as exc:
            fail(f"{url}: {type(exc).__name__}: {exc}", "validate")
            status = 1
            continue
        _record_validate(data_dir, outcome.peer_id, outcome.record())
        for line in outcome.lines():
            print(f"{line.bucket}\t{line.key}\there={line.here}\tpeer={line.peer}")
        differences, stats = outcome.differences, outcome.stats
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
) -> PeerValidation:
    """The differences, the walk's cost, and the peer's node id (the key of the record)."""
    async with PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) as peer:
        try:
            store = await Store.open(StoreConfig(data_dir))
        except DataDirLocked:
            async with running_node_client(data_dir, sign) as local:
                outcome = await validate_with(RemoteDigests(local), peer, deep=deep)
        else:
            try:
                outcome = await validate_with(await SyncSite.open(store), peer, deep=deep)
            finally:
                await store.close()
    outcome.url = url  # as the operator named it (the record of `repl status`)
    return outcome


def _record_validate(data_dir: Path, peer_id: str, record: ValidateRecord) -> None:
    """Keep the outcome for `repl status` and metrics (works beside a running node: SQLite)."""
    try:
        conn = open_catalog(data_dir)
        try:
            record_validate(conn, peer_id, record)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        fail(f"could not record the outcome in {data_dir}: {exc}", "validate")
