"""``lakenode serve --workers 2``: one node, several processes, the guarantees of one.

Every test talks to each worker over a connection of its own: ``/_lakenode/health`` says
which worker answered (``x-lakenode-worker``), so a write goes through one worker and the read
that checks it through the other.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.nodeproc import NodeProcess, free_port
from tests.integration.s3util import send_on
from tests.integration.test_metrics import Samples, scrape

WORKERS = 2
LIMIT_S = 30.0
REPO = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {LIMIT_S} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    # A peer nobody answers at: the node still runs its pull, once.
    unreachable = f"http://127.0.0.1:{free_port()}"
    data = tmp_path_factory.mktemp("workers") / "data"
    process = NodeProcess(data, extra_args=["--workers", str(WORKERS), "--peer", unreachable])
    yield process.start()
    process.stop()


def pinned(node: NodeProcess) -> dict[int, httpx.Client]:
    """One client per worker, each on a single kept-alive connection to that worker."""
    clients: dict[int, httpx.Client] = {}
    for _attempt in range(200):
        client = httpx.Client(
            base_url=node.url,
            timeout=30,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        worker = int(client.get("/_lakenode/health").headers["x-lakenode-worker"])
        if worker in clients:
            client.close()
        else:
            clients[worker] = client
        if len(clients) == WORKERS:
            return clients
    raise AssertionError(f"connections reached only workers {sorted(clients)}")


@pytest.fixture
def workers(node: NodeProcess) -> Iterator[dict[int, httpx.Client]]:
    clients = pinned(node)
    yield clients
    for client in clients.values():
        client.close()


def metrics(node: NodeProcess) -> Samples:
    return scrape(node.url)


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_write_on_one_worker_is_read_on_the_other_at_once(
    workers: dict[int, httpx.Client],
) -> None:
    one, other = workers[0], workers[1]
    assert send_on(one, "PUT", "/ryw").status_code == 200
    for round_ in range(40):
        writer, reader = (one, other) if round_ % 2 else (other, one)
        body = f"version {round_}".encode() * (round_ + 1)
        assert send_on(writer, "PUT", "/ryw/key", body=body).status_code == 200
        got = send_on(reader, "GET", "/ryw/key")
        assert got.status_code == 200 and got.content == body, f"round {round_}"
        head = send_on(reader, "HEAD", "/ryw/key")
        assert int(head.headers["content-length"]) == len(body)
    assert send_on(one, "DELETE", "/ryw/key").status_code == 204
    assert send_on(other, "GET", "/ryw/key").status_code == 404
    assert send_on(other, "HEAD", "/ryw/key").status_code == 404


def test_bucket_settings_changed_on_one_worker_apply_on_the_other_at_once(
    workers: dict[int, httpx.Client],
) -> None:
    one, other = workers[0], workers[1]
    assert send_on(one, "PUT", "/settings").status_code == 200
    assert send_on(one, "PUT", "/settings/public", body=b"hello").status_code == 200
    assert other.get("/settings/public").status_code == 403  # anonymous, on the other
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::settings/*",
            }
        ],
    }
    body = json.dumps(policy).encode()
    assert send_on(one, "PUT", "/settings", "policy", body=body).status_code == 204
    assert other.get("/settings/public").content == b"hello"
    assert send_on(one, "DELETE", "/settings", "policy").status_code == 204
    assert other.get("/settings/public").status_code == 403

    # Tags set through one worker are counted by the other's GET (a bucket's first tags).
    tagging = (
        b"<Tagging><TagSet><Tag><Key>team</Key><Value>storage</Value></Tag></TagSet></Tagging>"
    )
    assert send_on(one, "PUT", "/settings/public", "tagging", body=tagging).status_code == 200
    assert send_on(other, "GET", "/settings/public").headers["x-amz-tagging-count"] == "1"

    versioning = (
        b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Status>Enabled</Status></VersioningConfiguration>"
    )
    assert send_on(one, "PUT", "/settings", "versioning", body=versioning).status_code == 200
    put = send_on(other, "PUT", "/settings/versioned", body=b"v1")
    assert put.headers.get("x-amz-version-id", "null") != "null"


def test_the_change_log_follows_commit_order_and_the_clock_never_goes_back(
    node: NodeProcess, workers: dict[int, httpx.Client]
) -> None:
    assert send_on(workers[0], "PUT", "/ordered").status_code == 200

    def put_many(worker: int) -> None:
        client = workers[worker]
        for index in range(60):
            answer = send_on(client, "PUT", f"/ordered/w{worker}-{index}", body=b"x" * index)
            assert answer.status_code == 200

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(put_many, range(WORKERS)))
    with sqlite3.connect(f"file:{node.data_dir / 'meta.db'}?mode=ro", uri=True) as db:
        stamps = [hlc for (hlc,) in db.execute("SELECT hlc FROM changes ORDER BY seq")]
    assert len(stamps) >= 121
    assert all(a < b for a, b in itertools.pairwise(stamps)), "HLC went backwards"


def test_metrics_are_the_node_s_sum_and_background_tasks_run_once(
    node: NodeProcess, workers: dict[int, httpx.Client]
) -> None:
    puts = {"operation": "PutObject", "status": "200"}
    before = sample(metrics(node), "lakenode_s3_requests_total", **puts)
    assert send_on(workers[0], "PUT", "/counted").status_code == 200
    for worker, client in workers.items():
        for index in range(5):
            assert send_on(client, "PUT", f"/counted/{worker}-{index}").status_code == 200
    for client in workers.values():  # the scrape is answered alike through either worker
        assert client.get("/_lakenode/health").status_code == 200
        samples = metrics(node)
        after = sample(samples, "lakenode_s3_requests_total", **puts)
        assert after - before == 5 * WORKERS
        assert sample(samples, "lakenode_workers") == WORKERS
        for task in ("admin", "lifecycle", "pull", "repl-counters", "tombstone-gc"):
            assert sample(samples, "lakenode_background_tasks", task=task) == 1, task


def worker_pids(node: NodeProcess) -> dict[int, int]:
    """worker index -> pid, from the workers' environment."""
    assert node.process is not None
    found = {}
    for child in psutil.Process(node.process.pid).children():
        try:
            index = child.environ().get("LAKENODE_WORKER")
        except psutil.Error:  # a worker that just died: not reaped yet
            continue
        if index is not None:
            found[int(index)] = child.pid
    return found


def test_a_worker_that_dies_is_restarted_and_the_node_goes_on(node: NodeProcess) -> None:
    before = worker_pids(node)
    assert sorted(before) == list(range(WORKERS))
    # The supervisor names its data dir, so that `pkill -f "data-dir DIR"` stops the node.
    assert node.process is not None
    supervisor_argv = psutil.Process(node.process.pid).cmdline()
    assert supervisor_argv[1:5] == ["-m", "node.supervisor", "--data-dir", str(node.data_dir)]
    restarts = sample(metrics(node), "lakenode_worker_restarts_total")
    for index in (1, 0):  # another worker, then the primary
        psutil.Process(before[index]).kill()
        wait_for(
            lambda index=index: (
                index in worker_pids(node)  # type: ignore[misc]
                and worker_pids(node)[index] != before[index]
            ),
            f"worker {index} restarted",
        )
        assert f"worker {index} (pid {before[index]}) died with signal SIGKILL" in node.log()
        wait_for(lambda: _serves(node), "the node serving again")
    samples = metrics(node)
    assert sample(samples, "lakenode_worker_restarts_total") == restarts + 2
    for task in ("admin", "lifecycle", "pull", "tombstone-gc"):
        assert sample(samples, "lakenode_background_tasks", task=task) == 1, task
    wait_for(lambda: (node.data_dir / "admin.sock").exists(), "the admin channel back")


def _serves(node: NodeProcess) -> bool:
    try:
        clients = pinned(node)
    except (httpx.TransportError, AssertionError, KeyError):
        return False
    try:
        return all(send_on(c, "GET", "/").status_code == 200 for c in clients.values())
    finally:
        for client in clients.values():
            client.close()


def lakenode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_maintenance_pauses_the_writes_of_every_worker(
    node: NodeProcess, workers: dict[int, httpx.Client]
) -> None:
    assert send_on(workers[0], "PUT", "/paused").status_code == 200
    data = str(node.data_dir)
    enabled = lakenode("maintenance", "enable", "--data-dir", data)
    assert enabled.returncode == 0, enabled.stderr
    try:
        for client in workers.values():
            refused = send_on(client, "PUT", "/paused/key", body=b"no")
            assert refused.status_code == 503 and b"SlowDown" in refused.content
            assert send_on(client, "GET", "/paused").status_code == 200  # reads go on
            assert client.get("/_lakenode/ready").status_code == 503
    finally:
        disabled = lakenode("maintenance", "disable", "--data-dir", data)
        assert disabled.returncode == 0, disabled.stderr
    for worker, client in workers.items():
        assert send_on(client, "PUT", f"/paused/{worker}", body=b"yes").status_code == 200


def test_after_a_crash_the_node_is_ready_only_once_every_worker_serves(
    tmp_path: Path,
) -> None:
    """A crash leaves the workers' sockets behind: the supervisor must not take them for
    workers that are up. Ready means every worker serves (clients that connect at once then
    spread over all of them), and the primary recovered the data dir before any other worker
    opened it."""
    node = NodeProcess(tmp_path / "data", extra_args=["--workers", str(WORKERS)])
    node.start()
    node.kill()
    assert (node.data_dir / "run" / "worker-0.sock").exists()
    node.start()  # returns at the first 200 from /_lakenode/ready
    try:
        clients = pinned(node)  # no waiting: both answer now
        for client in clients.values():
            client.close()
        second_start = node.log_path.read_text().split("with 2 workers")[-1]
        opened = [line for line in second_start.splitlines() if "store open" in line]
        assert len(opened) == WORKERS and "recovered" in opened[0], second_start
    finally:
        node.stop()
