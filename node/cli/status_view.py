"""``lakenode status`` for people: the status document (node/admin/status.py) as rich tables."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table


def render_status(document: Mapping[str, Any], console: Console) -> None:
    console.print(_node_table(document))
    peers = document.get("replication") or []
    if peers:
        console.print(_peers_table(peers))


def _node_table(document: Mapping[str, Any]) -> Table:
    table = Table(
        title=f"lakenode node {document.get('node_id')}", show_header=False, box=box.SIMPLE
    )
    table.add_column("field", style="bold")
    table.add_column("value")
    uptime = document.get("uptime_s")
    live, garbage = document.get("live_bytes", 0), document.get("garbage_bytes", 0)
    rows = (
        ("version", str(document.get("version"))),
        ("data dir", str(document.get("data_dir"))),
        ("state", "not running" if uptime is None else f"running, up {duration(uptime)}"),
        ("maintenance", _maintenance(document)),
        ("buckets", f"{document.get('buckets', 0):,}"),
        ("objects", f"{document.get('objects', 0):,}"),
        ("live", decimal(live)),
        ("garbage", f"{decimal(garbage)} ({_share(garbage, live + garbage)})"),
        (
            "segments",
            f"{document.get('segments', 0):,} ({decimal(document.get('segment_bytes', 0))})",
        ),
        ("last scrub", _job(document.get("last_scrub"), "corrupt_chunks", "corrupt chunk(s)")),
        ("last gc", _job(document.get("last_gc"), "reclaimed_bytes", "bytes reclaimed")),
        ("lifecycle", _lifecycle(document.get("lifecycle"))),
    )
    for name, value in rows:
        table.add_row(name, value)
    return table


def _peers_table(peers: list[Mapping[str, Any]]) -> Table:
    table = Table(title="replication", box=box.SIMPLE)
    for header in ("peer", "link", "lag", "backlog", "last success", "conflicts"):
        table.add_column(header)
    for peer in peers:
        lag = peer.get("lag_seconds")
        ops = peer.get("backlog_ops")
        table.add_row(
            str(peer.get("peer")),
            _link(peer.get("link_up")),
            "-" if lag is None else duration(lag),
            "-" if ops is None else f"{ops} ({decimal(peer.get('backlog_bytes') or 0)})",
            _when(peer.get("last_success_ms")),
            str(peer.get("conflicts", 0)),
        )
    return table


def _link(up: Any) -> str:
    return "up" if up is True else "down" if up is False else "-"


def _maintenance(document: Mapping[str, Any]) -> str:
    if not document.get("maintenance"):
        return "off"
    since = document.get("maintenance_changed_ms")
    return "ON: writes refused" + ("" if since is None else f" since {_when(since)}")


def _job(state: Mapping[str, Any] | None, figure: str, label: str) -> str:
    if not state:
        return "never"
    finished = state.get("finished_ms")
    if finished is None:
        return f"running, {float(state.get('done_ratio', 0)):.0%} done"
    return f"{_when(finished)}: {state.get(figure, 0)} {label}"


def _lifecycle(state: Mapping[str, Any] | None) -> str:
    """The lifecycle worker's last pass and totals (storage/ops/lifecycle_actions.py's row)."""
    if not state:
        return "no pass yet"
    finished = state.get("last_pass_finished_ms")
    last = "no complete pass yet" if finished is None else f"last pass {_when(finished)}"
    unfinished = ", a pass under way or unfinished" if state.get("cursor") else ""
    return (
        f"{last}{unfinished}: {state.get('objects_expired', 0)} objects and "
        f"{state.get('versions_expired', 0)} versions expired, "
        f"{state.get('uploads_aborted', 0)} uploads aborted, {state.get('errors', 0)} errors"
    )


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "0%"


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    stamp = datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{stamp}, {duration(time.time() - ms / 1000)} ago"


def duration(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s`` or ``12.5s``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"
