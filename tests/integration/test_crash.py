"""Crash safety: SIGKILL the node under concurrent PUT/DELETE traffic, restart, verify.

Acceptance: "kill -9 the node repeatedly while 8 clients PUT and DELETE; after each restart
every acknowledged PUT reads back byte-identical and every acknowledged DELETE stays deleted."

Every worker owns its own keys, so the state each key must be in is well defined. Per key a
ledger holds the last state the node acknowledged (2xx received) and, when the node died
mid-request, the state that request would have produced: its outcome is unknown, so after the
restart the key may show either, and nothing else. Every PUT carries its generation in the
body and in ``x-amz-meta-gen``, and its bytes are recomputed from (key, generation, size), so
an older version of a key cannot pass for the acknowledged one.

Randomness is seeded; the seed is printed and quoted in every failure. Replay a run with
``LAKENODE_CRASH_SEED=<seed>`` (thread scheduling and kill timing relative to requests still
vary). ``LAKENODE_CRASH_CYCLES`` sets the number of kill/restart cycles (default 5).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest

from api.sigv4_signing import sign_headers
from storage.segments import RECORD_HEADER, RecordKind
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

WORKERS = 8
KEYS_PER_WORKER = 6
CYCLES = int(os.environ.get("LAKENODE_CRASH_CYCLES", "5"))
SEED = int(os.environ.get("LAKENODE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
BUCKET = "crash"
# Small segments, so that traffic rotates segments and restarts meet sealed, unsealed and
# freshly created segment files.
SEGMENT_SIZE = "32MiB"
KILL_DELAY_S = (0.3, 1.5)
DELETE_PROBABILITY = 0.25
REQUEST_TIMEOUT_S = 60.0
# storage/segments.py logs this when bytes a commit declared durable are gone or damaged.
LOST_DATA_MESSAGE = "committed bytes up to"


def seeded(message: str) -> str:
    return f"[seed {SEED}; replay with LAKENODE_CRASH_SEED={SEED}] {message}"


# ---- object contents ------------------------------------------------------------------------


def body_for(key: str, gen: int, size: int) -> bytes:
    """The bytes of generation ``gen`` of ``key``: recomputable, distinct per generation."""
    prefix = f"{key}@{gen}:".encode()
    filler = blake3.blake3(prefix).digest(length=max(size - len(prefix), 0))
    return (prefix + filler)[:size]


def pick_size(rng: random.Random) -> int:
    """0 B to 9 MiB, weighted to small objects; some span two or three 4 MiB chunks."""
    roll = rng.random()
    if roll < 0.08:
        return 0
    if roll < 0.45:
        return rng.randint(1, 64 * 1024)
    if roll < 0.70:
        return rng.randint(64 * 1024, 1 << 20)
    if roll < 0.88:
        return rng.randint(1 << 20, 4 << 20)
    return rng.randint(4 << 20, 9 << 20)


@dataclass(frozen=True)
class State:
    """What a key holds: generation ``gen`` of ``size`` bytes, or nothing (gen None)."""

    gen: int | None = None
    size: int = 0

    def __str__(self) -> str:
        return "absent" if self.gen is None else f"gen {self.gen} ({self.size} B)"


ABSENT = State()


@dataclass
class KeyLedger:
    acked: State = ABSENT  # last state acknowledged by the node (or verified after a restart)
    unknown: State | None = None  # state of a request whose answer was lost in the crash
    next_gen: int = 1

    def allowed(self) -> list[State]:
        return [self.acked] if self.unknown is None else [self.acked, self.unknown]


@dataclass
class CycleStats:
    acked_puts: int = 0
    acked_deletes: int = 0
    unknown: int = 0
    interrupted: int = 0  # requests sent before the kill that got no answer
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


# ---- raw signed requests ------------------------------------------------------------------


def object_url(node: NodeProcess, key: str) -> str:
    return f"{node.url}/{BUCKET}/{key}"


def signed(method: str, url: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return sign_headers(method, url, headers or {}, ACCESS_KEY, SECRET_KEY, REGION)


def put(client: httpx.Client, node: NodeProcess, key: str, gen: int, body: bytes) -> httpx.Response:
    url = object_url(node, key)
    headers = {
        "content-md5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        "x-amz-meta-gen": str(gen),
    }
    return client.put(url, content=body, headers=signed("PUT", url, headers))


def delete(client: httpx.Client, node: NodeProcess, key: str) -> httpx.Response:
    url = object_url(node, key)
    return client.delete(url, headers=signed("DELETE", url))


def get(client: httpx.Client, node: NodeProcess, key: str) -> httpx.Response:
    url = object_url(node, key)
    return client.get(url, headers=signed("GET", url))


# ---- traffic --------------------------------------------------------------------------------


def run_worker(
    node: NodeProcess,
    ledgers: dict[str, KeyLedger],
    rng: random.Random,
    stats: CycleStats,
    killed: threading.Event,
) -> None:
    """PUT and DELETE this worker's keys until the node goes away."""
    keys = sorted(ledgers)
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        while True:
            key = rng.choice(keys)
            ledger = ledgers[key]
            if rng.random() < DELETE_PROBABILITY:
                target = ABSENT
            else:
                target = State(ledger.next_gen, pick_size(rng))
                ledger.next_gen += 1
            ledger.unknown = target  # until the node answers
            sent_before_kill = not killed.is_set()
            try:
                if target.gen is None:
                    response = delete(client, node, key)
                else:
                    response = put(
                        client, node, key, target.gen, body_for(key, target.gen, target.size)
                    )
            except httpx.TransportError:
                with stats.lock:
                    stats.unknown += 1
                    stats.interrupted += sent_before_kill
                return  # the node is gone; this request's outcome stays unknown
            expected_status = 204 if target.gen is None else 200
            if response.status_code != expected_status:
                with stats.lock:
                    stats.errors.append(
                        f"{key}: {'DELETE' if target.gen is None else 'PUT'} {target} answered "
                        f"{response.status_code}: {response.text[:300]}"
                    )
                return  # outcome left unknown; the error fails the test
            if target.gen is not None:
                body = body_for(key, target.gen, target.size)
                etag = response.headers.get("etag")
                if etag != f'"{hashlib.md5(body).hexdigest()}"':
                    with stats.lock:
                        stats.errors.append(f"{key}: PUT {target} answered ETag {etag}")
                    return
            ledger.acked, ledger.unknown = target, None
            with stats.lock:
                if target.gen is None:
                    stats.acked_deletes += 1
                else:
                    stats.acked_puts += 1


# ---- verification ---------------------------------------------------------------------------


def first_difference(got: bytes, want: bytes) -> int:
    for index, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return index
    return min(len(got), len(want))


def verify_key(
    client: httpx.Client, node: NodeProcess, key: str, ledger: KeyLedger
) -> tuple[State | None, str | None, list[str]]:
    """Read ``key`` back; return (observed state, its ETag, problems)."""
    allowed = ledger.allowed()
    expected = " or ".join(str(state) for state in allowed)
    response = get(client, node, key)
    if response.status_code == 404:
        if "<Code>NoSuchKey</Code>" not in response.text:
            return None, None, [f"{key}: 404 without NoSuchKey: {response.text[:300]}"]
        if ABSENT not in allowed:
            return ABSENT, None, [f"{key}: LOST — reads back absent, expected {expected}"]
        return ABSENT, None, []
    if response.status_code != 200:
        return None, None, [f"{key}: GET answered {response.status_code}: {response.text[:300]}"]
    data = response.content
    try:
        gen = int(response.headers["x-amz-meta-gen"])
    except (KeyError, ValueError):
        return None, None, [f"{key}: GET without a valid x-amz-meta-gen: {response.headers}"]
    observed = State(gen, len(data))
    problems = []
    if observed not in allowed:
        what = "RESURRECTED" if allowed == [ABSENT] else "WRONG VERSION"
        problems.append(f"{key}: {what} — reads back {observed}, expected {expected}")
    want = body_for(key, gen, len(data))
    if data != want:
        offset = first_difference(data, want)
        problems.append(f"{key}: {observed} bytes differ from what was written at {offset}")
    etag = response.headers.get("etag", "")
    if etag != f'"{hashlib.md5(want).hexdigest()}"':
        problems.append(f"{key}: {observed} has ETag {etag}, not the MD5 of its bytes")
    return observed, etag, problems


def storage_log(node: NodeProcess, lines: int = 40) -> str:
    """The node's own log lines (not the access log), last ``lines`` of them."""
    text = node.log_path.read_text(errors="replace") if node.log_path.exists() else ""
    kept = [line for line in text.splitlines() if not line.startswith('{"time"')]
    return "\n".join(kept[-lines:])


def list_bucket(s3: Any) -> dict[str, tuple[int, str]]:
    listed: dict[str, tuple[int, str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for entry in page.get("Contents", []):
            listed[entry["Key"]] = (entry["Size"], entry["ETag"])
    return listed


def verify_all(node: NodeProcess, s3: Any, ledgers: dict[str, KeyLedger]) -> tuple[int, list[str]]:
    """Check every key against its ledger and the listing; settle ledgers to what was seen.

    Returns the number of objects present and the problems found.
    """
    problems: list[str] = []
    present: dict[str, tuple[int, str]] = {}
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for key in sorted(ledgers):
            ledger = ledgers[key]
            observed, etag, key_problems = verify_key(client, node, key, ledger)
            problems += key_problems
            if observed is None:
                continue
            if observed.gen is not None and etag is not None:
                present[key] = (observed.size, etag)
            # What was read back is now committed: the baseline for the next cycle.
            ledger.acked, ledger.unknown = observed, None
    listed = list_bucket(s3)
    for key in sorted(set(listed) | set(present)):
        if listed.get(key) != present.get(key):
            problems.append(f"{key}: listing shows {listed.get(key)}, GET shows {present.get(key)}")
    return len(present), problems


# ---- the tests ------------------------------------------------------------------------------


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def crash_node(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NodeProcess]:
    """The node as one process, and as a supervisor with two workers (SIGKILL takes them all:
    NodeProcess.kill)."""
    workers = ["--workers", str(request.param)]
    node = NodeProcess(tmp_path / "data", extra_args=["--segment-size", SEGMENT_SIZE, *workers])
    node.start()
    yield node
    node.stop()


def test_acknowledged_writes_survive_repeated_sigkill(crash_node: NodeProcess) -> None:
    node = crash_node
    print(f"\ncrash test seed {SEED}, {CYCLES} cycles (replay with LAKENODE_CRASH_SEED={SEED})")
    rng = random.Random(SEED)
    s3 = make_client(node.url, retries={"max_attempts": 1})
    s3.create_bucket(Bucket=BUCKET)
    workers = [
        {f"w{w}/k{k:02d}": KeyLedger() for k in range(KEYS_PER_WORKER)} for w in range(WORKERS)
    ]
    every_key = {key: ledger for ledgers in workers for key, ledger in ledgers.items()}
    started = time.monotonic()
    totals = CycleStats()
    for cycle in range(1, CYCLES + 1):
        stats = CycleStats()
        killed = threading.Event()
        threads = [
            threading.Thread(
                target=run_worker,
                args=(node, ledgers, random.Random(rng.getrandbits(64)), stats, killed),
                name=f"crash-worker-{w}",
                daemon=True,
            )
            for w, ledgers in enumerate(workers)
        ]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(*KILL_DELAY_S))
        node.kill()
        killed.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT_S)
        assert not any(t.is_alive() for t in threads), seeded("workers hung after the kill")
        assert not stats.errors, seeded(
            f"cycle {cycle}: unexpected answers:\n" + "\n".join(stats.errors)
        )

        node.start()
        log_text = node.log_path.read_text(errors="replace")
        assert LOST_DATA_MESSAGE not in log_text, seeded(
            f"cycle {cycle}: storage reported lost data on restart:\n{storage_log(node)}"
        )
        present, problems = verify_all(node, s3, every_key)
        print(
            f"cycle {cycle}: acked {stats.acked_puts} PUT + {stats.acked_deletes} DELETE, "
            f"{stats.interrupted} interrupted by the kill, {present} objects present after restart"
        )
        assert not problems, seeded(
            f"cycle {cycle}: after kill and restart:\n"
            + "\n".join(problems)
            + f"\n{storage_log(node)}"
        )
        totals.acked_puts += stats.acked_puts
        totals.acked_deletes += stats.acked_deletes
        totals.interrupted += stats.interrupted

    log_text = node.log_path.read_text(errors="replace")
    assert "CRITICAL" not in log_text, seeded(f"storage failure logged:\n{storage_log(node)}")
    # The test must have tested something: acknowledged writes and requests cut by kills.
    assert totals.acked_puts >= CYCLES and totals.acked_deletes > 0, seeded(
        f"too little traffic: {totals}"
    )
    assert totals.interrupted > 0, seeded("no request was ever in flight at a kill")

    # The recovered node takes new writes (and they read back).
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        body = body_for("after/crashes", 1, 5 << 20)
        assert put(client, node, "after/crashes", 1, body).status_code == 200
        response = get(client, node, "after/crashes")
        assert response.status_code == 200 and response.content == body
    print(
        f"crash test: {CYCLES} cycles, {totals.acked_puts} PUT + {totals.acked_deletes} DELETE "
        f"acknowledged, {totals.interrupted} requests interrupted, "
        f"{node.log_path.read_text(errors='replace').count('truncating torn tail')} torn tails "
        f"truncated, {time.monotonic() - started:.1f} s"
    )


def torn_chunk_record(rng: random.Random) -> bytes:
    """A chunk record whose write stopped part way: a valid header, half its payload."""
    payload = rng.randbytes(1 << 20)
    header = RECORD_HEADER.pack(RecordKind.CHUNK, len(payload), blake3.blake3(payload).digest())
    return header + payload[: len(payload) // 2]


@pytest.mark.parametrize("tail", ["random-garbage", "torn-record"])
def test_torn_segment_tail_is_truncated_and_objects_survive(
    crash_node: NodeProcess, tail: str
) -> None:
    node = crash_node
    rng = random.Random(SEED)
    s3 = make_client(node.url)
    s3.create_bucket(Bucket=BUCKET)
    objects = {f"obj/{size}": body_for(f"obj/{size}", 1, size) for size in (0, 1, 70_000, 9 << 20)}
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    node.stop()

    segments = sorted((node.data_dir / "segments").glob("*.seg"))
    newest = segments[-1]
    intact_size = newest.stat().st_size
    garbage = (
        rng.randbytes(rng.randint(1, 200_000))
        if tail == "random-garbage"
        else torn_chunk_record(rng)
    )
    with open(newest, "ab") as file:
        file.write(garbage)
    assert newest.stat().st_size == intact_size + len(garbage)

    node.start()
    assert newest.stat().st_size == intact_size, seeded(
        f"{newest.name}: {newest.stat().st_size} B after restart, tail not cut back to "
        f"{intact_size} B"
    )
    for key, body in objects.items():
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body, seeded(key)
    log_text = node.log_path.read_text(errors="replace")
    assert "truncating torn tail" in log_text
    assert LOST_DATA_MESSAGE not in log_text, seeded(
        f"storage reported lost data:\n{storage_log(node)}"
    )
    s3.put_object(Bucket=BUCKET, Key="after", Body=b"new write")
    assert s3.get_object(Bucket=BUCKET, Key="after")["Body"].read() == b"new write"
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == sorted(
        [*objects, "after"]
    )
