"""Tables, target checks and the JSON file of a benchmark run."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.workload import OPS, PhaseResult

# lakenode with one worker process and with two (`lakenode serve --workers N`).
PRIMARIES = ("lakenode", "lakenode-w2")
PRIMARY = PRIMARIES[0]
BASELINES = ("bare", "seaweedfs")
SUMMARY_BASELINE = "seaweedfs"
EMPTY_GET_TARGETS = frozenset({"bare"})
KIB4 = 4 * 1024
MIB64 = 64 * 1024 * 1024
RATIO_WIDTH = 14
MIN_CPU_PHASE_S = 0.5

Results = dict[str, list[PhaseResult]]


def size_label(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def find(results: Results, target: str, size: int, conc: int, op: str) -> PhaseResult | None:
    for r in results.get(target, []):
        if (r.size, r.concurrency, r.op) == (size, conc, op):
            return r
    return None


def _ratio(mine: PhaseResult | None, other: PhaseResult | None) -> str:
    if mine is None or other is None or not other.ops_per_s:
        return "-"
    return f"{mine.ops_per_s / other.ops_per_s:.2f}x"


def _baseline_ratio(results: Results, mine: PhaseResult, baseline: str) -> str:
    if mine.op == "GET" and baseline in EMPTY_GET_TARGETS:
        return "n/a"  # its GETs move no bytes, so dividing by them means nothing
    return _ratio(mine, find(results, baseline, mine.size, mine.concurrency, mine.op))


def _cpu(pct: float | None, seconds: float) -> str:
    # CPU times tick at 10 ms, so shorter phases would print noise.
    return "-" if pct is None or seconds < MIN_CPU_PHASE_S else f"{pct:.0f}%"


def _row(op: str, name: str, r: PhaseResult, ratios: Iterable[str]) -> str:
    err = f" err={r.errors}" if r.errors else ""
    cut = " cut" if r.truncated else ""
    srv, cli = _cpu(r.server_cpu_pct, r.seconds), _cpu(r.client_cpu_pct, r.seconds)
    return (
        f"{op:<7}{name:<13}{r.ops_per_s:>10.1f}{r.mb_per_s:>9.1f}{r.percentile(50):>9.2f}"
        f"{r.percentile(99):>9.2f}{srv:>8}{cli:>8}"
        + "".join(f"{x:>{RATIO_WIDTH}}" for x in ratios)
        + err
        + cut
    )


def print_tables(results: Results, sizes: list[int], concs: list[int]) -> None:
    """One block per (size, concurrency); ratios are each lakenode's throughput / baseline's."""
    names = [n for n in (*PRIMARIES, *BASELINES) if results.get(n)]
    if not names:
        print("\n(no results to tabulate)")
        return
    head = (
        f"{'op':<7}{'target':<13}{'ops/s':>10}{'MB/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'srv cpu':>8}{'cli cpu':>8}" + "".join(f"{'lk/' + b:>{RATIO_WIDTH}}" for b in BASELINES)
    )
    for size in sizes:
        for conc in concs:
            print(f"\n== {size_label(size)} objects, concurrency {conc} ==")
            print(head)
            for op in OPS:
                _print_op(results, names, size, conc, op)


def _print_op(results: Results, names: list[str], size: int, conc: int, op: str) -> None:
    label = op
    for name in names:
        r = find(results, name, size, conc, op)
        if r is None:
            continue
        ratios = [_baseline_ratio(results, r, b) for b in BASELINES] if name in PRIMARIES else []
        print(_row(label, name, r, ratios))
        label = ""


def print_summary(results: Results, sizes: list[int], concs: list[int]) -> None:
    """Each lakenode variant's ops/s divided by SeaweedFS's, per phase and matrix cell."""
    mine = [n for n in PRIMARIES if results.get(n)]
    if not mine or not results.get(SUMMARY_BASELINE):
        return
    cells = [(size, conc) for size in sizes for conc in concs]
    labels = [f"{size_label(size)} c={conc}" for size, conc in cells]
    print(f"\n== summary: ops/s of lakenode / {SUMMARY_BASELINE} (> 1.00x: lakenode faster) ==")
    print(f"{'target':<14}{'op':<7}" + "".join(f"{label:>14}" for label in labels))
    for name in mine:
        label = name  # printed on the variant's first row only
        for op in OPS:
            ratios = [
                _ratio(
                    find(results, name, size, conc, op),
                    find(results, SUMMARY_BASELINE, size, conc, op),
                )
                for size, conc in cells
            ]
            print(f"{label:<14}{op:<7}" + "".join(f"{x:>14}" for x in ratios))
            label = ""


@dataclass
class Check:
    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str

    def line(self) -> str:
        return f"{self.status:<5} {self.name}: {self.detail}"


def _threshold(name: str, r: PhaseResult | None, value: str, need: float) -> Check:
    if r is None:
        return Check(name, "SKIP", "not measured")
    got = r.ops_per_s if value == "ops/s" else r.mb_per_s
    status = "PASS" if got >= need and r.ops else "FAIL"
    return Check(name, status, f"{got:.1f} {value} (need >= {need:g})")


def _relative(name: str, mine: PhaseResult | None, other: PhaseResult | None, need: float) -> Check:
    if mine is None or other is None or not other.ops_per_s:
        return Check(name, "SKIP", "lakenode or SeaweedFS not measured")
    ratio = mine.ops_per_s / other.ops_per_s
    detail = f"{mine.ops_per_s:.1f} vs {other.ops_per_s:.1f} ops/s = {ratio:.2f}x (need >= {need}x)"
    return Check(name, "PASS" if ratio >= need else "FAIL", detail)


# (phase, ops/s ratio to SeaweedFS it must reach) for 4 KiB objects, at every concurrency.
RELATIVE_TARGETS = (("GET", 0.8), ("DELETE", 1.0), ("LIST", 1.0))


def checks(results: Results, concs: list[int]) -> list[Check]:
    """The project's performance targets; informational, they do not set the exit code.
    The relative ones are checked for every lakenode variant measured."""

    def lk(size: int, conc: int, op: str) -> PhaseResult | None:
        return find(results, PRIMARY, size, conc, op)

    out = [_threshold("4 KiB PUT c=16 >= 1000 ops/s", lk(KIB4, 16, "PUT"), "ops/s", 1000)]
    for name in [n for n in PRIMARIES if results.get(n)] or [PRIMARY]:
        for op, need in RELATIVE_TARGETS:
            for c in concs:
                sw = find(results, "seaweedfs", KIB4, c, op)
                mine = find(results, name, KIB4, c, op)
                label = f"{name} 4 KiB {op} c={c} >= {need}x SeaweedFS"
                out.append(_relative(label, mine, sw, need))
    for c in concs:
        out.append(_threshold(f"64 MiB PUT c={c} >= 200 MB/s", lk(MIB64, c, "PUT"), "MB/s", 200))
    for c in concs:
        out.append(_threshold(f"64 MiB GET c={c} >= 400 MB/s", lk(MIB64, c, "GET"), "MB/s", 400))
    return out


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
