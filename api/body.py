"""Request bodies: from the raw HTTP stream to verified object bytes.

One pipeline for every body: aws-chunked framing is decoded (chunk signatures and trailing
checksums checked by api/chunked.py), a signed payload's SHA-256 is checked, and any
``x-amz-checksum-*`` header is checked. Checks that need the whole body run in
:meth:`Body.verify`, which the caller runs after the last byte and before committing.

Checksum values and ``x-amz-sdk-checksum-algorithm`` count the same whether they come as
headers or as query parameters of a presigned URL (:func:`checksum_fields`): a value that
was signed into a URL is verified, never ignored, except the empty-payload placeholder that
SDKs sign into presigned upload URLs before the body exists (:func:`_presign_placeholder`).

AWS's default checksum (CRC64NVME, ``storage.checksums.DEFAULT_ALGORITHM``): since
December 2024 S3 gives every new object uploaded without a checksum a full-object CRC64NVME.
A body asked for it computes it while streaming, like any other checksum, so the data is
never read twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator, Mapping

from starlette.requests import ClientDisconnect, Request

from api.checksums import (
    Checksum,
    algorithm_from_header,
    header_name,
    new_checksum,
    normalize_algorithm,
    verify_checksum,
)
from api.chunked import ChunkedDecoder
from api.errors import S3Error
from api.sigv4 import AuthContext, PayloadHasher, is_sha256_hex, payload_sha256_verifier

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SDK_ALGORITHM = "x-amz-sdk-checksum-algorithm"


class Body:
    """One request body. ``compute`` names an algorithm to compute even when the client
    sent no value for it (a part of an upload created with that algorithm). With
    ``header_checksums=False`` the x-amz-checksum-* headers are not about this body
    (CompleteMultipartUpload: they are the whole object's checksum) and are left alone.

    ``default`` (AWS's default checksum, CRC64NVME) is computed when the request announces
    no checksum at all; with ``default_alongside`` also when it announces one of another
    algorithm (a part: its upload's object checksum is combined from the parts'
    CRC64NVMEs). It is kept apart from :meth:`checksum_values`, which are the
    client's: see :meth:`default_checksum` and :meth:`object_checksums`."""

    def __init__(
        self,
        request: Request,
        auth: AuthContext | None,
        compute: str | None = None,
        header_checksums: bool = True,
        default: str | None = None,
        default_alongside: bool = False,
    ) -> None:
        headers = request.headers
        self.payload_hash = (
            auth.payload_hash if auth else headers.get("x-amz-content-sha256", UNSIGNED_PAYLOAD)
        )
        self.streaming = self.payload_hash.startswith("STREAMING-") or "aws-chunked" in (
            headers.get("content-encoding", "")
        )
        self.declared_length = _declared_length(headers, self.streaming)
        self._request = request
        self._decoder: ChunkedDecoder | None = None
        if self.streaming:
            trailers = [t for t in headers.get("x-amz-trailer", "").split(",") if t.strip()]
            self._decoder = ChunkedDecoder(auth, self.payload_hash, self.declared_length, trailers)
        self._sha256: PayloadHasher | None = (
            payload_sha256_verifier(self.payload_hash)
            if not self.streaming and is_sha256_hex(self.payload_hash)
            else None
        )
        fields = checksum_fields(request) if header_checksums else {}
        self._header_checksums = _header_checksums(fields)
        declared = set(self._header_checksums) | {t.strip().lower() for t in self._trailers()}
        _check_declared_checksums(fields, declared)
        self._computed: Checksum | None = None
        if compute is not None and header_name(compute) not in declared:
            self._computed = new_checksum(compute)
        self._default: Checksum | None = None
        if default is not None and (
            not declared or (default_alongside and header_name(default) not in declared)
        ):
            self._default = new_checksum(default)
        self.received = 0

    def _trailers(self) -> list[str]:
        raw = self._request.headers.get("x-amz-trailer", "")
        return [t for t in raw.split(",") if algorithm_from_header(t) is not None]

    @property
    def trailers(self) -> dict[str, str]:
        return self._decoder.trailers if self._decoder else {}

    def checksum_values(self) -> dict[str, str]:
        """Verified x-amz-checksum-* values (from headers or trailers), after verify()."""
        values = {name: value for name, (_c, value) in self._header_checksums.items()}
        values.update(
            {k: v for k, v in self.trailers.items() if algorithm_from_header(k) is not None}
        )
        if self._computed is not None:
            values[header_name(self._computed.algorithm)] = self._computed.b64digest()
        return values

    def default_checksum(self) -> tuple[str, str] | None:
        """(header, value) of the default checksum computed over the body, after verify();
        None when it was not computed (the client sent its own)."""
        if self._default is None:
            return None
        return header_name(self._default.algorithm), self._default.b64digest()

    def object_checksums(self) -> dict[str, str]:
        """The checksums an object written from this body keeps, after verify(): the
        client's, or else the default one (as S3 does for uploads without a checksum)."""
        values = self.checksum_values()
        default = self.default_checksum()
        if not values and default is not None:
            values[default[0]] = default[1]
        return values

    async def stream(self) -> AsyncIterator[bytes]:
        source = self._raw()
        if self._decoder is not None:
            source = self._decoder.decode(source)
        async for piece in source:
            for checksum, _value in self._header_checksums.values():
                checksum.update(piece)
            if self._computed is not None:
                self._computed.update(piece)
            if self._default is not None:
                self._default.update(piece)
            self.received += len(piece)
            yield piece

    async def _raw(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._request.stream():
                if piece:
                    if self._sha256 is not None:
                        self._sha256.update(piece)
                    yield piece
        except ClientDisconnect as exc:
            raise S3Error("IncompleteBody", "The request body ended early.") from exc

    def verify(self) -> None:
        """Run the whole-body checks; raise S3Error on any mismatch."""
        if self.declared_length is not None and self.received != self.declared_length:
            raise S3Error(
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length "
                "HTTP header.",
            )
        if self._sha256 is not None:
            self._sha256.verify()
        for checksum, value in self._header_checksums.values():
            verify_checksum(checksum, value)

    async def read_all(self, limit: int) -> bytes:
        """A small body (XML) in memory; over ``limit`` bytes is MalformedXML/too large."""
        parts: list[bytes] = []
        total = 0
        async for piece in self.stream():
            total += len(piece)
            if total > limit:
                raise S3Error("MalformedXML", f"The XML body exceeds {limit} bytes.")
            parts.append(piece)
        self.verify()
        return b"".join(parts)


def _declared_length(headers: Mapping[str, str], streaming: bool) -> int | None:
    name = "x-amz-decoded-content-length" if streaming else "content-length"
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise S3Error("InvalidArgument", f"Invalid {name} header: {raw!r}") from exc
    if value < 0:
        raise S3Error("InvalidArgument", f"Invalid {name} header: {raw!r}")
    return value


def checksum_fields(request: Request) -> dict[str, str]:
    """``x-amz-checksum-*`` and ``x-amz-sdk-checksum-algorithm`` from the headers and from
    the query string (presigned URLs carry them there), names lower-cased."""
    fields = {
        name.lower(): value
        for name, value in request.query_params.items()
        if name.lower() == SDK_ALGORITHM or algorithm_from_header(name) is not None
    }
    if _presign_placeholder(fields, request.headers):
        fields = {}
    for name, value in request.headers.items():
        if name.lower() == SDK_ALGORITHM or algorithm_from_header(name) is not None:
            fields[name.lower()] = value
    return fields


def _presign_placeholder(query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """The query carries the checksum of an EMPTY payload while the body is not empty.

    The AWS SDK for JavaScript v3 (3.729 on, default ``requestChecksumCalculation``) signs
    ``x-amz-checksum-crc32=AAAAAA==`` and ``x-amz-sdk-checksum-algorithm=CRC32`` into every
    presigned PutObject/UploadPart URL: it computes them before any body exists, so they say
    nothing about what the URL's holder uploads, and AWS accepts such uploads. Verifying them
    would refuse every upload through a default presigned URL; any other value in a query is
    still verified.
    """
    values = [(algorithm_from_header(name), value) for name, value in query.items()]
    checksums = [(algorithm, value) for algorithm, value in values if algorithm is not None]
    if len(checksums) != 1 or headers.get("content-length") == "0":
        return False  # an empty body: the value describes it, and is verified
    algorithm, value = checksums[0]
    return value == new_checksum(algorithm).b64digest()


def _header_checksums(fields: Mapping[str, str]) -> dict[str, tuple[Checksum, str]]:
    checksums: dict[str, tuple[Checksum, str]] = {}
    for name, value in fields.items():
        algorithm = algorithm_from_header(name)
        if algorithm is not None:
            checksums[name] = (new_checksum(algorithm), value)
    return checksums


def _check_declared_checksums(fields: Mapping[str, str], declared: set[str]) -> None:
    """AWS's rules for the checksums a request announces (headers, query or x-amz-trailer):
    at most one; ``x-amz-sdk-checksum-algorithm`` must name a supported algorithm whose
    value is actually sent, as a header or a trailer."""
    if len(declared) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    requested = fields.get(SDK_ALGORITHM)
    if requested is None:
        return
    algorithm = normalize_algorithm(requested, SDK_ALGORITHM)
    if not declared:
        raise S3Error(
            "InvalidRequest",
            f"{SDK_ALGORITHM} specified, but no corresponding x-amz-checksum-* or "
            "x-amz-trailer headers were found.",
        )
    if header_name(algorithm) not in declared:
        raise S3Error("InvalidRequest", f"Value for {SDK_ALGORITHM} header is invalid.")


def content_md5(headers: Mapping[str, str]) -> bytes | None:
    """The decoded Content-MD5 header, or None; malformed -> InvalidDigest."""
    raw = headers.get("content-md5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.") from exc
    if len(digest) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.")
    return digest


async def read_small_body(request: Request, auth: AuthContext | None, limit: int) -> bytes:
    """A small request document (XML), with Content-MD5 checked when sent.

    Configuration calls (tagging, CORS) must carry an integrity check on AWS; the body is
    in memory anyway, so the MD5 is checked here rather than streamed.
    """
    expected_md5 = content_md5(request.headers)
    body = await Body(request, auth).read_all(limit)
    if expected_md5 is not None and hashlib.md5(body).digest() != expected_md5:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
    return body
