"""Scale benchmark to a million objects: ``python -m tests.bench.scale [--objects N]``.

Fills one node (site-a) with mixed-size objects (tests/bench/scale_layout.py) and, at each
checkpoint, measures what must not grow with the store (issue 12, items 3 and 4):

1. the node's idle RSS (whole process tree), then stop: meta.db (+ -wal) bytes per object;
   start again: seconds until GET /_lakenode/ready is 200;
2. on that fresh node: 4 KiB PUT and GET ops/s at concurrency 16 (best of two rounds of
   ``--probe-ops``; each GET reads a different random object: cache misses at every size);
3. LIST p50/p99 (max-keys 1000): first page, the page a continuation token 90% into bucket
   ``big`` asks for, and a delimiter listing of a prefix with 1,000 sub-prefixes;
4. a second site (site-b) bootstraps from site-a (time, objects/s, MB/s, RSS of both), then
   ``repl validate`` between them with 0 differences and after 100 PUTs on site-a alone
   (neither node names the other with --peer, so nothing replicates; the count is checked);
5. offline, node stopped: fsck and scrub (MB/s of stored data), gc plan; then rebuild-index
   (last: it replaces meta.db) and start to ready once more.

Prints a markdown table after each checkpoint and writes JSON (``--json-out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench import scale_load as load
from tests.bench.payload import VerificationError
from tests.bench.s3client import RequestFailed
from tests.bench.scale_node import CommandFailed, Node, du, new_node, run_cli
from tests.bench.scale_report import table, targets
from tests.bench.servers import REPO_ROOT

STEPS = ("ops", "list", "restart", "offline", "fsck", "scrub", "gc", "bootstrap", "rebuild")
DIFFERENCES = 100
_VERDICT = re.compile(r"validate \S+: (agree|(\d+) difference\(s\))")
MIB = 1024 * 1024


class Run:
    """One benchmark run: site-a, its checkpoints' figures, and the objects written."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.a = new_node("site-a", root, args.workers)
        self.extra_objects = 0  # probe and difference objects on site-a besides the fill
        self.results: list[dict[str, Any]] = []

    def skip(self, step: str) -> bool:
        return step in self.args.skip

    async def checkpoint(self, objects: int, fill: load.Fill) -> dict[str, Any]:
        """Every measure at one checkpoint; a step that fails is recorded and the run goes on
        (the node is restarted if the failure left it stopped)."""
        row: dict[str, Any] = {"objects": objects, "fill_ops_s": fill.objects / fill.seconds,
                               "fill_mb_s": fill.bytes / fill.seconds / 1e6}  # fmt: skip
        self.results.append(row)
        steps = [
            ("restart", self.restart), ("ops", self.probe_ops), ("list", self.probe_lists),
            ("bootstrap", self.second_site), ("offline", self.offline),
            ("rebuild", self.rebuild),
        ]  # fmt: skip
        for name, step in steps:
            if self.skip(name):
                continue
            try:
                row |= await step(objects)
            except (CommandFailed, RuntimeError, OSError, VerificationError, RequestFailed) as exc:
                print(f"!!! step {name} at {objects:,} failed: {exc}", flush=True)
                row.setdefault("errors", {})[name] = str(exc)
                if self.a.target is None:
                    self.a.start()
            print(f"  {name} done at {objects:,} objects", flush=True)
            self.write_json()  # a long run keeps what it measured if it is stopped
        return row

    async def probe_ops(self, objects: int) -> dict[str, Any]:
        found = await load.put_get_probe(
            self.a.port, objects, self.args.probe_ops, 16, tag=f"cp{objects}"
        )
        self.extra_objects += 2 * self.args.probe_ops
        return found

    async def probe_lists(self, objects: int) -> dict[str, Any]:
        return {"list": await load.list_probe(self.a.port, objects, self.args.list_ops)}

    async def restart(self, objects: int) -> dict[str, Any]:
        """Idle RSS, meta.db size on a stopped node, then start to ready and RSS again."""
        a = self.a
        time.sleep(3)
        row: dict[str, Any] = {"idle_rss_mib": a.rss() / MIB}
        a.stop()
        row["total_objects"] = objects + self.extra_objects
        row["meta_bytes_per_object"] = a.meta_bytes() / row["total_objects"]
        row["ready_s"] = a.start()
        time.sleep(2)
        row["idle_rss_after_restart_mib"] = a.rss() / MIB
        row["idle_pss_after_restart_mib"] = a.pss() / MIB
        return row

    async def offline(self, objects: int) -> dict[str, Any]:
        """fsck, scrub and gc plan on the stopped node."""
        del objects
        self.a.stop()
        data = str(self.a.data_dir)
        stored = du(self.a.data_dir) - self.a.meta_bytes()
        out: dict[str, Any] = {"stored_mb": stored / 1e6}
        try:
            if not self.skip("fsck"):
                fsck = run_cli(["fsck", "--data-dir", data])
                out |= {"fsck_s": fsck.seconds, "fsck_mb_s": stored / fsck.seconds / 1e6}
            if not self.skip("scrub"):
                scrub = run_cli(["scrub", "--data-dir", data])
                out |= {"scrub_s": scrub.seconds, "scrub_mb_s": stored / scrub.seconds / 1e6}
            if not self.skip("gc"):
                out["gc_plan_s"] = run_cli(["gc", "plan", "--data-dir", data]).seconds
        finally:
            self.a.start()
        return out

    async def rebuild(self, objects: int) -> dict[str, Any]:
        """rebuild-index --force on the stopped node (last: it replaces meta.db), then start."""
        del objects
        self.a.stop()
        try:
            timed = run_cli(["rebuild-index", "--data-dir", str(self.a.data_dir), "--force"])
        finally:
            ready = self.a.start()
        for kept in self.a.data_dir.glob("meta.db.broken-*"):
            shutil.rmtree(kept) if kept.is_dir() else kept.unlink()
        return {"rebuild_s": timed.seconds, "rebuild_peak_rss_mib": timed.peak_rss / MIB,
                "ready_after_rebuild_s": ready}  # fmt: skip

    async def second_site(self, objects: int) -> dict[str, Any]:
        """Bootstrap site-b from site-a, then validate with 0 and with 100 differences."""
        b = new_node("site-b", self.root, self.args.workers)
        shutil.rmtree(b.data_dir, ignore_errors=True)
        boot = run_cli(
            [
                "repl",
                "bootstrap",
                "--from",
                self.a.url,
                "--data-dir",
                str(b.data_dir),
                "--node-id",
                b.name,
            ],
            watch=self.a,
        )
        copied = du(b.data_dir)
        total = objects + self.extra_objects
        out: dict[str, Any] = {
            "bootstrap_s": boot.seconds,
            "bootstrap_objects_s": total / boot.seconds,
            "bootstrap_mb_s": copied / boot.seconds / 1e6,
            "bootstrap_peak_rss_mib": boot.peak_rss / MIB,
            "source_peak_rss_mib": boot.watched_rss / MIB,
        }
        try:
            out["b_ready_s"] = b.start()
            time.sleep(2)
            out["b_idle_rss_mib"] = b.rss() / MIB
            out["a_idle_rss_after_bootstrap_mib"] = self.a.rss() / MIB
            out["validate0_s"], found = self.validate(b)
            if found != 0:
                raise RuntimeError(f"validate after bootstrap found {found} differences")
            await load.write_differences(self.a.port, f"diff{objects}", DIFFERENCES)
            self.extra_objects += DIFFERENCES
            out["validate100_s"], found = self.validate(b)
            if found != DIFFERENCES:
                raise RuntimeError(f"validate found {found} differences, not {DIFFERENCES}")
        finally:
            b.stop()
        if not self.args.keep_data:
            shutil.rmtree(b.data_dir)
        return out

    def validate(self, b: Node) -> tuple[float, int]:
        timed = run_cli(
            ["repl", "validate", "--data-dir", str(b.data_dir), "--peer", self.a.url], ok=(0, 1)
        )
        verdict = _VERDICT.search(timed.output)
        if verdict is None:
            raise RuntimeError(f"no verdict in validate's output:\n{timed.output[-2000:]}")
        return timed.seconds, int(verdict.group(2) or 0)

    def resume(self) -> int:
        """Figures of the earlier run on this data (``--json-out``); the objects it filled."""
        earlier = json.loads(Path(self.args.json_out).read_text())["checkpoints"]
        last = earlier[-1]
        self.results = earlier
        self.extra_objects = last.get("total_objects", last["objects"]) - last["objects"]
        self.extra_objects += DIFFERENCES if "validate100_s" in last else 0
        filled = max(int(last["objects"]), self.args.filled)
        print(f"resuming after {filled:,} objects", flush=True)
        return filled

    async def run(self) -> None:
        self.a.start()
        await load.create_buckets(self.a.port)
        filled = self.resume() if self.args.resume else 0
        try:
            for checkpoint in (c for c in self.args.checkpoints if c > filled):
                print(f"filling to {checkpoint:,} objects", flush=True)
                fill = await load.fill(self.a.port, filled, checkpoint, self.args.concurrency)
                filled = checkpoint
                await self.checkpoint(checkpoint, fill)
                self.report()
        finally:
            self.a.stop()

    def report(self) -> None:
        print(table(self.results), flush=True)
        print(targets(self.results), flush=True)
        self.write_json()

    def write_json(self) -> None:
        out = Path(self.args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: v for k, v in vars(self.args).items() if k != "json_out"}
        settings["data_root"] = self.root
        out.write_text(
            json.dumps({"settings": settings, "checkpoints": self.results}, indent=1, default=str)
        )


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000, help="fill size (1,000,000)")
    parser.add_argument("--checkpoints", default="10000,100000,1000000",
                        help="comma-separated object counts to measure at (the last is "
                        "--objects if smaller)")  # fmt: skip
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the data dirs")
    parser.add_argument("--keep-data", action="store_true", help="keep data dirs and logs")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="pass --workers N to lakenode serve (default: not passed)",
    )
    parser.add_argument("--skip", default="", help=f"comma-separated steps: {','.join(STEPS)}")
    parser.add_argument("--concurrency", type=int, default=32, help="fill connections (32)")
    parser.add_argument("--probe-ops", type=int, default=3000, help="PUTs/GETs per round")
    parser.add_argument("--list-ops", type=int, default=50, help="LISTs per kind")
    parser.add_argument("--json-out", default=str(REPO_ROOT / "build/bench/scale.json"))
    parser.add_argument("--resume", type=Path, default=None,
                        help="data dir root of an earlier --keep-data run: fill on from its last "
                        "checkpoint, its figures read from --json-out")  # fmt: skip
    parser.add_argument("--filled", type=int, default=0,
                        help="with --resume: objects 0..N-1 are already stored (a fill "
                        "stopped between checkpoints: a bit less than its progress)")  # fmt: skip
    args = parser.parse_args()
    args.skip = {s for s in args.skip.split(",") if s}
    if args.skip - set(STEPS):
        parser.error(f"unknown --skip steps: {sorted(args.skip - set(STEPS))}")
    marks = sorted({int(c) for c in args.checkpoints.split(",") if int(c) <= args.objects})
    args.checkpoints = marks if marks and marks[-1] == args.objects else [*marks, args.objects]
    return args


def main() -> None:
    args = _parse()
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    root = args.resume or Path(tempfile.mkdtemp(prefix="lakenode-scale-", dir=args.work_dir))
    print(f"data under {root}", flush=True)
    try:
        asyncio.run(Run(args, root).run())
    finally:
        if not (args.keep_data or args.resume):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
