"""Append-only segment files holding chunk and manifest records.

File layout, little-endian::

    header : magic "LKSG" | u32 format=1 | u64 segment_id             (16 bytes)
    record : u8 kind | 3 zero bytes | u32 length | 32B BLAKE3(payload) | payload

Records are written strictly in order under one lock, so after a crash only the tail of a
segment can be torn: every byte before the last fsync is intact. A chunk is addressed by
(segment id, payload offset, length) and verified against its BLAKE3 on every read.

Durability: :meth:`SegmentWriter.sync` fsyncs every segment written since the last sync and
reports how far each is durable; a new segment file is fsynced together with its directory
before any record goes into it. A full segment is fsynced and sealed before the next opens.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import blake3

from storage.errors import CorruptData, FormatError
from storage.manifest import ChunkRef
from storage.stats_hooks import NO_COMMIT_OBSERVER, CommitObserver

log = logging.getLogger("lakenode.segments")

SEGMENT_MAGIC = b"LKSG"
SEGMENT_FORMAT = 1
SEGMENT_HEADER = struct.Struct("<4sIQ")
RECORD_HEADER = struct.Struct("<B3xI32s")
DEFAULT_SEGMENT_BYTES_MAX = 1 << 30
RECORD_BYTES_MAX = 256 << 20  # no record we write comes near this; a larger length is garbage


class RecordKind(IntEnum):
    CHUNK = 1
    MANIFEST = 2
    # Metadata that is not a manifest (buckets, documents, tags, version deletes, uploads,
    # the change-log position of every change), so rebuild-index needs no database:
    # storage/journal.py.
    JOURNAL = 3


@dataclass(frozen=True)
class Record:
    kind: RecordKind
    segment_id: int
    offset: int  # of the payload
    length: int
    blake3: bytes


def segment_path(directory: Path, segment_id: int) -> Path:
    return directory / f"{segment_id:016x}.seg"


def list_segment_ids(directory: Path) -> list[int]:
    ids = []
    for path in directory.glob("*.seg"):
        try:
            ids.append(int(path.stem, 16))
        except ValueError:
            log.warning("ignoring stray file %s in segment directory", path)
    return sorted(ids)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise CorruptData(f"short read at offset {offset}: wanted {length}, got {got}")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def scan_records(path: Path) -> tuple[list[Record], int]:
    """Read every intact record of a segment; return them and the end of the intact prefix.

    Scanning stops at the first record that is torn (runs past the end of the file) or whose
    payload does not match its hash: with in-order writes that is where the valid data ends.
    """
    scan = SegmentScan(path)
    records = [record for record, _payload in scan]
    return records, scan.valid_end


class SegmentScan:
    """Iterate a segment's intact records lazily, as ``(record, payload)``; the payload is
    kept only for metadata records (chunk payloads are hashed, then dropped), so memory stays
    bounded by one record whatever the segment size. ``valid_end`` is the end of the intact
    prefix once the iteration is over."""

    def __init__(self, path: Path, start: int = 0) -> None:
        self.path = path
        self.valid_end = 0
        self._start = start  # a record boundary to scan from (0: the first record)

    def __iter__(self) -> Iterator[tuple[Record, bytes | None]]:
        with open(self.path, "rb") as file:
            header = file.read(SEGMENT_HEADER.size)
            _magic, _version, segment_id = _parse_segment_header(header, self.path)
            position = self.valid_end = max(SEGMENT_HEADER.size, self._start)
            file.seek(position)
            while True:
                record_header = file.read(RECORD_HEADER.size)
                if len(record_header) < RECORD_HEADER.size:
                    return
                kind_value, length, digest = RECORD_HEADER.unpack(record_header)
                known_kind = kind_value in RecordKind._value2member_map_
                if not known_kind or not 0 < length <= RECORD_BYTES_MAX:
                    return
                payload = file.read(length)
                if len(payload) < length or blake3.blake3(payload).digest() != digest:
                    return
                payload_offset = position + RECORD_HEADER.size
                kind = RecordKind(kind_value)
                position = self.valid_end = payload_offset + length
                record = Record(kind, segment_id, payload_offset, length, digest)
                yield record, (None if kind == RecordKind.CHUNK else payload)


def _parse_segment_header(header: bytes, path: Path) -> tuple[bytes, int, int]:
    if len(header) < SEGMENT_HEADER.size:
        raise FormatError(f"{path}: segment header truncated")
    magic, version, segment_id = SEGMENT_HEADER.unpack(header)
    if magic != SEGMENT_MAGIC or version != SEGMENT_FORMAT:
        raise FormatError(f"{path}: not a lakenode segment (magic {magic!r}, format {version})")
    return magic, version, segment_id


def recover_segment(path: Path, durable_end: int) -> int:
    """Cut a torn or uncommitted tail off a segment that was open when the node stopped.

    Bytes below ``durable_end`` were fsynced before a commit and are never cut, and not read
    either (checking committed data is scrub's and fsck's work); only a file shorter than
    ``durable_end`` (committed bytes lost) is logged as an error.
    Intact but uncommitted records are kept; they are orphans for a later GC.
    Returns the new length of the file.
    """
    if path.stat().st_size < SEGMENT_HEADER.size:
        log.warning("segment %s has no complete header; removing it", path)
        path.unlink()
        return 0
    size = path.stat().st_size
    # Only what follows the durable end can be torn: scanning (and hashing) the committed
    # records before it made every start read the whole active segment, up to 1 GiB. A file
    # shorter than its durable end is scanned whole, so the loss is found and logged.
    scan = SegmentScan(path, durable_end if durable_end <= size else 0)
    for _record in scan:
        pass
    valid_end = scan.valid_end
    keep = max(valid_end, durable_end)
    if valid_end < durable_end:
        log.error(
            "segment %s: committed bytes up to %d but records valid only to %d",
            path,
            durable_end,
            valid_end,
        )
    if size > keep:
        log.warning("segment %s: truncating torn tail %d -> %d bytes", path, size, keep)
        with open(path, "r+b") as file:
            file.truncate(keep)
            file.flush()
            os.fsync(file.fileno())
    return keep


class SegmentReader:
    """Reads and verifies chunks; keeps one read-only descriptor per segment. Thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fds: dict[int, int] = {}
        self._unlinked: list[int] = []  # descriptors of removed files, not yet closed
        self._lock = threading.Lock()

    def _fd(self, segment_id: int) -> int:
        with self._lock:
            fd = self._fds.get(segment_id)
            if fd is None:
                try:
                    fd = os.open(segment_path(self.directory, segment_id), os.O_RDONLY)
                except FileNotFoundError as exc:
                    raise CorruptData(f"segment {segment_id:016x} is missing") from exc
                self._fds[segment_id] = fd
            return fd

    def read_chunk(self, chunk: ChunkRef) -> bytes:
        """Return a chunk's bytes after checking its BLAKE3; raise CorruptData otherwise."""
        try:
            return self._read_verified(chunk)
        except CorruptData:
            # With several workers, GC in another one may have removed this segment file
            # (and a new segment may have taken its id): read it again from a fresh descriptor.
            if not self._forget_if_unlinked(chunk.segment_id):
                raise
            return self._read_verified(chunk)

    def _forget_if_unlinked(self, segment_id: int) -> bool:
        with self._lock:
            fd = self._fds.get(segment_id)
            if fd is None or os.fstat(fd).st_nlink > 0:
                return False
            del self._fds[segment_id]
            self._unlinked.append(fd)  # closed by forget_unlinked's caller, after a grace
            return True

    def forget_unlinked(self) -> list[int]:
        """Stop using descriptors of segment files another worker's GC removed; return them
        for the caller to close after a grace period (a read may still be using one)."""
        with self._lock:
            for segment_id, fd in list(self._fds.items()):
                if os.fstat(fd).st_nlink == 0:
                    del self._fds[segment_id]
                    self._unlinked.append(fd)
            unlinked, self._unlinked = self._unlinked, []
            return unlinked

    def _read_verified(self, chunk: ChunkRef) -> bytes:
        data = _pread_exact(self._fd(chunk.segment_id), chunk.length, chunk.offset)
        if blake3.blake3(data).digest() != chunk.blake3:
            raise CorruptData(
                f"chunk at segment {chunk.segment_id:016x} offset {chunk.offset} "
                f"length {chunk.length} fails its BLAKE3 check"
            )
        return data

    def forget(self, segment_ids: set[int]) -> list[int]:
        """Stop using these segments (GC retired them); return their open descriptors.

        The caller closes the descriptors after a grace period: a read that took one just
        before may still be using it. Later reads of these segments find them missing.
        """
        with self._lock:
            return [self._fds.pop(i) for i in segment_ids if i in self._fds]

    def close(self) -> None:
        with self._lock:
            for fd in [*self._fds.values(), *self._unlinked]:
                os.close(fd)
            self._fds.clear()
            self._unlinked.clear()


class _OpenSegment:
    def __init__(self, directory: Path, segment_id: int) -> None:
        self.segment_id = segment_id
        self.path = segment_path(directory, segment_id)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        _pwrite_all(self.fd, SEGMENT_HEADER.pack(SEGMENT_MAGIC, SEGMENT_FORMAT, segment_id), 0)
        os.fsync(self.fd)
        fsync_directory(directory)
        self.end = SEGMENT_HEADER.size


class SegmentWriter:
    """Appends records to the active segment; rotates when it is full. Thread-safe.

    A fresh segment is opened after every start, so appends never follow a recovered tail;
    it is created by the first append, so a store opened only to read (fsck, status, gc plan)
    leaves no empty segment behind.
    """

    def __init__(self, directory: Path, next_segment_id: int, segment_bytes_max: int) -> None:
        self.directory = directory
        self.segment_bytes_max = segment_bytes_max
        self._lock = threading.Lock()
        self._next_id = next_segment_id
        self._active: _OpenSegment | None = None  # created by the first append
        self._durable: dict[int, int] = {}  # segment id -> bytes known durable
        self._unsynced: dict[int, int] = {}
        self.sealed: list[int] = []  # segments rotated out since the last sync()
        self._retired_fds: list[int] = []
        self.observer: CommitObserver = NO_COMMIT_OBSERVER  # told how long data fsyncs take

    @property
    def active_segment_id(self) -> int:
        """The segment appends go to (not created yet before the first append)."""
        active = self._active
        return active.segment_id if active is not None else self._next_id

    def _open_active(self) -> _OpenSegment:
        """The active segment, created (file and directory fsynced) if needed; under the lock."""
        while self._active is None:
            try:
                self._active = _OpenSegment(self.directory, self._next_id)
            except FileExistsError:  # another worker of this node took that id
                self._next_id += 1
                continue
            self._unsynced[self._active.segment_id] = self._active.end
        return self._active

    def append(self, kind: RecordKind, payload: bytes, digest: bytes | None = None) -> Record:
        """Write one record; the caller must still sync() before relying on it."""
        if digest is None:
            digest = blake3.blake3(payload).digest()
        header = RECORD_HEADER.pack(int(kind), len(payload), digest)
        with self._lock:
            segment = self._open_active()
            if segment.end + len(header) + len(payload) > self.segment_bytes_max:
                self._rotate(segment)
                segment = self._open_active()
            start = segment.end
            _pwrite_all(segment.fd, header + payload if len(payload) < 65536 else header, start)
            if len(payload) >= 65536:
                _pwrite_all(segment.fd, payload, start + len(header))
            segment.end = start + len(header) + len(payload)
            self._unsynced[segment.segment_id] = segment.end
            return Record(kind, segment.segment_id, start + len(header), len(payload), digest)

    def _rotate(self, old: _OpenSegment) -> None:
        self._fsync(old.fd)
        # Closed by the next sync(), which may be fsyncing this descriptor right now.
        self._retired_fds.append(old.fd)
        # Reported by the next sync() (already fsynced above): the commit that follows
        # records the sealed segment's true end, which covers every record of that commit
        # (fsck and scrub take the recorded durable end as the committed extent).
        self._unsynced[old.segment_id] = old.end
        self._durable[old.segment_id] = old.end
        self.sealed.append(old.segment_id)
        self._next_id = old.segment_id + 1
        self._active = None  # the caller opens the next one at once

    def sync(self) -> dict[int, int]:
        """fsync everything appended so far; return {segment id: durable end} for each."""
        with self._lock:
            pending = dict(self._unsynced)
            self._unsynced.clear()
            active = self._active
            retired, self._retired_fds = self._retired_fds, []
        for fd in retired:
            os.close(fd)
        # fsync outside the lock so appends continue meanwhile; the active segment is the
        # only one that can be unsynced (rotation fsyncs the old one before moving on).
        if active is not None and active.segment_id in pending:
            self._fsync(active.fd)
        for segment_id, end in pending.items():
            self._durable[segment_id] = max(self._durable.get(segment_id, 0), end)
        return {segment_id: self._durable[segment_id] for segment_id in pending}

    def _fsync(self, fd: int) -> None:
        started = time.perf_counter()
        os.fsync(fd)
        self.observer.fsynced(time.perf_counter() - started)

    def take_sealed(self) -> list[int]:
        with self._lock:
            sealed, self.sealed = self.sealed, []
            return sealed

    def close(self) -> None:
        with self._lock:
            if self._active is not None:
                os.fsync(self._active.fd)
                os.close(self._active.fd)
