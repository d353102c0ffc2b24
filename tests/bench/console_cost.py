"""``make bench``'s console section: what the web console (issue 13) costs a node.

Two nodes of one worker each, on fresh data dirs, started in turn: ``--console off`` and the
default (on). For each:

* **idle memory**: RSS and PSS of the node's process tree 3 s after it is ready;
* **the S3 path**: the 4 KiB phases of the main bench (PUT, GET, HEAD, LIST, DELETE) at each
  concurrency, with the server's CPU time per request;
* **memory after use**: RSS and PSS again after those phases, and for the console node after
  a signed-in operator then opened every page once (Jinja2 compiles a template at its first
  render), compared with the console-off node after the same phases.

The rounds alternate off, on, off, on... so a drift of the machine hits both alike; the table
shows every round and the checks use the medians. The console cannot cost the S3 path
anything by construction (api/app.py's dispatcher hands S3 requests to S3 handling before any
route of the FastAPI app is looked at; the console's routes sit under /_lakenode/): this
section measures it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from tests.bench import servers
from tests.bench.report import Check
from tests.bench.scale_node import tree_pss, tree_rss
from tests.bench.workload import PhaseResult, RunState

MIB: Final = 1 << 20
SETTLE_S: Final = 3.0
PAGES: Final = (
    "",
    "buckets",
    "replication",
    "keys",
    "browse/{bucket}",
    "buckets/{bucket}/settings",
)
RSS_BUDGET_MIB: Final = 10.0
CPU_PER_OP_TOLERANCE: Final = 1.10  # the machine's noise: medians within 10%
KIB4: Final = 4 << 10

MeasureS3 = Callable[[servers.Target], RunState]


@dataclass
class Round:
    console: bool
    rss_mib: float
    pss_mib: float
    rss_after_use_mib: float = 0.0  # after the S3 phases (and, console on, every page)
    pss_after_use_mib: float = 0.0
    results: list[PhaseResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "console": self.console,
            "idle_rss_mib": self.rss_mib,
            "idle_pss_mib": self.pss_mib,
            "rss_after_use_mib": self.rss_after_use_mib,
            "pss_after_use_mib": self.pss_after_use_mib,
            "results": [r.to_json() for r in self.results],
        }


def run(
    workdir: Path, access_key: str, secret_key: str, rounds: int, bucket: str, measure: MeasureS3
) -> list[Round]:
    done: list[Round] = []
    for index in range(rounds):
        for console in (False, True):
            print(f"\n### console {'on' if console else 'off'}, round {index + 1}", flush=True)
            node = _Node(workdir, access_key, secret_key, bucket)
            done.append(node.round(console, index, measure))
    return done


@dataclass
class _Node:
    workdir: Path
    access_key: str
    secret_key: str
    bucket: str

    def round(self, console: bool, index: int, measure: MeasureS3) -> Round:
        name = f"console-{'on' if console else 'off'}-{index}"
        flag = ["--console", "on" if console else "off"]
        target = servers.start_lakenode(
            self.workdir, self.access_key, self.secret_key, extra_args=flag, name=name
        )
        try:
            time.sleep(SETTLE_S)
            pid = target.proc.pid
            row = Round(console, tree_rss(pid) / MIB, tree_pss(pid) / MIB)
            row.results = [r for r in measure(target).results if r.size == KIB4]
            if console:
                self._open_every_page(target)
            time.sleep(SETTLE_S)
            row.rss_after_use_mib, row.pss_after_use_mib = tree_rss(pid) / MIB, tree_pss(pid) / MIB
            return row
        finally:
            servers.stop(target)

    def _open_every_page(self, target: servers.Target) -> None:
        base = f"http://{target.host}:{target.port}/_lakenode/console/"
        with httpx.Client(base_url=base, timeout=30) as operator:
            credentials = {"access_key": self.access_key, "secret_key": self.secret_key}
            signed_in = operator.post("signin", data=credentials)
            if signed_in.status_code != 303:
                raise RuntimeError(f"console sign-in answered {signed_in.status_code}")
            for page in PAGES:
                answer = operator.get(page.format(bucket=self.bucket))
                if answer.status_code != 200:
                    raise RuntimeError(f"console page {page!r} answered {answer.status_code}")


def cpu_us_per_op(result: PhaseResult) -> float | None:
    if result.server_cpu_pct is None or not result.ops:
        return None
    return result.server_cpu_pct / 100 * result.seconds / result.ops * 1e6


def print_table(rounds: list[Round]) -> None:
    print("\nConsole cost: memory of the node's process tree (one worker), MiB")
    print(
        f"{'round':<18}{'idle RSS':>10}{'idle PSS':>10}{'RSS after use':>15}{'PSS after use':>15}"
    )
    for number, row in enumerate(rounds):
        label = f"{number // 2 + 1} console {'on' if row.console else 'off'}"
        print(f"{label:<18}{row.rss_mib:>10.1f}{row.pss_mib:>10.1f}"
              f"{row.rss_after_use_mib:>15.1f}{row.pss_after_use_mib:>15.1f}")  # fmt: skip
    print("(after use: after the S3 phases; console on: then every console page opened once)")
    print("\nConsole cost: the S3 path, 4 KiB, ops/s and server CPU us/op (each round)")
    keys = sorted({(r.op, r.concurrency) for row in rounds for r in row.results},
                  key=lambda k: (k[1], k[0]))  # fmt: skip
    for op, conc in keys:
        cells = []
        for row in rounds:
            found = _find(row, op, conc)
            cpu = cpu_us_per_op(found) if found else None
            text = "-" if found is None else f"{found.ops_per_s:.0f}/{cpu or 0:.0f}us"
            cells.append(f"{'on' if row.console else 'off'} {text}")
        print(f"  {op:<6} c={conc:<3} " + "  ".join(cells))


def checks(rounds: list[Round]) -> list[Check]:
    off = [row for row in rounds if not row.console]
    on = [row for row in rounds if row.console]
    if not off or not on:
        return [Check("console cost", "SKIP", "not measured")]
    out = []
    picks: tuple[tuple[str, Callable[[Round], float]], ...] = (
        ("idle", lambda r: r.rss_mib),
        ("after use, every page opened", lambda r: r.rss_after_use_mib),
    )
    for label, pick in picks:
        added = statistics.median(pick(r) for r in on) - statistics.median(pick(r) for r in off)
        status = "PASS" if added < RSS_BUDGET_MIB else "FAIL"
        out.append(Check(f"console adds < {RSS_BUDGET_MIB:g} MiB RSS ({label})", status,
                         f"{added:+.1f} MiB (median of {len(on)} rounds each)"))  # fmt: skip
    for op, conc in sorted({(r.op, r.concurrency) for row in off for r in row.results}):
        cost_off = _median_cpu(off, op, conc)
        cost_on = _median_cpu(on, op, conc)
        if cost_off is None or cost_on is None:
            continue
        ratio = cost_on / cost_off
        status = "PASS" if ratio <= CPU_PER_OP_TOLERANCE else "FAIL"
        out.append(Check(f"console on: 4 KiB {op} c={conc} server CPU/op", status,
                         f"{cost_on:.0f} vs {cost_off:.0f} us = {ratio:.2f}x "
                         f"(need <= {CPU_PER_OP_TOLERANCE:g}x)"))  # fmt: skip
    return out


def _find(row: Round, op: str, conc: int) -> PhaseResult | None:
    return next((r for r in row.results if r.op == op and r.concurrency == conc), None)


def _median_cpu(rows: list[Round], op: str, conc: int) -> float | None:
    costs = [c for row in rows if (r := _find(row, op, conc)) and (c := cpu_us_per_op(r))]
    return statistics.median(costs) if costs else None
