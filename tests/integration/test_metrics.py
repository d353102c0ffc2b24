"""/_lakenode/metrics on a real node: S3 requests, storage, commits, job rows, --metrics-listen.

Method: a fresh node (so every count starts at zero) gets a known mix of requests, including
refused and unroutable ones, and the exposition text must count exactly those; state rows are
written into the catalog the way the operator tools write them; storage usage is checked
after a restart (it is computed at start, then every 30 s).
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess, free_port
from tests.integration.s3util import send
from tests.integration.test_config import assert_one_line_error, clean_env, run_serve

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base_url: str) -> Samples:
    answer = httpx.get(f"{base_url}/_lakenode/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@dataclass
class Observed:
    node: NodeProcess
    metrics_url: str  # --metrics-listen


@pytest.fixture
def observed(tmp_path: Path) -> Iterator[Observed]:
    metrics_port = free_port()
    listen = ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    process = NodeProcess(tmp_path / "data", extra_args=listen).start()
    yield Observed(process, f"http://127.0.0.1:{metrics_port}")
    process.stop()


def test_requests_are_counted_by_operation_and_status(observed: Observed) -> None:
    node = observed.node
    s3 = make_client(node.url)
    s3.create_bucket(Bucket="counted")
    for index in range(3):
        s3.put_object(Bucket="counted", Key=f"k{index}", Body=b"x" * 10_000)
    assert s3.get_object(Bucket="counted", Key="k0")["Body"].read() == b"x" * 10_000
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="counted", Key="missing")
    forged = (
        "AWS4-HMAC-SHA256 Credential=nobody/20240101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=00"
    )
    denied = httpx.get(f"{node.url}/counted?list-type=2", headers={"Authorization": forged})
    assert denied.status_code == 403
    unroutable = send(node.url, "GET", "/counted?website")  # a sub-resource not served
    assert unroutable.status_code == 501

    samples = scrape(observed.metrics_url)
    requests = {
        (dict(labels)["operation"], dict(labels)["status"]): count
        for (name, labels), count in samples.items()
        if name == "lakenode_s3_requests_total"
    }
    assert requests == {
        ("CreateBucket", "200"): 1,
        ("PutObject", "200"): 3,
        ("GetObject", "200"): 1,
        ("GetObject", "404"): 1,
        ("ListObjectsV2", "403"): 1,  # refused before authentication: still its operation
        ("Unknown", "501"): 1,
    }
    assert value(samples, "lakenode_s3_request_duration_seconds_count", operation="GetObject") == 2
    assert value(samples, "lakenode_s3_request_duration_seconds_bucket",
                 operation="PutObject", le="+Inf") == 3  # fmt: skip
    assert value(samples, "lakenode_s3_received_bytes_total") >= 30_000  # type: ignore[operator]
    assert value(samples, "lakenode_s3_sent_bytes_total") >= 10_000  # type: ignore[operator]
    assert value(samples, "lakenode_s3_requests_in_flight") == 0
    # One group commit per sequential mutation: the bucket and three objects.
    assert value(samples, "lakenode_commit_batch_size_count") == 4
    assert value(samples, "lakenode_commit_batch_size_sum") == 4
    assert value(samples, "lakenode_fsync_duration_seconds_count") >= 4  # type: ignore[operator]
    assert value(samples, "lakenode_build_info", version=version("lakenode")) == 1
    assert value(samples, "lakenode_maintenance_mode") == 0
    free, total = (value(samples, f"lakenode_disk_{kind}_bytes") for kind in ("free", "total"))
    assert free is not None and total is not None and 0 < free <= total
    # The S3 port serves the same registry.
    again = scrape(node.url)
    assert value(again, "lakenode_s3_requests_total", operation="PutObject", status="200") == 3


def test_metrics_address_serves_only_probes_and_metrics(observed: Observed) -> None:
    base = observed.metrics_url
    assert httpx.get(f"{base}/_lakenode/health", timeout=5).json() == {"status": "ok"}
    assert httpx.get(f"{base}/_lakenode/ready", timeout=5).json()["ready"] is True
    assert send(base, "GET", "/").status_code == 404  # no S3 here
    for _connection in range(20):  # each on a new connection: whichever worker accepts it
        assert send(base, "GET", "/_lakenode/repl/info").status_code == 404  # nor replication
    samples = scrape(base)
    assert value(samples, "lakenode_s3_requests_total", operation="ListBuckets",
                 status="200") is None  # fmt: skip


def write_meta(data_dir: Path, rows: dict[str, str]) -> None:
    """As the operator tools do: rows of ``meta``, beside the running node."""
    conn = sqlite3.connect(data_dir / "meta.db", timeout=10)
    try:
        with conn:
            for name, text in rows.items():
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (name, text),
                )
    finally:
        conn.close()


def test_job_rows_and_maintenance_are_read_at_scrape_time(observed: Observed) -> None:
    node = observed.node
    before = scrape(node.url)
    # Never ran: the series exist (dashboards and alerts see them) and read 0.
    assert value(before, "lakenode_scrub_progress_ratio") == 0
    assert value(before, "lakenode_scrub_last_finished_timestamp_seconds") == 0
    scrub = {"started_ms": 1_700_000_000_000, "finished_ms": 1_700_000_360_500,
             "done_ratio": 1.0, "checked_bytes": 123456, "checked_chunks": 9,
             "corrupt_chunks": 2, "corrupt_objects": 1}  # fmt: skip
    gc = {"started_ms": 1_700_000_400_000, "finished_ms": None, "done_ratio": 0.25,
          "reclaimed_bytes": 4096, "segments_rewritten": 3}  # fmt: skip
    enabled = json.dumps({"enabled": True, "changed_ms": 1})
    write_meta(node.data_dir, {"job:scrub": json.dumps(scrub), "job:gc": json.dumps(gc),
                               "maintenance": enabled})  # fmt: skip
    samples = scrape(node.url)
    assert value(samples, "lakenode_scrub_progress_ratio") == 1.0
    assert value(samples, "lakenode_scrub_checked_bytes") == 123456
    assert value(samples, "lakenode_scrub_corrupt_chunks") == 2
    assert value(samples, "lakenode_scrub_corrupt_objects") == 1
    assert value(samples, "lakenode_scrub_last_finished_timestamp_seconds") == 1_700_000_360.5
    assert value(samples, "lakenode_gc_progress_ratio") == 0.25
    assert value(samples, "lakenode_gc_reclaimed_bytes") == 4096
    assert value(samples, "lakenode_gc_segments_rewritten") == 3
    assert value(samples, "lakenode_gc_last_finished_timestamp_seconds") == 0  # running
    assert value(samples, "lakenode_maintenance_mode") == 1
    write_meta(node.data_dir, {"maintenance": json.dumps({"enabled": False, "changed_ms": 2})})
    assert value(scrape(node.url), "lakenode_maintenance_mode") == 0


def test_storage_usage_after_restart(observed: Observed) -> None:
    node = observed.node
    s3 = make_client(node.url)
    s3.create_bucket(Bucket="usage")
    for index in range(5):
        s3.put_object(Bucket="usage", Key=f"k{index}", Body=bytes([index]) * 20_000)
    s3.delete_object(Bucket="usage", Key="k4")
    node.stop()
    node.start()  # usage is computed at start
    samples = scrape(node.url)
    assert value(samples, "lakenode_storage_objects") == 4
    live = value(samples, "lakenode_storage_live_bytes")
    assert live is not None and 80_000 <= live < 81_000  # four 20 kB chunks (+ record headers)
    segment_bytes = value(samples, "lakenode_storage_segment_bytes")
    garbage = value(samples, "lakenode_storage_garbage_bytes")
    assert segment_bytes == sum(p.stat().st_size for p in node.data_dir.glob("segments/*.seg"))
    assert garbage == segment_bytes - live  # type: ignore[operator]
    assert garbage >= 20_000  # type: ignore[operator]  # the deleted object's bytes
    assert value(samples, "lakenode_storage_segments") == 1  # a restart adds no empty segment


def test_busy_metrics_address_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data, listen = str(tmp_path / "data"), f"127.0.0.1:{free_port()}"
        metrics = f"127.0.0.1:{port}"
        result = run_serve(["--data-dir", data, "--listen", listen, "--metrics-listen", metrics])
    assert result.returncode == 1
    assert f"cannot listen on --metrics-listen 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_listen_flag_and_env_are_checked(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    same = run_serve([*data, "--listen", "127.0.0.1:9555", "--metrics-listen", "127.0.0.1:9555"])
    assert "must differ" in assert_one_line_error(same, "--metrics-listen")
    from_env = run_serve(data, env=clean_env(LAKENODE_METRICS_LISTEN="nowhere"))
    assert_one_line_error(from_env, "--metrics-listen (from LAKENODE_METRICS_LISTEN)")
