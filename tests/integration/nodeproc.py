"""Start and stop real ``lakenode serve`` processes for integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"
ACCESS_LOG_ENTRY = '{"time":'  # how every access-log line starts (api/access_log.py)
STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NodeProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # With TLS (extra_args --tls-cert/--tls-key): the certificate clients verify against.
    ca: Path | None = None
    # Added to the node's environment (e.g. LAKENODE_CLOCK_OFFSET_MS).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        scheme = "https" if self.ca is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return True if self.ca is None else ssl.create_default_context(cafile=str(self.ca))

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-node.log"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "node",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            *self.extra_args,
        ]

    def start(self) -> NodeProcess:
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        # A session of its own: kill() takes the whole node (supervisor and workers) down.
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        verify = self.verify
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited with {self.process.returncode}:\n{self.log()}")
            try:
                ready = httpx.get(f"{self.url}/_lakenode/ready", timeout=1, verify=verify)
                if ready.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def access_log(self, path_prefix: str = "/") -> list[dict[str, Any]]:
        """The node's JSON access-log entries whose path starts with ``path_prefix``, in order.

        What a client really sent (method, path, operation, status) is how its tests see where
        the node answers differently from AWS.
        """
        if not self.log_path.exists():
            return []
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            # The workers and the supervisor share the file: a line another process left
            # unfinished (a traceback written in pieces) may precede an entry on its line.
            start = line.find(ACCESS_LOG_ENTRY)
            if start >= 0:
                entry = json.loads(line[start:])
                if str(entry.get("path", "")).startswith(path_prefix):
                    entries.append(entry)
        return entries

    def pids(self) -> set[int]:
        """The node's processes: the one started and, with several workers, its workers."""
        if self.process is None:
            return set()
        try:
            root = psutil.Process(self.process.pid)
            return {root.pid, *(child.pid for child in root.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def kill(self) -> None:
        """SIGKILL to every process of the node: no shutdown code runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            wait_for_group_exit(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            wait_for_group_exit(self.process.pid)


def wait_for_group_exit(group: int, timeout_s: float = 10.0) -> None:
    """Until no process of the node's group is left (its workers exit after the supervisor)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.killpg(group, signal.SIGKILL)


def two_way_pair(
    root: Path, ids: tuple[str, str] = ("node-a", "node-b")
) -> tuple[NodeProcess, NodeProcess]:
    """Two started nodes under ``root``, each pulling from the other (``--peer``)."""
    a, b = NodeProcess(root / "a"), NodeProcess(root / "b")
    a.extra_args = ["--node-id", ids[0], "--peer", b.url]
    b.extra_args = ["--node-id", ids[1], "--peer", a.url]
    a.start()
    b.start()
    return a, b
