"""The scale benchmark's markdown table (one column per checkpoint) and its target lines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def _get(row: Row, path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


# (label, path in a checkpoint's JSON, format)
LINES: list[tuple[str, str, str]] = [
    ("objects on site-a at the restart (fill + earlier probes)", "total_objects", "{:,.0f}"),
    ("fill PUT/s (mixed sizes, c=32)", "fill_ops_s", "{:,.0f}"),
    ("fill MB/s", "fill_mb_s", "{:.1f}"),
    ("4 KiB PUT ops/s (c=16)", "put_ops_s", "{:,.0f}"),
    ("4 KiB GET ops/s (c=16, random keys)", "get_ops_s", "{:,.0f}"),
    ("same GETs again, pages cached, ops/s", "get_warm_ops_s", "{:,.0f}"),
    ("LIST first page p50 / p99 ms", "list.first", "pair"),
    ("LIST page at 90% (token) p50 / p99 ms", "list.deep", "pair"),
    ("LIST delimiter, wide prefix p50 / p99 ms", "list.delimiter", "pair"),
    ("idle RSS MiB (after the phase)", "idle_rss_mib", "{:.0f}"),
    ("idle RSS MiB (after restart)", "idle_rss_after_restart_mib", "{:.0f}"),
    ("idle PSS MiB (after restart; shared pages once)", "idle_pss_after_restart_mib", "{:.0f}"),
    ("start to ready s", "ready_s", "{:.2f}"),
    ("meta.db (+wal) bytes/object", "meta_bytes_per_object", "{:,.0f}"),
    ("stored MB (segments etc.)", "stored_mb", "{:,.0f}"),
    ("fsck s / MB/s", "fsck_s|fsck_mb_s", "two"),
    ("scrub s / MB/s", "scrub_s|scrub_mb_s", "two"),
    ("gc plan s", "gc_plan_s", "{:.2f}"),
    ("rebuild-index s", "rebuild_s", "{:.1f}"),
    ("start to ready after rebuild s", "ready_after_rebuild_s", "{:.2f}"),
    ("bootstrap s", "bootstrap_s", "{:.1f}"),
    ("bootstrap objects/s / MB/s", "bootstrap_objects_s|bootstrap_mb_s", "two"),
    (
        "bootstrap peak RSS MiB: new site / source",
        "bootstrap_peak_rss_mib|source_peak_rss_mib",
        "two",
    ),
    ("site-b idle RSS MiB / site-a after", "b_idle_rss_mib|a_idle_rss_after_bootstrap_mib", "two"),
    ("repl validate, 0 differences s", "validate0_s", "{:.2f}"),
    ("repl validate, 100 differences s", "validate100_s", "{:.2f}"),
]


def _cell(row: Row, path: str, fmt: str) -> str:
    if fmt == "pair":
        value = _get(row, path)
        return "-" if value is None else f"{value['p50_ms']:.1f} / {value['p99_ms']:.1f}"
    if fmt == "two":
        left, right = (_get(row, p) for p in path.split("|"))
        if left is None:
            return "-"
        return f"{left:,.1f} / {right:,.1f}"
    value = _get(row, path)
    return "-" if value is None else fmt.format(value)


def table(rows: list[Row]) -> str:
    head = "| measure | " + " | ".join(f"{r['objects']:,}" for r in rows) + " |"
    rule = "|---|" + "---:|" * len(rows)
    body = [f"| {label} | " + " | ".join(_cell(r, p, f) for r in rows) + " |"
            for label, p, f in LINES]  # fmt: skip
    return "\n".join([head, rule, *body])


def _ratio_check(
    rows: list[Row], path: str, within: float
) -> Callable[[], tuple[bool, str] | None]:
    def check() -> tuple[bool, str] | None:
        first, last = _get(rows[0], path), _get(rows[-1], path)
        if first is None or last is None:
            return None
        return last >= first * (1 - within), f"{last:,.0f} vs {first:,.0f} ({last / first:.2f}x)"

    return check


def _flat_check(rows: list[Row], within: float) -> Callable[[], tuple[bool, str] | None]:
    def check() -> tuple[bool, str] | None:
        first, last = _get(rows[0], "list.first"), _get(rows[-1], "list")
        if first is None or last is None:
            return None
        base = first["p50_ms"]
        worst = max(last["first"]["p50_ms"], last["deep"]["p50_ms"])
        return worst <= base * (1 + within), f"worst p50 {worst:.1f} ms vs {base:.1f} ms"

    return check


def _below(rows: list[Row], path: str, limit: float) -> Callable[[], tuple[bool, str] | None]:
    def check() -> tuple[bool, str] | None:
        value = _get(rows[-1], path)
        return None if value is None else (value < limit, f"{value:.2f}")

    return check


def targets(rows: list[Row]) -> str:
    """Issue 12's scale targets, last checkpoint against the first."""
    checks = [
        ("PUT ops/s within 15% of the first checkpoint", _ratio_check(rows, "put_ops_s", 0.15)),
        ("GET ops/s within 15% of the first checkpoint", _ratio_check(rows, "get_ops_s", 0.15)),
        ("GET ops/s, pages cached, within 15% of the first checkpoint",
         _ratio_check(rows, "get_warm_ops_s", 0.15)),
        ("LIST p50 (first, 90% pages) within 20% of the first page", _flat_check(rows, 0.20)),
        ("start to ready < 3 s", _below(rows, "ready_s", 3.0)),
        ("idle RSS < 150 MiB", _below(rows, "idle_rss_after_restart_mib", 150.0)),
        ("idle PSS (shared pages once) < 150 MiB",
         _below(rows, "idle_pss_after_restart_mib", 150.0)),
        ("repl validate, 0 differences < 5 s", _below(rows, "validate0_s", 5.0)),
        ("repl validate, 100 differences < 15 s", _below(rows, "validate100_s", 15.0)),
    ]  # fmt: skip
    lines = [f"targets at {rows[-1]['objects']:,} objects:"]
    for label, check in checks:
        outcome = check()
        if outcome is None:
            lines.append(f"  SKIP  {label}")
        else:
            lines.append(f"  {'PASS' if outcome[0] else 'FAIL'}  {label}: {outcome[1]}")
    return "\n".join(lines)
