"""Timed phases: N operations spread over C keep-alive workers, bounded by a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.bench.http_client import HttpConnection, HttpProtocolError
from tests.bench.payload import VerificationError
from tests.bench.s3client import RequestFailed, S3Client

OPS = ("PUT", "GET", "HEAD", "LIST", "DELETE")
# Consecutive connection failures after which a worker decides the server is gone.
MAX_CONN_FAILURES = 3
NETWORK_ERRORS = (OSError, asyncio.IncompleteReadError, HttpProtocolError, TimeoutError)

Op = Callable[[S3Client, int], Awaitable[int]]
CpuProbe = Callable[[], float | None]


class ServerGone(Exception):
    """Workers cannot reach the server any more; the target's run is abandoned."""


@dataclass
class Settings:
    """How much work each phase does and how long it may take."""

    ops: int
    big_count: int
    list_ops: int
    phase_seconds: float
    request_timeout: float
    bucket: str = "bench"

    def count_for(self, size: int) -> int:
        # 4 KiB-class objects are counted in operations, 64 MiB-class ones in objects
        # so that total bytes stay bounded.
        return self.ops if size <= (1 << 20) else self.big_count


@dataclass
class PhaseResult:
    op: str
    size: int
    concurrency: int
    planned: int
    ops: int = 0
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    truncated: bool = False
    client_cpu_pct: float = 0.0
    server_cpu_pct: float | None = None
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    error_samples: list[str] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0

    def percentile(self, pct: float) -> float:
        """Nearest-rank percentile of the request latencies, in ms."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["latencies_ms"]
        data.update(
            ops_per_s=round(self.ops_per_s, 2),
            mb_per_s=round(self.mb_per_s, 2),
            p50_ms=round(self.percentile(50), 3),
            p99_ms=round(self.percentile(99), 3),
        )
        return data


@dataclass
class RunState:
    """What one target's run accumulates across phases."""

    results: list[PhaseResult] = field(default_factory=list)
    verification_failures: list[str] = field(default_factory=list)


class _Phase:
    """Shared state of the workers of one phase."""

    def __init__(self, result: PhaseResult, deadline: float, state: RunState) -> None:
        self.result = result
        self.deadline = deadline
        self.state = state
        self.indices: Iterator[int] = iter(range(result.planned))
        self.done: list[int] = []

    def next_index(self) -> int | None:
        if time.monotonic() >= self.deadline:
            self.result.truncated = True
            return None
        return next(self.indices, None)

    def record_error(self, message: str) -> None:
        self.result.errors += 1
        if len(self.result.error_samples) < 5:
            self.result.error_samples.append(message)


async def _worker(client: S3Client, op: Op, phase: _Phase, timeout: float) -> None:
    conn_failures = 0
    while (index := phase.next_index()) is not None:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                nbytes = await op(client, index)
        except VerificationError as exc:
            phase.record_error(str(exc))
            phase.state.verification_failures.append(str(exc))
            continue
        except RequestFailed as exc:
            phase.record_error(str(exc))
            continue
        except NETWORK_ERRORS as exc:
            phase.record_error(f"{type(exc).__name__}: {exc}")
            client.conn.drop()  # its state is unknown; the next request reconnects
            conn_failures += 1
            if conn_failures >= MAX_CONN_FAILURES:
                raise ServerGone(f"{phase.result.op}: {type(exc).__name__}: {exc}") from exc
            continue
        conn_failures = 0
        phase.result.latencies_ms.append((time.perf_counter() - start) * 1000)
        phase.result.ops += 1
        phase.result.bytes += nbytes
        phase.done.append(index)


async def run_phase(
    clients: list[S3Client],
    op: Op,
    result: PhaseResult,
    settings: Settings,
    state: RunState,
    server_cpu: CpuProbe | None,
) -> list[int]:
    """Run one phase; returns the indices whose operation succeeded."""
    phase = _Phase(result, time.monotonic() + settings.phase_seconds, state)
    cpu0, srv0, wall0 = time.process_time(), _probe(server_cpu), time.perf_counter()
    workers = [_worker(c, op, phase, settings.request_timeout) for c in clients]
    try:
        await asyncio.gather(*workers)
    finally:
        result.seconds = time.perf_counter() - wall0
        result.client_cpu_pct = 100 * (time.process_time() - cpu0) / result.seconds
        srv1 = _probe(server_cpu)
        if srv0 is not None and srv1 is not None:
            result.server_cpu_pct = 100 * (srv1 - srv0) / result.seconds
        state.results.append(result)
    return sorted(phase.done)


def _probe(server_cpu: CpuProbe | None) -> float | None:
    return server_cpu() if server_cpu is not None else None


def object_key(size: int, concurrency: int, index: int) -> str:
    return f"s{size}-c{concurrency}/obj-{index:06d}"


async def run_matrix_cell(
    clients: list[S3Client],
    size: int,
    settings: Settings,
    state: RunState,
    server_cpu: CpuProbe | None,
) -> None:
    """PUT, GET, HEAD, LIST, DELETE for one (size, concurrency)."""
    conc = len(clients)
    bucket = settings.bucket
    count = settings.count_for(size)

    def key(index: int) -> str:
        return object_key(size, conc, index)

    async def put(c: S3Client, i: int) -> int:
        return await c.put_object(bucket, key(i), size)

    async def phase(name: str, op: Op, planned: int) -> list[int]:
        result = PhaseResult(name, size, conc, planned)
        done = await run_phase(clients, op, result, settings, state, server_cpu)
        _say(result)
        return done

    stored = await phase("PUT", put, count)
    if not stored:
        return

    # GET and HEAD cycle over whatever PUT managed to store before its deadline.
    def stored_key(i: int) -> str:
        return key(stored[i % len(stored)])

    async def get(c: S3Client, i: int) -> int:
        return await c.get_object(bucket, stored_key(i), size)

    async def head(c: S3Client, i: int) -> int:
        return await c.head_object(bucket, stored_key(i), size)

    async def list_(c: S3Client, _: int) -> int:
        return await c.list_objects(bucket)

    async def delete(c: S3Client, i: int) -> int:
        return await c.delete_object(bucket, stored_key(i))

    await phase("GET", get, count)
    await phase("HEAD", head, count)
    await phase("LIST", list_, settings.list_ops)
    await phase("DELETE", delete, len(stored))


def _say(r: PhaseResult) -> None:
    note = " (deadline hit)" if r.truncated else ""
    errors = f" errors={r.errors}" if r.errors else ""
    print(
        f"    {r.op:<6} {r.ops:>6}/{r.planned:<6} {r.ops_per_s:>9.1f} ops/s "
        f"{r.mb_per_s:>8.1f} MB/s  p50 {r.percentile(50):7.2f} ms  "
        f"p99 {r.percentile(99):7.2f} ms{errors}{note}",
        flush=True,
    )
    for sample in r.error_samples[:2]:
        print(f"      ! {sample}", flush=True)


async def open_clients(
    host: str, port: int, count: int, make: Callable[[HttpConnection], S3Client]
) -> list[S3Client]:
    """Connections are opened before the clock starts, so no phase pays for handshakes."""
    conns = [HttpConnection(host, port) for _ in range(count)]
    await asyncio.gather(*(c.connect() for c in conns))
    return [make(c) for c in conns]


async def close_clients(clients: list[S3Client]) -> None:
    await asyncio.gather(*(c.conn.close() for c in clients))
