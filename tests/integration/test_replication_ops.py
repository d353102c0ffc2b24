"""Operating replication between real nodes: `repl push`, /_lakenode/metrics, `repl status`.

Method: push from a stopped data dir into a running node and compare what S3 serves; read
the metrics' exposition text and the status JSON while links are up, cut (the peer stopped)
and back, and after restarts (every value is read from disk, so it must not reset).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess
from tests.integration.test_replication_pull import snapshot, write_workload

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 20.0


def repl(action: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "node", "repl", action, "--data-dir", str(data_dir),
        "--peer-access-key", ACCESS_KEY, "--peer-secret-key", SECRET_KEY, *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)


def metrics(node: NodeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{node.url}/_lakenode/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def metric(node: NodeProcess, name: str, **labels: str) -> float | None:
    return metrics(node).get((name, tuple(sorted(labels.items()))))


def wait_for(read: Callable[[], Any], check: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + LIMIT_S
    while not check(value := read()):
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {LIMIT_S} s"
        time.sleep(0.2)
    return value


def test_push_from_a_stopped_data_dir_converges_the_peer(tmp_path: Path) -> None:
    a = NodeProcess(tmp_path / "a", extra_args=["--node-id", "push-a"]).start()
    b = NodeProcess(tmp_path / "b", extra_args=["--node-id", "push-b"]).start()
    try:
        buckets = write_workload(make_client(a.url), "pushed")
        refused = repl("push", a.data_dir, "--peer", b.url)
        assert refused.returncode == 1 and "in use" in refused.stderr, refused.stderr
        a.stop()
        done = repl("push", a.data_dir, "--peer", b.url)
        assert done.returncode == 0, done.stderr
        assert "caught up" in done.stdout and "(node push-b)" in done.stdout
        assert " 0 change(s)" not in done.stdout and "chunk(s)" in done.stdout
        again = repl("push", a.data_dir, "--peer", b.url)
        assert again.returncode == 0 and "0 change(s) sent in 0 page(s)" in again.stdout
        on_b = snapshot(make_client(b.url), buckets)
        a.start()
        assert on_b == snapshot(make_client(a.url), buckets)  # bytes, versions, deletes
        assert on_b[buckets[2]] == "NoSuchBucket"
        # The push is counted on disk: bytes sent to push-b, read by A's metrics.
        sent = metric(a, "lakenode_repl_bytes_sent_total", peer="push-b")
        assert sent is not None and sent > 19 * (1 << 20)
        assert metric(a, "lakenode_repl_backlog_ops", peer="push-b") == 0
    finally:
        a.stop()
        b.stop()
    down = repl("push", a.data_dir, "--peer", "http://127.0.0.1:1")
    assert down.returncode == 1 and "PeerUnavailable" in down.stderr


def test_metrics_and_status_follow_a_cut_link_and_survive_restarts(tmp_path: Path) -> None:
    a = NodeProcess(tmp_path / "a")
    b = NodeProcess(tmp_path / "b")
    a.extra_args = ["--node-id", "site-a", "--peer", b.url]
    b.extra_args = ["--node-id", "site-b", "--peer", a.url]
    a.start()
    b.start()
    try:
        s3a = make_client(a.url)
        s3a.create_bucket(Bucket="watched")
        for index in range(5):
            s3a.put_object(Bucket="watched", Key=f"k{index}", Body=b"x" * 1000)
        # A started first: its pull task names B by node id once it has reached it.
        wait_for(lambda: metric(a, "lakenode_repl_link_up", peer="site-b"), lambda v: v == 1,
                 "A's link to B")  # fmt: skip
        wait_for(lambda: metric(a, "lakenode_repl_backlog_ops", peer="site-b"), lambda v: v == 0,
                 "A's backlog for B after convergence")  # fmt: skip
        seen = metrics(a)
        for name in ("lakenode_repl_lag_seconds", "lakenode_repl_backlog_bytes",
                     "lakenode_repl_link_up", "lakenode_repl_conflicts_total",
                     "lakenode_repl_skew_rejections_total", "lakenode_repl_bytes_sent_total",
                     "lakenode_repl_bytes_received_total", "lakenode_repl_clock_offset_seconds",
                     "lakenode_repl_last_success_timestamp_seconds"):  # fmt: skip
            assert (name, (("peer", "site-b"),)) in seen, name
        assert seen[("lakenode_repl_lag_seconds", (("peer", "site-b"),))] == 0
        assert seen[("lakenode_repl_link_up", (("peer", "site-b"),))] == 1
        assert abs(seen[("lakenode_repl_clock_offset_seconds", (("peer", "site-b"),))]) < 1
        received = wait_for(
            lambda: metric(b, "lakenode_repl_bytes_received_total", peer="site-a"),
            lambda v: v is not None and v > 5000,
            "B's bytes received from A",
        )

        # Status beside the running B: everything caught up, but no validate yet.
        status = repl("status", b.data_dir, "--json")
        assert status.returncode == 0, status.stderr
        (row,) = json.loads(status.stdout)["peers"]
        assert (row["peer"], row["url"], row["link_up"]) == ("site-a", a.url, True)
        assert (row["backlog_ops"], row["behind_ops"], row["lag_seconds"]) == (0, 0, 0)
        assert row["conflicts"] == 0 and row["last_validate"] is None
        assert row["in_sync"] is False and "in sync" not in repl("status", b.data_dir).stdout
        validated = repl("validate", b.data_dir, "--peer", a.url)
        assert validated.returncode == 0, validated.stdout + validated.stderr
        table = repl("status", b.data_dir)
        assert table.returncode == 0 and "in sync" in table.stdout, table.stdout
        assert metric(b, "lakenode_repl_validate_mismatches", peer="site-a") == 0

        # Cut the link by stopping B: A's log grows, B acknowledges nothing.
        b.stop()
        s3a.put_object(Bucket="watched", Key="while-down", Body=b"y" * 3000)
        s3a.delete_object(Bucket="watched", Key="k0")
        wait_for(lambda: metric(a, "lakenode_repl_link_up", peer="site-b"), lambda v: v == 0,
                 "A's link to B while B is down")  # fmt: skip
        assert metric(a, "lakenode_repl_backlog_ops", peer="site-b") == 2
        assert metric(a, "lakenode_repl_backlog_bytes", peer="site-b") == 3000
        lag = metric(a, "lakenode_repl_lag_seconds", peer="site-b")
        assert lag is not None and lag > 0
        # Restarting A changes nothing: the backlog is read from disk.
        a.stop()
        a.start()
        assert metric(a, "lakenode_repl_backlog_ops", peer="site-b") == 2
        down = repl("status", a.data_dir, "--json")
        assert down.returncode == 1
        (row,) = json.loads(down.stdout)["peers"]
        assert row["link_up"] is False and row["backlog_ops"] == 2 and row["last_error"]
        assert row["in_sync"] is False

        # The link back: B pulls, acknowledges, and the backlog drains to 0.
        b.start()
        wait_for(lambda: metric(a, "lakenode_repl_backlog_ops", peer="site-b"), lambda v: v == 0,
                 "A's backlog for B after B is back")  # fmt: skip
        assert metric(a, "lakenode_repl_lag_seconds", peer="site-b") == 0
        # A's pull task notices on its next attempt (it backs off while B is down).
        wait_for(lambda: metric(a, "lakenode_repl_link_up", peer="site-b"), lambda v: v == 1,
                 "A's link to B after B is back")  # fmt: skip
        after = metric(b, "lakenode_repl_bytes_received_total", peer="site-a")
        assert after is not None and after >= received  # counters did not reset with B
        assert metric(b, "lakenode_repl_validate_mismatches", peer="site-a") == 0
    finally:
        b.stop()
        a.stop()
