"""A real Prometheus server scrapes two replicating nodes; its HTTP API must see the series.

This checks the exposition format as Prometheus itself parses it (not our parser), and that
the request, storage and replication-lag series dashboards and alert rules are written
against exist for both nodes. Prometheus is the Debian package `prometheus` (.ci/run
installs it when missing; without it the test fails in CI and is skipped elsewhere).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess, free_port, two_way_pair
from tests.integration.programs import require_program

SERIES_TIMEOUT_S = 30.0


@pytest.fixture
def prometheus_binary() -> str:
    return require_program("prometheus")


def start_prometheus(
    binary: str, root: Path, targets: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    config = root / "prometheus.yml"
    quoted = ", ".join(f"'{target}'" for target in targets)
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: lakenode\n"
        "    metrics_path: /_lakenode/metrics\n"
        f"    static_configs:\n      - targets: [{quoted}]\n"
    )
    port = free_port()
    log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process, f"http://127.0.0.1:{port}"


def instances(api: str, query: str) -> set[str]:
    """The ``instance`` labels of the series ``query`` returns now (empty if none yet)."""
    try:
        answer = httpx.get(f"{api}/api/v1/query", params={"query": query}, timeout=5)
    except httpx.TransportError:
        return set()  # still starting
    if answer.status_code != 200:
        return set()
    return {row["metric"]["instance"] for row in answer.json()["data"]["result"]}


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    a, b = two_way_pair(tmp_path)
    yield a, b
    a.stop()
    b.stop()


def test_prometheus_scrapes_request_storage_and_lag_series(
    prometheus_binary: str, pair: tuple[NodeProcess, NodeProcess], tmp_path: Path
) -> None:
    a, b = pair
    targets = [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
    process, api = start_prometheus(prometheus_binary, tmp_path, targets)
    try:
        for node in (a, b):
            s3 = make_client(node.url)
            bucket = f"prom-{node.data_dir.name}"
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="k", Body=b"scraped" * 100)
            s3.get_object(Bucket=bucket, Key="k")["Body"].read()
        queries = {
            "requests": 'lakenode_s3_requests_total{operation="PutObject",status="200"}',
            "latency": "lakenode_s3_request_duration_seconds_bucket",
            "storage": "lakenode_storage_live_bytes",
            "disk": "lakenode_disk_free_bytes",
            "fsync": "lakenode_fsync_duration_seconds_count",
            "lag": "lakenode_repl_lag_seconds",
            "up": "up == 1",
        }
        deadline = time.monotonic() + SERIES_TIMEOUT_S
        missing = dict(queries)
        while missing and time.monotonic() < deadline:
            for name, query in list(missing.items()):
                if instances(api, query) == set(targets):
                    del missing[name]
            time.sleep(0.5)
        assert not missing, (
            f"series not seen for both nodes after {SERIES_TIMEOUT_S} s: {missing}\n"
            + (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
        )
        # The lag series is per peer: each node reports the other.
        peers = httpx.get(
            f"{api}/api/v1/query", params={"query": "lakenode_repl_lag_seconds"}, timeout=5
        ).json()["data"]["result"]
        assert {(row["metric"]["instance"], row["metric"]["peer"]) for row in peers} == {
            (targets[0], "node-b"),
            (targets[1], "node-a"),
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
