"""Processes for the scale benchmark: a node started and timed to ready, RSS, offline commands.

A node is ``lakenode serve`` on its own data dir and port (``--workers N`` only when the run
was given one). Its RSS is the sum over its whole process tree, read from /proc, so worker
processes count. Offline commands (fsck, scrub, gc plan, rebuild-index, repl bootstrap and
validate) run as the operator would run them, with the root keys in the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.servers import HOST, REPO_ROOT, Target, _http_status, free_ports, stop

ACCESS_KEY, SECRET_KEY = "benchkey", "benchsecret"
READY_PATH = "/_lakenode/ready"
READY_POLL_S = 0.02
START_TIMEOUT_S = 600.0  # a rebuilt million-object catalog may take long; that is measured
# ``python -m node`` in the repository root runs this checkout's code; the venv's console script
# runs whichever checkout the venv was installed from.
LAKENODE = (sys.executable, "-m", "node")
ENV = {**os.environ, "LAKENODE_ACCESS_KEY": ACCESS_KEY, "LAKENODE_SECRET_KEY": SECRET_KEY}


class CommandFailed(Exception):
    """An offline command exited with an unexpected status."""


@dataclass
class Node:
    """One site: a data dir and a port kept across restarts."""

    name: str
    data_dir: Path
    port: int
    workers: int | None
    target: Target | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> float:
        """Start serving; seconds from launch until GET /_lakenode/ready answers 200."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            *LAKENODE, "serve", "--data-dir", str(self.data_dir),
            "--listen", f"{HOST}:{self.port}", "--node-id", self.name,
            "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY,
        ]  # fmt: skip
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        log_path = self.data_dir.parent / f"{self.name}.log"
        started = time.perf_counter()
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.target = Target(self.name, self.port, proc, log_path)
        while _http_status(self.port, READY_PATH) != 200:
            if proc.poll() is not None or time.perf_counter() - started > START_TIMEOUT_S:
                stop(self.target)
                raise CommandFailed(f"{self.name} did not get ready:\n{self.target.log_tail()}")
            time.sleep(READY_POLL_S)
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.target is not None:
            stop(self.target)
            self.target = None

    def rss(self) -> int:
        """Bytes resident over the node's process tree (0 when stopped)."""
        return tree_rss(self.target.proc.pid) if self.target is not None else 0

    def pss(self) -> int:
        """The tree's proportional set size: pages shared between its processes (the
        interpreter, libraries, copy-on-write pages) counted once, not once per worker."""
        return tree_pss(self.target.proc.pid) if self.target is not None else 0

    def meta_bytes(self) -> int:
        return sum(
            path.stat().st_size
            for path in (self.data_dir / "meta.db", self.data_dir / "meta.db-wal")
            if path.exists()
        )


def new_node(name: str, root: Path, workers: int | None) -> Node:
    (port,) = free_ports(1)
    return Node(name, root / f"{name}-data", port, workers)


def _children(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def _proc_bytes(path: str, field: str) -> int:
    """A ``field: N kB`` line of a /proc file, in bytes (0 once the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return 0
    return 0


def _rss(pid: int) -> int:
    return _proc_bytes(f"/proc/{pid}/status", "VmRSS:")


def _pss(pid: int) -> int:
    return _proc_bytes(f"/proc/{pid}/smaps_rollup", "Pss:")


def tree_rss(pid: int, measure: Callable[[int], int] = _rss) -> int:
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += measure(current)
        todo += _children(current)
    return total


def tree_pss(pid: int) -> int:
    """PSS of the process tree: pages shared between the workers counted once."""
    return tree_rss(pid, _pss)


def du(path: Path) -> int:
    """Bytes of regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass
class Timed:
    seconds: float
    output: str
    returncode: int
    peak_rss: int = 0  # of the command itself, sampled every 0.2 s
    watched_rss: int = 0  # peak of the node given as ``watch``


def run_cli(args: list[str], ok: tuple[int, ...] = (0,), watch: Node | None = None) -> Timed:
    """Run ``lakenode ARGS``; time it; sample its RSS and ``watch``'s."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*LAKENODE, *args],
        cwd=REPO_ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    peak, watched = 0, 0
    output: list[bytes] = []
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        if watch is not None:
            watched = max(watched, watch.rss())
        output.append(proc.stdout.read() or b"")
        time.sleep(0.2)
    output.append(proc.stdout.read() or b"")
    elapsed = time.perf_counter() - started
    text = b"".join(output).decode(errors="replace")
    if proc.returncode not in ok:
        raise CommandFailed(f"lakenode {' '.join(args)} exited {proc.returncode}:\n{text[-3000:]}")
    return Timed(elapsed, text, proc.returncode, peak, watched)
