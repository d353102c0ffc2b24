"""Object-version manifests: a versioned, self-validating binary format.

A manifest describes one object version completely: where its bytes are (chunk list) and
everything needed to serve it or rebuild the index without the database (bucket, key,
version id, HLC, origin node, ETag, size, headers). It is written as a record in a segment
(so the same fsync makes it durable as the data) and kept as a blob in SQLite for reads.

Layout, little-endian::

    magic "LKMF" | u16 format=1 | u8 kind
    str16 bucket | str16 key | str8 version_id | u64 hlc | str8 origin
    u64 size | str8 etag | u64 last_modified_ms
    u16 header_count, then per header: str16 name | str16 value
    u32 chunk_count, then per chunk: u64 segment_id | u64 offset | u32 length | 32B blake3
    32B BLAKE3 of every byte above (trailer)

``strN`` is a length-prefixed UTF-8 string with an N-bit length. Decoding rejects a bad magic,
an unknown format, a bad trailer and trailing bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

import blake3

from storage.errors import FormatError

MAGIC = b"LKMF"
FORMAT_VERSION = 1
HASH_BYTES = 32
_CHUNK = struct.Struct("<QQI32s")


class Kind(IntEnum):
    """What a version is. Tombstones are invisible to S3; they carry deletes for LWW."""

    OBJECT = 0
    DELETE_MARKER = 1
    TOMBSTONE = 2


@dataclass(frozen=True)
class ChunkRef:
    segment_id: int
    offset: int
    length: int
    blake3: bytes

    def __post_init__(self) -> None:
        assert len(self.blake3) == HASH_BYTES
        assert self.length > 0


@dataclass(frozen=True)
class Manifest:
    kind: Kind
    bucket: str
    key: str
    version_id: str
    hlc: int
    origin: str
    size: int
    etag: str
    last_modified_ms: int
    headers: tuple[tuple[str, str], ...] = ()
    chunks: tuple[ChunkRef, ...] = field(default=())

    def encode(self) -> bytes:
        return encode(self)

    def header(self, name: str) -> str | None:
        for header_name, value in self.headers:
            if header_name == name:
                return value
        return None


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def raw(self, data: bytes) -> None:
        self.parts.append(data)

    def pack(self, fmt: str, *values: int) -> None:
        self.parts.append(struct.pack(fmt, *values))

    def text(self, value: str, length_fmt: str) -> None:
        data = value.encode()
        self.parts.append(struct.pack(length_fmt, len(data)) + data)


def encode(manifest: Manifest) -> bytes:
    assert sum(chunk.length for chunk in manifest.chunks) == manifest.size
    out = _Writer()
    out.raw(MAGIC)
    out.pack("<HB", FORMAT_VERSION, int(manifest.kind))
    out.text(manifest.bucket, "<H")
    out.text(manifest.key, "<H")
    out.text(manifest.version_id, "<B")
    out.pack("<Q", manifest.hlc)
    out.text(manifest.origin, "<B")
    out.pack("<Q", manifest.size)
    out.text(manifest.etag, "<B")
    out.pack("<Q", manifest.last_modified_ms)
    out.pack("<H", len(manifest.headers))
    for name, value in manifest.headers:
        out.text(name, "<H")
        out.text(value, "<H")
    out.pack("<I", len(manifest.chunks))
    out.parts.extend(
        _CHUNK.pack(c.segment_id, c.offset, c.length, c.blake3) for c in manifest.chunks
    )
    body = b"".join(out.parts)
    return body + blake3.blake3(body).digest()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, count: int) -> bytes:
        end = self.position + count
        if end > len(self.data):
            raise FormatError("manifest truncated")
        piece = self.data[self.position : end]
        self.position = end
        return piece

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def text(self, length_fmt: str) -> str:
        (length,) = self.unpack(length_fmt)
        try:
            return self.take(length).decode()
        except UnicodeDecodeError as exc:
            raise FormatError("manifest holds invalid UTF-8") from exc


def decode(data: bytes) -> Manifest:
    """Parse and validate a manifest; raise FormatError on any defect."""
    if len(data) < len(MAGIC) + HASH_BYTES or data[:4] != MAGIC:
        raise FormatError("not a manifest (bad magic)")
    body, trailer = data[:-HASH_BYTES], data[-HASH_BYTES:]
    if blake3.blake3(body).digest() != trailer:
        raise FormatError("manifest trailer hash mismatch")
    reader = _Reader(body)
    reader.take(len(MAGIC))
    format_version, kind_value = reader.unpack("<HB")
    if format_version != FORMAT_VERSION:
        raise FormatError(f"unknown manifest format {format_version}")
    try:
        kind = Kind(kind_value)
    except ValueError as exc:
        raise FormatError(f"unknown manifest kind {kind_value}") from exc
    bucket, key, version_id = reader.text("<H"), reader.text("<H"), reader.text("<B")
    (hlc,) = reader.unpack("<Q")
    origin = reader.text("<B")
    (size,) = reader.unpack("<Q")
    etag = reader.text("<B")
    (last_modified_ms,) = reader.unpack("<Q")
    (header_count,) = reader.unpack("<H")
    headers = tuple((reader.text("<H"), reader.text("<H")) for _ in range(header_count))
    (chunk_count,) = reader.unpack("<I")
    chunks = tuple(_decode_chunk(reader.take(_CHUNK.size)) for _ in range(chunk_count))
    if reader.position != len(body):
        raise FormatError("trailing bytes after manifest")
    if sum(chunk.length for chunk in chunks) != size:
        raise FormatError("manifest chunk lengths do not add up to its size")
    return Manifest(
        kind, bucket, key, version_id, hlc, origin, size, etag, last_modified_ms, headers, chunks
    )


def _decode_chunk(data: bytes) -> ChunkRef:
    segment_id, offset, length, digest = _CHUNK.unpack(data)
    if length == 0:
        raise FormatError("manifest chunk of length 0")
    return ChunkRef(segment_id, offset, length, digest)


def chunk_spans(
    chunks: tuple[ChunkRef, ...], start: int, end: int
) -> list[tuple[ChunkRef, int, int]]:
    """(chunk, low, high) slices of ``chunks`` covering object bytes [start, end] (inclusive)."""
    spans: list[tuple[ChunkRef, int, int]] = []
    position = 0
    for chunk in chunks:
        chunk_start, chunk_end = position, position + chunk.length  # [chunk_start, chunk_end)
        position = chunk_end
        if chunk_end <= start:
            continue
        if chunk_start > end:
            break
        low = max(start, chunk_start) - chunk_start
        high = min(end + 1, chunk_end) - chunk_start
        spans.append((chunk, low, high))
    return spans
