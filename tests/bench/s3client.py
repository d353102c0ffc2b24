"""The five S3 operations the benchmark times, on top of :mod:`tests.bench.http_client`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import unescape

from tests.bench.http_client import HttpConnection, ResponseHead
from tests.bench.payload import SEGMENT, Payload, VerificationError

Signer = Callable[..., dict[str, str]]
LIST_MAX_KEYS = 1000
_KEY = re.compile(r"<Key>([^<]*)</Key>")


class RequestFailed(Exception):
    """The server answered with a status the operation does not expect."""

    def __init__(self, op: str, status: int, body: bytes) -> None:
        super().__init__(f"{op}: HTTP {status}: {body[:200]!r}")
        self.status = status


def load_signer() -> Signer:
    """The project's own signer, imported late so ``--help`` works without the api package."""
    from api.sigv4_signing import sign_headers

    return sign_headers


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str


class S3Client:
    """Path-style S3 requests over one keep-alive connection."""

    def __init__(
        self,
        conn: HttpConnection,
        creds: Credentials,
        signer: Signer,
        payload: Payload,
        verify: bool,
    ) -> None:
        self.conn = conn
        self._creds = creds
        self._sign = signer
        self._payload = payload
        # The bare ceiling app answers GET with an empty body, so it has nothing to verify.
        self._verify = verify
        self._base = f"http://{conn.host}:{conn.port}"

    def _headers(self, method: str, target: str, extra: Mapping[str, str]) -> dict[str, str]:
        # The result already holds ``extra`` plus host, x-amz-date, x-amz-content-sha256 and
        # authorization. Bodies go unhashed: hashing 64 MiB would cost the client seconds.
        return self._sign(
            method,
            self._base + target,
            extra,
            self._creds.access_key,
            self._creds.secret_key,
            region="us-east-1",
            payload_hash="UNSIGNED-PAYLOAD",
        )

    async def _simple(self, op: str, method: str, target: str, ok: frozenset[int]) -> bytes:
        headers = self._headers(method, target, {"content-length": "0"})
        resp = await self.conn.request(method, target, headers)
        if resp.status not in ok:
            raise RequestFailed(op, resp.status, resp.body)
        return resp.body

    async def create_bucket(self, bucket: str) -> int:
        """HTTP status of the bucket PUT; the caller decides what counts as ready."""
        target = f"/{bucket}"
        headers = self._headers("PUT", target, {"content-length": "0"})
        return (await self.conn.request("PUT", target, headers)).status

    async def put_object(self, bucket: str, key: str, size: int) -> int:
        target = f"/{bucket}/{key}"
        extra = {"content-length": str(size), "content-type": "application/octet-stream"}
        headers = self._headers("PUT", target, extra)
        await self.conn.send("PUT", target, headers, self._payload.pieces(key, size), size)
        head = await self.conn.read_head()
        body = await self.conn.body("PUT", head).read_all()
        self.conn.finish(head)
        if head.status != 200:
            raise RequestFailed("PUT", head.status, body)
        return size

    async def get_object(self, bucket: str, key: str, size: int) -> int:
        """Bytes read; every one of them checked against the regenerated object."""
        target = f"/{bucket}/{key}"
        await self.conn.send("GET", target, self._headers("GET", target, {}))
        head = await self.conn.read_head()
        if head.status != 200:
            body = await self.conn.body("GET", head).read_all()
            self.conn.finish(head)
            raise VerificationError(f"GET {key}: HTTP {head.status} {body[:200]!r}")
        read = await (self._read_verified(key, size, head) if self._verify else self._skip(head))
        self.conn.finish(head)
        return read

    async def _read_verified(self, key: str, size: int, head: ResponseHead) -> int:
        if head.content_length not in (None, size):
            # Leave the connection unusable rather than half-read.
            self.conn.drop()
            raise VerificationError(f"GET {key}: content-length {head.content_length} != {size}")
        body = self.conn.body("GET", head)
        for index, length in enumerate(self._payload.segment_lengths(size)):
            data = await body.read(length)
            try:
                self._payload.check_segment(key, index, data, length)
            except VerificationError:
                self.conn.drop()
                raise
        if not body.done and await body.read(SEGMENT):
            self.conn.drop()
            raise VerificationError(f"GET {key}: more than {size} bytes")
        return size

    async def _skip(self, head: ResponseHead) -> int:
        return len(await self.conn.body("GET", head).read_all())

    async def head_object(self, bucket: str, key: str, size: int) -> int:
        target = f"/{bucket}/{key}"
        await self.conn.send("HEAD", target, self._headers("HEAD", target, {}))
        head = await self.conn.read_head()
        self.conn.finish(head)
        if head.status != 200:
            raise RequestFailed("HEAD", head.status, b"")
        if self._verify and head.content_length != size:
            raise VerificationError(f"HEAD {key}: content-length {head.content_length} != {size}")
        return 0

    async def list_objects(self, bucket: str) -> int:
        """Bytes of XML returned for one ListObjectsV2 page."""
        target = f"/{bucket}?list-type=2&max-keys={LIST_MAX_KEYS}"
        body = await self._simple("LIST", "GET", target, frozenset({200}))
        if b"ListBucketResult" not in body:
            raise RequestFailed("LIST", 200, body)
        return len(body)

    async def list_keys(self, bucket: str, prefix: str = "", start_after: str = "") -> list[str]:
        """Keys of one ListObjectsV2 page (up to 1000) after ``start_after``."""
        target = (
            f"/{bucket}?list-type=2&max-keys={LIST_MAX_KEYS}&prefix={quote(prefix, safe='')}"
            f"&start-after={quote(start_after, safe='')}"
        )
        body = await self._simple("LIST", "GET", target, frozenset({200}))
        return [unescape(key) for key in _KEY.findall(body.decode())]

    async def list_page(self, bucket: str, params: Mapping[str, str]) -> bytes:
        """The XML of one ListObjectsV2 call with ``params`` (prefix, delimiter, token...)."""
        query = "".join(f"&{name}={quote(value, safe='')}" for name, value in params.items())
        target = f"/{bucket}?list-type=2{query}"
        return await self._simple("LIST", "GET", target, frozenset({200}))

    async def delete_object(self, bucket: str, key: str) -> int:
        await self._simple("DELETE", "DELETE", f"/{bucket}/{key}", frozenset({200, 204}))
        return 0
