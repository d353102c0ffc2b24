"""Replication lag and catch-up: ``python -m tests.bench.repl_lag [--quick]``.

Two lakenode sites replicate both ways through fault proxies (tests/integration/sites.py).

1. Steady state: site 0 takes PUTs of 64 KiB objects at a fixed rate (default 100/s); a
   watcher lists site 1 every 10 ms and notes when each key appears. Lag = appearance on site 1
   minus the PUT's acknowledgement on site 0. Reported as p50/p99/max.
2. Partition: the link site 1 pulls through is cut, 10,000 small changes are written on
   site 0, the link is restored, and the time until site 1 lists all of them is measured.

Targets (issue 4, loopback): p99 lag < 1 s at 100 PUT/s of 64 KiB; a 10,000-change backlog
converges in < 30 s. Printed as PASS/FAIL lines; the exit status is 0 unless a run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from tests.bench.http_client import HttpConnection
from tests.bench.payload import Payload
from tests.bench.s3client import Credentials, S3Client, load_signer
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY
from tests.integration.sites import Sites

BUCKET = "lag"
CREDENTIALS = Credentials(ACCESS_KEY, SECRET_KEY)
WATCH_INTERVAL_S = 0.01
BACKLOG_CONCURRENCY = 16


async def _client(url: str) -> S3Client:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = HttpConnection(host, int(port))
    await connection.connect()
    return S3Client(connection, CREDENTIALS, load_signer(), Payload(11), True)


async def steady_state(sites: Sites, rate: float, seconds: float, size: int) -> list[float]:
    """Lags (s) of ``rate * seconds`` PUTs on site 0 as seen on site 1."""
    writer, watcher = await _client(sites.url(0)), await _client(sites.url(1))
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    total = int(rate * seconds)
    done = asyncio.Event()

    async def write() -> None:
        start = time.perf_counter()
        for index in range(total):
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            key = f"steady/{index:07d}"
            await writer.put_object(BUCKET, key, size)
            acked[key] = time.perf_counter()
        done.set()

    async def watch() -> None:
        last = ""
        deadline = None
        while len(seen) < total:
            for key in await watcher.list_keys(BUCKET, "steady/", last):
                seen.setdefault(key, time.perf_counter())
                last = key
            if done.is_set():
                deadline = deadline or time.perf_counter() + 30
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"only {len(seen)} of {total} keys reached site 1")
            await asyncio.sleep(WATCH_INTERVAL_S)

    await asyncio.gather(write(), watch())
    return [seen[key] - acked[key] for key in acked]


async def backlog(sites: Sites, changes: int) -> float:
    """Seconds for site 1 to list ``changes`` keys written on site 0 while cut off."""
    sites.cut(1, 0)
    writers = [await _client(sites.url(0)) for _ in range(BACKLOG_CONCURRENCY)]

    async def write(worker: S3Client, first: int) -> None:
        for index in range(first, changes, BACKLOG_CONCURRENCY):
            await worker.put_object(BUCKET, f"backlog/{index:07d}", 1024)

    await asyncio.gather(*(write(w, i) for i, w in enumerate(writers)))
    watcher = await _client(sites.url(1))
    restored = time.perf_counter()
    sites.restore(1, 0)
    while True:
        count, last = 0, ""
        while True:
            page = await watcher.list_keys(BUCKET, "backlog/", last)
            count += len(page)
            if len(page) < 1000:
                break
            last = page[-1]
        if count >= changes:
            return time.perf_counter() - restored
        if time.perf_counter() - restored > 120:
            raise RuntimeError(f"backlog not converged after 120 s ({count}/{changes})")
        await asyncio.sleep(0.1)


def _wait_for_bucket(sites: Sites) -> None:
    deadline = time.monotonic() + 30
    while BUCKET not in [b["Name"] for b in sites.client(1).list_buckets()["Buckets"]]:
        if time.monotonic() > deadline:
            raise RuntimeError("the bucket did not reach site 1")
        time.sleep(0.05)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(args: argparse.Namespace) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="lakenode-repl-bench-") as root,
        Sites(Path(root), 2) as sites,
    ):
        sites.client(0).create_bucket(Bucket=BUCKET)
        _wait_for_bucket(sites)
        lags = await steady_state(sites, args.rate, args.seconds, args.size)
        catch_up_s = await backlog(sites, args.backlog)
    p50, p99 = statistics.median(lags), _percentile(lags, 0.99)
    print(
        f"steady state: {len(lags)} PUTs of {args.size // 1024} KiB at {args.rate:g}/s: "
        f"lag p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms"
    )
    print(
        f"partition: {args.backlog} changes converged {catch_up_s:.1f} s after the link "
        f"came back ({args.backlog / catch_up_s:,.0f} changes/s)"
    )
    print(f"  {'PASS' if p99 < 1.0 else 'FAIL'}  p99 lag < 1 s at {args.rate:g} PUT/s")
    print(f"  {'PASS' if catch_up_s < 30 else 'FAIL'}  {args.backlog}-change backlog < 30 s")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="PUT/s (100)")
    parser.add_argument("--seconds", type=float, default=20.0, help="steady phase length (20)")
    parser.add_argument("--size", type=int, default=64 * 1024, help="object size (64 KiB)")
    parser.add_argument("--backlog", type=int, default=10_000, help="changes (10,000)")
    parser.add_argument("--quick", action="store_true", help="5 s steady phase, 1,000 changes")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.backlog = 5.0, 1000
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
