"""HTTP client for a peer's replication endpoints.

Requests are signed by an injected ``sign(method, url, headers, payload_hash)`` (node/ wraps
SigV4 from api/ with the peer credentials; replication cannot import api/). Bodies are signed
by their SHA-256, never as UNSIGNED-PAYLOAD: they are in memory and bounded anyway.

Failures are classified once, here:

* :class:`PeerUnavailable`: worth retrying (connection refused/reset, timeouts, 5xx, 429, a
  chunk whose bytes do not hash to its digest). Each call retries with exponential backoff
  and jitter, bounded in attempts and in total time, then raises it.
* :class:`~replication.protocol.ProtocolError` (and :class:`PeerRefused`, a 4xx answer): the
  same request would fail again; raised at once, never retried.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import blake3
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from replication import protocol
from replication.peer_url import normalize_base_url
from replication.protocol import ChangesPage, PeerInfo, ProtocolError
from storage.digest import KeyFacts, Leaf

Signer = Callable[[str, str, Mapping[str, str], str], dict[str, str]]

EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_MAX_INFO_BYTES: Final = 64 << 10
_MAX_DIGEST_BYTES: Final = 4 * 1024 * 1024  # a leaf range of a huge bucket
_MAX_ANSWER_BYTES: Final = 1 << 20


class PeerUnavailable(Exception):
    """The peer could not be reached or failed transiently; try again later."""


class ChunkMismatch(PeerUnavailable):
    """A chunk arrived with bytes that do not hash to its digest (damaged in transit)."""


class PeerRefused(ProtocolError):
    """The peer answered with a 4xx: this request will not succeed as it is."""

    def __init__(self, status: int, code: str, message: str, body: Mapping[str, Any]) -> None:
        super().__init__(f"peer refused ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.body = body


class BootstrapRequired(PeerRefused):
    """The peer pruned the part of its log we still need: this site must bootstrap again."""


class ChunkNotFound(PeerRefused):
    """The peer does not hold the chunk asked for."""


class PushRejected(PeerRefused):
    """A push was answered 409: chunks missing on the peer, or a cursor mismatch."""

    @property
    def missing(self) -> set[bytes]:
        return protocol.parse_digest_list(self.body.get("missing", []), 1_000_000)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    total_s: float = 30.0
    initial_s: float = 0.1
    max_s: float = 5.0
    jitter_s: float = 0.1


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


class PeerClient:
    """One peer: its base URL (``http://host:port``) and how to sign requests to it."""

    def __init__(
        self,
        base_url: str,
        sign: Signer,
        timeout_s: float = 30.0,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``verify``: how an https peer's certificate is checked (True: the default store)."""
        self.base_url = normalize_base_url(base_url)
        self._sign = sign
        self._retry = retry or RetryPolicy()
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, verify=verify)
        self.bytes_received = 0  # bodies of successful answers, for stats
        self.bytes_sent = 0  # request bodies sent (every attempt), for stats

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PeerClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ---- operations -------------------------------------------------------------------------

    async def info(self) -> PeerInfo:
        answer = await self._call("GET", "info", limit=_MAX_INFO_BYTES)
        return protocol.info_from_json(protocol.loads(answer.body))

    async def changes(self, after: int, limit: int, exclude_origin: str | None) -> ChangesPage:
        query: dict[str, str | int] = {"after": after, "limit": limit}
        if exclude_origin is not None:
            query["exclude_origin"] = exclude_origin
        answer = await self._call("GET", "changes", query=query, limit=protocol.MAX_PAGE_BYTES)
        page = protocol.decode_page(answer.body)
        if len(page.changes) > limit:
            raise ProtocolError(f"peer sent {len(page.changes)} changes, {limit} were asked for")
        return page

    async def snapshot(self, after: str | None, limit: int) -> protocol.SnapshotPage:
        """A page of the peer's current state (``after`` None: start a snapshot)."""
        query: dict[str, str | int] = {"limit": limit}
        if after is not None:
            query["after"] = after
        answer = await self._call("GET", "snapshot", query=query, limit=protocol.MAX_PAGE_BYTES)
        page = protocol.snapshot_page_from_json(protocol.loads(answer.body))
        if after is None and page.snapshot_seq is None:
            raise ProtocolError("the first snapshot page must carry 'snapshot_seq'")
        return page

    async def chunk(self, digest: bytes) -> bytes:
        """The chunk's bytes, verified against ``digest`` (a mismatch is retried)."""

        async def fetch() -> _Answer:
            answer = await self._request(
                "GET", f"chunks/{digest.hex()}", limit=protocol.MAX_CHUNK_BYTES
            )
            if answer.status == 200 and blake3.blake3(answer.body).digest() != digest:
                raise ChunkMismatch(f"chunk {digest.hex()} from {self.base_url} is damaged")
            return answer

        answer = await self._retrying(fetch)
        return answer.body

    async def chunk_batch(self, digests: list[bytes]) -> dict[bytes, bytes]:
        """Small chunks in one request, each verified against its digest (a mismatch is
        retried). The peer may leave some out (answer size cap, or lacking them): callers
        fetch those alone."""
        body = protocol.dumps({"digests": [digest.hex() for digest in digests]})
        limit = protocol.MAX_CHUNK_BATCH_BYTES + protocol.MAX_CHUNK_BYTES + 40 * len(digests)
        found: dict[bytes, bytes] = {}

        async def fetch() -> _Answer:
            answer = await self._request("POST", "chunks", body=body, limit=limit)
            if answer.status == 200:
                found.clear()
                found.update(protocol.decode_chunk_frames(answer.body, digests))
                for digest, data in found.items():
                    if blake3.blake3(data).digest() != digest:
                        raise ChunkMismatch(f"chunk {digest.hex()} from {self.base_url} is damaged")
            return answer

        await self._retrying(fetch)
        return found

    async def push(self, page: ChangesPage, after: int) -> dict[str, int]:
        """Send a page for the peer to apply; its counts, or PushRejected (409)."""
        answer = await self._call(
            "POST",
            "push",
            query={"after": after},
            body=protocol.encode_page(page),
            limit=_MAX_ANSWER_BYTES,
        )
        document = protocol.loads(answer.body)
        if not isinstance(document, dict) or not all(
            type(value) is int for value in document.values()
        ):
            raise ProtocolError("push answer must be an object of counts")
        return document

    async def digest(self, prefix: str, part: str, **extra: str) -> Any:
        """One Merkle query (see RemoteDigests); the decoded JSON answer."""
        answer = await self._call(
            "GET",
            "digest",
            query={"prefix": prefix, "part": part, **extra},
            limit=_MAX_DIGEST_BYTES,
        )
        return protocol.loads(answer.body, limit=_MAX_DIGEST_BYTES)

    async def node_status(self) -> Any:
        """A node's own replication status (``GET /_lakenode/repl/status``), decoded JSON."""
        answer = await self._call("GET", "status", limit=_MAX_DIGEST_BYTES)
        return protocol.loads(answer.body)

    async def put_chunk(self, digest: bytes, data: bytes) -> None:
        await self._call("PUT", f"chunks/{digest.hex()}", body=data, limit=_MAX_ANSWER_BYTES)

    async def backlog(self, after: int, exclude_origin: str | None) -> dict[str, int | None]:
        """What the peer's log holds after ``after``: {"ops", "bytes", "oldest_hlc"}."""
        query: dict[str, str | int] = {"after": after}
        if exclude_origin is not None:
            query["exclude_origin"] = exclude_origin
        answer = await self._call("GET", "backlog", query=query, limit=_MAX_ANSWER_BYTES)
        document = protocol.loads(answer.body)
        if not isinstance(document, dict):
            raise ProtocolError("backlog answer must be an object")
        counts: dict[str, int | None] = {}
        for name in ("ops", "bytes", "oldest_hlc"):
            value = document.get(name)
            if value is None and name == "oldest_hlc":
                counts[name] = None
            elif type(value) is int and 0 <= value <= protocol.MAX_INT:
                counts[name] = value
            else:
                raise ProtocolError(f"backlog answer: {name!r} must be a non-negative integer")
        return counts

    # ---- plumbing ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: bytes = b"",
        limit: int,
    ) -> _Answer:
        async def attempt() -> _Answer:
            return await self._request(method, path, query=query, body=body, limit=limit)

        return await self._retrying(attempt)

    async def _retrying(self, attempt: Callable[[], Awaitable[_Answer]]) -> _Answer:
        policy = self._retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_s),
            # wait_exponential + wait_random rather than wait_exponential_jitter, whose
            # parameters changed name across the tenacity versions pyproject allows.
            wait=wait_exponential(multiplier=policy.initial_s, max=policy.max_s)
            + wait_random(0, policy.jitter_s),
            retry=retry_if_exception_type(PeerUnavailable),
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                answer = await attempt()
                _raise_for_status(answer, self.base_url)
                self.bytes_received += len(answer.body)
                return answer
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: bytes = b"",
        limit: int,
    ) -> _Answer:
        """One signed request; the answer body is read up to ``limit`` bytes."""
        url = f"{self.base_url}/_lakenode/repl/{path}"
        if query:
            url = f"{url}?{urlencode(query)}"
        payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        base_headers = {"content-length": str(len(body))} if body else {}
        headers = self._sign(method, url, base_headers, payload_hash)
        try:
            request = self._http.build_request(method, url, headers=headers, content=body)
            response = await _send(self._http, request)
            try:
                data = await _read_limited(response, limit)
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise PeerUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        self.bytes_sent += len(body)
        return _Answer(response.status_code, response.headers, data)


async def _send(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send, with a connection reset at connect time reported as the transport error it is.

    A connection the peer (or a proxy) resets at once can reach httpcore already closed:
    anyio's socket stream then reads its peer name from a socket that is gone and raises
    AttributeError ('NoneType' object has no attribute 'getpeername') from inside httpx.
    Nothing of ours runs in this call, so that is a dead link, to be retried like any other.
    """
    try:
        return await http.send(request, stream=True)
    except AttributeError as exc:
        lost = f"connection lost while opening it ({exc})"
        raise httpx.ConnectError(lost, request=request) from exc


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(f"peer answer of {declared} bytes exceeds the limit of {limit}")
    pieces: list[bytes] = []
    size = 0
    async for piece in response.aiter_bytes():
        size += len(piece)
        if size > limit:
            raise ProtocolError(f"peer answer exceeds the limit of {limit} bytes")
        pieces.append(piece)
    return b"".join(pieces)


def _raise_for_status(answer: _Answer, base_url: str) -> None:
    if 200 <= answer.status < 300:
        return
    code, message, body = _error_fields(answer)
    if answer.status in _RETRY_STATUSES:
        raise PeerUnavailable(f"{base_url} answered {answer.status} {code}: {message}")
    if answer.status == 404 and code == "NoSuchChunk":
        raise ChunkNotFound(answer.status, code, message, body)
    if answer.status == 410 and code == protocol.BOOTSTRAP_REQUIRED:
        raise BootstrapRequired(answer.status, code, message, body)
    if answer.status == 409:
        raise PushRejected(answer.status, code, message, body)
    raise PeerRefused(answer.status, code, message, body)


def _error_fields(answer: _Answer) -> tuple[str, str, dict[str, Any]]:
    """The JSON error of a failed answer, or placeholders if it is not one of ours."""
    try:
        document = protocol.loads(answer.body, limit=_MAX_ANSWER_BYTES)
    except ProtocolError:
        return "Unknown", answer.body[:200].decode("utf-8", "replace"), {}
    if not isinstance(document, dict):
        return "Unknown", "", {}
    code, message = document.get("error"), document.get("message")
    return (
        code if isinstance(code, str) else "Unknown",
        message[:500] if isinstance(message, str) else "",
        document,
    )


class RemoteDigests:
    """A peer's Merkle digests, in the shape replication.validate.compare() walks."""

    def __init__(self, client: PeerClient) -> None:
        self._client = client
        self._cutoff: int | None = None

    async def digest_node(self, prefix: str) -> bytes:
        document = await self._client.digest(prefix, "node")
        return _hex_field(document, "digest")

    async def digest_children(self, prefix: str) -> dict[str, bytes]:
        document = await self._client.digest(prefix, "children")
        children = document.get("children") if isinstance(document, dict) else None
        if not isinstance(children, dict):
            raise ProtocolError("digest children answer must hold a children object")
        return {str(name): _hex(value) for name, value in children.items()}

    async def digest_leaves(self, prefix: str) -> list[Leaf]:
        document = await self._client.digest(prefix, "leaves")
        rows = document.get("leaves") if isinstance(document, dict) else None
        if not isinstance(rows, list):
            raise ProtocolError("digest leaves answer must hold a leaves list")
        leaves = []
        for row in rows:
            if not (
                isinstance(row, list) and len(row) == 3 and all(isinstance(x, str) for x in row)
            ):
                raise ProtocolError("each digest leaf must be [bucket, key, hex]")
            leaves.append(Leaf(row[0], row[1], _hex(row[2])))
        return leaves

    async def key_facts(self, bucket: str, key: str) -> KeyFacts:
        document = await self._client.digest("", "key", bucket=bucket, key=key)
        self._cutoff = _int_field(document, "purge_cutoff")
        return protocol.facts_from_json(document.get("facts"))

    async def purge_cutoff(self) -> int:
        if self._cutoff is None:
            document = await self._client.digest("", "key", bucket="", key="")
            self._cutoff = _int_field(document, "purge_cutoff")
        return self._cutoff

    async def facts_page(self, after: tuple[str, str] | None, keys: int) -> list[KeyFacts]:
        extra = {"limit": str(keys)}
        if after is not None:
            extra |= {"after_bucket": after[0], "after_key": after[1]}
        document = await self._client.digest("", "facts", **extra)
        rows = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(rows, list):
            raise ProtocolError("a facts answer must hold a keys list")
        return [protocol.facts_from_json(row) for row in rows]


def _int_field(document: Any, name: str) -> int:
    value = document.get(name) if isinstance(document, dict) else None
    if type(value) is not int or value < 0:
        raise ProtocolError(f"{name} must be a non-negative integer")
    return value


def _hex(value: Any) -> bytes:
    try:
        digest = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError as exc:
        raise ProtocolError("digest values must be hex") from exc
    if len(digest) != 32:
        raise ProtocolError("digest values must be 32 bytes")
    return digest


def _hex_field(document: Any, name: str) -> bytes:
    if not isinstance(document, dict):
        raise ProtocolError("digest answer must be an object")
    return _hex(document.get(name))
