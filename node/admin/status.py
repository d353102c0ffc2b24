"""The node's status document: what ``lakenode status`` shows and ``--json`` prints.

The same function builds it in a running node (``GET /admin/status`` on the admin channel:
uptime known, live peer links) and in ``lakenode status`` on a stopped data dir (``running``
false, ``uptime_s`` null, peers as last recorded on disk). Every figure comes from the store:
storage usage from storage/ops/usage.py, replication from node/metrics/replication.py, the last
scrub and GC from their ``job:*`` rows, the lifecycle worker from its ``lifecycle`` row.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from node.admin.client import AdminChannel, on_store_or_node
from node.metrics.replication import local_reports
from node.metrics.storage import measure_usage
from replication.puller import PeerState
from storage.ops import operator_state
from storage.ops.lifecycle_actions import read_state as read_lifecycle_state
from storage.ops.operator_state import MaintenanceRecord
from storage.store import Store
from storage.sync.site import SyncSite

# What `lakenode status` shows of each peer (the full report is `lakenode repl status`).
PEER_FIELDS: Final = (
    "peer",
    "url",
    "link_up",
    "lag_seconds",
    "backlog_ops",
    "backlog_bytes",
    "last_success_ms",
    "conflicts",
    "last_error",
)


def lakenode_version() -> str:
    try:
        return importlib.metadata.version("lakenode")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def collect_status(
    site: SyncSite,
    *,
    uptime_s: float | None,
    maintenance: MaintenanceRecord,
    peer_states: Sequence[PeerState] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status document; ``uptime_s`` None means the node is not running."""
    store = site.store
    usage = await measure_usage(store.config.data_dir)  # a child process for a big store
    reports = await local_reports(site, peer_states)
    document: dict[str, Any] = {
        "node_id": store.node_id,
        "version": lakenode_version(),
        "data_dir": str(store.config.data_dir),
        "running": uptime_s is not None,
        "uptime_s": None if uptime_s is None else round(uptime_s, 3),
        "buckets": len(await store.list_buckets()),
        "objects": usage.objects,
        "live_bytes": usage.live_bytes,
        "garbage_bytes": usage.garbage_bytes,
        "segments": usage.segments,
        "segment_bytes": usage.segment_bytes,
        "maintenance": maintenance.enabled,
        "maintenance_changed_ms": maintenance.changed_ms,
        "replication": [
            {name: value for name, value in report.to_json().items() if name in PEER_FIELDS}
            for report in reports
        ],
        "last_scrub": await operator_state.job_state(store, "scrub"),
        "last_gc": await operator_state.job_state(store, "gc"),
        "lifecycle": await store.inspect(read_lifecycle_state),
    }
    document.update(extra or {})
    return document


async def gather_status(data_dir: Path) -> dict[str, Any]:
    """The status of the data dir: asked of its running node, else read from the store."""

    async def offline(store: Store) -> dict[str, Any]:
        site = await SyncSite.open(store)
        return await collect_status(
            site, uptime_s=None, maintenance=await operator_state.maintenance(store)
        )

    async def online(channel: AdminChannel) -> dict[str, Any]:
        return await channel.get("/admin/status")

    return await on_store_or_node(data_dir, offline, online)
