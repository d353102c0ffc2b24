"""The overview's and Replication page's figures in words, made once on the server: the page
renders them and its script (static/overview.js) only copies them in, so both read alike."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Final

UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
NONE: Final = "-"


def size(value: Any) -> str:
    """Bytes for people: 1023 B, 1.5 KiB, 12.0 GiB."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        return NONE
    amount, unit = float(value), 0
    while amount >= 1024 and unit < len(UNITS) - 1:
        amount, unit = amount / 1024, unit + 1
    return f"{int(amount)} B" if unit == 0 else f"{amount:.1f} {UNITS[unit]}"


def seconds(value: Any) -> str:
    """A duration: 0.4 s, 12.0 s, 5 min 3 s, 2 h 10 min, 3 d 4 h."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return NONE
    if value < 60:
        return f"{value:.1f} s"
    whole = int(value)
    days, hours, minutes = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {whole % 60} s"


def rate(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return NONE
    return f"{value:.2f}/s"


def moment(time_ms: Any) -> str:
    """A wall-clock time, in UTC (sites may sit in different time zones)."""
    if not isinstance(time_ms, int | float) or isinstance(time_ms, bool):
        return NONE
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time_ms / 1000))


def ago(time_ms: Any, now_s: float) -> str:
    if not isinstance(time_ms, int | float) or isinstance(time_ms, bool):
        return NONE
    return seconds(max(0.0, now_s - time_ms / 1000)) + " ago"


def pending(ops: Any, size_bytes: Any) -> str:
    """Changes waiting: "3 ops, 1.5 KiB"; unknown ("-") while the peer cannot be asked."""
    if not isinstance(ops, int):
        return NONE
    return f"{ops} ops, {size(size_bytes or 0)}"


def link(up: Any) -> str:
    return {True: "up", False: "down"}.get(up, NONE)


def offset(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return NONE
    return f"{value * 1000:+.0f} ms"


def validate_outcome(record: Any, now_s: float) -> str:
    """The last validate: "agree, 2.0 s ago" or "3 differences, 1 h 2 min ago"."""
    if not isinstance(record, Mapping):
        return "never"
    count = record.get("differences")
    verdict = "agree" if count == 0 else f"{count} difference{'s' if count != 1 else ''}"
    return f"{verdict}, {ago(record.get('time_ms'), now_s)}"


def peer_figures(row: Mapping[str, Any], now_s: float) -> dict[str, str]:
    """One peer's row (PeerReport.to_json, with its state word) in words."""
    errors = row.get("apply_errors") or {}
    return {
        "peer": str(row.get("peer")),
        "url": str(row.get("url") or NONE),
        "link": link(row.get("link_up")),
        "lag": seconds(row.get("lag_seconds")),
        "backlog": pending(row.get("backlog_ops"), row.get("backlog_bytes")),
        "behind": pending(row.get("behind_ops"), row.get("behind_bytes")),
        "clock_offset": offset(row.get("clock_offset_seconds")),
        "conflicts": str(row.get("conflicts", 0)),
        "last_validate": validate_outcome(row.get("last_validate"), now_s),
        "state": str(row.get("state")),
        "bytes_sent": size(row.get("bytes_sent")),
        "bytes_received": size(row.get("bytes_received")),
        "skew_rejections": str(row.get("skew_rejections", 0)),
        "apply_errors": ", ".join(f"{reason}: {count}" for reason, count in sorted(errors.items()))
        or "none",
        "last_success": ago(row.get("last_success_ms"), now_s),
        "last_error": str(row.get("last_error") or "none"),
    }


def node_figures(node: Mapping[str, Any], requests: Mapping[str, Any]) -> dict[str, str]:
    """This node's figures (NodeView.node_facts) and its request rates, in words."""
    storage = node["storage"]
    maintenance = node["maintenance"]
    used = storage["live_bytes"]
    objects = storage["objects"]
    return {
        "uptime": seconds(node["uptime_s"]),
        "maintenance": "on: writes are refused" if maintenance.get("enabled") else "off",
        "storage_used": "being measured"
        if used is None
        else f"{size(used)} in {objects} object{'s' if objects != 1 else ''}"
        f" ({size(storage['segment_bytes'])} on disk)",
        "storage_free": f"{size(storage['free_bytes'])} of {size(storage['total_bytes'])}"
        if storage["free_bytes"] is not None
        else NONE,
        "requests": rate(requests["per_s"]),
        "errors": rate(requests["errors_per_s"]),
        "window": seconds(requests["window_s"]),
    }
