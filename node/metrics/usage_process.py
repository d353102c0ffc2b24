"""Storage usage of a big store, computed in a child process at the lowest CPU priority.

Usage reads every manifest of the catalog (storage/ops/usage.py): about 40 s of pure Python at
a million objects. In a thread of a serving worker that time is spent holding the GIL, so
every request of that worker waits behind it (the scale run measured PUT and GET at a million
objects while the first run after start was still going). A child process shares no GIL with
the server and runs at nice 19, so the kernel gives the serving workers the CPU first, and the
live set it builds (tens of MiB at a million objects) is returned to the system when it exits.

A small store is still measured in a thread: a child costs a fresh interpreter and its
imports (about 0.2 s of CPU), more than the whole computation below ``ISOLATE_FROM_BYTES`` of
catalog.

    python -m node.metrics.usage_process DATA_DIR   # prints the totals as one JSON object
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

from node.supervisor import die_with_parent
from storage.ops.usage import UsageTotals, usage_totals

# The work is decoding the catalog's manifests (the segments are only stat'ed), so the
# catalog's size decides: meta.db and its WAL take about 1,300 bytes an object, so this is
# some 25,000 objects, whatever their sizes (a single 1 GiB object costs nothing to measure).
ISOLATE_FROM_BYTES = 32 << 20
CHILD_NICENESS = 19
PARENT_ENV = "LAKENODE_USAGE_PARENT"  # the worker's pid: the child exits when it is gone


class UsageProcessFailed(RuntimeError):
    """The child exited with an error or printed no totals."""


def read_only_catalog(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir / "meta.db", timeout=5, check_same_thread=False)
    conn.execute("PRAGMA query_only=ON")
    return conn


def compute_usage(data_dir: Path) -> UsageTotals:
    """Space accounting on a connection of its own (in a worker thread or the child)."""
    conn = read_only_catalog(data_dir)
    try:
        return usage_totals(conn, data_dir / "segments")
    finally:
        conn.close()


def catalog_bytes(data_dir: Path) -> int:
    """Bytes of meta.db and its WAL (two stat calls)."""
    return sum(_size(data_dir / name) for name in ("meta.db", "meta.db-wal"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def should_isolate(data_dir: Path) -> bool:
    return catalog_bytes(data_dir) >= ISOLATE_FROM_BYTES


async def compute_in_child(data_dir: Path) -> UsageTotals:
    """Run this module on ``data_dir`` in a child process and parse its totals."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node.metrics.usage_process",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, PARENT_ENV: str(os.getpid())},
    )
    try:
        out, err = await child.communicate()
    except asyncio.CancelledError:  # the node stops: do not leave the scan running
        if child.returncode is None:
            child.kill()
            await child.wait()
        raise
    if child.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise UsageProcessFailed(f"usage process exited with {child.returncode}: {detail[0]}")
    return parse_totals(out)


def parse_totals(out: bytes) -> UsageTotals:
    try:
        fields = json.loads(out)
        return UsageTotals(**{f.name: int(fields[f.name]) for f in dataclasses.fields(UsageTotals)})
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageProcessFailed(f"usage process printed no totals: {out[:200]!r}") from exc


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m node.metrics.usage_process DATA_DIR", file=sys.stderr)
        return 2
    # The child lives and dies with the worker that asked: a node stopping signals its whole
    # process group, and the worker, not the signal, ends a run (it kills the child when its
    # task is cancelled); if the worker itself dies, the kernel kills the child.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(signal.SIGKILL, int(os.environ.get(PARENT_ENV, "0")))
    os.nice(CHILD_NICENESS)
    totals = compute_usage(Path(argv[0]))
    print(json.dumps(dataclasses.asdict(totals)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
