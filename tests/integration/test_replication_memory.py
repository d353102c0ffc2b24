"""Replication streams with bounded memory and never re-sends chunks the receiver holds.

Method (acceptance 4 of the replication issue): site B pulls from site A. A 1 GiB object and
then 10,000 small objects are written on A while B's RSS is sampled; B must end with the same
bytes and grow by less than 64 MiB. A copy of the 1 GiB object (which shares its chunks) must
then reach B with almost no bytes received: only the change, no chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from api.sigv4_signing import sign_headers
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.test_memory import (
    BLOCK_BYTES,
    ONE_PROCESS,
    Digests,
    RssSampler,
    generate,
    request,
)
from tests.integration.test_replication_ops import metric

pytestmark = pytest.mark.slow

GIB = 1 << 30
RSS_GROWTH_LIMIT = 64 << 20
REPLICATION_LIMIT_S = 120.0
SMALL_OBJECTS = 10_000


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    a = NodeProcess(tmp_path / "a", extra_args=["--node-id", "site-a", *ONE_PROCESS]).start()
    b_args = ["--node-id", "site-b", "--peer", a.url, *ONE_PROCESS]
    b = NodeProcess(tmp_path / "b", extra_args=b_args).start()
    yield a, b
    b.stop()
    a.stop()


def wait_for_object(node: NodeProcess, key: str, size: int) -> float:
    """Seconds until ``key`` is readable on ``node`` with ``size`` bytes."""
    client, started = make_client(node.url), time.monotonic()
    while time.monotonic() - started < REPLICATION_LIMIT_S:
        try:
            if client.head_object(Bucket="rep", Key=key)["ContentLength"] == size:
                return time.monotonic() - started
        except client.exceptions.ClientError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{key} did not reach {node.url} in {REPLICATION_LIMIT_S} s")


def test_1gib_replicates_with_bounded_memory_and_copies_send_no_chunks(
    pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, b = pair
    assert b.process is not None
    make_client(a.url).create_bucket(Bucket="rep")
    make_client(a.url).put_object(Bucket="rep", Key="warm-up", Body=b"w" * 1000)
    wait_for_object(b, "warm-up", 1000)
    baseline = RssSampler(b.process.pid).rss()

    sent = Digests()
    with RssSampler(b.process.pid) as replicating, httpx.Client(timeout=300) as http:
        put = request(http, "PUT", f"{a.url}/rep/big.bin", {"content-length": str(GIB)},
                      content=generate(GIB, sent))  # fmt: skip
        assert put.status_code == 200, put.text
        seconds = wait_for_object(b, "big.bin", GIB)
    growth = replicating.peak - baseline
    print(f"\n1 GiB replicated {seconds:.1f} s after the PUT; B's RSS +{growth / 2**20:.1f} MiB")
    assert growth < RSS_GROWTH_LIMIT, f"B's RSS grew {growth / 2**20:.1f} MiB"

    received = Digests()
    url = f"{b.url}/rep/big.bin"
    with (
        httpx.Client(timeout=300) as http,
        http.stream(
            "GET", url, headers=sign_headers("GET", url, {}, ACCESS_KEY, SECRET_KEY, REGION)
        ) as got,
    ):
        for piece in got.iter_raw(BLOCK_BYTES):
            received.update(piece)
    assert received.md5.hexdigest() == sent.md5.hexdigest() and received.size == GIB

    before = metric(b, "lakenode_repl_bytes_received_total", peer="site-a") or 0.0
    make_client(a.url).copy_object(
        Bucket="rep", Key="copy.bin", CopySource={"Bucket": "rep", "Key": "big.bin"}
    )
    wait_for_object(b, "copy.bin", GIB)
    after = metric(b, "lakenode_repl_bytes_received_total", peer="site-a") or 0.0
    print(f"copy of 1 GiB replicated with {after - before:,.0f} bytes received")
    assert after - before < 1 << 20  # the change only: its 256 chunks were already on B


def test_10000_small_objects_replicate_with_bounded_memory(
    pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, b = pair
    assert b.process is not None
    make_client(a.url).create_bucket(Bucket="rep")
    make_client(a.url).put_object(Bucket="rep", Key="warm-up", Body=b"w")
    wait_for_object(b, "warm-up", 1)
    baseline = RssSampler(b.process.pid).rss()
    clients = [make_client(a.url) for _ in range(16)]

    def write(worker: int) -> None:
        for index in range(worker, SMALL_OBJECTS, len(clients)):
            clients[worker].put_object(Bucket="rep", Key=f"s/{index:05d}", Body=b"%05d" % index)

    with RssSampler(b.process.pid) as replicating:
        with ThreadPoolExecutor(len(clients)) as pool:
            list(pool.map(write, range(len(clients))))
        seconds = wait_for_object(b, f"s/{SMALL_OBJECTS - 1:05d}", 5)
        on_b = make_client(b.url)
        deadline = time.monotonic() + REPLICATION_LIMIT_S
        while (
            sum(
                page.get("KeyCount", 0)
                for page in on_b.get_paginator("list_objects_v2").paginate(
                    Bucket="rep", Prefix="s/"
                )
            )
            < SMALL_OBJECTS
        ):
            assert time.monotonic() < deadline, "not all small objects reached B"
            time.sleep(0.5)
    growth = replicating.peak - baseline
    print(
        f"\n{SMALL_OBJECTS} objects: last one on B {seconds:.1f} s after the writes; "
        f"B's RSS +{growth / 2**20:.1f} MiB"
    )
    assert growth < RSS_GROWTH_LIMIT
    assert on_b.get_object(Bucket="rep", Key="s/04242")["Body"].read() == b"04242"
