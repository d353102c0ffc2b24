"""Memory: a 1 GiB PUT and a 1 GiB GET each raise the node's RSS by less than 64 MiB.

The node's resident set size is sampled every ~20 ms while the object streams through it;
the baseline is its RSS after a small warm-up PUT and GET. The test process never holds the
object either: the upload is generated block by block (httpx, explicit Content-Length,
UNSIGNED-PAYLOAD) and the download is hashed as it arrives.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import httpx
import psutil
import pytest

from api.sigv4_signing import sign_headers
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

pytestmark = pytest.mark.slow

OBJECT_BYTES = 1 << 30
BLOCK_BYTES = 1 << 20
RSS_GROWTH_MAX = 64 << 20
SAMPLE_INTERVAL_S = 0.02
TRANSFER_TIMEOUT_S = 300.0
BUCKET = "memory"
MiB = 1 << 20


# Memory per request is bounded per process; several workers each grow their own allocator
# arenas, so the bound is measured where one process serves every request.
ONE_PROCESS = ["--workers", "1"]


class RssSampler:
    """Samples the RSS of a process and its children (a node's workers) in a background
    thread; ``peak`` is the largest total seen."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak = self.rss()
        self.samples = 0

    def rss(self) -> int:
        total = 0
        for process in [self._process, *self._process.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += int(process.memory_info().rss)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self.samples += 1
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


class Digests:
    def __init__(self) -> None:
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)


def generate(size: int, digests: Digests) -> Iterator[bytes]:
    """``size`` pseudo-random bytes, one block at a time, hashed as they are handed out."""
    pattern = blake3.blake3(b"lakenode memory test").digest(length=BLOCK_BYTES)
    for index in range(0, size, BLOCK_BYTES):
        # A different first 8 bytes per block, so no two blocks are equal.
        block = (index.to_bytes(8, "little") + pattern[8:])[: min(BLOCK_BYTES, size - index)]
        digests.update(block)
        yield block


@pytest.fixture
def memory_node(tmp_path: Path) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path / "data", extra_args=ONE_PROCESS).start()
    yield node
    node.stop()


def request(
    client: httpx.Client, method: str, url: str, headers: dict[str, str] | None = None, **kw: object
) -> httpx.Response:
    signed = sign_headers(method, url, headers or {}, ACCESS_KEY, SECRET_KEY, REGION)
    return client.request(method, url, headers=signed, **kw)  # type: ignore[arg-type]


def test_1gib_put_and_get_keep_node_rss_growth_under_64mib(memory_node: NodeProcess) -> None:
    node = memory_node
    assert node.process is not None
    pid = node.process.pid
    url = f"{node.url}/{BUCKET}/big.bin"
    with httpx.Client(timeout=TRANSFER_TIMEOUT_S) as client:
        assert request(client, "PUT", f"{node.url}/{BUCKET}").status_code == 200
        # Warm-up: the first request imports and allocates what every request needs.
        warm_url = f"{node.url}/{BUCKET}/warm-up"
        assert request(client, "PUT", warm_url, content=b"w" * 1000).status_code == 200
        assert request(client, "GET", warm_url).content == b"w" * 1000
        baseline = RssSampler(pid).rss()

        sent = Digests()
        started = time.monotonic()
        with RssSampler(pid) as put_rss:
            put = request(
                client,
                "PUT",
                url,
                {"content-length": str(OBJECT_BYTES)},
                content=generate(OBJECT_BYTES, sent),
            )
        put_seconds = time.monotonic() - started
        assert put.status_code == 200, put.text
        assert sent.size == OBJECT_BYTES
        assert put.headers["etag"] == f'"{sent.md5.hexdigest()}"'
        before_get = RssSampler(pid).rss()

        received = Digests()
        started = time.monotonic()
        with RssSampler(pid) as get_rss:
            signed = sign_headers("GET", url, {}, ACCESS_KEY, SECRET_KEY, REGION)
            with client.stream("GET", url, headers=signed) as got:
                assert got.status_code == 200
                assert int(got.headers["content-length"]) == OBJECT_BYTES
                for piece in got.iter_raw(BLOCK_BYTES):
                    received.update(piece)
        get_seconds = time.monotonic() - started
        assert received.size == OBJECT_BYTES
        assert received.sha256.hexdigest() == sent.sha256.hexdigest()
        assert got.headers["etag"] == f'"{received.md5.hexdigest()}"'

    put_growth = put_rss.peak - baseline
    get_growth = get_rss.peak - baseline
    report = (
        f"node RSS baseline {baseline / MiB:.1f} MiB; "
        f"PUT 1 GiB in {put_seconds:.1f} s: peak {put_rss.peak / MiB:.1f} MiB "
        f"(+{put_growth / MiB:.1f} MiB, {put_rss.samples} samples); "
        f"GET 1 GiB in {get_seconds:.1f} s: peak {get_rss.peak / MiB:.1f} MiB "
        f"(+{get_growth / MiB:.1f} MiB over baseline, "
        f"+{(get_rss.peak - before_get) / MiB:.1f} MiB over RSS before the GET, "
        f"{get_rss.samples} samples); limit +{RSS_GROWTH_MAX / MiB:.0f} MiB"
    )
    print(f"\n{report}")
    assert put_growth < RSS_GROWTH_MAX, f"PUT raised the node's RSS too much: {report}"
    assert get_growth < RSS_GROWTH_MAX, f"GET raised the node's RSS too much: {report}"
