"""``lakenode repl status``: each peer's replication state (node/metrics/replication.py).

Beside a running node it asks that node; on a stopped data dir it reads it and probes the
``--peer``s (``repl validate`` records each outcome in the data dir for it). It exits 1 only
when the node or a peer cannot be reached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from node.cli.repl_common import Verify, fail, running_node_client
from node.metrics.replication import full_reports, peer_state
from replication.client import PeerUnavailable, Signer
from replication.protocol import ProtocolError
from replication.puller import PeerState
from storage.data_dir_lock import DataDirLocked
from storage.errors import StorageError
from storage.hlc import wall_clock_ms
from storage.store import Store, StoreConfig
from storage.sync.site import SyncSite


async def status_all(
    data_dir: Path, peers: tuple[str, ...], sign: Signer, verify: Verify = True, *, as_json: bool
) -> int:
    """Print each peer's state; 1 if the node or a peer cannot be reached, else 0."""
    try:
        store = await Store.open(StoreConfig(data_dir))
    except DataDirLocked:
        try:
            document = await _running_node_status(data_dir, sign)
        except (PeerUnavailable, ProtocolError, StorageError) as exc:
            fail(f"the running node: {type(exc).__name__}: {exc}", "status")
            return 1
        if peers:
            document["peers"] = [row for row in document["peers"] if row.get("url") in peers]
    else:
        try:
            if not peers:
                fail("no node is running on this data dir: name peers with --peer", "status")
                return 1
            states = [PeerState(url=url) for url in peers]
            site = await SyncSite.open(store)
            reports = await full_reports(site, states, sign, verify)
            document = {"node_id": site.node_id, "peers": [r.to_json() for r in reports]}
        finally:
            await store.close()
    print(json.dumps(document, indent=2, sort_keys=True) if as_json else format_status(document))
    configured = [row for row in document["peers"] if row.get("url") is not None]
    return 0 if all(row.get("link_up") is True for row in configured) else 1


async def _running_node_status(data_dir: Path, sign: Signer) -> dict[str, Any]:
    async with running_node_client(data_dir, sign) as node:
        document = await node.node_status()
    if not isinstance(document, dict) or not isinstance(document.get("peers"), list):
        raise ProtocolError("the node's status answer has no peers list")
    if not all(isinstance(row, dict) for row in document["peers"]):
        raise ProtocolError("the node's status answer has malformed peers")
    return document


def format_status(document: Mapping[str, Any]) -> str:
    now_ms = wall_clock_ms()
    header = ("PEER", "LINK", "CLOCK", "LAG", "BACKLOG", "BEHIND", "CONFLICTS", "VALIDATE", "STATE")
    lines = [header]
    notes = []
    for row in document["peers"]:
        offset = row.get("clock_offset_seconds")
        validate = row.get("last_validate")
        checked = (
            "never"
            if not validate
            else f"{validate['differences']} diff, "
            f"{_seconds((now_ms - validate['time_ms']) / 1000)} ago"
        )
        lines.append(
            (
                str(row.get("peer")),
                {True: "up", False: "down"}.get(row.get("link_up"), "-"),
                "-" if offset is None else f"{offset:+.3f}s",
                _seconds(row.get("lag_seconds")),
                _pending(row.get("backlog_ops"), row.get("backlog_bytes")),
                _pending(row.get("behind_ops"), row.get("behind_bytes")),
                str(row.get("conflicts", 0)),
                checked,
                peer_state(row),
            )
        )
        if row.get("last_error"):
            notes.append(f"{row.get('peer')}: last error: {row['last_error']}")
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in lines]  # fmt: skip
    title = f"node {document.get('node_id')}: {len(document['peers'])} peer(s)"
    return "\n".join([title, *table, *notes])


def _seconds(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.1f}s"


def _pending(ops: Any, size: Any) -> str:
    return "-" if ops is None else f"{ops} ({size or 0} B)"
