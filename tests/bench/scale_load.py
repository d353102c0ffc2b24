"""Client side of the scale benchmark: the fill, the PUT/GET probes and the LIST probes.

All of it runs on the cheap bench client (http_client.py + s3client.py) over keep-alive
connections opened before any clock starts.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from xml.sax.saxutils import unescape

from tests.bench import scale_layout as layout
from tests.bench.http_client import HttpConnection
from tests.bench.payload import Payload
from tests.bench.s3client import Credentials, S3Client, load_signer
from tests.bench.scale_node import ACCESS_KEY, SECRET_KEY

CREDENTIALS = Credentials(ACCESS_KEY, SECRET_KEY)
PAYLOAD_SEED = 7
PROBE_SIZE = 4096
_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")


async def clients(port: int, count: int) -> list[S3Client]:
    payload, signer = Payload(PAYLOAD_SEED), load_signer()
    made = []
    for _ in range(count):
        connection = HttpConnection("127.0.0.1", port)
        await connection.connect()
        made.append(S3Client(connection, CREDENTIALS, signer, payload, True))
    return made


async def close(made: Iterable[S3Client]) -> None:
    for client in made:
        await client.conn.close()


async def _spread(
    made: list[S3Client], items: list[int], op: Callable[[S3Client, int], Awaitable[int]]
) -> tuple[float, int]:
    """Run ``op`` once per item over all clients; (seconds, bytes)."""
    moved = 0

    async def worker(client: S3Client, first: int) -> None:
        nonlocal moved
        for item in items[first :: len(made)]:
            got = await op(client, item)  # not `moved += await ...`: that reads moved first
            moved += got

    started = time.perf_counter()
    await asyncio.gather(*(worker(client, n) for n, client in enumerate(made)))
    return time.perf_counter() - started, moved


async def create_buckets(port: int) -> None:
    (client,) = await clients(port, 1)
    for bucket in layout.BUCKETS:
        status = await client.create_bucket(bucket)
        if status not in (200, 409):
            raise RuntimeError(f"create bucket {bucket}: HTTP {status}")
    await close([client])


@dataclass
class Fill:
    objects: int
    seconds: float
    bytes: int


async def fill(port: int, first: int, last: int, concurrency: int) -> Fill:
    """PUT fill objects ``first`` .. ``last - 1``, printing progress every 10 s."""
    made = await clients(port, concurrency)
    done = 0
    started = time.perf_counter()

    async def put(client: S3Client, index: int) -> int:
        nonlocal done
        bucket, key = layout.location(index)
        moved = await client.put_object(bucket, key, layout.size(index))
        done += 1
        return moved

    async def progress() -> None:
        while True:
            await asyncio.sleep(10)
            rate = done / (time.perf_counter() - started)
            print(f"  fill: {first + done:,} objects, {rate:,.0f}/s", flush=True)

    reporter = asyncio.create_task(progress())
    try:
        seconds, moved = await _spread(made, list(range(first, last)), put)
    finally:
        reporter.cancel()
    await close(made)
    return Fill(last - first, seconds, moved)


async def put_get_probe(port: int, objects: int, ops: int, concurrency: int, tag: str) -> dict:
    """4 KiB PUT ops/s (new keys in the probe bucket), then GET ops/s of random small fill
    objects, each read once (every byte verified): the best of two rounds each, to damp the
    shared machine. Run on a freshly started node, so GETs miss its cache at every size (a
    commit fills the cache: right after the fill, 10,000 objects would all be cached).

    Each GET round is then read again (``get_warm_ops_s``): by then the operating system's page
    cache holds those objects' segment and catalog pages. A small store is all in the page
    cache anyway, a big one mostly is not, so the first reading also measures the disk; the
    second measures lakenode's own cost per GET at that size."""
    made = await clients(port, concurrency)
    put_rates, get_rates, warm_rates = [], [], []
    reads = layout.small_indexes(objects, 2 * ops, seed=objects)
    for round_ in range(2):
        prefix = f"{tag}/r{round_}"
        seconds, _ = await _spread(made, list(range(ops)), partial(_put_probe, prefix=prefix))
        put_rates.append(ops / seconds)
        picks = reads[round_ * ops : (round_ + 1) * ops]
        seconds, _ = await _spread(made, picks, _get_fill_object)
        get_rates.append(ops / seconds)
        seconds, _ = await _spread(made, picks, _get_fill_object)
        warm_rates.append(ops / seconds)
    await close(made)
    return {"put_ops_s": max(put_rates), "get_ops_s": max(get_rates),
            "get_warm_ops_s": max(warm_rates), "put_rounds": put_rates,
            "get_rounds": get_rates, "get_warm_rounds": warm_rates}  # fmt: skip


async def _put_probe(client: S3Client, n: int, prefix: str) -> int:
    return await client.put_object(layout.PROBE, f"{prefix}/{n:06d}", PROBE_SIZE)


async def _get_fill_object(client: S3Client, index: int) -> int:
    bucket, key = layout.location(index)
    return await client.get_object(bucket, key, layout.size(index))


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    }


async def _timed_lists(
    client: S3Client, params: dict[str, str], count: int, expect: int
) -> dict[str, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        body = await client.list_page(layout.BIG, params)
        samples.append(time.perf_counter() - started)
    entries = body.count(b"<Key>") + body.count(b"<CommonPrefixes>")
    if entries < expect:
        raise RuntimeError(f"LIST {params}: {entries} entries, expected at least {expect}")
    return _percentiles(samples)


async def list_probe(port: int, objects: int, count: int) -> dict:
    """p50/p99 of the first page, the page at 90% of bucket big (continuation token) and a
    delimiter listing of the wide prefix; max-keys 1000, one request at a time."""
    (client,) = await clients(port, 1)
    keys = layout.big_keys(objects)
    far = keys[int(0.9 * len(keys))]
    body = await client.list_page(layout.BIG, {"max-keys": "1", "start-after": far})
    token = _TOKEN.search(body)
    if token is None:
        raise RuntimeError(f"no continuation token after {far!r}: {body[:300]!r}")
    page = {"max-keys": "1000"}
    expect = min(1000, len(keys) - int(0.9 * len(keys)) - 2)  # after far and the next key
    deep = {**page, "continuation-token": unescape(token.group(1).decode())}
    result = {
        "first": await _timed_lists(client, page, count, min(1000, len(keys))),
        "deep": await _timed_lists(client, deep, count, expect),
        "delimiter": await _timed_lists(
            client, {**page, "prefix": layout.WIDE_PREFIX, "delimiter": "/"}, count, 1
        ),
        "deep_after_key": far,
    }
    await close([client])
    return result


async def write_differences(port: int, tag: str, count: int) -> None:
    """``count`` new 1 KiB objects on one node only: validate must find exactly these."""
    made = await clients(port, 4)
    await _spread(
        made, list(range(count)), lambda c, n: c.put_object(layout.PROBE, f"{tag}/{n:04d}", 1024)
    )
    await close(made)
