"""A segment's record layout, read from the record headers alone (usage, GC, fsck, scrub).

Walking the headers costs one small read per record and never hashes a payload, so it is
cheap enough for ``gc plan`` and the storage gauges. Checking payloads is scrub's job
(:func:`read_record`). A manifest record also reveals its manifest kind (one byte, read
from the payload's fixed prefix), which GC needs: delete markers and tombstones are kept.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from storage.manifest import FORMAT_VERSION, MAGIC
from storage.segments import (
    RECORD_BYTES_MAX,
    RECORD_HEADER,
    SEGMENT_HEADER,
    RecordKind,
)

# "LKMF" | u16 format | u8 kind: the manifest kind is byte 6 of the payload.
_MANIFEST_PREFIX = len(MAGIC) + 3


@dataclass(frozen=True)
class RecordHeader:
    kind: RecordKind
    offset: int  # of the payload
    length: int
    digest: bytes
    manifest_kind: int | None = None  # manifest records: the kind byte; None if unreadable

    @property
    def start(self) -> int:
        return self.offset - RECORD_HEADER.size

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def size(self) -> int:
        """Bytes the record takes in its segment, header included."""
        return RECORD_HEADER.size + self.length


class HeaderScan:
    """Iterate a segment's records up to ``limit`` (default: the file's end).

    Stops at the first header that cannot be a record (unknown kind, absurd length) or at a
    record running past the limit; ``stopped_at`` then says where, ``complete`` whether that
    is the limit itself (nothing unreadable before it).
    """

    def __init__(self, path: Path, limit: int | None = None) -> None:
        self.path = path
        self.limit = limit
        self.stopped_at = SEGMENT_HEADER.size
        self.complete = False

    def __iter__(self) -> Iterator[RecordHeader]:
        with open(self.path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            limit = size if self.limit is None else min(self.limit, size)
            position = SEGMENT_HEADER.size
            while position + RECORD_HEADER.size <= limit:
                header = _read_header(file, position, limit)
                if header is None:
                    break
                yield header
                position = header.end
            self.stopped_at = position
            self.complete = position >= limit


def _read_header(file: BinaryIO, position: int, limit: int) -> RecordHeader | None:
    file.seek(position)
    header = parse_header(file.read(RECORD_HEADER.size), position, limit)
    if header is None or header.kind != RecordKind.MANIFEST:
        return header
    prefix = file.read(min(header.length, _MANIFEST_PREFIX))
    known = len(prefix) == _MANIFEST_PREFIX and prefix[:4] == MAGIC
    if known and int.from_bytes(prefix[4:6], "little") == FORMAT_VERSION:
        return dataclasses.replace(header, manifest_kind=prefix[6])
    return header


def parse_header(raw: bytes, position: int, limit: int) -> RecordHeader | None:
    """The record whose header starts at ``position``, if these bytes can be one that ends
    by ``limit``."""
    if len(raw) < RECORD_HEADER.size:
        return None
    kind_value, length, digest = RECORD_HEADER.unpack(raw)
    if kind_value not in RecordKind._value2member_map_ or not 0 < length <= RECORD_BYTES_MAX:
        return None
    offset = position + RECORD_HEADER.size
    if offset + length > limit:
        return None
    return RecordHeader(RecordKind(kind_value), offset, length, digest)


def read_payload(fd: int, header: RecordHeader) -> bytes:
    """The record's payload, as stored (not verified)."""
    data = os.pread(fd, header.length, header.offset)
    while len(data) < header.length:
        more = os.pread(fd, header.length - len(data), header.offset + len(data))
        if not more:
            break
        data += more
    return data


def payload_intact(payload: bytes, header: RecordHeader) -> bool:
    return len(payload) == header.length and blake3.blake3(payload).digest() == header.digest
