"""Cold-cache small GETs: ``python -m tests.bench.cold_reads [--objects N]``.

The main benchmark reads objects right after writing them, which the node answers from its
commit-filled manifest cache. This measures the other case: N distinct 4 KiB objects are
written, the node is restarted (empty cache), and each object is read exactly once at
concurrency 16, so every GET looks its metadata up in SQLite. Every byte is verified.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from tests.bench.http_client import HttpConnection
from tests.bench.payload import Payload
from tests.bench.s3client import Credentials, S3Client, load_signer
from tests.bench.servers import HOST, start_lakenode, stop

CONCURRENCY = 16
SIZE = 4096
BUCKET = "cold"
CREDENTIALS = Credentials("benchkey", "benchsecret")


async def _clients(port: int, payload: Payload) -> list[S3Client]:
    clients = []
    for _ in range(CONCURRENCY):
        connection = HttpConnection(HOST, port)
        await connection.connect()
        clients.append(S3Client(connection, CREDENTIALS, load_signer(), payload, True))
    return clients


async def _run(port: int, objects: int, operation: str) -> float:
    """Run ``operation`` once per object on CONCURRENCY connections; return ops/s."""
    clients = await _clients(port, Payload(7))
    if operation == "put":
        await clients[0].create_bucket(BUCKET)

    async def worker(client: S3Client, first: int) -> None:
        for index in range(first, objects, CONCURRENCY):
            if operation == "put":
                await client.put_object(BUCKET, f"k{index}", SIZE)
            else:
                await client.get_object(BUCKET, f"k{index}", SIZE)

    started = time.perf_counter()
    await asyncio.gather(*(worker(c, i) for i, c in enumerate(clients)))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.conn.close()
    return objects / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lakenode-cold-"))
    try:
        target = start_lakenode(workdir, CREDENTIALS.access_key, CREDENTIALS.secret_key)
        put_rate = asyncio.run(_run(target.port, args.objects, "put"))
        stop(target)
        target = start_lakenode(
            workdir, CREDENTIALS.access_key, CREDENTIALS.secret_key, reuse_data=True
        )
        get_rate = asyncio.run(_run(target.port, args.objects, "get"))
        stop(target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"4 KiB c={CONCURRENCY}: PUT {put_rate:,.0f} ops/s, cold GET {get_rate:,.0f} ops/s "
        f"({args.objects} distinct objects, node restarted in between, bytes verified)"
    )


if __name__ == "__main__":
    main()
