"""PeerClient against httpx.MockTransport: signing, retries, verification, error classes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import blake3
import httpx
import pytest

from replication import protocol
from replication.client import (
    ChunkMismatch,
    ChunkNotFound,
    PeerClient,
    PeerRefused,
    PeerUnavailable,
    PushRejected,
    RetryPolicy,
    normalize_base_url,
)
from replication.protocol import ChangesPage, ProtocolError

FAST = RetryPolicy(attempts=4, total_s=5.0, initial_s=0.02, max_s=0.2, jitter_s=0.0)
CHUNK = b"chunk bytes" * 100
DIGEST = blake3.blake3(CHUNK).digest()
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a script and remembers when it was called."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def sign(method: str, url: str, headers: Mapping[str, str], payload_hash: str) -> dict[str, str]:
    return {**headers, "authorization": f"signed {method} {url}", "x-payload": payload_hash}


def client_for(handler: Handler, retry: RetryPolicy = FAST) -> PeerClient:
    return PeerClient(
        "http://peer:9000/", sign, 5.0, retry=retry, transport=httpx.MockTransport(handler)
    )


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def info_answer() -> httpx.Response:
    return httpx.Response(
        200, json={"protocol": 1, "node_id": "node-a", "last_seq": 4, "now_ms": 123}
    )


def page_answer(**overrides: Any) -> httpx.Response:
    page = ChangesPage("node-a", [], last_seq=4, more=False, now_ms=5)
    document = {**protocol.page_to_json(page), **overrides}
    return httpx.Response(200, content=json.dumps(document).encode())


def error(status: int, code: str = "X", **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "message": "m", **extra})


async def call(client: PeerClient, operation: Callable[[PeerClient], Any]) -> Any:
    try:
        return await operation(client)
    finally:
        await client.close()


def test_info_is_signed_and_parsed() -> None:
    recorder = Recorder(info_answer())
    info = run(call(client_for(recorder), lambda c: c.info()))
    assert info.node_id == "node-a" and info.last_seq == 4
    request = recorder.requests[0]
    assert str(request.url) == "http://peer:9000/_lakenode/repl/info"
    assert request.headers["authorization"] == "signed GET http://peer:9000/_lakenode/repl/info"
    assert request.headers["x-payload"] == hashlib.sha256(b"").hexdigest()


def test_changes_query_and_page() -> None:
    recorder = Recorder(page_answer())
    page = run(call(client_for(recorder), lambda c: c.changes(7, 100, "node-b")))
    assert page.last_seq == 4
    assert recorder.requests[0].url.params == httpx.QueryParams(
        {"after": "7", "limit": "100", "exclude_origin": "node-b"}
    )


def test_retries_503_with_growing_backoff_then_succeeds() -> None:
    recorder = Recorder(error(503), error(503), error(500), info_answer())
    info = run(call(client_for(recorder), lambda c: c.info()))
    assert info.node_id == "node-a"
    assert len(recorder.requests) == 4
    gaps = [b - a for a, b in zip(recorder.times, recorder.times[1:], strict=False)]
    assert gaps[0] >= 0.015 and gaps[1] >= 0.035 and gaps[2] >= 0.07  # 0.02, 0.04, 0.08


def test_retries_connection_errors() -> None:
    recorder = Recorder(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), info_answer())
    assert run(call(client_for(recorder), lambda c: c.info())).node_id == "node-a"
    assert len(recorder.requests) == 3


def test_a_connection_reset_while_opening_is_a_transport_error() -> None:
    # What anyio raises from inside httpx when the peer resets the connection at once
    # (seen through the fault proxy): a dead link, retried, never an "internal" failure.
    reset = AttributeError("'NoneType' object has no attribute 'getpeername'")
    recorder = Recorder(reset, info_answer())
    assert run(call(client_for(recorder), lambda c: c.info())).node_id == "node-a"
    assert len(recorder.requests) == 2
    with pytest.raises(PeerUnavailable, match="connection lost while opening it"):
        run(call(client_for(Recorder(reset)), lambda c: c.info()))


def test_gives_up_after_bounded_attempts() -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(PeerUnavailable, match="ConnectError"):
        run(call(client_for(recorder), lambda c: c.info()))
    assert len(recorder.requests) == FAST.attempts


def test_gives_up_after_bounded_total_time() -> None:
    recorder = Recorder(error(503))
    slow = RetryPolicy(attempts=100, total_s=0.3, initial_s=0.1, max_s=0.1, jitter_s=0.0)
    started = time.monotonic()
    with pytest.raises(PeerUnavailable, match="503"):
        run(call(client_for(recorder, slow), lambda c: c.info()))
    assert time.monotonic() - started < 1.0
    assert 2 <= len(recorder.requests) <= 5


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retried(status: int) -> None:
    recorder = Recorder(error(status, "AccessDenied"), info_answer())
    with pytest.raises(PeerRefused) as caught:
        run(call(client_for(recorder), lambda c: c.info()))
    assert caught.value.status == status and caught.value.code == "AccessDenied"
    assert isinstance(caught.value, ProtocolError)
    assert len(recorder.requests) == 1


def test_malformed_page_is_a_protocol_error_not_retried() -> None:
    recorder = Recorder(page_answer(protocol=2), page_answer())
    with pytest.raises(ProtocolError, match="protocol 2"):
        run(call(client_for(recorder), lambda c: c.changes(0, 10, None)))
    assert len(recorder.requests) == 1


def test_non_json_answer_is_a_protocol_error() -> None:
    recorder = Recorder(httpx.Response(200, content=b"<html>"))
    with pytest.raises(ProtocolError, match="malformed JSON"):
        run(call(client_for(recorder), lambda c: c.info()))


def test_more_changes_than_asked_for_is_refused() -> None:
    change = {"seq": 1, "hlc": 1, "origin": "n", "op": "bucket.delete", "bucket": "b"}
    recorder = Recorder(page_answer(changes=[change, {**change, "seq": 2}], last_seq=2))
    with pytest.raises(ProtocolError, match="2 changes, 1 were asked"):
        run(call(client_for(recorder), lambda c: c.changes(0, 1, None)))


def test_oversized_answer_is_refused() -> None:
    recorder = Recorder(httpx.Response(200, content=b"x" * (70 << 10)))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        run(call(client_for(recorder), lambda c: c.info()))


def test_chunk_is_verified() -> None:
    recorder = Recorder(httpx.Response(200, content=CHUNK))
    assert run(call(client_for(recorder), lambda c: c.chunk(DIGEST))) == CHUNK
    assert recorder.requests[0].url.path == f"/_lakenode/repl/chunks/{DIGEST.hex()}"


def test_chunk_mismatch_is_retried_then_refused() -> None:
    damaged = httpx.Response(200, content=CHUNK[:-1] + b"!")
    recorder = Recorder(damaged)
    with pytest.raises(ChunkMismatch, match="damaged"):
        run(call(client_for(recorder), lambda c: c.chunk(DIGEST)))
    assert len(recorder.requests) == FAST.attempts


def test_chunk_mismatch_then_good_copy() -> None:
    recorder = Recorder(httpx.Response(200, content=b"bad"), httpx.Response(200, content=CHUNK))
    assert run(call(client_for(recorder), lambda c: c.chunk(DIGEST))) == CHUNK
    assert len(recorder.requests) == 2


def test_chunk_not_found() -> None:
    recorder = Recorder(error(404, "NoSuchChunk"))
    with pytest.raises(ChunkNotFound):
        run(call(client_for(recorder), lambda c: c.chunk(DIGEST)))
    assert len(recorder.requests) == 1


def test_put_chunk_signs_the_body_hash() -> None:
    recorder = Recorder(httpx.Response(200, json={"stored": DIGEST.hex(), "size": len(CHUNK)}))
    run(call(client_for(recorder), lambda c: c.put_chunk(DIGEST, CHUNK)))
    request = recorder.requests[0]
    assert request.method == "PUT" and request.content == CHUNK
    assert request.headers["x-payload"] == hashlib.sha256(CHUNK).hexdigest()
    assert request.headers["content-length"] == str(len(CHUNK))


def test_push_returns_counts_and_reports_missing_chunks() -> None:
    page = ChangesPage("node-a", [], last_seq=4, more=False, now_ms=5)
    counts = {"applied": 0, "duplicates": 0, "conflicts": 0, "skew_rejected": 0, "cursor": 4}
    recorder = Recorder(
        httpx.Response(200, json=counts), error(409, "MissingChunks", missing=[DIGEST.hex()])
    )
    client = client_for(recorder)

    async def scenario() -> None:
        assert await client.push(page, 0) == counts
        with pytest.raises(PushRejected) as caught:
            await client.push(page, 0)
        assert caught.value.missing == {DIGEST}
        await client.close()

    run(scenario())
    body = recorder.requests[0].content
    assert protocol.decode_page(body) == page
    assert recorder.requests[0].url.params["after"] == "0"
    assert recorder.requests[0].headers["x-payload"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("url", "normalized"),
    [("http://h:1", "http://h:1"), ("https://h/", "https://h"), (" http://[::1]:9 ", "http://[::1]:9")],
)  # fmt: skip
def test_base_url(url: str, normalized: str) -> None:
    assert normalize_base_url(url) == normalized


@pytest.mark.parametrize(
    "url", ["h:1", "ftp://h", "http://", "http://h/x", "http://h?q", "http://u:p@h", "http://h:x"]
)
def test_bad_base_url(url: str) -> None:
    with pytest.raises(ValueError):
        normalize_base_url(url)
